"""Publishing events to Meta's Conversions API.

`POST {graph}/{apiVersion}/{pixelId}/events`, at most 1,000 events a request, grouped by pixel,
with the pixel's decrypted access token (in the body: a URL with a token ends up in logs), as strict
JSON (an event that is not, NaN or a lone surrogate, is rejected before sending).

What becomes of each event:

- published: Meta accepted it. Counted once, exact under redelivery: one `PUBLISHED#` marker per
  event in the same transaction as the counter (a conflict or throttle there is retried).
- expired: older than Meta's 7 days; never sent. rejected: Meta refused it for a fault of its own
  (a 4xx such as code 100 that concerns some events of the request: the events Meta names, else
  found by splitting the request in halves; re-sending the good half is safe, Meta deduplicates on
  event_id). Both are counted like published ones and never retried; neither sets `apiErrorCode`.
  If halving finds Meta taking none of a pixel's events, the error was about the request, not the
  events: they are failed (below) and the error becomes the pixel's `apiErrorCode`.
- held: its pixel's token is missing, undecryptable or rejected by Meta (code 190, which marks the
  pixel `connected: false` until setupPixelSignalConfig replaces the token). The event is put back
  on the publish queue as a new message delayed by HOLD_DELAY_SECONDS, so it waits without using up
  receives (a new message never reaches the dead-letter queue) and costs one look every 15 minutes,
  until a working token publishes it or its 7 days are over (then it expires).
- failed: handed back to SQS, which redelivers it, and after 5 receives moves it to the dead-letter
  queue: Meta unreachable, 5xx or rate-limited after urllib3's retries (exponential backoff with
  jitter), an error about the whole pixel (permissions: it sets `apiErrorCode`), or not tried
  because the invocation is running out of time (see TIME_MARGIN_SECONDS).
- skipped: already published, pixel gone, or publishing turned off since intake.

A success clears an `apiErrorCode` left by an earlier error.
"""

import functools
import json
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pynamodb.attributes import NumberAttribute
from pynamodb.exceptions import TransactWriteError
from pynamodb.expressions.update import Action

from pixel_core.config import settings
from pixel_core.counters import MAX_RETRIES, RETRYABLE_ERRORS, RETRYABLE_REASONS, retry_delay
from pixel_core.events import MAX_EVENT_AGE_SECONDS, MAX_EVENTS_PER_REQUEST, PixelEvent
from pixel_core.models import (
    MARKER_TTL,
    PixelItem,
    PublishedMarkerItem,
    TotalsItem,
    find,
    published_event_ids,
    same_pixel,
    too_old_to_deduplicate,
    transaction,
)
from pixel_core.observability import logger
from pixel_core.queues import MAX_DELAY_SECONDS, enqueue_all
from pixel_core.strict_json import is_strict_json
from pixel_core.tokens import TokenDecryptionError, decrypt_access_token

REQUEST_TIMEOUT_SECONDS = 1.5
ATTEMPTS = 3
# No request is started with less than this left of the invocation: one more request with all its
# attempts, the backoff between them, and recording its answer.
TIME_MARGIN_SECONDS = ATTEMPTS * REQUEST_TIMEOUT_SECONDS + 3.0
# How long events of a pixel without a usable token wait between looks: SQS's maximum delay.
HOLD_DELAY_SECONDS = MAX_DELAY_SECONDS
INVALID_TOKEN_CODES = frozenset({190})  # OAuthException: the token is invalid or expired
# Errors about the pixel, not its events: missing permission (10, 2xx), unknown object (803).
PIXEL_ERROR_CODES = frozenset({10, 200, 803})
# Rate limits (application, user, page, custom, ads): worth another try later, whatever the status.
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80004})
_MARKERS_PER_TRANSACTION = 98  # plus the totals update and the pixel check: DynamoDB's limit of 100
_EVENT_INDEX = re.compile(r"\bdata\[(\d+)\]")  # how Meta names an event of the request


@dataclass
class PublishOutcome:
    published: int = 0
    expired: int = 0
    rejected: int = 0  # refused by Meta (or not strict JSON): counted, not retried
    skipped: int = 0  # already published, pixel gone, or publishing turned off since intake
    orphaned: int = 0  # accepted for an earlier incarnation or owner of the pixel id: never sent
    held: list[PixelEvent] = field(default_factory=list)  # put back on the queue, delayed
    failed: set[str] = field(default_factory=set)  # event ids to hand back to SQS
    requests: int = 0
    out_of_time: bool = False  # some events were not tried: the invocation was ending
    settled: set[str] = field(default_factory=set, repr=False)  # event ids with a verdict

    def settle(self, events: Iterable[PixelEvent]) -> None:
        self.settled |= {event.event_id for event in events}

    def fail(self, events: Iterable[PixelEvent]) -> None:
        self.failed |= {event.event_id for event in events}

    def hold(self, events: Iterable[PixelEvent]) -> None:
        events = list(events)
        self.held.extend(events)
        self.settle(events)


class MetaError(Exception):
    def __init__(
        self,
        status: int,
        code: int | None,
        message: str,
        *,
        subcode: int | None = None,
        transient: bool = False,
        event_index: int | None = None,
    ) -> None:
        super().__init__(f"Meta answered {status} (code {code}): {message}")
        self.status = status
        self.code = code
        self.subcode = subcode
        self.transient = transient
        self.event_index = event_index  # the event of the request Meta names, if it names one

    @property
    def later(self) -> bool:
        """Meta unreachable, failing or rate-limiting: the same request may succeed later."""
        return (
            self.status == 0
            or self.status >= 500
            or self.status == 429
            or self.transient
            or self.code in THROTTLE_CODES
        )

    @property
    def about_events(self) -> bool:
        """A 4xx about some events of the request (invalid parameter, ...), not the token or pixel."""
        return (
            400 <= self.status < 500
            and not self.later
            and self.code not in INVALID_TOKEN_CODES
            and self.code not in PIXEL_ERROR_CODES
        )


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
    """One event in Meta's format (its user_data: `PixelEvent.meta_user_data`)."""
    body: dict[str, Any] = {
        "event_name": event.event_name,
        "event_time": event.event_time,
        "event_id": event.event_id,
        "action_source": event.action_source or "website",
        "user_data": event.meta_user_data(),
        **(event.meta_options or {}),
    }
    if event.event_source_url:
        body["event_source_url"] = event.event_source_url
    elif event.domain:
        body["event_source_url"] = f"https://{event.domain}/"
    if event.custom_data:
        body["custom_data"] = event.custom_data
    return body


def send_to_meta(pixel: PixelItem, token: str, events: list[PixelEvent]) -> None:
    """One request; the events share their test event code (``_send`` groups them by it)."""
    version = pixel.api_version or settings.graph_api_version
    payload: dict[str, Any] = {"data": [meta_event(event) for event in events], "access_token": token}
    test_event_code = events[0].test_event_code or pixel.test_event_code
    if test_event_code:
        payload["test_event_code"] = test_event_code
    body = json.dumps(payload, allow_nan=False).encode()  # never invalid JSON: Meta would refuse all
    try:
        response = http().request(
            "POST",
            f"{settings.graph_api_base_url}/{version}/{pixel.pixel_id}/events",
            body=body,
            headers={"Content-Type": "application/json"},
        )
    except Exception as error:  # timeouts and connection errors, after the retries
        raise MetaError(0, None, type(error).__name__, transient=True) from None
    if response.status >= 300:
        raise _meta_error(response.status, response.data)


def publish(
    events: Iterable[PixelEvent],
    *,
    now: float | None = None,
    remaining_seconds: Callable[[], float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishOutcome:
    """Publishes what it can before `remaining_seconds()` falls under TIME_MARGIN_SECONDS; holds
    events of pixels without a usable token (see the module's docstring)."""
    outcome = PublishOutcome()
    now = time.time() if now is None else now
    remaining = remaining_seconds or (lambda: math.inf)
    by_pixel: dict[int, dict[str, PixelEvent]] = defaultdict(dict)
    for event in events:
        by_pixel[event.pixel_id][event.event_id] = event  # a repeated message publishes once
    for pixel_id, pixel_events in by_pixel.items():
        unique = list(pixel_events.values())
        try:
            _publish_pixel(_Run(pixel_id, now, remaining, sleep, outcome), unique)
        except Exception:
            # What has no verdict yet comes back; what Meta accepted and was counted stays done.
            logger.exception("Publishing failed for a pixel", extra={"pixel_id": pixel_id})
            outcome.fail(event for event in unique if event.event_id not in outcome.settled)
    _put_back_held(outcome)
    return outcome


@dataclass
class _Run:
    """One pixel's share of a batch, and what it needs to know about the invocation."""

    pixel_id: int
    now: float
    remaining_seconds: Callable[[], float]
    sleep: Callable[[float], None]
    outcome: PublishOutcome
    pixel: PixelItem | None = None  # as read for this batch

    def time_left(self) -> bool:
        if self.remaining_seconds() >= TIME_MARGIN_SECONDS:
            return True
        self.outcome.out_of_time = True
        return False


def _publish_pixel(run: _Run, events: list[PixelEvent]) -> None:
    outcome = run.outcome
    if not run.time_left():
        outcome.fail(events)
        return
    pixel = find(PixelItem, PixelItem.key(run.pixel_id), consistent=True)
    if pixel is None or not pixel.publishing_enabled:
        outcome.skipped += len(events)  # deleted, or turned off after intake: nothing to send
        outcome.settle(events)
        return
    run.pixel = pixel
    # Events of a pixel deleted and set up again (perhaps by another tenant) under the same id are
    # never sent with the new pixel's token, nor counted into it.
    orphans = [event for event in events if not pixel.owns(event)]
    if orphans:
        outcome.orphaned += len(orphans)
        outcome.settle(orphans)
        logger.warning(
            "Events of deleted pixels discarded", extra={"pixel_id": run.pixel_id, "events": len(orphans)}
        )
        events = [event for event in events if pixel.owns(event)]
    # Back after its published marker may have expired: neither sent (far past Meta's 7 days) nor
    # counted as expired a second time.
    too_old = {event.event_id for event in events if too_old_to_deduplicate(event.received_at, run.now)}
    done = _already_published(run.pixel_id, events) | too_old
    outcome.skipped += len(done)
    outcome.settle(event for event in events if event.event_id in done)
    pending = [event for event in events if event.event_id not in done]
    expired = [event for event in pending if run.now - event.event_time > MAX_EVENT_AGE_SECONDS]
    if expired:
        recorded = _record(run, expired, TotalsItem.events_expired)
        outcome.expired += recorded
        outcome.skipped += len(expired) - recorded
        outcome.settle(expired)
    fresh = [event for event in pending if run.now - event.event_time <= MAX_EVENT_AGE_SECONDS]
    invalid = [event for event in fresh if not is_strict_json(meta_event(event))]
    if invalid:
        _reject(run, invalid, "not strict JSON", None)
        fresh = [event for event in fresh if event not in invalid]
    if not fresh:
        return
    token = _token(pixel)
    if token is None:
        outcome.hold(fresh)  # until setupPixelSignalConfig stores a working token
        return
    _send(run, pixel, token, fresh)


def _send(run: _Run, pixel: PixelItem, token: str, events: list[PixelEvent]) -> None:
    """Requests of at most 1,000 events; a request split to find the events at fault comes back here."""
    outcome = run.outcome
    found = _Refused()  # events refused on their own, with nothing naming them
    # A request carries one test event code (a server request's own, else the pixel's).
    by_test_code: dict[str | None, list[PixelEvent]] = defaultdict(list)
    for event in events:
        by_test_code[event.test_event_code].append(event)
    requests = deque(
        group[start : start + MAX_EVENTS_PER_REQUEST]
        for group in by_test_code.values()
        for start in range(0, len(group), MAX_EVENTS_PER_REQUEST)
    )
    while requests:
        chunk = requests.popleft()
        if not run.time_left():
            outcome.fail([*chunk, *(event for rest in requests for event in rest)])
            break
        outcome.requests += 1
        try:
            send_to_meta(pixel, token, chunk)
        except MetaError as error:
            if error.about_events:
                requests.extendleft(reversed(_isolate(run, chunk, error, found)))
                continue
            logger.warning(
                "Meta refused events",
                extra={
                    "pixel_id": run.pixel_id,
                    "status": error.status,
                    "meta_code": error.code,
                    "events": len(chunk),
                },
            )
            if error.later:
                outcome.fail(chunk)  # a 429 or an outage says nothing about the pixel
                continue
            _remember_meta_error(pixel, error)
            rest = [*chunk, *(event for waiting in requests for event in waiting)]
            if error.code in INVALID_TOKEN_CODES:
                outcome.hold(rest)
            else:
                outcome.fail(rest)
            break
        recorded = _record(run, chunk, TotalsItem.events_published)
        outcome.published += recorded
        outcome.skipped += len(chunk) - recorded  # a concurrent publisher recorded them first
        outcome.settle(chunk)
        found.others_accepted = True
        _forget_meta_error(pixel)
    _settle_refused(run, pixel, found)


@dataclass
class _Refused:
    events: list[PixelEvent] = field(default_factory=list)
    error: MetaError | None = None
    others_accepted: bool = False  # Meta took other events of this pixel's batch


def _settle_refused(run: _Run, pixel: PixelItem, found: _Refused) -> None:
    """Events refused one by one are rejected if Meta took others; if it took none, the error was
    about every request (a wrong test_event_code, ...), not the events: they come back to SQS, and
    the error is the pixel's."""
    if not found.events or found.error is None:
        return
    if found.others_accepted:
        _reject(run, found.events, "refused by Meta", found.error)
        return
    logger.warning(
        "Meta refused every event",
        extra={"pixel_id": run.pixel_id, "status": found.error.status, "meta_code": found.error.code},
    )
    _remember_meta_error(pixel, found.error)
    run.outcome.fail(found.events)


def _isolate(
    run: _Run, chunk: list[PixelEvent], error: MetaError, found: "_Refused"
) -> list[list[PixelEvent]]:
    """Rejects the event Meta named; notes the only one as refused; else splits the request.
    What to send again."""
    index = error.event_index
    if index is not None and 0 <= index < len(chunk):
        _reject(run, [chunk[index]], "refused by Meta", error)
        rest = chunk[:index] + chunk[index + 1 :]
        return [rest] if rest else []
    if len(chunk) == 1:
        found.events.extend(chunk)
        found.error = error
        return []
    middle = len(chunk) // 2
    return [chunk[:middle], chunk[middle:]]


def _reject(run: _Run, events: list[PixelEvent], reason: str, error: MetaError | None) -> None:
    recorded = _record(run, events, TotalsItem.events_rejected)
    run.outcome.rejected += recorded
    run.outcome.skipped += len(events) - recorded
    run.outcome.settle(events)
    # Meta's code and how many, never the events' content (which may be personal data).
    logger.warning(
        "Events rejected",
        extra={
            "pixel_id": run.pixel_id,
            "reason": reason,
            "status": error.status if error else None,
            "meta_code": error.code if error else None,
            "meta_subcode": error.subcode if error else None,
            "events": len(events),
        },
    )


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


def _forget_meta_error(pixel: PixelItem) -> None:
    """After a success: an `apiErrorCode` from an earlier error no longer holds (once per batch)."""
    if pixel.attribute_values.get("api_error_code") is None:
        return
    pixel.api_error_code = None
    condition = PixelItem.access_token_ciphertext == pixel.access_token_ciphertext
    try:
        PixelItem(*PixelItem.key(pixel.number)).update(
            actions=[PixelItem.api_error_code.remove()], condition=condition
        )
    except Exception:
        logger.exception("Could not clear Meta's error on the pixel", extra={"pixel_id": pixel.pixel_id})


def _already_published(pixel_id: int, events: list[PixelEvent]) -> set[str]:
    return published_event_ids(pixel_id, (event.event_id for event in events))


def _record(run: _Run, events: list[PixelEvent], counter: NumberAttribute) -> int:
    """Markers and `counter` in one transaction per 98 events; how many were recorded now.

    An existing marker (a concurrent or earlier publication of the same event) drops that event
    from the count and the rest is tried again; a conflict or throttle is retried with backoff."""
    recorded = 0
    for start in range(0, len(events), _MARKERS_PER_TRANSACTION):
        remaining = events[start : start + _MARKERS_PER_TRANSACTION]
        retries = 0
        while remaining:
            try:
                with transaction() as tx:
                    for event in remaining:
                        marker = PublishedMarkerItem(
                            *PublishedMarkerItem.key(run.pixel_id, event.event_id), expires_at=MARKER_TTL
                        )
                        tx.save(marker, condition=PublishedMarkerItem.pk.does_not_exist(), tag=event.event_id)
                    actions: list[Action] = [
                        counter.add(len(remaining)),
                        TotalsItem.item_type.set(TotalsItem),
                    ]
                    if counter is TotalsItem.events_published:
                        actions.append(TotalsItem.last_published_at.set(run.now))
                    tx.update(TotalsItem(*TotalsItem.key(run.pixel_id)), actions=actions, tag="totals")
                    if run.pixel is not None:  # still the pixel read: a deleted one gets no counters back
                        pk, sk = PixelItem.key(run.pixel_id)
                        tx.condition_check(PixelItem, pk, sk, condition=same_pixel(run.pixel), tag="pixel")
            except TransactWriteError as error:
                reasons = tx.reasons(error)
                taken = {tag for tag, code in reasons if code == "ConditionalCheckFailed"}
                if "pixel" in taken:
                    logger.warning("Pixel deleted while publishing", extra={"pixel_id": run.pixel_id})
                    return recorded
                if taken:
                    remaining = [event for event in remaining if event.event_id not in taken]
                    continue
                retryable = error.cause_response_code in RETRYABLE_ERRORS or bool(
                    RETRYABLE_REASONS & {code for _tag, code in reasons}
                )
                if not retryable or retries >= MAX_RETRIES:
                    raise
                retries += 1
                run.sleep(retry_delay(retries))
                continue
            recorded += len(remaining)
            break
    return recorded


def _put_back_held(outcome: PublishOutcome) -> None:
    """Held events go back on the publish queue as new messages, delayed: they use up no receives."""
    if not outcome.held:
        return
    pixels = sorted({event.pixel_id for event in outcome.held})
    try:
        enqueue_all(outcome.held, settings.publish_queue_url, delay_seconds=HOLD_DELAY_SECONDS)
    except Exception:
        # Not held, then: SQS redelivers them (a copy that did go out is deduplicated by the markers).
        logger.exception("Could not hold events", extra={"events": len(outcome.held), "pixels": pixels})
        outcome.fail(outcome.held)
        outcome.held = []
        return
    logger.info(
        "Events held until their pixel has a usable token",
        extra={"events": len(outcome.held), "pixels": pixels, "delay_seconds": HOLD_DELAY_SECONDS},
    )


def _meta_error(status: int, data: bytes) -> MetaError:
    """Meta's error body (`{"error": {"code", "error_subcode", "is_transient", ...}}`), as far as it reads."""
    try:
        error = json.loads(data).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return MetaError(status, None, "unreadable answer")
    texts = [error.get("error_user_msg"), error.get("message"), error.get("error_data")]
    named = {
        int(index)
        for text in texts
        if text is not None
        for index in _EVENT_INDEX.findall(text if isinstance(text, str) else json.dumps(text))
    }
    return MetaError(
        status,
        _integer(error.get("code")),
        str(error.get("message", ""))[:200],
        subcode=_integer(error.get("error_subcode")),
        transient=error.get("is_transient") is True,
        event_index=named.pop() if len(named) == 1 else None,
    )


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
