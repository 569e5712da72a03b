"""Browser collection: events sent by the pixel snippet (web/px.js) from a visitor's browser.

No secret: what admits an event is the page's origin (the `Origin` header, else the `Referer`),
which must be one of the pixel's attached domains or lie under one. A pixel without domains takes
no browser events. The events are Meta's server events (checked by pixel_core.server_events'
rules), always website events, with the visitor's IP and user agent taken from the request itself
so that a page cannot claim another's. Then the same decisions as every intake (receiving status,
bots, domain and event filters) and the pixel's rate of browser events (pixel_core.rate_limits).

What a caller learns is only whether its body was well formed: whether the pixel exists or took
the events is never answered (the outcome goes to the metrics and the access log).
"""

import json
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from pixel_core.config import settings
from pixel_core.domain_names import InvalidDomainError, clean_domain
from pixel_core.events import reason_text
from pixel_core.intake import Client
from pixel_core.observability import count
from pixel_core.pixels import recent_pixel, recent_tenant
from pixel_core.queues import enqueue_all
from pixel_core.rate_limits import RATE_LIMIT_REASON, admitted
from pixel_core.server_events import CheckedEvent, MetaApiError, checked_event, pixel_event

# sendBeacon's own quota is 64 KiB of pending data per page; a page's events fit in far less.
MAX_BROWSER_BODY_BYTES = 64 * 1024
MAX_BROWSER_EVENTS_PER_REQUEST = 20
WEBSITE = "website"
clock = time.time  # tests pin it: the rate limit counts by the minute


class InvalidBrowserRequest(ValueError):
    """A body that no pixel could take (answered 400, whatever the pixel)."""


class BrowserRequest(NamedTuple):
    pixel_id: int
    body: bytes
    origin: str | None  # the request's Origin header
    referer: str | None  # its Referer, for a browser that sends no Origin
    client: Client  # the visitor's IP and user agent, from the request


def collect(request: BrowserRequest) -> str:
    """Checks and queues the request's events; the outcome ("accepted" or why not), for the logs.

    Raises InvalidBrowserRequest for a malformed body, before anything about the pixel is read.
    """
    now = clock()
    raw_events = _event_list(request.body)
    host = page_host(request.origin, request.referer)
    checked = [_checked(index, raw, host, request.client, now) for index, raw in enumerate(raw_events)]
    pixel = recent_pixel(request.pixel_id)
    if pixel is None or host is None or not pixel.covers(host):
        count("BrowserEventsRefused", len(checked))
        return "refused: unknown pixel or origin not attached"
    tenant = recent_tenant(pixel.tenant_id)
    events = [pixel_event(pixel, tenant, event, None, now) for event in checked]
    taking = [index for index, event in enumerate(events) if event.dropped is None]
    over_limit = taking[
        admitted(pixel.number, len(taking), settings.browser_events_per_pixel_per_minute, now) :
    ]
    for index in over_limit:
        events[index] = events[index]._replace(dropped=reason_text(RATE_LIMIT_REASON))
    enqueue_all(events, settings.events_queue_url)
    count("EventsAccepted", sum(1 for event in events if event.dropped is None))
    count("EventsDropped", sum(1 for event in events if event.dropped is not None))
    return "accepted" if not over_limit else f"accepted, {len(over_limit)} over the rate limit"


def page_host(origin: str | None, referer: str | None) -> str | None:
    """The host of the page that sent the request, cleaned; None when neither header names one.

    An opaque origin ("null": a sandboxed frame, a file) names no page, and then neither does its
    Referer: only a browser that sent no Origin at all falls back to it.
    """
    source = origin if origin is not None else referer
    if not source:
        return None
    try:
        parts = urlsplit(source.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        return clean_domain(parts.hostname)
    except (ValueError, InvalidDomainError):
        return None


def _event_list(body: bytes) -> list[object]:
    try:
        parsed = json.loads(body, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidBrowserRequest('The body must be a JSON object {"data": [events]}.') from None
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if not isinstance(data, list) or not data:
        raise InvalidBrowserRequest(
            'The body must be a JSON object {"data": [events]}, with at least one event.'
        )
    if len(data) > MAX_BROWSER_EVENTS_PER_REQUEST:
        raise InvalidBrowserRequest(
            f"At most {MAX_BROWSER_EVENTS_PER_REQUEST} events can be sent in one request."
        )
    return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _checked(index: int, raw: object, host: str | None, client: Client, now: float) -> CheckedEvent:
    where = f"data[{index}]"
    if not isinstance(raw, dict):
        raise InvalidBrowserRequest(f"{where}: an event must be a JSON object.")
    if raw.get("action_source", WEBSITE) != WEBSITE:
        raise InvalidBrowserRequest(f"{where}: browser events are website events (action_source website).")
    user_data = raw.get("user_data", {})
    if not isinstance(user_data, dict):
        raise InvalidBrowserRequest(f"{where}: user_data must be an object.")
    # The visitor is whoever sent the request: its own IP and user agent, never ones the page names.
    visitor = {"client_ip_address": client.ip, "client_user_agent": client.user_agent}
    user_data = {key: value for key, value in user_data.items() if key not in visitor}
    user_data.update({key: value for key, value in visitor.items() if value})
    try:
        event = checked_event(index, {**raw, "action_source": WEBSITE, "user_data": user_data}, now)
    except MetaApiError as error:
        raise InvalidBrowserRequest(error.user_message or error.message) from None
    url_host = page_host(event.event_source_url, None)
    if host is not None and url_host != host:
        raise InvalidBrowserRequest(f"{where}: event_source_url must be a page of the origin that sends it.")
    return event
