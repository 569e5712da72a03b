"""Intake: an event is checked, hashed, decided, and put on the events queue.

Costs one SQS send, one GetItem for an identified pageview's visitor, and, at most every few
seconds per container, one GetItem each for the app, the pixel (which carries its domain set and
filters) and its tenant (global filters). Counting happens later, in the aggregator.

Decisions, in order: receiving off, a dropping domain filter, or a domain not attached to a pixel
that has domains (unless a pixel-level ALLOW filter admits it) drop the event at intake (counted as
dropped); publishing off or a dropping event filter keep it counted as received but mark it
unpublishable.
"""

import time
import uuid
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pixel_core.auth import Principal
from pixel_core.bots import BOT_REASON, is_bot
from pixel_core.errors import BadRequest
from pixel_core.events import (
    EVENT_ID,
    MAX_CUSTOM_DATA_BYTES,
    MAX_CUSTOM_DATA_DEPTH,
    MAX_URL_LENGTH,
    MAX_USER_AGENT_LENGTH,
    PAGE_VIEW,
    InvalidEventMessage,
    PixelEvent,
    is_custom_data,
    is_page_url,
    reason_text,
)
from pixel_core.filters import event_name_of, verdict
from pixel_core.identity import identity_of
from pixel_core.models import PixelItem, TenantItem, VisitorItem, find
from pixel_core.observability import count
from pixel_core.pixel_domains import cleaned
from pixel_core.pixels import recent_pixel_for, recent_tenant
from pixel_core.queues import enqueue
from pixel_core.user_data import InvalidUserData, prepare

USER_FOUND = "User Found"
USER_NOT_FOUND = "User Not Found"
ANONYMOUS = "Success"
MAX_EVENT_AGE_SECONDS = 90 * 86_400  # older events are refused; Meta takes only the last 7 days
MAX_CLOCK_SKEW_SECONDS = 3_600


class Client(NamedTuple):
    ip: str | None = None
    user_agent: str | None = None


class TrackRequest(NamedTuple):
    pixel_id: int
    event_name: str
    domain: str | None = None
    url: str | None = None
    email: str | None = None
    md5: str | None = None
    event_id: str | None = None
    event_time: int | None = None
    custom_data: dict[str, Any] | None = None
    user_data: object = None  # Meta's user_data keys, as the caller sent them (see `_user_data`)


class IntakeResult(NamedTuple):
    event: PixelEvent
    message: str


def drop_reason(
    pixel: PixelItem, tenant: TenantItem | None, domain: str | None, visitor_agent: str | None = None
) -> str | None:
    """Why an event from `domain` is not counted as received; None when it is.

    No domain: a server event with no page (from an app, a store, a call), which no domain rule
    can concern. `visitor_agent`: the visitor's user agent, judged for bots; None when the caller
    gave none for its visitor (its own HTTP client is never judged).
    """
    if not pixel.receiving_enabled:
        return f"receiving is turned off for pixel {pixel.pixel_id}"
    if pixel.bot_filtering and is_bot(visitor_agent):
        return BOT_REASON
    if domain is None:
        return None
    pixel_verdict = verdict(pixel.domain_filters, None, domain, match_subdomains=True)
    global_verdict = verdict(None, tenant.domain_filters if tenant else None, domain, match_subdomains=True)
    if (pixel_verdict or global_verdict) == "DROP":
        return f"domain {domain} is blocked by a domain filter"
    # Only the pixel's own ALLOW admits a domain it does not have: a tenant-wide one cannot.
    if pixel_verdict != "ALLOW" and pixel.domains and not pixel.covers(domain):
        return f"domain {domain} is not attached to pixel {pixel.pixel_id}"
    return None


def unpublishable_reason(pixel: PixelItem, tenant: TenantItem | None, event_name: str) -> str | None:
    if not pixel.publishing_enabled:
        return "publishing is turned off"
    if not pixel.access_token_ciphertext:
        return "the pixel has no Meta connection"
    event_filters = tenant.event_filters if tenant else None
    if verdict(pixel.event_filters, event_filters, event_name, match_subdomains=False) == "DROP":
        return f"event {event_name} is dropped by an event filter"
    return None


def accept_event(principal: Principal, request: TrackRequest, client: Client) -> IntakeResult:
    pixel = recent_pixel_for(principal, request.pixel_id)
    event_name = event_name_of(request.event_name)
    url = _url(request.url)
    url_host = cleaned(urlsplit(url).hostname) if url else None
    host = cleaned(request.domain if request.domain else url_host)  # neither: Invalid domain format
    identity = identity_of(request.email, request.md5)
    user_data = _user_data(request.user_data)
    # A server tracking for its visitor sends the visitor's address and browser; else the caller's.
    client_ip = str(user_data.get("client_ip_address") or client.ip or "") or None
    user_agent = str(user_data.get("client_user_agent") or client.user_agent or "") or None
    # Bots are judged by the visitor's own user agent, the one a server passes; never by the HTTP
    # client the server sends with (browsers send to pixel_core.browser_events, judged there).
    visitor_agent = str(user_data.get("client_user_agent") or "") or None
    now = time.time()
    tenant = recent_tenant(pixel.tenant_id)
    event = PixelEvent(
        event_id=_event_id(request.event_id),
        event_name=event_name,
        pixel_id=request.pixel_id,
        tenant_id=pixel.tenant_id,
        event_time=_event_time(request.event_time, now),
        received_at=round(now, 3),
        domain=host,
        visitor_md5=identity.md5 if identity else None,
        email_sha256=identity.email_sha256 if identity else None,
        # The page's host goes to Meta as event_source_url: it passes the same rules as the domain.
        dropped=_reason(
            drop_reason(pixel, tenant, host, visitor_agent)
            or (drop_reason(pixel, tenant, url_host) if url_host and url_host != host else None)
        ),
        client_ip=client_ip,
        user_agent=user_agent[:MAX_USER_AGENT_LENGTH] if user_agent else None,
        user_data=user_data or None,
        event_source_url=url,
        custom_data=_custom_data(request.custom_data),
        unpublishable=_reason(unpublishable_reason(pixel, tenant, event_name)),
        incarnation=pixel.incarnation,
    )
    try:
        event = event.checked()  # what the aggregator will read: never accept what it would refuse
    except InvalidEventMessage as error:
        raise BadRequest(f"Invalid event: {error}") from None
    if event.dropped:
        enqueue(event)  # counted as dropped by the aggregator
        count("EventsDropped")
        return IntakeResult(event, f"Event dropped: {event.dropped}")
    message = ANONYMOUS
    if identity is not None and event_name == PAGE_VIEW:
        # Visitors are recorded by the aggregator, so "found" means seen in an earlier, counted event.
        seen = find(VisitorItem, VisitorItem.key(request.pixel_id, identity.md5)) is not None
        message = USER_FOUND if seen else USER_NOT_FOUND
    enqueue(event)
    count("EventsAccepted")
    return IntakeResult(event, message)


def accept_pageview(
    principal: Principal,
    *,
    pixel_id: int,
    domain: str | None,
    email: str | None,
    md5: str | None,
    client: Client,
) -> IntakeResult:
    request = TrackRequest(pixel_id=pixel_id, event_name=PAGE_VIEW, domain=domain or "", email=email, md5=md5)
    return accept_event(principal, request, client)


def _reason(reason: str | None) -> str | None:
    return None if reason is None else reason_text(reason)


def _event_id(client_event_id: str | None) -> str:
    if client_event_id is None or client_event_id == "":
        return str(uuid.uuid4())
    if not EVENT_ID.fullmatch(client_event_id):
        raise BadRequest("Invalid eventId: 1-128 characters of letters, digits and . _ : -")
    return client_event_id


def _event_time(client_time: int | None, now: float) -> int:
    if client_time is None:
        return int(now)
    if (
        isinstance(client_time, bool)
        or not now - MAX_EVENT_AGE_SECONDS <= client_time <= now + MAX_CLOCK_SKEW_SECONDS
    ):
        raise BadRequest("Invalid eventTime: Unix seconds, not in the future, at most 90 days old")
    return int(client_time)


def _url(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    if not is_page_url(url):
        raise BadRequest(f"Invalid url: an http(s) URL of at most {MAX_URL_LENGTH} characters")
    return url


def _user_data(user_data: object) -> dict[str, object]:
    """Meta-ready user_data (hashed at the edge), or BadRequest naming the key at fault."""
    if user_data is None:
        return {}
    if not isinstance(user_data, dict):
        raise BadRequest("Invalid userData: a JSON object of Meta's user_data keys")
    try:
        return prepare(user_data)
    except InvalidUserData as error:
        raise BadRequest(f"Invalid userData: {error}") from None


def _custom_data(custom_data: object) -> dict[str, Any] | None:
    if custom_data is None:
        return None
    if not is_custom_data(custom_data):
        raise BadRequest(
            f"Invalid customData: a JSON object of at most {MAX_CUSTOM_DATA_BYTES} bytes"
            f" and {MAX_CUSTOM_DATA_DEPTH} levels, strict JSON (no NaN, Infinity or lone surrogates)"
        )
    return custom_data
