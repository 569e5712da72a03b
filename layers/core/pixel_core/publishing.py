"""Publishing events to Meta's Conversions API.

`POST {graph}/{apiVersion}/{pixelId}/events`, at most 1,000 events a request, grouped by pixel,
with the pixel's decrypted access token (in the body: a URL with a token ends up in logs).
Timeouts, 5xx and 429 are retried with exponential backoff and jitter (urllib3's Retry); what
still fails is reported back to SQS, which redelivers it and finally moves it to the dead-letter
queue. A 4xx sets the pixel's `apiErrorCode`; an invalid token marks it rejected (`connected:
false`) until setupPixelSignalConfig replaces it. Published counters are exact under redelivery:
one marker per event, in the same transaction as the counter.
"""

import functools
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action

from pixel_core.config import settings
from pixel_core.events import PixelEvent
from pixel_core.models import (
    MARKER_TTL,
    PixelItem,
    PublishedMarkerItem,
    TotalsItem,
    find,
    too_old_to_deduplicate,
    transaction,
)
from pixel_core.observability import logger
from pixel_core.tokens import TokenDecryptionError, decrypt_access_token

MAX_EVENTS_PER_REQUEST = 1_000  # Meta's limit
MAX_EVENT_AGE_SECONDS = 7 * 86_400  # Meta rejects the whole request if one event is older
REQUEST_TIMEOUT_SECONDS = 1.5
ATTEMPTS = 3
INVALID_TOKEN_CODES = frozenset({190})  # OAuthException: the token is invalid or expired
_MARKERS_PER_TRANSACTION = 99  # plus the totals update: DynamoDB's limit of 100


@dataclass
class PublishOutcome:
    published: int = 0
    expired: int = 0
    skipped: int = 0  # already published, pixel gone, or publishing turned off since intake
    failed: set[str] = field(default_factory=set)  # event ids to hand back to SQS
    requests: int = 0


class MetaError(Exception):
    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(f"Meta answered {status} (code {code}): {message}")
        self.status = status
        self.code = code


@functools.cache
def http() -> Any:
    import urllib3  # noqa: PLC0415  # only the publisher pays for it

    retry = urllib3.Retry(
        total=ATTEMPTS - 1,
        connect=ATTEMPTS - 1,
        read=ATTEMPTS - 1,
        status=ATTEMPTS - 1,
        allowed_methods={"POST"},  # Meta deduplicates on event_id, so a repeated POST is safe
        status_forcelist={429, 500, 502, 503, 504},
        backoff_factor=0.2,
        backoff_jitter=0.2,
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    return urllib3.PoolManager(retries=retry, timeout=urllib3.Timeout(total=REQUEST_TIMEOUT_SECONDS))


def meta_event(event: PixelEvent) -> dict[str, Any]:
    """One event in Meta's format. The e-mail only ever as its SHA-256; an MD5 cannot be sent."""
    user_data: dict[str, Any] = {}
    if event.email_sha256:
        user_data["em"] = [event.email_sha256]
    if event.client_ip:
        user_data["client_ip_address"] = event.client_ip
    if event.user_agent:
        user_data["client_user_agent"] = event.user_agent
    body: dict[str, Any] = {
        "event_name": event.event_name,
        "event_time": event.event_time,
        "event_id": event.event_id,
        "action_source": "website",
        "user_data": user_data,
    }
    if event.event_source_url:
        body["event_source_url"] = event.event_source_url
    elif event.domain:
        body["event_source_url"] = f"https://{event.domain}/"
    if event.custom_data:
        body["custom_data"] = event.custom_data
    return body


def send_to_meta(pixel: PixelItem, token: str, events: list[PixelEvent]) -> None:
    version = pixel.api_version or settings.graph_api_version
    payload: dict[str, Any] = {"data": [meta_event(event) for event in events], "access_token": token}
    if pixel.test_event_code:
        payload["test_event_code"] = pixel.test_event_code
    try:
        response = http().request(
            "POST",
            f"{settings.graph_api_base_url}/{version}/{pixel.pixel_id}/events",
            body=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
        )
    except Exception as error:  # timeouts and connection errors, after the retries
        raise MetaError(0, None, type(error).__name__) from None
    if response.status >= 300:
        raise MetaError(response.status, _error_code(response.data), _error_message(response.data))


def publish(events: Iterable[PixelEvent], *, now: float | None = None) -> PublishOutcome:
    outcome = PublishOutcome()
    now = time.time() if now is None else now
    by_pixel: dict[int, dict[str, PixelEvent]] = defaultdict(dict)
    for event in events:
        by_pixel[event.pixel_id][event.event_id] = event  # a repeated message publishes once
    for pixel_id, pixel_events in by_pixel.items():
        _publish_pixel(pixel_id, list(pixel_events.values()), now, outcome)
    return outcome


def _publish_pixel(pixel_id: int, events: list[PixelEvent], now: float, outcome: PublishOutcome) -> None:
    pixel = find(PixelItem, PixelItem.key(pixel_id), consistent=True)
    if pixel is None or not pixel.publishing_enabled:
        outcome.skipped += len(events)  # deleted, or turned off after intake: nothing to send
        return
    # Back after its published marker may have expired: neither sent (far past Meta's 7 days) nor
    # counted as expired a second time.
    too_old = {event.event_id for event in events if too_old_to_deduplicate(event.received_at, now)}
    done = _already_published(pixel_id, events) | too_old
    outcome.skipped += len(done)
    pending = [event for event in events if event.event_id not in done]
    expired = [event for event in pending if now - event.event_time > MAX_EVENT_AGE_SECONDS]
    if expired:
        _record(pixel_id, expired, now, expired=True)
        outcome.expired += len(expired)
    fresh = [event for event in pending if now - event.event_time <= MAX_EVENT_AGE_SECONDS]
    if not fresh:
        return
    token = _token(pixel)
    if token is None:
        outcome.failed |= {event.event_id for event in fresh}  # kept for when the token is replaced
        return
    for start in range(0, len(fresh), MAX_EVENTS_PER_REQUEST):
        chunk = fresh[start : start + MAX_EVENTS_PER_REQUEST]
        outcome.requests += 1
        try:
            send_to_meta(pixel, token, chunk)
        except MetaError as error:
            logger.warning(
                "Meta refused events",
                extra={
                    "pixel_id": pixel_id,
                    "status": error.status,
                    "meta_code": error.code,
                    "events": len(chunk),
                },
            )
            if 400 <= error.status < 500 and error.status != 429:
                _remember_meta_error(pixel, error)
            outcome.failed |= {event.event_id for event in chunk}
            continue
        _record(pixel_id, chunk, now, expired=False)
        outcome.published += len(chunk)


def _token(pixel: PixelItem) -> str | None:
    if not pixel.access_token_ciphertext or pixel.token_rejected:
        return None
    try:
        return decrypt_access_token(
            pixel.access_token_ciphertext, tenant_id=pixel.tenant_id, pixel_id=pixel.number
        )
    except TokenDecryptionError:
        logger.exception("Access token could not be decrypted", extra={"pixel_id": pixel.pixel_id})
        return None


def _remember_meta_error(pixel: PixelItem, error: MetaError) -> None:
    actions: list[Action] = [
        PixelItem.api_error_code.set(error.code if error.code is not None else error.status)
    ]
    if error.code in INVALID_TOKEN_CODES:
        actions.append(PixelItem.token_rejected.set(True))
    # Only if the token is still the one that was refused: a replacement may have arrived.
    condition = PixelItem.access_token_ciphertext == pixel.access_token_ciphertext
    try:
        PixelItem(*PixelItem.key(pixel.number)).update(actions=actions, condition=condition)
    except Exception:
        logger.exception("Could not record Meta's error on the pixel", extra={"pixel_id": pixel.pixel_id})


def _already_published(pixel_id: int, events: list[PixelEvent]) -> set[str]:
    keys = [PublishedMarkerItem.key(pixel_id, event.event_id) for event in events]
    found = PublishedMarkerItem.batch_get(keys, attributes_to_get=["pk", "sk", "item_type"])
    return {item.sk.removeprefix("PUBLISHED#") for item in found}


def _record(pixel_id: int, events: list[PixelEvent], now: float, *, expired: bool) -> None:
    """Markers and counters in one transaction per 99 events; an existing marker (a concurrent or
    earlier publication of the same event) drops that event from the count and the rest retries."""
    for start in range(0, len(events), _MARKERS_PER_TRANSACTION):
        remaining = events[start : start + _MARKERS_PER_TRANSACTION]
        while remaining:
            try:
                with transaction() as tx:
                    for event in remaining:
                        marker = PublishedMarkerItem(
                            *PublishedMarkerItem.key(pixel_id, event.event_id), expires_at=MARKER_TTL
                        )
                        tx.save(marker, condition=PublishedMarkerItem.pk.does_not_exist(), tag=event.event_id)
                    counter = TotalsItem.events_expired if expired else TotalsItem.events_published
                    actions: list[Action] = [
                        counter.add(len(remaining)),
                        TotalsItem.item_type.set(TotalsItem),
                    ]
                    if not expired:
                        actions.append(TotalsItem.last_published_at.set(now))
                    tx.update(TotalsItem(*TotalsItem.key(pixel_id)), actions=actions)
                break
            except TransactWriteError as error:
                taken = {tag for tag, code in tx.reasons(error) if code == "ConditionalCheckFailed"}
                if not taken:
                    raise
                remaining = [event for event in remaining if event.event_id not in taken]


def _error_code(data: bytes) -> int | None:
    try:
        code = json.loads(data).get("error", {}).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def _error_message(data: bytes) -> str:
    try:
        message = json.loads(data).get("error", {}).get("message", "")
    except (ValueError, AttributeError):
        return "unreadable answer"
    return str(message)[:200]
