"""Server events in Meta's format, with a pixel access key: through the GraphQL function's Lambda
handler (as API Gateway invokes it), then counted and published by the real functions behind their
queues (moto), to a local fake Meta."""

import hashlib
import json
import time
import urllib.parse

import pytest

from pixel_core import config, queues
from pixel_core.models import MatchKeysDayItem, TableItem, TotalsItem, pixel_partition
from tests.support.api_events import http_api_event, response_body
from tests.support.documents import STATS, graphql_body
from tests.support.faults import unreachable

PIXEL = 18904456377094531
EMAIL = "john_smith@gmail.com"
EMAIL_SHA256 = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # Meta's own example
USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
FBP = "fb.1.1596403881668.1116446470"
FBC = "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890"
ACCESS_KEY = """query K($tenantId: ID!) { tenantQueries(tenantId: $tenantId) {
  account { signalConfigs { connectionStatus { pixelID accessKey } } } } }"""
ROTATE = """mutation R($tenantId: ID!, $id: ID!) { tenantMutations(tenantId: $tenantId) {
  signalMutations { rotatePixelAccessKey(id: $id) { success connectionStatus { accessKey } } } } }"""


def access_key(gql, app):
    answer = gql(ACCESS_KEY, {"tenantId": app.tenant_id}, app.basic_header)
    assert answer.errors is None, answer.errors
    (config_,) = answer.data["tenantQueries"]["account"]["signalConfigs"]
    return config_["connectionStatus"]["accessKey"]


def server_event(**overrides):
    event = {
        "event_name": "Purchase",
        "event_time": int(time.time()) - 60,
        "event_id": "order-1001",
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout",
        "user_data": {
            "em": [f"  {EMAIL.upper()} "],
            "ph": ["+1 (650) 555-1212"],
            "client_ip_address": "203.0.113.9",
            "client_user_agent": USER_AGENT,
            "fbp": FBP,
            "fbc": FBC,
        },
        "custom_data": {"value": 42.5, "currency": "EUR"},
    }
    return {**event, **overrides}


def post(handler, lambda_context, path, body, *, content_type="application/json", query="", headers=None):
    event = http_api_event(body, path=path, headers={"content-type": content_type, **(headers or {})})
    event["rawQueryString"] = query
    event["routeKey"] = event["requestContext"]["routeKey"] = (
        "POST /capi/{pixelId}/events" if path.startswith("/capi/") else "POST /{apiVersion}/{pixelId}/events"
    )
    response = handler(event, lambda_context)
    return response["statusCode"], response_body(response)


def totals():
    return TotalsItem.get(*TotalsItem.key(PIXEL))


def test_the_capig_form_with_the_access_key_is_received_counted_and_published_with_its_hashes(
    app, gql, connected, meta, handler, lambda_context, aggregator, publisher, queued_messages, json_logs
):
    # Given the pixel's access key, as its tenant reads it
    key = access_key(gql, app)
    assert key
    # When a server sends one event at the gateway's path, the key in the body
    body = json.dumps({"data": [server_event()], "accessKey": key})
    status, answer = post(handler, lambda_context, f"/capi/{PIXEL}/events", body)
    # Then it is answered as Meta answers
    assert status == 200
    assert (answer["events_received"], answer["messages"]) == (1, [])
    assert answer["fbtrace_id"]
    # And once counted and published, Meta got it with its user_data hashed at the edge
    aggregator()
    publisher()
    (sent,) = meta.events()
    assert sent["event_id"] == "order-1001"
    assert sent["action_source"] == "website"
    assert sent["event_source_url"] == "https://shop.example.com/checkout"
    assert sent["custom_data"] == {"value": 42.5, "currency": "EUR"}
    assert sent["user_data"]["em"] == [EMAIL_SHA256]
    assert sent["user_data"]["ph"] == [hashlib.sha256(b"16505551212").hexdigest()]
    assert (sent["user_data"]["fbp"], sent["user_data"]["fbc"]) == (FBP, FBC)
    assert sent["user_data"]["client_ip_address"] == "203.0.113.9"
    assert sent["user_data"]["client_user_agent"] == USER_AGENT
    assert (int(totals().events_received), int(totals().events_published)) == (1, 1)
    # And neither the e-mail in clear nor the key was logged
    logged = json.dumps(json_logs())
    assert "Request handled" in logged
    assert "john_smith" not in logged.lower()
    assert key not in logged


def test_the_graph_api_path_takes_a_form_body_with_data_and_events_as_strings_and_the_token_in_the_query(
    app, gql, connected, handler, lambda_context, queued_messages
):
    # Given two events sent as Meta's SDKs send them: form-encoded, `data` a JSON string
    key = access_key(gql, app)
    events = [json.dumps(server_event(event_id="a-1")), server_event(event_id="a-2")]
    body = urllib.parse.urlencode({"data": json.dumps(events), "test_event_code": "TEST123"})
    # When they go to the Graph API's own path, access_token in the query string
    status, answer = post(
        handler,
        lambda_context,
        f"/v21.0/{PIXEL}/events",
        body,
        content_type="application/x-www-form-urlencoded",
        query=urllib.parse.urlencode({"access_token": key}),
    )
    # Then both are received and queued, with the request's test event code
    assert (status, answer["events_received"]) == (200, 2), answer
    queued = [json.loads(message) for message in queued_messages("EventsQueue")]
    assert sorted(message["event_id"] for message in queued) == ["a-1", "a-2"]
    assert {message["test_event_code"] for message in queued} == {"TEST123"}


def test_a_bearer_header_carries_the_key_too(app, gql, connected, handler, lambda_context):
    key = access_key(gql, app)
    body = json.dumps({"data": [server_event()]})
    status, answer = post(
        handler, lambda_context, f"/capi/{PIXEL}/events", body, headers={"authorization": f"Bearer {key}"}
    )
    assert (status, answer["events_received"]) == (200, 1)


def test_a_missing_wrong_or_rotated_key_or_another_pixel_is_meta_code_190_and_queues_nothing(
    app, gql, connected, handler, lambda_context, queued_messages
):
    old_key = access_key(gql, app)
    # When the key is rotated
    rotated = gql(ROTATE, {"tenantId": app.tenant_id, "id": str(PIXEL)}, app.basic_header)
    assert rotated.errors is None, rotated.errors
    new_key = rotated.data["tenantMutations"]["signalMutations"]["rotatePixelAccessKey"]["connectionStatus"][
        "accessKey"
    ]
    assert new_key
    assert new_key != old_key
    assert access_key(gql, app) == new_key
    # Then the old key, no key, a wrong key and the right key on another pixel are all refused alike
    refused = [
        (f"/capi/{PIXEL}/events", {"data": [server_event()], "accessKey": old_key}),
        (f"/capi/{PIXEL}/events", {"data": [server_event()]}),
        (f"/capi/{PIXEL}/events", {"data": [server_event()], "accessKey": new_key + "x"}),
        (f"/capi/{PIXEL + 1}/events", {"data": [server_event()], "accessKey": new_key}),
    ]
    for path, body in refused:
        status, answer = post(handler, lambda_context, path, json.dumps(body))
        assert status == 400, (path, answer)
        assert (answer["error"]["code"], answer["error"]["type"]) == (190, "OAuthException")
        assert answer["error"]["fbtrace_id"]
    assert queued_messages("EventsQueue") == []
    # And the new key works at once
    status, _ = post(
        handler,
        lambda_context,
        f"/capi/{PIXEL}/events",
        json.dumps({"data": [server_event()], "accessKey": new_key}),
    )
    assert status == 200


def test_another_tenant_can_neither_read_nor_rotate_the_key(app, make_app, gql, connected):
    other = make_app("other-tenant")
    answer = gql(ACCESS_KEY, {"tenantId": other.tenant_id}, other.basic_header)
    assert answer.data["tenantQueries"]["account"]["signalConfigs"] == []
    rotated = gql(ROTATE, {"tenantId": other.tenant_id, "id": str(PIXEL)}, other.basic_header)
    assert rotated.errors[0].extensions["code"] == 404
    assert access_key(gql, app)  # unchanged, still there


NOW = int(time.time())


@pytest.mark.parametrize(
    ("event", "subcode", "message"),
    [
        pytest.param({"event_name": None}, 2804019, "event_name is required", id="no-event-name"),
        pytest.param({"event_time": None}, 2804019, "event_time is required", id="no-event-time"),
        pytest.param({"event_time": NOW - 8 * 86_400}, 2804003, "more than 7 days", id="too-old"),
        pytest.param({"event_time": NOW + 3_600}, 2804019, "in the future", id="future"),
        pytest.param({"event_time": "yesterday"}, 2804019, "Unix timestamp", id="time-not-a-number"),
        pytest.param({"action_source": None}, 2804019, "action_source is required", id="no-action-source"),
        pytest.param({"action_source": "web"}, 2804019, "must be one of", id="unknown-action-source"),
        pytest.param({"event_source_url": None}, 2804019, "website events need", id="website-without-url"),
        pytest.param(
            {"user_data": {"em": [EMAIL]}}, 2804019, "website events need", id="website-without-user-agent"
        ),
        pytest.param({"user_data": {}}, 2804019, "user_data is required", id="no-user-data"),
        pytest.param(
            {"user_data": {"email": EMAIL, "client_user_agent": "x"}}, 2804019, "user_data.", id="bad-key"
        ),
        pytest.param({"event_id": "x" * 129}, 2804019, "event_id", id="long-event-id"),
        pytest.param({"custom_data": {"value": "x" * 9000}}, 2804019, "custom_data", id="big-custom-data"),
        pytest.param(
            {"custom_data": {"a": [[[[[[[[[[1]]]]]]]]]]}}, 2804019, "10 levels", id="deep-custom-data"
        ),
        pytest.param({"opt_out": "yes"}, 2804019, "opt_out", id="opt-out-not-bool"),
        pytest.param({"surprise": 1}, 2804019, "unknown parameter surprise", id="unknown-field"),
    ],
)
def test_one_invalid_event_refuses_the_request_with_metas_code_100_and_queues_nothing(
    app, gql, connected, handler, lambda_context, queued_messages, event, subcode, message
):
    # Given a valid event and, after it, one that breaks one of Meta's rules
    key = access_key(gql, app)
    broken = {
        name: value
        for name, value in server_event(**{"event_id": "bad", **event}).items()
        if value is not None
    }
    body = json.dumps({"data": [server_event(event_id="good"), broken], "accessKey": key})
    # When they are sent together
    status, answer = post(handler, lambda_context, f"/capi/{PIXEL}/events", body)
    # Then Meta's invalid-parameter answer names the event at fault, and neither was queued
    assert status == 400
    error = answer["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (100, subcode, "OAuthException")
    assert error["error_user_msg"].startswith("data[1]: ")
    assert message in error["error_user_msg"]
    assert EMAIL not in json.dumps(answer)
    assert queued_messages("EventsQueue") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param("{not json", "not valid JSON", id="malformed"),
        pytest.param('{"data": [NaN], "accessKey": "K"}', "not valid JSON", id="nan"),
        pytest.param('["a list"]', "must be a JSON object", id="not-an-object"),
        pytest.param('{"data": {}, "accessKey": "K"}', "non-empty array", id="data-not-a-list"),
        pytest.param('{"data": [], "accessKey": "K"}', "non-empty array", id="no-events"),
        pytest.param('{"data": "[oops", "accessKey": "K"}', "JSON array", id="data-string-not-json"),
        pytest.param('{"data": ["{oops"], "accessKey": "K"}', "JSON object", id="event-string-not-json"),
        pytest.param("[" * 100_000 + "]" * 100_000, "not valid JSON", id="nested-too-deep"),
    ],
)
def test_malformed_bodies_are_metas_code_100(app, gql, connected, handler, lambda_context, body, message):
    key = access_key(gql, app)
    status, answer = post(
        handler, lambda_context, f"/capi/{PIXEL}/events", body.replace('"K"', json.dumps(key))
    )
    assert status == 400
    assert answer["error"]["code"] == 100
    assert message in answer["error"]["error_user_msg"]


def test_more_than_1000_events_are_refused_and_1000_are_taken(
    app, gql, connected, handler, lambda_context, aws, sqs
):
    key = access_key(gql, app)
    events = [server_event(event_id=f"bulk-{n}") for n in range(1001)]
    status, answer = post(
        handler, lambda_context, f"/capi/{PIXEL}/events", json.dumps({"data": events, "accessKey": key})
    )
    assert (status, answer["error"]["code"]) == (400, 100)
    assert "At most 1000 events" in answer["error"]["error_user_msg"]
    status, answer = post(
        handler,
        lambda_context,
        f"/capi/{PIXEL}/events",
        json.dumps({"data": events[:1000], "accessKey": key}),
    )
    assert (status, answer["events_received"]) == (200, 1000)
    # (counted by SQS rather than read back: moto scans its whole queue on every receive)
    attributes = sqs.get_queue_attributes(
        QueueUrl=aws.queue_urls["EventsQueue"], AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == 1000


def test_an_oversized_body_is_a_413_in_metas_shape(app, gql, connected, handler, lambda_context):
    # Over the 4 MiB made for 1,000 full events (the GraphQL API's 64 KiB would not hold them)
    body = json.dumps({"data": [server_event(custom_data={"blob": "x" * 8000})] * 1000})
    assert len(body) > config.settings.max_server_events_body_bytes
    status, answer = post(handler, lambda_context, f"/capi/{PIXEL}/events", body)
    assert status == 413
    assert answer["error"]["code"] == 100


def test_server_pageviews_count_in_stats_and_options_reach_meta_as_given(
    app, gql, connected, meta, handler, lambda_context, aggregator, publisher
):
    # Given a server PageView with an e-mail in clear and Meta's data processing options
    key = access_key(gql, app)
    event = server_event(
        event_name="PageView",
        event_id="pv-1",
        data_processing_options=["LDU"],
        data_processing_options_country=1,
        data_processing_options_state=1000,
        opt_out=False,
    )
    status, _ = post(
        handler, lambda_context, f"/capi/{PIXEL}/events", json.dumps({"data": [event], "accessKey": key})
    )
    assert status == 200
    aggregator()
    publisher()
    # Then Meta got the options unchanged, and the pixel's day counts the pageview and its visitor
    (sent,) = meta.events()
    assert sent["data_processing_options"] == ["LDU"]
    assert (sent["data_processing_options_country"], sent["data_processing_options_state"]) == (1, 1000)
    assert sent["opt_out"] is False
    day = time.strftime("%Y-%m-%d", time.gmtime(event["event_time"]))
    stats = gql(STATS, {"event": {"pixel_id": str(PIXEL), "from": day, "to": day}}, app.basic_header)
    assert stats.errors is None, stats.errors
    totals_of_day = stats.data["stats"]["data"]["totals"]
    assert (totals_of_day["pageviews"], totals_of_day["visitors"]) == (1, 1), totals_of_day


TRACK = "mutation T($event: TrackEventInput!) { track(event: $event) { code data message } }"


def test_track_takes_every_user_data_key_and_the_visitors_ip_and_user_agent_replace_the_callers(
    app, gql, connected, meta, aggregator, publisher, aws, sqs
):
    # Given a server tracking for its visitor through GraphQL, with Meta's user_data keys
    user_data = {
        "em": EMAIL,
        "external_id": "customer-7",
        "fbp": FBP,
        "client_ip_address": "198.51.100.23",
        "client_user_agent": USER_AGENT,
    }
    event = {
        "pixelId": str(PIXEL),
        "eventName": "Lead",
        "url": "https://shop.example.com/",
        "userData": user_data,
    }
    answer = gql(TRACK, {"event": event}, app.basic_header)
    assert answer.data["track"]["code"] == 200, answer.data
    # Then nothing in clear was queued, and Meta got the hashes and the visitor's address and browser
    queued = sqs.receive_message(
        QueueUrl=aws.queue_urls["EventsQueue"], MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    assert len(queued) == 1
    assert "john_smith" not in queued[0]["Body"].lower()
    aggregator()
    publisher()
    (sent,) = meta.events()
    assert sent["user_data"]["em"] == [EMAIL_SHA256]
    assert sent["user_data"]["external_id"] == [hashlib.sha256(b"customer-7").hexdigest()]
    assert sent["user_data"]["fbp"] == FBP
    assert (sent["user_data"]["client_ip_address"], sent["user_data"]["client_user_agent"]) == (
        "198.51.100.23",
        USER_AGENT,
    )


@pytest.mark.parametrize(
    "user_data",
    [
        pytest.param({"em": "not-an-email"}, id="bad-email"),
        pytest.param({"email": EMAIL}, id="unknown-key"),
        pytest.param(["em"], id="not-an-object"),
        pytest.param({"client_ip_address": "999.1.1.1"}, id="bad-ip"),
    ],
)
def test_track_refuses_invalid_user_data_naming_the_key_not_the_value(
    app, gql, connected, queued_messages, user_data
):
    event = {
        "pixelId": str(PIXEL),
        "eventName": "Lead",
        "url": "https://shop.example.com/",
        "userData": user_data,
    }
    answer = gql(TRACK, {"event": event}, app.basic_header).data["track"]
    assert answer["code"] == 400
    assert answer["message"].startswith("Invalid userData")
    assert "not-an-email" not in answer["message"]
    assert "999.1.1.1" not in answer["message"]
    assert queued_messages("EventsQueue") == []


MATCH_KEYS = """query K($tenantId: ID!) { tenantQueries(tenantId: $tenantId) { account { signalConfigs {
  connectionStatus { matchKeys { events keys { key events share } } } } } } }"""


def test_match_key_shares_are_exact_for_a_known_mix_and_cost_one_counter_update_per_day(
    app, gql, connected, handler, lambda_context, aggregator
):
    # Given 10 server events: all with a user agent (website), 6 with an e-mail, 3 with a phone,
    # 1 with fbp; and 2 tracked through GraphQL with the caller's IP and user agent only
    key = access_key(gql, app)
    events = []
    for n in range(10):
        user_data: dict[str, object] = {"client_user_agent": USER_AGENT}
        if n < 6:
            user_data["em"] = [f"buyer{n}@example.com"]
        if n < 3:
            user_data["ph"] = ["+1 650 555 1212"]
        if n == 0:
            user_data["fbp"] = FBP
        events.append(server_event(event_id=f"mix-{n}", user_data=user_data))
    status, _ = post(
        handler, lambda_context, f"/capi/{PIXEL}/events", json.dumps({"data": events, "accessKey": key})
    )
    assert status == 200
    for n in range(2):
        answer = gql(
            TRACK,
            {"event": {"pixelId": str(PIXEL), "eventName": "Lead", "url": f"https://shop.example.com/{n}"}},
            app.basic_header,
        )
        assert answer.data["track"]["code"] == 200
    # When they are counted (in one batch)
    aggregator()
    # Then the shares are exact, over 12 events received
    answer = gql(MATCH_KEYS, {"tenantId": app.tenant_id}, app.basic_header)
    assert answer.errors is None, answer.errors
    (config_,) = answer.data["tenantQueries"]["account"]["signalConfigs"]
    shares = config_["connectionStatus"]["matchKeys"]
    assert shares["events"] == 12
    by_key = {entry["key"]: (entry["events"], entry["share"]) for entry in shares["keys"]}
    assert by_key["client_user_agent"] == (12, 1.0)
    assert by_key["em"] == (6, 0.5)
    assert by_key["ph"] == (3, 0.25)
    assert by_key["fbp"] == (1, 1 / 12)
    assert by_key["client_ip_address"] == (2, 2 / 12)  # the GraphQL callers' address
    assert by_key["external_id"] == (0, 0.0)
    # And stats show the same figures for the day
    day = time.strftime("%Y-%m-%d", time.gmtime())
    stats = gql(STATS, {"event": {"pixel_id": str(PIXEL), "from": day, "to": day}}, app.basic_header)
    assert stats.data["stats"]["data"]["match_keys"] == shares
    # And one counter item holds the pixel's day, whatever the number of events
    items = list(MatchKeysDayItem.query(pixel_partition(PIXEL), TableItem.sk.startswith("MK#")))
    assert [item.sk for item in items] == [f"MK#{day}"]


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BOT_FILTERING = """mutation B($tenantId: ID!, $id: ID!, $input: SignalConfigStatusInput!) { tenantMutations(tenantId: $tenantId) {
  signalMutations { updateSignalConfigBotFiltering(id: $id, input: $input) { success connectionStatus {
    botFilteringEnabled totalEventsFromBots } } } } }"""


def test_a_bots_events_are_dropped_as_bot_counted_per_pixel_and_never_published(
    app, gql, connected, meta, handler, lambda_context, aggregator, publisher
):
    # Given a server event for a crawler's visit, a track a server sends with a python-requests
    # client and no visitor user agent, and a track that names a crawler as the visitor
    key = access_key(gql, app)
    crawler = server_event(event_id="bot-1", user_data={"client_user_agent": GOOGLEBOT})
    status, answer = post(
        handler, lambda_context, f"/capi/{PIXEL}/events", json.dumps({"data": [crawler], "accessKey": key})
    )
    assert (status, answer["events_received"]) == (200, 1)  # as Meta answers: received, then judged
    backend = {
        "pixelId": str(PIXEL),
        "eventName": "Lead",
        "url": "https://shop.example.com/",
        "eventId": "backend-1",
    }
    event = http_api_event(
        graphql_body(TRACK, {"event": backend}),
        headers={"authorization": app.basic_header, "user-agent": "python-requests/2.31.0"},
    )
    assert response_body(handler(event, lambda_context))["data"]["track"]["code"] == 200
    named = {**backend, "eventId": "bot-2", "userData": {"client_user_agent": GOOGLEBOT}}
    dropped = gql(TRACK, {"event": named}, app.basic_header).data["track"]
    assert dropped["message"] == "Event dropped: bot"
    # When they are counted and published
    aggregator()
    publisher()
    # Then the two bots' are dropped as bots, the backend's is received and reaches Meta
    assert [sent["event_id"] for sent in meta.events()] == ["backend-1"]
    assert (int(totals().events_received), int(totals().events_dropped), int(totals().events_bots)) == (
        1,
        2,
        2,
    )
    flags = gql(
        BOT_FILTERING, {"tenantId": app.tenant_id, "id": str(PIXEL), "input": {"status": 1}}, app.basic_header
    )
    status_ = flags.data["tenantMutations"]["signalMutations"]["updateSignalConfigBotFiltering"][
        "connectionStatus"
    ]
    assert status_ == {"botFilteringEnabled": True, "totalEventsFromBots": 2.0}


def test_bot_filtering_turned_off_counts_a_crawlers_events_like_any_other(
    app, gql, connected, handler, lambda_context, aggregator
):
    off = gql(
        BOT_FILTERING, {"tenantId": app.tenant_id, "id": str(PIXEL), "input": {"status": 0}}, app.basic_header
    )
    assert off.errors is None, off.errors
    key = access_key(gql, app)
    crawler = server_event(event_id="bot-3", user_data={"client_user_agent": GOOGLEBOT})
    status, _ = post(
        handler, lambda_context, f"/capi/{PIXEL}/events", json.dumps({"data": [crawler], "accessKey": key})
    )
    assert status == 200
    aggregator()
    assert (int(totals().events_received), int(totals().events_bots)) == (1, 0)


def test_an_unexpected_failure_is_metas_transient_code_2_and_is_logged(
    app, gql, connected, handler, lambda_context, json_logs, inject
):
    # Given the events queue unreachable for the function (a failure on our side, not the sender's)
    key = access_key(gql, app)
    inject(queues.sqs_client(), "SendMessageBatch", unreachable)
    # When a valid request comes in
    status, answer = post(
        handler,
        lambda_context,
        f"/capi/{PIXEL}/events",
        json.dumps({"data": [server_event()], "accessKey": key}),
    )
    # Then it is Meta's retryable answer, is_transient inside the error as Meta puts it
    assert status == 500
    assert (answer["error"]["code"], answer["error"]["is_transient"]) == (2, True)
    assert answer["error"]["fbtrace_id"]
    assert [line["fbtrace_id"] for line in json_logs() if line["message"] == "Server events failed"] == [
        answer["error"]["fbtrace_id"]
    ]
