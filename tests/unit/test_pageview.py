"""The pageview mutation: the document's request, identity hashing, drops, errors, and the queue."""

import hashlib
import json
import logging

import pytest

from pixel_core import queues

# The pageview document's request, with real values in place of its empty placeholders.
SEED_PAGEVIEW = (
    'mutation HeroPixel($event: PageviewEventInput!) { pageview(auth: { appId: "APP", appSecret: "SECRET" }, '
    "event: $event) { message code data } }"
)
PIXELS = "mutation Pixels($event: ApiPixelsEventInput!) { pixels(event: $event) { code data message } }"
DOMAINS = "mutation Domains($event: ApiDomainsEventInput!) { domains(event: $event) { code data message } }"
EMAIL = "john_smith@gmail.com"
EMAIL_MD5 = hashlib.md5(EMAIL.encode(), usedforsecurity=False).hexdigest()
EMAIL_SHA256 = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # Meta's own example


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


def test_email_is_hashed_at_the_edge_and_never_queued_or_logged(
    app, gql, pixel_1, queued_messages, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    pageview(
        gql,
        app,
        {"email": "  John_Smith@Gmail.com ", "pixelId": 1, "domain": "https://Example.com/landing?x=1"},
    )
    (body,) = queued_messages()
    message = json.loads(body)
    assert message["visitor_md5"] == EMAIL_MD5
    assert message["email_sha256"] == EMAIL_SHA256
    assert message["domain"] == "example.com"
    assert message["event_name"] == "PageView"
    assert message["pixel_id"] == "1"
    assert message["v"] == 1
    assert message["dropped"] is None
    captured = capsys.readouterr()
    for text in (body, caplog.text, captured.out, captured.err):
        assert "john_smith" not in text.lower()
        assert "gmail" not in text.lower()


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


def test_domain_not_attached_is_dropped_answered_200_and_counted_as_dropped(app, gql, pixel_1, aggregator):
    # Given a pixel with one attached domain
    gql(DOMAINS, {"event": {"pixel_id": 1, "action": "add", "domain": "shop.example"}}, app.basic_header)
    # When pageviews come from it, from a subdomain of it, and from elsewhere
    attached = pageview(gql, app, {"pixelId": 1, "domain": "shop.example"})
    subdomain = pageview(gql, app, {"pixelId": 1, "domain": "www.shop.example"})
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
    assert got["last_received_at"] is not None


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


def test_queue_failure_is_a_500_envelope_with_nothing_half_done(
    app, gql, pixel_1, queued_messages, monkeypatch
):
    class BrokenQueue:
        def send_message(self, **_kwargs):
            raise ConnectionError("sqs unreachable")

    monkeypatch.setattr(queues, "sqs_client", BrokenQueue)
    answer = pageview(gql, app, {"pixelId": 1, "domain": "example.com", "email": EMAIL})
    assert answer == {"code": 500, "data": {}, "message": "Internal server error"}
    monkeypatch.undo()
    assert queued_messages() == []


def test_stats_after_pageviews_and_its_range_validation(app, gql, pixel_1, aggregator):
    for email in ("a@x.com", "b@x.com", "a@x.com"):
        pageview(gql, app, {"pixelId": 1, "domain": "example.com", "email": email})
    pageview(gql, app, {"pixelId": 1, "domain": "www.example.com"})
    aggregator()
    stats_query = "query Stats($event: ApiStatsEventInput!) { stats(event: $event) { code data message } }"

    def stats(start, end):
        return gql(stats_query, {"event": {"pixel_id": 1, "from": start, "to": end}}, app.basic_header).data[
            "stats"
        ]

    from datetime import UTC, datetime

    today = datetime.now(UTC).date().isoformat()
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
