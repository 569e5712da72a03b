"""Browser collection (`POST /px/{pixelId}`) and the snippet (`GET /px.js`), through the GraphQL
function's Lambda handler as API Gateway invokes it; then counted and published by the real
functions behind their queues (moto), to a local fake Meta."""

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pixel_core import browser_events, config, queues, rate_limits
from pixel_core.auth import Principal
from pixel_core.clock import utc_now
from pixel_core.models import PixelItem, RateWindowItem, TotalsItem
from pixel_core.pixel_domains import add_domain
from pixel_core.signal_configs import Connection, setup_pixel
from tests.support.api_events import http_api_event
from tests.support.documents import META_TOKEN
from tests.support.faults import dynamodb_client, unreachable

PIXEL = 1234567890123
SHOP = "shop.example.com"
PAGE = f"https://www.{SHOP}/checkout?step=2"
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
VISITOR_IP = "198.51.100.23"
FBP = "fb.1.1596403881668.1116446470"
SNIPPET = Path(__file__).resolve().parents[2] / "web" / "px.js"


def browser_event(**overrides: Any) -> dict[str, Any]:
    """An event as web/px.js sends it."""
    event = {
        "event_name": "Purchase",
        "event_time": int(time.time()),
        "event_id": "4b1c9f7e-0d2a-4f5e-9a3b-1c2d3e4f5a6b",
        "action_source": "website",
        "event_source_url": PAGE,
        "user_data": {"fbp": FBP},
        "custom_data": {"value": 42.5, "currency": "EUR"},
    }
    return {**event, **overrides}


def collect(
    handler: Any,
    lambda_context: Any,
    body: str | bytes,
    *,
    pixel: int = PIXEL,
    origin: str | None = f"https://www.{SHOP}",
    referer: str | None = None,
    user_agent: str | None = CHROME,
) -> tuple[int, dict[str, str], str]:
    """Posts as sendBeacon does (text/plain, the page's Origin); the status, headers and body."""
    text = body.decode("latin-1") if isinstance(body, bytes) else body
    headers = {"content-type": "text/plain;charset=UTF-8"}
    for name, value in (("origin", origin), ("referer", referer), ("user-agent", user_agent)):
        if value is not None:
            headers[name] = value
    event = http_api_event(text, path=f"/px/{pixel}", headers=headers)
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /px/{pixelId}"
    event["requestContext"]["http"]["sourceIp"] = VISITOR_IP
    response = handler(event, lambda_context)
    return response["statusCode"], response.get("headers", {}), response.get("body", "")


def events_body(*events: dict[str, Any]) -> str:
    return json.dumps({"data": list(events)})


@pytest.fixture
def shop_pixel(moto_table: str) -> PixelItem:
    """A pixel with the shop's domain attached, no Meta connection (moto only: nothing counted)."""
    pixel = PixelItem.new(PIXEL, "IaoreXfj", created_at=utc_now(), domains={SHOP})
    pixel.save()
    return pixel


def test_a_snippet_event_from_an_attached_domain_is_counted_and_published_with_the_visitors_ip_and_agent(
    app, table, meta, handler, lambda_context, aggregator, publisher, json_logs
):
    # Given a connected pixel with the shop's domain attached
    setup_pixel(
        app.tenant_id, Connection(PIXEL, "2840127409433732", META_TOKEN, "shop-external-id", "v21.0", None)
    )
    add_domain(Principal(app_id=app.app_id, tenant_ids=frozenset({app.tenant_id})), PIXEL, SHOP)
    # When the shop's page sends a Purchase as the snippet does, naming another IP and agent
    spoofed = {"fbp": FBP, "client_ip_address": "192.0.2.1", "client_user_agent": "Spoofed/1.0"}
    status, headers, body = collect(handler, lambda_context, events_body(browser_event(user_data=spoofed)))
    # Then the browser gets 204, readable by any page, with nothing in it
    assert (status, body) == (204, "")
    assert headers["access-control-allow-origin"] == "*"
    # And the event is counted once and published with the request's own IP and user agent
    assert aggregator() == 1
    assert publisher() == 1
    totals = TotalsItem.get(*TotalsItem.key(PIXEL))
    assert (totals.events_received, totals.events_dropped) == (1, 0)
    (sent,) = meta.events()
    assert sent["event_name"] == "Purchase"
    assert sent["action_source"] == "website"
    assert sent["event_source_url"] == PAGE
    assert sent["custom_data"] == {"value": 42.5, "currency": "EUR"}
    assert sent["user_data"]["client_ip_address"] == VISITOR_IP
    assert sent["user_data"]["client_user_agent"] == CHROME
    assert sent["user_data"]["fbp"] == FBP
    # And the access line says what happened, for the operator the browser cannot tell
    assert any(log.get("outcome") == "accepted" for log in json_logs())


@pytest.mark.parametrize(
    ("origin", "referer", "domains", "taken"),
    [
        pytest.param(f"https://{SHOP}", None, {SHOP}, True, id="the-domain-itself"),
        pytest.param(f"https://www.{SHOP}:8443", None, {SHOP}, True, id="a-subdomain-with-a-port"),
        pytest.param(None, PAGE, {SHOP}, True, id="no-origin-the-referer-decides"),
        pytest.param("https://evilshop.example.com", None, {SHOP}, False, id="a-name-ending-like-it"),
        pytest.param(f"https://{SHOP}.evil.example", None, {SHOP}, False, id="a-name-starting-like-it"),
        pytest.param("https://evil.example", PAGE, {SHOP}, False, id="another-origin-with-the-shops-referer"),
        pytest.param("null", PAGE, {SHOP}, False, id="an-opaque-origin"),
        pytest.param(None, None, {SHOP}, False, id="neither-header"),
        pytest.param(f"https://{SHOP}", None, set(), False, id="a-pixel-without-domains"),
        pytest.param(f"ftp://{SHOP}", None, {SHOP}, False, id="not-a-web-origin"),
        pytest.param(f"https://{SHOP}@evil.example", None, {SHOP}, False, id="the-shop-as-userinfo"),
        pytest.param("https://sh\u043ep.example.com", None, {SHOP}, False, id="a-cyrillic-look-alike"),
        pytest.param("https://" + "a" * 10_000 + f".{SHOP}", None, {SHOP}, None, id="a-10-kb-origin"),
        pytest.param(f"https://{SHOP}\r\nX-Injected: 1", None, {SHOP}, False, id="a-header-injection"),
    ],
)
def test_only_pages_of_the_pixels_domains_are_taken_and_every_answer_is_the_same_204(
    moto_table, handler, lambda_context, queued_messages, origin, referer, domains, taken
):
    # Given the pixel with these domains
    PixelItem.new(PIXEL, "IaoreXfj", created_at=utc_now(), domains=domains or None).save()
    # When a page posts an event with these headers
    # (on a page of the origin itself: a page naming another's URL is malformed, tested below)
    on_origin = origin is not None and origin.startswith("http")
    event = browser_event(event_source_url=f"{origin}/page" if on_origin else referer or PAGE)
    status, _, body = collect(handler, lambda_context, events_body(event), origin=origin, referer=referer)
    # Then the answer does not tell, and only an attached domain's page had its event queued (an
    # origin no page can have makes its own URL malformed: a 400, which says nothing of the pixel)
    assert (status, body == "") == ((400, False) if taken is None else (204, True))
    assert len(queued_messages()) == (1 if taken else 0)


def test_an_unknown_pixel_is_answered_exactly_as_a_refusing_one(
    shop_pixel, handler, lambda_context, queued_messages
):
    # When the same event goes to a pixel that does not exist and to the shop's from a stranger
    unknown = collect(handler, lambda_context, events_body(browser_event()), pixel=999)
    stranger = collect(
        handler,
        lambda_context,
        events_body(browser_event(event_source_url="https://evil.example/")),
        origin="https://evil.example",
    )
    # Then both answers are identical, and nothing was queued
    assert unknown == stranger
    assert unknown[0] == 204
    assert queued_messages() == []


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        pytest.param("not json", 400, "JSON object", id="not-json"),
        pytest.param("[]", 400, "JSON object", id="an-array"),
        pytest.param("{}", 400, "at least one event", id="no-data"),
        pytest.param('{"data": []}', 400, "at least one event", id="no-events"),
        pytest.param(events_body(*[browser_event()] * 21), 400, "At most 20", id="too-many-events"),
        pytest.param('{"data": ["PageView"]}', 400, "JSON object", id="an-event-not-an-object"),
        pytest.param(events_body(browser_event(event_name="")), 400, "event_name", id="no-event-name"),
        pytest.param(events_body(browser_event(event_time=1)), 400, "7 days", id="too-old"),
        pytest.param(
            events_body(browser_event(action_source="app")), 400, "website", id="not-a-website-event"
        ),
        pytest.param(
            events_body(browser_event(event_source_url="https://evil.example/")),
            400,
            "origin",
            id="another-page",
        ),
        pytest.param(
            events_body(browser_event(user_data=[1])), 400, "user_data", id="user-data-not-an-object"
        ),
        pytest.param(events_body(browser_event(secret="x")), 400, "unknown parameter", id="an-unknown-field"),
        pytest.param(events_body(browser_event(pixel_id=1)), 400, "unknown parameter", id="another-pixel"),
        pytest.param('{"data": [{"event_name": NaN}]}', 400, "JSON object", id="nan"),
        pytest.param('{"data": ' + "[" * 5000 + "]" * 5000 + "}", 400, "", id="nested-5000-deep"),
        pytest.param(
            events_body(browser_event(custom_data={"x": "y" * 70_000})), 413, "larger", id="over-64-kib"
        ),
        pytest.param(b'{"data": [\xff]}', 400, "JSON object", id="not-utf-8"),
    ],
)
def test_a_malformed_body_gets_a_400_saying_what_is_wrong_and_nothing_is_queued(
    shop_pixel, handler, lambda_context, queued_messages, body, status, says
):
    answered, headers, text = collect(handler, lambda_context, body)
    assert answered == status
    assert says in json.loads(text)["error"]["message"]
    assert headers["access-control-allow-origin"] == "*"
    assert queued_messages() == []


def test_a_request_without_a_user_agent_is_refused_as_meta_refuses_website_events_without_one(
    shop_pixel, handler, lambda_context, queued_messages
):
    status, _, text = collect(handler, lambda_context, events_body(browser_event()), user_agent=None)
    assert status == 400
    assert "client_user_agent" in json.loads(text)["error"]["message"]
    assert queued_messages() == []


def test_a_crawlers_visit_is_queued_as_dropped_by_bot(shop_pixel, handler, lambda_context, queued_messages):
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    status, _, _ = collect(handler, lambda_context, events_body(browser_event()), user_agent=googlebot)
    (message,) = queued_messages()
    assert status == 204
    assert json.loads(message)["dropped"] == "bot"


def test_over_the_pixels_rate_the_events_are_dropped_as_rate_limit_counted_and_a_full_minute_costs_no_write(
    shop_pixel, handler, lambda_context, queued_messages, aggregator, monkeypatch
):
    # Given a pixel that takes 3 browser events a minute
    limited = config.settings._replace(browser_events_per_pixel_per_minute=3)
    monkeypatch.setattr(browser_events, "settings", limited)
    minute = int(time.time() // rate_limits.WINDOW_SECONDS)
    monkeypatch.setattr(browser_events, "clock", lambda: minute * 60.0 + 1)
    # When two requests of two events arrive in one minute, then a third
    pair = events_body(browser_event(event_id="a"), browser_event(event_id="b"))
    answers = [collect(handler, lambda_context, pair)[0] for _ in range(2)]
    window_after_two = RateWindowItem.get(*RateWindowItem.key(PIXEL, minute)).events
    third = collect(handler, lambda_context, events_body(browser_event(event_id="c")))[0]
    # Then every answer is 204, the first three events are taken and the others dropped as rate limit
    assert [*answers, third] == [204, 204, 204]
    dropped = [json.loads(message)["dropped"] for message in queued_messages()]
    assert dropped == [None, None, None, "rate limit", "rate limit"]
    # And the container, having seen the minute full, did not write the counter again
    assert window_after_two == 4
    assert RateWindowItem.get(*RateWindowItem.key(PIXEL, minute)).events == 4


def test_rate_limited_events_are_counted_as_dropped_and_apart(
    shop_pixel, handler, lambda_context, aggregator, monkeypatch
):
    limited = config.settings._replace(browser_events_per_pixel_per_minute=1)
    monkeypatch.setattr(browser_events, "settings", limited)
    collect(handler, lambda_context, events_body(browser_event(event_id="a"), browser_event(event_id="b")))
    assert aggregator() == 2
    totals = TotalsItem.get(*TotalsItem.key(PIXEL))
    assert (totals.events_received, totals.events_dropped, totals.events_rate_limited) == (1, 1, 1)


def test_with_the_rate_counter_unreachable_events_are_admitted_not_lost(
    shop_pixel, handler, lambda_context, queued_messages, inject, monkeypatch
):
    limited = config.settings._replace(browser_events_per_pixel_per_minute=1)
    monkeypatch.setattr(browser_events, "settings", limited)
    inject(dynamodb_client(), "UpdateItem", unreachable)
    status, _, _ = collect(
        handler, lambda_context, events_body(browser_event(event_id="a"), browser_event(event_id="b"))
    )
    assert status == 204
    assert [json.loads(message)["dropped"] for message in queued_messages()] == [None, None]


def test_no_limit_writes_no_rate_counter(shop_pixel, handler, lambda_context, queued_messages, monkeypatch):
    unlimited = config.settings._replace(browser_events_per_pixel_per_minute=0)
    monkeypatch.setattr(browser_events, "settings", unlimited)
    collect(handler, lambda_context, events_body(*[browser_event(event_id=str(i)) for i in range(20)]))
    assert len(queued_messages()) == 20
    assert list(RateWindowItem.query(f"PIXEL#{PIXEL}", RateWindowItem.sk.startswith("RATE#"))) == []


def get_snippet(handler: Any, lambda_context: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    event = http_api_event(None, method="GET", path="/px.js", headers=headers)
    response: dict[str, Any] = handler(event, lambda_context)
    return response


def test_the_snippet_is_served_as_javascript_cached_long_and_revalidated_by_its_etag(
    moto_table, handler, lambda_context
):
    # When a page loads the snippet, then revalidates it with the ETag it got
    first = get_snippet(handler, lambda_context)
    etag = first["headers"]["etag"]
    again = get_snippet(handler, lambda_context, {"if-none-match": etag})
    changed = get_snippet(handler, lambda_context, {"if-none-match": '"something-else"'})
    # Then it is web/px.js itself, as JavaScript any page may load, cached for a day
    assert first["statusCode"] == 200
    assert not first.get("isBase64Encoded")
    assert first["body"] == SNIPPET.read_text()
    assert first["headers"]["content-type"].startswith("text/javascript")
    assert "max-age=86400" in first["headers"]["cache-control"]
    assert first["headers"]["access-control-allow-origin"] == "*"
    # And the ETag gets a 304 with no body; another ETag the whole snippet
    assert (again["statusCode"], again.get("body", "")) == (304, "")
    assert changed["statusCode"] == 200


def test_events_that_cannot_be_queued_are_not_answered_204_and_the_cause_is_logged(
    shop_pixel, handler, lambda_context, inject, json_logs
):
    # Given the events queue unreachable for the function
    inject(queues.sqs_client(), "SendMessageBatch", unreachable)
    # When a page sends an event
    status, _, text = collect(handler, lambda_context, events_body(browser_event()))
    # Then it is told to retry, not that it was taken, and the operator sees why
    assert status == 503
    assert "retry" in json.loads(text)["error"]["message"]
    (failure,) = [log for log in json_logs() if log.get("message") == "Browser events failed"]
    assert "EndpointConnectionError" in failure["exception"]
