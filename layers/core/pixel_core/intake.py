"""Intake: a pageview (later any event) is checked, hashed, decided, and put on the events queue.

Costs one SQS send, one GetItem for an identified visitor, and, at most every few seconds per
container, one GetItem for the app and one for the pixel (which carries its domain set).
Counting happens later, in the aggregator.
"""

import time
import uuid
from dataclasses import dataclass

from pixel_core.auth import Principal
from pixel_core.domain_names import is_same_or_subdomain
from pixel_core.events import PAGE_VIEW, PixelEvent
from pixel_core.identity import identity_of
from pixel_core.models import PixelItem, VisitorItem, find
from pixel_core.pixel_domains import cleaned
from pixel_core.pixels import recent_pixel_for
from pixel_core.queues import enqueue

USER_FOUND = "User Found"
USER_NOT_FOUND = "User Not Found"
ANONYMOUS = "Success"


@dataclass(frozen=True, slots=True)
class Client:
    ip: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeResult:
    event: PixelEvent
    message: str


def drop_reason(pixel: PixelItem, domain: str) -> str | None:
    """Why an event from `domain` is not counted as received; None when it is."""
    attached = pixel.domains or set()
    if attached and not any(is_same_or_subdomain(domain, parent) for parent in attached):
        return f"domain {domain} is not attached to pixel {pixel.pixel_id}"
    return None


def accept_pageview(
    principal: Principal,
    *,
    pixel_id: int,
    domain: str | None,
    email: str | None,
    md5: str | None,
    client: Client,
) -> IntakeResult:
    pixel = recent_pixel_for(principal, pixel_id)
    host = cleaned(domain)
    identity = identity_of(email, md5)
    now = time.time()
    event = PixelEvent(
        event_id=str(uuid.uuid4()),
        event_name=PAGE_VIEW,
        pixel_id=pixel_id,
        tenant_id=pixel.tenant_id,
        event_time=int(now),
        received_at=round(now, 3),
        domain=host,
        visitor_md5=identity.md5 if identity else None,
        email_sha256=identity.email_sha256 if identity else None,
        dropped=drop_reason(pixel, host),
        client_ip=client.ip,
        user_agent=client.user_agent[:1024] if client.user_agent else None,
    )
    if event.dropped:
        enqueue(event)  # counted as dropped by the aggregator
        return IntakeResult(event, f"Event dropped: {event.dropped}")
    message = ANONYMOUS
    if identity is not None:
        # Visitors are recorded by the aggregator, so "found" means seen in an earlier, counted event.
        seen = find(VisitorItem, VisitorItem.key(pixel_id, identity.md5)) is not None
        message = USER_FOUND if seen else USER_NOT_FOUND
    enqueue(event)
    return IntakeResult(event, message)
