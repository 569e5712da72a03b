"""The Conversions API Gateway control plane, with the reference's own sample requests."""

import json
import time

import pytest

from graphql_api.resolvers.errors import format_error
from pixel_core.models import PixelItem
from pixel_core.tokens import TokenDecryptionError, decrypt_access_token
from tests.support.documents import (
    CAPI_PUBLISH,
    DELETE,
    DOMAIN_FILTER,
    EVENT_FILTER,
    EVENTS_STATUS,
    PIXEL,
    SETUP,
    SETUP_VARIABLES,
    TENANT_QUERIES,
    TRACK,
)


def capig(gql, app, query, variables):
    """The answer as the API sends it: errors through the server's error formatter."""
    result = gql(query, variables, app.basic_header)
    return {"data": result.data, "errors": [format_error(error) for error in result.errors or []]}


@pytest.fixture
def connected(app, gql):
    answer = capig(gql, app, SETUP, SETUP_VARIABLES)
    assert answer["errors"] == []
    return answer


def test_seed_setup_pixel_signal_config_answers_the_sample_response(connected):
    assert connected["data"] == {
        "tenantMutations": {
            "signalMutations": {
                "setupPixelSignalConfig": {
                    "id": "SignalConfig:18904456377094531",
                    "domains": [],
                    "connectionId": "18904456377094531",
                    "connectionStatus": {
                        "id": "ConnectionStatus:18904456377094531",
                        "accessTokenAvailable": True,
                        "active": True,
                        "eventBridgeActive": True,
                        "publishingEnabled": True,
                        "apiErrorCode": None,
                        "pixelID": "18904456377094531",
                        "pixelName": None,
                        "lastPublished": 0.0,
                        "totalEventsPublished": 0.0,
                        "lastReceived": 0.0,
                        "totalEventsReceived": 0.0,
                    },
                }
            }
        }
    }


def test_seed_status_and_publish_mutations_answer_the_sample_responses(app, gql, connected):
    receiving = capig(gql, app, EVENTS_STATUS, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 1}})
    assert receiving == {
        "data": {
            "tenantMutations": {
                "signalMutations": {
                    "updateSignalConfigEventsStatus": {
                        "success": True,
                        "connectionStatus": {
                            "id": "ConnectionStatus:18904456377094531",
                            "connected": True,
                            "active": True,
                            "eventBridgeActive": True,
                            "publishingEnabled": True,
                        },
                    }
                }
            }
        },
        "errors": [],
    }
    publishing = capig(gql, app, CAPI_PUBLISH, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 0}})
    assert publishing["data"]["tenantMutations"]["signalMutations"]["updateSignalConfigCapiPublish"] == {
        "success": True,
        "connectionStatus": {
            "id": "ConnectionStatus:18904456377094531",
            "active": False,
            "eventBridgeActive": True,
            "publishingEnabled": False,
        },
    }


def test_seed_filter_mutations_answer_the_sample_responses(app, gql, connected):
    event_filter = capig(
        gql,
        app,
        EVENT_FILTER,
        {
            "tenantId": "IaoreXfj",
            "input": {"eventName": "AddToCart", "pixelIds": [PIXEL], "filterState": "PUBLISH"},
        },
    )
    assert event_filter == {
        "data": {
            "tenantMutations": {
                "updateEventFilter": {
                    "updatedFilter": {"eventName": "AddToCart", "pixelId": PIXEL, "filterState": "PUBLISH"}
                }
            }
        },
        "errors": [],
    }
    domain_filter = capig(
        gql,
        app,
        DOMAIN_FILTER,
        {"tenantId": "IaoreXfj", "input": {"domain": "example.com", "filterState": "DROP"}},
    )
    assert domain_filter == {
        "data": {
            "tenantMutations": {
                "updateDomainFilter": {
                    "updatedFilter": {
                        "id": "DomainFilter:example.com:global",
                        "domain": "example.com",
                        "pixelId": None,
                        "filterState": "DROP",
                    }
                }
            }
        },
        "errors": [],
    }


def test_seed_delete_data_source_answers_true_and_then_404(app, gql, connected):
    variables = {"id": PIXEL, "tenantId": "IaoreXfj"}
    assert capig(gql, app, DELETE, variables) == {
        "data": {"tenantMutations": {"signalMutations": {"deleteDataSource": True}}},
        "errors": [],
    }
    again = capig(gql, app, DELETE, variables)
    assert [e["extensions"]["code"] for e in again["errors"]] == [404]


def error_codes(answer):
    return [error["extensions"]["code"] for error in answer["errors"]]


def test_another_tenants_id_and_bad_credentials_are_401(app, make_app, gql, connected):
    stranger = make_app("stranger")
    assert error_codes(capig(gql, stranger, SETUP, SETUP_VARIABLES)) == [401]
    assert error_codes(capig(gql, stranger, DELETE, {"id": PIXEL, "tenantId": "IaoreXfj"})) == [401]
    result = gql(DELETE, {"id": PIXEL, "tenantId": "IaoreXfj"}, "Basic " + "eDp5")  # x:y
    assert [error.formatted["extensions"]["code"] for error in result.errors] == [401]
    assert (
        gql(DELETE, {"id": PIXEL, "tenantId": "IaoreXfj"}, None).errors[0].formatted["extensions"]["code"]
        == 401
    )
    # Nothing was deleted
    assert PixelItem.get(*PixelItem.key(int(PIXEL))).tenant_id == "IaoreXfj"


def test_a_pixel_owned_by_another_tenant_cannot_be_set_up_and_looks_missing_elsewhere(
    app, make_app, gql, connected
):
    stranger = make_app("stranger")
    taken = capig(gql, stranger, SETUP, {**SETUP_VARIABLES, "tenantId": "stranger"})
    assert error_codes(taken) == [400]
    status = capig(
        gql, stranger, EVENTS_STATUS, {"id": PIXEL, "tenantId": "stranger", "input": {"status": 0}}
    )
    assert error_codes(status) == [404]
    assert PixelItem.get(*PixelItem.key(int(PIXEL))).receiving_enabled is True


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        (EVENTS_STATUS, {"id": "999", "tenantId": "IaoreXfj", "input": {"status": 1}}, 404),
        (CAPI_PUBLISH, {"id": "999", "tenantId": "IaoreXfj", "input": {"status": 1}}, 404),
        (DELETE, {"id": "999", "tenantId": "IaoreXfj"}, 404),
        (EVENTS_STATUS, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 2}}, 400),
        (CAPI_PUBLISH, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": -1}}, 400),
        (EVENTS_STATUS, {"id": "not-a-pixel", "tenantId": "IaoreXfj", "input": {"status": 1}}, 400),
        (
            EVENT_FILTER,
            {"tenantId": "IaoreXfj", "input": {"eventName": "AddToCart", "filterState": "MAYBE"}},
            400,
        ),
        (
            DOMAIN_FILTER,
            {"tenantId": "IaoreXfj", "input": {"domain": "example.com", "filterState": "PUBLISH"}},
            400,
        ),
        (
            DOMAIN_FILTER,
            {"tenantId": "IaoreXfj", "input": {"domain": "not a domain!", "filterState": "DROP"}},
            400,
        ),
        (
            DOMAIN_FILTER,
            {"tenantId": "IaoreXfj", "input": {"domain": "x" * 10_000, "filterState": "DROP"}},
            400,
        ),
        (EVENT_FILTER, {"tenantId": "IaoreXfj", "input": {"eventName": "", "filterState": "DROP"}}, 400),
        (
            EVENT_FILTER,
            {"tenantId": "IaoreXfj", "input": {"eventName": "A\x00B", "filterState": "DROP"}},
            400,
        ),
        (
            EVENT_FILTER,
            {
                "tenantId": "IaoreXfj",
                "input": {"eventName": "AddToCart", "pixelIds": ["999"], "filterState": "DROP"},
            },
            404,
        ),
        (
            EVENT_FILTER,
            {
                "tenantId": "IaoreXfj",
                "input": {"eventName": "AddToCart", "pixelIds": [], "filterState": "DROP"},
            },
            400,
        ),
        (SETUP, {**SETUP_VARIABLES, "input": {**SETUP_VARIABLES["input"], "pixelId": "12a"}}, 400),
        (SETUP, {**SETUP_VARIABLES, "input": {**SETUP_VARIABLES["input"], "accessToken": ""}}, 400),
        (SETUP, {**SETUP_VARIABLES, "input": {**SETUP_VARIABLES["input"], "accessToken": "t" * 5000}}, 400),
        (SETUP, {**SETUP_VARIABLES, "input": {**SETUP_VARIABLES["input"], "apiVersion": "14"}}, 400),
        (SETUP, {**SETUP_VARIABLES, "input": {**SETUP_VARIABLES["input"], "businessId": " "}}, 400),
    ],
    ids=[
        "events-status-unknown-pixel",
        "publish-unknown-pixel",
        "delete-unknown-pixel",
        "status-2",
        "status-negative",
        "malformed-id",
        "event-filter-state",
        "domain-filter-state",
        "malformed-domain",
        "oversized-domain",
        "empty-event-name",
        "control-char-event-name",
        "filter-foreign-pixel",
        "empty-pixel-ids",
        "setup-bad-pixel",
        "setup-empty-token",
        "setup-oversized-token",
        "setup-bad-api-version",
        "setup-blank-business",
    ],
)
def test_bad_requests_get_the_documented_error_codes_and_change_nothing(
    app, gql, connected, query, variables, code
):
    before = PixelItem.get(*PixelItem.key(int(PIXEL))).serialize()
    answer = capig(gql, app, query, variables)
    assert error_codes(answer) == [code]
    assert all("Traceback" not in error["message"] for error in answer["errors"])
    assert PixelItem.get(*PixelItem.key(int(PIXEL))).serialize() == before


def test_the_token_is_stored_encrypted_bound_to_tenant_and_pixel_and_never_returned(app, gql, connected):
    capig(
        gql,
        app,
        SETUP,
        {**SETUP_VARIABLES, "input": {**SETUP_VARIABLES["input"], "accessToken": "EAAB-secret-token"}},
    )
    stored = PixelItem.get(*PixelItem.key(int(PIXEL)))
    assert stored.access_token_ciphertext
    assert "EAAB-secret-token" not in json.dumps(stored.serialize())
    assert (
        decrypt_access_token(stored.access_token_ciphertext, tenant_id="IaoreXfj", pixel_id=int(PIXEL))
        == "EAAB-secret-token"
    )
    with pytest.raises(TokenDecryptionError):
        decrypt_access_token(stored.access_token_ciphertext, tenant_id="other", pixel_id=int(PIXEL))
    with pytest.raises(TokenDecryptionError):
        decrypt_access_token(stored.access_token_ciphertext, tenant_id="IaoreXfj", pixel_id=1)
    listed = capig(gql, app, TENANT_QUERIES, {"tenantId": "IaoreXfj"})
    assert "EAAB-secret-token" not in json.dumps(listed)


def test_replacing_the_token_reconnects_a_rejected_pixel(app, gql, connected):
    pixel = PixelItem.get(*PixelItem.key(int(PIXEL)))
    pixel.update(actions=[PixelItem.token_rejected.set(True), PixelItem.api_error_code.set(190)])
    status = capig(gql, app, TENANT_QUERIES, {"tenantId": "IaoreXfj"})
    (config,) = status["data"]["tenantQueries"]["account"]["signalConfigs"]
    assert (config["connectionStatus"]["connected"], config["connectionStatus"]["apiErrorCode"]) == (
        False,
        190,
    )
    capig(gql, app, SETUP, SETUP_VARIABLES)
    status = capig(gql, app, TENANT_QUERIES, {"tenantId": "IaoreXfj"})
    (config,) = status["data"]["tenantQueries"]["account"]["signalConfigs"]
    assert (config["connectionStatus"]["connected"], config["connectionStatus"]["apiErrorCode"]) == (
        True,
        None,
    )


def track(gql, app, **event):
    answer = gql(TRACK, {"event": {"pixelId": PIXEL, "eventName": "PageView", **event}}, app.basic_header)
    assert answer.errors is None, answer.errors
    return answer.data["track"]


def connection_status(gql, app):
    answer = capig(gql, app, TENANT_QUERIES, {"tenantId": "IaoreXfj"})
    (config,) = answer["data"]["tenantQueries"]["account"]["signalConfigs"]
    return config["connectionStatus"]


def test_twenty_tracked_events_show_as_received_and_receiving_off_drops_the_next(
    app, gql, connected, aggregator
):
    # Given 20 events of several kinds
    for n in range(20):
        answer = track(
            gql,
            app,
            eventName=["PageView", "AddToCart", "Purchase", "Lead"][n % 4],
            url=f"https://example.com/p/{n}",
        )
        assert answer["code"] == 200
    aggregator()
    status = connection_status(gql, app)
    assert status["totalEventsReceived"] == 20.0
    assert time.time() - 60 < status["lastReceived"] <= time.time()
    # When receiving is turned off
    capig(gql, app, EVENTS_STATUS, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 0}})
    dropped = track(gql, app, eventName="Purchase", domain="example.com")
    aggregator()
    # Then the next event is dropped and counted as dropped, not as received
    assert dropped["message"] == f"Event dropped: receiving is turned off for pixel {PIXEL}"
    assert connection_status(gql, app)["totalEventsReceived"] == 20.0
    got = gql(
        "mutation P($e: ApiPixelsEventInput!) { pixels(event: $e) { data } }",
        {"e": {"action": "get", "pixel_id": PIXEL}},
        app.basic_header,
    ).data["pixels"]["data"]
    assert got["events_dropped"] == 1


def test_global_drop_domain_filter_and_a_pixel_level_allow_override(app, gql, connected, aggregator):
    # Given a global DROP for example.com
    capig(
        gql,
        app,
        DOMAIN_FILTER,
        {"tenantId": "IaoreXfj", "input": {"domain": "example.com", "filterState": "DROP"}},
    )
    blocked = track(gql, app, domain="shop.example.com")
    assert blocked["message"] == "Event dropped: domain shop.example.com is blocked by a domain filter"
    # When the pixel itself ALLOWs it
    allow = {"domain": "example.com", "pixelIds": [PIXEL], "filterState": "ALLOW"}
    capig(gql, app, DOMAIN_FILTER, {"tenantId": "IaoreXfj", "input": allow})
    allowed = track(gql, app, domain="shop.example.com")
    # Then the pixel's filter wins
    assert allowed["code"] == 200
    assert allowed["message"] == "Success"
    aggregator()
    assert connection_status(gql, app)["totalEventsReceived"] == 1.0
    filters = capig(gql, app, TENANT_QUERIES, {"tenantId": "IaoreXfj"})["data"]["tenantQueries"][
        "domainFilters"
    ]
    assert filters == [
        {
            "id": "DomainFilter:example.com:global",
            "domain": "example.com",
            "pixelId": None,
            "filterState": "DROP",
        },
        {
            "id": f"DomainFilter:example.com:{PIXEL}",
            "domain": "example.com",
            "pixelId": PIXEL,
            "filterState": "ALLOW",
        },
    ]


def test_publishing_off_or_an_event_filter_drop_keeps_events_received_but_unpublishable(
    app, gql, connected, queued_messages
):
    track(gql, app, domain="example.com")
    capig(
        gql,
        app,
        EVENT_FILTER,
        {"tenantId": "IaoreXfj", "input": {"eventName": "Lead", "filterState": "DROP"}},
    )
    track(gql, app, eventName="Lead", domain="example.com")
    capig(gql, app, CAPI_PUBLISH, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 0}})
    track(gql, app, domain="example.com")
    messages = [json.loads(body) for body in queued_messages()]
    assert [(m["event_name"], m["dropped"], m["unpublishable"]) for m in messages] == [
        ("PageView", None, None),
        ("Lead", None, "event Lead is dropped by an event filter"),
        ("PageView", None, "publishing is turned off"),
    ]


def test_event_filter_for_many_pixels_returns_every_filter(app, gql, connected):
    other = dict(SETUP_VARIABLES, input={**SETUP_VARIABLES["input"], "pixelId": "1234567890123456"})
    capig(gql, app, SETUP, other)
    both = {"eventName": "Purchase", "pixelIds": [PIXEL, "1234567890123456"], "filterState": "DROP"}
    result = gql(
        "mutation F($t: ID!, $i: UpdateEventFilterInput!) { tenantMutations(tenantId: $t) { updateEventFilter(input: $i) { updatedFilter { id } updatedFilters { id pixelId } } } }",
        {"t": "IaoreXfj", "i": both},
        app.basic_header,
    )
    written = result.data["tenantMutations"]["updateEventFilter"]
    assert written["updatedFilter"] == {"id": f"EventFilter:Purchase:{PIXEL}"}
    assert written["updatedFilters"] == [
        {"id": f"EventFilter:Purchase:{PIXEL}", "pixelId": PIXEL},
        {"id": "EventFilter:Purchase:1234567890123456", "pixelId": "1234567890123456"},
    ]


def test_track_validates_its_input(app, gql, connected, queued_messages):
    for event, fragment in (
        ({"eventName": ""}, "Invalid event name"),
        ({"eventName": "PageView", "url": "javascript:alert(1)"}, "Invalid url"),
        (
            {"eventName": "PageView", "domain": "example.com", "eventId": "no spaces allowed"},
            "Invalid eventId",
        ),
        ({"eventName": "PageView", "domain": "example.com", "eventTime": 1}, "Invalid eventTime"),
        ({"eventName": "PageView", "domain": "example.com", "customData": [1, 2]}, "Invalid customData"),
        (
            {"eventName": "PageView", "domain": "example.com", "customData": {"x": "y" * 9000}},
            "Invalid customData",
        ),
        ({"eventName": "PageView"}, "Invalid domain format"),
    ):
        answer = gql(TRACK, {"event": {"pixelId": PIXEL, **event}}, app.basic_header).data["track"]
        assert answer["code"] == 400, event
        assert fragment in answer["message"]
    assert queued_messages() == []


def test_a_client_event_id_is_kept_and_a_retry_counts_once(app, gql, connected, aggregator):
    first = track(gql, app, domain="example.com", eventId="order-42.purchase")
    second = track(gql, app, domain="example.com", eventId="order-42.purchase")
    assert first["data"] == second["data"] == {"event_id": "order-42.purchase"}
    aggregator()
    assert connection_status(gql, app)["totalEventsReceived"] == 1.0
