"""The pageview mutation: the document's request, identity hashing, drops, errors, and the queue."""

import hashlib
import json
import logging
import time
import types
from datetime import UTC, datetime

import pytest

from pixel_core import intake, queues
from tests.support.api_events import graphql_post
from tests.support.documents import DOMAINS, PAGEVIEW, PIXELS, SEED_PAGEVIEW, STATS, TRACK
from tests.support.faults import max_attempts, unreachable

EMAIL = "john_smith@gmail.com"
EMAIL_MD5 = hashlib.md5(EMAIL.encode(), usedforsecurity=False).hexdigest()
EMAIL_SHA256 = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # Meta's own example
SERVICE_LOGGER = "pixel-gateway"  # Powertools' Logger(service=...) logs under the service's name


class IntakeClock:
    """pixel_core.intake's time.time(), set by the test: each accepted event's received_at (and, when
    the client sends none, its event time, hence its day)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def intake_clock(monkeypatch):
    clock = IntakeClock(float(int(time.time()) - 60))  # a whole second, a minute ago
    monkeypatch.setattr(intake, "time", types.SimpleNamespace(time=clock.time))
    return clock


def iso_utc(seconds: float) -> str:
    """`2026-11-25T21:00:02.500Z`: the wire format of the HeroPixel documents."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def pixel_1(app, gql):
    assert (
        gql(PIXELS, {"event": {"action": "create", "pixel_id": 1}}, app.basic_header).data["pixels"]["code"]
        == 200
    )
    return 1


def pageview(gql, app, event):
    query = SEED_PAGEVIEW.replace("APP", app.app_id).replace("SECRET", app.app_secret)
    result = gql(query, {"event": event})
    assert result.errors is None, result.errors
    return result.data["pageview"]


def test_seed_pageview_answers_as_documented_and_knows_the_visitor_once_counted(
    app, gql, pixel_1, aggregator
):
    # Given the document's request with a real md5 (and empty e-mail placeholder)
    event = {"md5": EMAIL_MD5, "pixelId": 1, "domain": "example.com"}
    # When it is sent before and after the aggregator counted the first one
    first = pageview(gql, app, event)
    aggregator()
    second = pageview(gql, app, event)
    # Then the visitor is new, then found, with the documented envelope
    assert first == {"message": "User Not Found", "code": 200, "data": {}}
    assert second == {"message": "User Found", "code": 200, "data": {}}


def test_anonymous_pageview_is_success(app, gql, pixel_1):
    assert pageview(gql, app, {"md5": "", "pixelId": 1, "domain": "example.com"}) == {
        "message": "Success",
        "code": 200,
        "data": {},
    }


def test_email_is_hashed_at_the_edge_and_neither_queued_nor_logged_by_the_lambda_handler_though_the_request_is_logged(
    app, pixel_1, handler, lambda_context, queued_messages, json_logs, caplog, capsys
):
    # Given every logger at DEBUG, the service's own included, and a pageview with an e-mail sent
    # through the real Lambda handler (the layer that logs)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SERVICE_LOGGER)
    event = graphql_post(
        PAGEVIEW,
        {
            "auth": app.auth,
            "event": {
                "email": "  John_Smith@Gmail.com ",
                "pixelId": 1,
                "domain": "https://Example.com/landing?x=1",
            },
        },
    )

    # When the handler answers it
    response = handler(event, lambda_context)

    # Then it was accepted, and the queued message holds the e-mail's hashes only
    assert json.loads(response["body"])["data"]["pageview"]["code"] == 200
    (body,) = queued_messages()
    message = json.loads(body)
    assert message["visitor_md5"] == EMAIL_MD5
    assert message["email_sha256"] == EMAIL_SHA256
    assert message["domain"] == "example.com"
    assert message["event_name"] == "PageView"
    assert message["pixel_id"] == "1"
    assert message["v"] == 1
    assert message["dropped"] is None
    # And the capture did see the request's access line (so an absence below means something)
    records = json_logs()
    handled = [r for r in records if r["message"] == "Request handled"]
    assert [r["correlation_id"] for r in handled] == [event["requestContext"]["requestId"]]
    # And the e-mail is in no record nor output, nor in the message; its hashes are in none of the
    # service's records nor in the output (botocore's DEBUG records do hold the md5: it is a key)
    captured = capsys.readouterr()
    service_logs = json.dumps(records) + captured.out + captured.err
    for text in (body, service_logs + caplog.text):
        assert "john_smith" not in text.lower()
        assert "gmail" not in text.lower()
    assert EMAIL_MD5 not in service_logs
    assert EMAIL_SHA256 not in service_logs


def test_md5_alone_identifies_without_an_email_hash(app, gql, pixel_1, queued_messages):
    pageview(gql, app, {"md5": EMAIL_MD5.upper(), "pixelId": 1, "domain": "example.com"})
    (body,) = queued_messages()
    assert json.loads(body)["visitor_md5"] == EMAIL_MD5
    assert json.loads(body)["email_sha256"] is None


def test_each_accepted_pageview_gets_its_own_event_id(app, gql, pixel_1, queued_messages):
    for _ in range(3):
        pageview(gql, app, {"pixelId": 1, "domain": "example.com"})
    ids = [json.loads(body)["event_id"] for body in queued_messages()]
    assert len(set(ids)) == 3


def test_domain_not_attached_is_dropped_answered_200_and_counted_as_dropped_and_last_received_is_the_last_accepted_one(
    app, gql, pixel_1, aggregator, intake_clock
):
    # Given a pixel with one attached domain
    gql(DOMAINS, {"event": {"pixel_id": 1, "action": "add", "domain": "shop.example"}}, app.basic_header)
    start = intake_clock.now
    # When pageviews come from it, from a subdomain of it, and (last) from elsewhere, 1.25 s apart
    intake_clock.now = start + 1.25
    attached = pageview(gql, app, {"pixelId": 1, "domain": "shop.example"})
    intake_clock.now = start + 2.5
    subdomain = pageview(gql, app, {"pixelId": 1, "domain": "www.shop.example"})
    intake_clock.now = start + 3.75
    elsewhere = pageview(gql, app, {"pixelId": 1, "domain": "evil.example"})
    aggregator()
    # Then only the stranger is dropped, and the totals say so
    assert attached["message"] == subdomain["message"] == "Success"
    assert elsewhere == {
        "message": "Event dropped: domain evil.example is not attached to pixel 1",
        "code": 200,
        "data": {},
    }
    got = gql(PIXELS, {"event": {"action": "get", "pixel_id": 1}}, app.basic_header).data["pixels"]["data"]
    assert (got["events_received"], got["events_dropped"]) == (2, 1)
    # And the last received is when the subdomain's pageview was accepted: a dropped one does not count
    assert got["last_received_at"] == iso_utc(start + 2.5)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"pixelId": 1, "domain": "not a domain"}, {"code": 400, "message": "Invalid domain format"}),
        ({"pixelId": 1, "domain": ""}, {"code": 400, "message": "Invalid domain format"}),
        ({"pixelId": 1, "domain": "x" * 100_000}, {"code": 400, "message": "Invalid domain format"}),
        (
            {"pixelId": 1, "domain": "example.com", "md5": "xyz"},
            {"code": 400, "message": "Invalid md5: expected 32 hexadecimal characters"},
        ),
        (
            {"pixelId": 1, "domain": "example.com", "md5": "a" * 33},
            {"code": 400, "message": "Invalid md5: expected 32 hexadecimal characters"},
        ),
        (
            {"pixelId": 1, "domain": "example.com", "email": "no-at-sign"},
            {"code": 400, "message": "Invalid email"},
        ),
        (
            {"pixelId": 1, "domain": "example.com", "email": "a@b\x00c.com"},
            {"code": 400, "message": "Invalid email"},
        ),
        (
            {"pixelId": 1, "domain": "example.com", "email": "a" * 10_000 + "@x.com"},
            {"code": 400, "message": "Invalid email"},
        ),
        ({"pixelId": 2, "domain": "example.com"}, {"code": 404, "message": "Pixel 2 not found"}),
    ],
    ids=[
        "bad-domain",
        "empty-domain",
        "oversized-domain",
        "bad-md5",
        "long-md5",
        "bad-email",
        "nul-email",
        "oversized-email",
        "unknown-pixel",
    ],
)
def test_bad_pageviews_are_clear_errors_and_queue_nothing(
    app, gql, pixel_1, queued_messages, event, expected
):
    assert pageview(gql, app, event) == {**expected, "data": {}}
    assert queued_messages() == []


def test_another_tenants_pixel_is_404_and_queues_nothing(make_app, gql, queued_messages):
    owner, stranger = make_app("owner"), make_app("stranger")
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 9}}, owner.basic_header)
    assert pageview(gql, stranger, {"pixelId": 9, "domain": "example.com"}) == {
        "code": 404,
        "data": {},
        "message": "Pixel 9 not found",
    }
    assert queued_messages() == []


def test_a_pageview_whose_send_to_sqs_fails_is_a_500_envelope_that_leaves_nothing_queued_nor_counted_and_the_same_pageview_then_goes_through(
    app, gql, pixel_1, queued_messages, aggregator, inject
):
    # Given the function's SQS client unable to reach SQS on every attempt of SendMessage (injected at
    # botocore's before-send), while the queue itself stays reachable to the test's own client
    client = queues.sqs_client()
    fault = inject(client, "SendMessage", unreachable)
    event = {"pixelId": 1, "domain": "example.com", "email": EMAIL}

    # When an identified pageview arrives
    answer = pageview(gql, app, event)

    # Then the send was attempted as often as botocore allows, and the answer is the generic 500 envelope
    assert fault.attempts == ["SendMessage"] * max_attempts(client)
    assert answer == {"code": 500, "data": {}, "message": "Internal server error"}
    # And nothing waits on the queue
    assert queued_messages() == []

    # When SQS is reachable again and the same pageview is sent again
    fault.lift()
    again = pageview(gql, app, event)

    # Then it is accepted as a new visitor, and the queue held that one message only (the same
    # reader sees it), counted once: the failed request left nothing half done
    assert again == {"code": 200, "data": {}, "message": "User Not Found"}
    assert aggregator() == 1
    got = gql(PIXELS, {"event": {"action": "get", "pixel_id": 1}}, app.basic_header).data["pixels"]["data"]
    assert (got["events_received"], got["events_dropped"]) == (1, 0)


def test_stats_after_pageviews_and_its_range_validation(app, gql, pixel_1, aggregator, intake_clock):
    # Given every pageview accepted at one instant, whose UTC day is "today" (no race with midnight)
    today = datetime.fromtimestamp(intake_clock.now, UTC).date().isoformat()
    for email in ("a@x.com", "b@x.com", "a@x.com"):
        pageview(gql, app, {"pixelId": 1, "domain": "example.com", "email": email})
    pageview(gql, app, {"pixelId": 1, "domain": "www.example.com"})
    aggregator()

    def stats(start, end):
        return gql(STATS, {"event": {"pixel_id": 1, "from": start, "to": end}}, app.basic_header).data[
            "stats"
        ]

    answer = stats(today, today)
    assert answer["code"] == 200
    assert answer["data"]["totals"] == {"pageviews": 4, "visitors": 2}
    (day,) = answer["data"]["days"]
    assert day["date"] == today
    assert day["domains"] == [
        {"domain": "example.com", "pageviews": 3},
        {"domain": "www.example.com", "pageviews": 1},
    ]
    assert stats("2026-01-01", "2026-04-30") == {
        "code": 400,
        "data": {},
        "message": "The range may span at most 92 days",
    }
    assert stats("2026-11-02", "2026-11-01") == {
        "code": 400,
        "data": {},
        "message": "'to' must not be before 'from'",
    }
    assert stats("2026-13-01", "2026-13-02")["code"] == 400
    assert stats("yesterday", "today")["code"] == 400
    assert stats("2026-11-01", "2026-11-01x")["code"] == 400


def test_events_other_than_pageviews_are_received_but_feed_neither_daily_pageviews_nor_visitors_nor_domains(
    app, gql, pixel_1, aggregator, intake_clock
):
    # Given a pixel with its domain, and on one day: a Lead and a Purchase from a visitor on another
    # host, then one PageView from someone else
    today = datetime.fromtimestamp(intake_clock.now, UTC).date().isoformat()
    gql(DOMAINS, {"event": {"pixel_id": 1, "action": "add", "domain": "example.com"}}, app.basic_header)
    for name in ("Lead", "Purchase"):
        tracked = gql(
            TRACK,
            {"event": {"pixelId": 1, "eventName": name, "domain": "shop.example.com", "email": EMAIL}},
            app.basic_header,
        ).data["track"]
        assert (tracked["code"], tracked["message"]) == (200, "Success")
    pageview(gql, app, {"pixelId": 1, "domain": "example.com", "email": "other@example.org"})

    # When the aggregator has counted them
    assert aggregator() == 3

    # Then all three are received, but the day holds the one pageview, its visitor and its domain only
    got = gql(PIXELS, {"event": {"action": "get", "pixel_id": 1}}, app.basic_header).data["pixels"]["data"]
    assert (got["events_received"], got["events_dropped"]) == (3, 0)
    stats = gql(STATS, {"event": {"pixel_id": 1, "from": today, "to": today}}, app.basic_header).data["stats"]
    assert stats["data"]["totals"] == {"pageviews": 1, "visitors": 1}
    (day,) = stats["data"]["days"]
    assert day["domains"] == [{"domain": "example.com", "pageviews": 1}]
    # And the Lead's visitor is still unknown to a pageview (no visitor was recorded for them)
    assert pageview(gql, app, {"pixelId": 1, "domain": "example.com", "email": EMAIL})["message"] == (
        "User Not Found"
    )


def test_track_refuses_custom_data_nested_too_deep_without_crashing(app, gql, pixel_1, queued_messages):
    nested: dict[str, object] = {}
    for _ in range(1000):
        nested = {"x": nested}
    track = "mutation T($event: TrackEventInput!) { track(event: $event) { code message } }"
    answer = gql(
        track,
        {"event": {"pixelId": 1, "eventName": "Lead", "domain": "example.com", "customData": nested}},
        app.basic_header,
    )
    assert answer.data["track"]["code"] == 400
    assert "levels" in answer.data["track"]["message"]
    assert queued_messages() == []
