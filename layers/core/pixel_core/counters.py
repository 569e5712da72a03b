"""Exact counters from at-least-once delivery.

A batch of events is aggregated in memory and committed in DynamoDB transactions of at most 100
items. Each transaction puts one marker per event (condition: it does not exist yet) together with
the counter deltas of exactly those events. If a marker exists, the event was counted before (a
redelivered batch, or a crash after the commit and before the acknowledgement): the transaction
is cancelled, its cancellation reasons name the markers that exist, and it is rebuilt without
those events. Unique visitors work the same way with a visitor-day item; a visitor's own item
(whether it was ever seen) is written only with a visitor-day that is new.

Every item of a transaction is billed twice a plain write, so the events are packed into
transactions by pixel (and a big pixel's by day, visitor and domain), not in order of arrival: a
counter item is written once per transaction it appears in. Which events share a transaction
changes nothing about exactness, since each transaction carries its own events' markers and deltas.
"""

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

from pynamodb.exceptions import TransactWriteError

from pixel_core.bots import BOT_REASON
from pixel_core.events import PixelEvent
from pixel_core.models import (
    MARKER_TTL,
    DayDomainItem,
    DayItem,
    EventMarkerItem,
    MatchKeysDayItem,
    PixelItem,
    TableItem,
    TotalsItem,
    Transaction,
    VisitorDayItem,
    VisitorItem,
    published_event_ids,
    same_pixel,
    too_old_to_deduplicate,
    transaction,
)
from pixel_core.observability import logger
from pixel_core.rate_limits import RATE_LIMIT_REASON

MAX_TRANSACTION_ITEMS = 100
# Worth another attempt: whole-request errors (after botocore's own retries) and per-item reasons.
RETRYABLE_ERRORS = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "InternalServerError",
    }
)
RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
MAX_RETRIES = 6

type Key = tuple[str, str]


def retry_delay(retries: int) -> float:
    """Seconds to wait before retry number `retries` (from 1) of a transaction: exponential, jittered."""
    return min(2.0, 0.05 * 2.0**retries) * random.uniform(0.5, 1.0)  # noqa: S311  # jitter, not crypto


class CountingFailed(RuntimeError):
    """The batch could not be committed; it is retried whole (markers keep that exact)."""


@dataclass
class BatchOutcome:
    counted: int = 0
    duplicates: int = 0
    orphaned: int = 0  # events of a pixel deleted (or deleted and set up again) since intake
    too_old: int = 0  # came back after their markers could have expired: not counted again
    transactions: int = 0
    counted_events: list[PixelEvent] = field(default_factory=list)  # counted by this delivery
    duplicate_events: list[PixelEvent] = field(default_factory=list)  # counted by an earlier one


type EventKey = tuple[int, str]  # an event's identity: its pixel and its id


def event_key(event: PixelEvent) -> EventKey:
    return event.pixel_id, event.event_id


@dataclass
class _Chunk:
    """Events to commit in one transaction, and what earlier attempts learned about them."""

    events: list[PixelEvent]
    pixels: dict[int, PixelItem]  # as read before the first attempt; the condition checks it still is
    counted_before: set[EventKey] = field(default_factory=set)  # events with a marker
    known: set[Key] = field(default_factory=set)  # visitor-day and visitor keys that exist
    # Per pixel, the latest receipt of the batch: every transaction sets the same, so their order
    # (no longer the order of arrival) cannot leave an earlier one in TOTALS.
    latest_received: dict[int, float] = field(default_factory=dict)
    missing_pixels: set[int] = field(default_factory=set)

    def live(self) -> list[PixelEvent]:
        return [
            event
            for event in self.events
            if event_key(event) not in self.counted_before and event.pixel_id not in self.missing_pixels
        ]


def _existing_visitor_days(events: list[PixelEvent]) -> set[Key]:
    """Visitor-days counted in earlier batches, read up front: a visitor seen earlier the same day
    would otherwise cancel the transaction once (a write's price) before the retry learns it.
    Reads are a fifth of the price; a stale read is still caught by the condition."""
    return _existing(
        VisitorDayItem,
        {VisitorDayItem.key(pixel_id, day, md5) for pixel_id, day, md5 in _visits(events)},
    )


def _existing_visitors(events: list[PixelEvent], known: Set[Key]) -> set[Key]:
    """Visitors seen in earlier batches, among those whose visitor-day is new: their item need not
    be written again (read, a tenth of a transactional write's price). A visitor whose visitor-day
    exists has an item already (they are written together), so is not read. The item is never
    deleted but with its pixel, and writing it is idempotent: a stale read only costs a write."""
    return _existing(
        VisitorItem,
        {
            VisitorItem.key(pixel_id, md5)
            for pixel_id, day, md5 in _visits(events)
            if VisitorDayItem.key(pixel_id, day, md5) not in known
        },
    )


def _visits(events: list[PixelEvent]) -> list[tuple[int, str, str]]:
    """(pixel, day, visitor) of the accepted pageviews with a visitor: what visitor-days and
    visitors are counted from."""
    return [
        (e.pixel_id, e.day, e.visitor_md5)
        for e in events
        if e.visitor_md5 and e.dropped is None and e.is_page_view
    ]


def _existing(model: Any, keys: set[Key]) -> set[Key]:
    """Which of `keys` are items of the table (one BatchGetItem per 100, keys only)."""
    if not keys:
        return set()
    return {
        (item.pk, item.sk)
        for item in model.batch_get(sorted(keys), attributes_to_get=["pk", "sk", "item_type"])
    }


def _current_pixels(events: list[PixelEvent]) -> dict[int, PixelItem]:
    """The pixels of the batch as they are now (owner and incarnation), in one consistent read."""
    keys = sorted({PixelItem.key(event.pixel_id) for event in events})
    attributes = ["pk", "sk", "item_type", "pixel_id", "tenant_id", "incarnation"]
    found = PixelItem.batch_get(keys, consistent_read=True, attributes_to_get=attributes)
    return {pixel.number: pixel for pixel in found}


def keys_touched(event: PixelEvent, known: Set[Key] = frozenset()) -> set[Key]:
    """The items an event's transaction writes or checks for it (a visitor-day only while new)."""
    keys = {EventMarkerItem.key(event.pixel_id, event.event_id), PixelItem.key(event.pixel_id)}
    if event.dropped is not None:
        keys.add(EventMarkerItem.key(event.pixel_id, event.event_id, dropped=True))
    keys.add(TotalsItem.key(event.pixel_id))
    if event.dropped is None:
        keys.add(MatchKeysDayItem.key(event.pixel_id, event.received_day))
    if event.dropped is None and event.is_page_view:
        keys.add(DayItem.key(event.pixel_id, event.day))
        if event.domain:
            keys.add(DayDomainItem.key(event.pixel_id, event.day, event.domain))
        if event.visitor_md5:
            visitor_day = VisitorDayItem.key(event.pixel_id, event.day, event.visitor_md5)
            if visitor_day not in known:
                keys.add(visitor_day)
                if (visitor := VisitorItem.key(event.pixel_id, event.visitor_md5)) not in known:
                    keys.add(visitor)
    return keys


@dataclass
class _Bin:
    """The events of one future transaction and the items they write."""

    events: list[PixelEvent] = field(default_factory=list)
    keys: set[Key] = field(default_factory=set)


def _pieces(events: Sequence[PixelEvent], known: Set[Key]) -> list[_Bin]:
    """The batch cut into pieces that share counter items: per pixel and day, one per visitor
    (identified events) or per domain (the others), each split if it would not fit one transaction.
    By day first: a day's DAY, MK and day-domain items are shared by more events than a visitor's."""
    groups: dict[tuple[Any, ...], list[PixelEvent]] = defaultdict(list)
    for event in events:
        if event.visitor_md5 and event.dropped is None:
            groups[(event.pixel_id, event.day, "visitor", event.visitor_md5)].append(event)
        else:
            groups[(event.pixel_id, event.day, "domain", event.domain or "")].append(event)
    pieces: list[_Bin] = []
    for group in groups.values():
        piece = _Bin()
        for event in group:
            touched = keys_touched(event, known)
            if piece.events and len(piece.keys | touched) > MAX_TRANSACTION_ITEMS:
                pieces.append(piece)
                piece = _Bin()
            piece.events.append(event)
            piece.keys |= touched
        pieces.append(piece)
    return pieces


def chunks(events: Sequence[PixelEvent], known: Set[Key] = frozenset()) -> list[list[PixelEvent]]:
    """The events grouped into transactions of at most 100 items (an item may appear only once in
    one), packed so that each counter item is written by as few of them as possible.

    A counter item in two transactions costs two writes, so the order of arrival is not kept. Each
    pixel's events go whole into one transaction when they fit one (biggest pixel first, into the
    fullest transaction with room, best fit decreasing). A pixel with more is cut into pieces that
    share items (a visitor's events of one day, or the anonymous ones of one day and domain), taken
    by day and domain, each placed where it adds the fewest new items.
    """
    by_pixel: dict[int, list[PixelEvent]] = defaultdict(list)
    for event in events:
        by_pixel[event.pixel_id].append(event)
    blocks = [_Bin(pixel_events, _keys(pixel_events, known)) for pixel_events in by_pixel.values()]
    bins: list[_Bin] = []
    for block in sorted(blocks, key=lambda block: -len(block.keys)):
        if len(block.keys) <= MAX_TRANSACTION_ITEMS:
            _place(block, bins, key=lambda b: -len(b.keys))
            continue
        # By day and domain, so that the pieces sharing a day-domain counter land together.
        for piece in sorted(_pieces(block.events, known), key=_day_and_domain):
            _place(piece, bins, key=_adding_fewest_items(piece))
    return [b.events for b in bins]


def _adding_fewest_items(piece: _Bin) -> Callable[[_Bin], tuple[int, int]]:
    """Transactions ordered by the new items the piece would add to them, then fullest first."""
    return lambda other: (len(piece.keys - other.keys), -len(other.keys))


def _day_and_domain(piece: _Bin) -> tuple[str, str, int]:
    first = piece.events[0]
    return first.day, first.domain or "", -len(piece.keys)


def _keys(events: Sequence[PixelEvent], known: Set[Key]) -> set[Key]:
    return set().union(*(keys_touched(event, known) for event in events))


def _place(piece: _Bin, bins: list[_Bin], key: Callable[[_Bin], Any]) -> None:
    """Adds the piece to the best (lowest `key`) transaction it fits in, or to a new one."""
    fitting = [b for b in bins if len(b.keys | piece.keys) <= MAX_TRANSACTION_ITEMS]
    best = min(fitting, key=key) if fitting else None
    if best is None:
        best = _Bin()
        bins.append(best)
    best.events.extend(piece.events)
    best.keys |= piece.keys


def count_events(
    events: Sequence[PixelEvent],
    *,
    sleep: Callable[[float], None] = time.sleep,
    now: float | None = None,
) -> BatchOutcome:
    outcome = BatchOutcome()
    now = time.time() if now is None else now
    fresh = [event for event in events if not too_old_to_deduplicate(event.received_at, now)]
    outcome.too_old = len(events) - len(fresh)
    if outcome.too_old:
        logger.warning("Events too old to count exactly were discarded", extra={"events": outcome.too_old})
    # One event per identity; where a batch holds both a dropped and an accepted copy, the accepted
    # one (a drop of an id that is received counts nothing).
    by_identity: dict[EventKey, PixelEvent] = {}
    for event in fresh:
        kept = by_identity.get(event_key(event))
        if kept is None or (kept.dropped is not None and event.dropped is None):
            by_identity[event_key(event)] = event
    outcome.duplicates += len(fresh) - len(by_identity)
    unique = list(by_identity.values())
    pixels = _current_pixels(unique) if unique else {}
    owned: list[PixelEvent] = []
    orphans: list[PixelEvent] = []
    for event in unique:
        pixel = pixels.get(event.pixel_id)
        (owned if pixel is not None and pixel.owns(event) else orphans).append(event)
    _orphaned(outcome, {event.pixel_id for event in orphans}, len(orphans))
    # Read once for the batch, and shared by its transactions: one that commits adds the visitor-days
    # it wrote, so a later one of the same batch neither writes them again nor is cancelled by them.
    known = _existing_visitor_days(owned)
    known |= _existing_visitors(owned, known)
    latest_received: dict[int, float] = {}
    for event in owned:
        if event.dropped is None:
            latest = latest_received.get(event.pixel_id, event.received_at)
            latest_received[event.pixel_id] = max(latest, event.received_at)
    for events_in_chunk in chunks(owned, known):
        chunk = _Chunk(events_in_chunk, pixels, known=known, latest_received=latest_received)
        _commit(chunk, outcome, sleep)
    return outcome


def events_to_forward(outcome: BatchOutcome) -> list[PixelEvent]:
    """What goes on to the publisher: the publishable events this delivery counted, and those an
    earlier delivery counted but that are not published yet (it may have crashed after counting).
    Never a duplicate that is published, and never an event that was not counted."""
    forward = [event for event in outcome.counted_events if event.is_publishable]
    waiting: dict[int, list[PixelEvent]] = defaultdict(list)
    for event in outcome.duplicate_events:
        if event.is_publishable:
            waiting[event.pixel_id].append(event)
    for pixel_id, duplicates in waiting.items():
        settled = published_event_ids(pixel_id, (event.event_id for event in duplicates))
        forward.extend(event for event in duplicates if event.event_id not in settled)
    return forward


def _orphaned(outcome: BatchOutcome, pixel_ids: set[int], events: int) -> None:
    if events:
        outcome.orphaned += events
        # Pixel ids only: the events' hashes, addresses and user agents stay out of the logs.
        logger.warning(
            "Events of deleted pixels discarded", extra={"pixels": sorted(pixel_ids), "events": events}
        )


def _commit(chunk: _Chunk, outcome: BatchOutcome, sleep: Callable[[float], None]) -> None:
    retries = 0
    # Each cancellation for a failed condition removes at least one item, so this ends.
    while live := chunk.live():
        writes = _writes(live, chunk.pixels, chunk.known, chunk.latest_received)
        try:
            with transaction() as tx:
                for write in writes:
                    write.apply(tx)
        except TransactWriteError as error:
            reasons = tx.reasons(error)
            if _learn(chunk, reasons):
                continue
            retryable = error.cause_response_code in RETRYABLE_ERRORS or bool(
                RETRYABLE_REASONS & {code for _write, code in reasons}
            )
            if retryable and retries < MAX_RETRIES:
                retries += 1
                sleep(retry_delay(retries))
                continue
            codes = [code for _write, code in reasons]
            raise CountingFailed(f"transaction failed: {error.cause_response_code} {codes}") from error
        outcome.transactions += 1
        chunk.known.update(write.subject for write in writes if write.kind in {"visitor_day", "visitor"})
        outcome.counted += len(live)
        outcome.counted_events.extend(live)
        break
    outcome.duplicates += len(chunk.counted_before)
    outcome.duplicate_events.extend(e for e in chunk.events if event_key(e) in chunk.counted_before)
    gone = [event for event in chunk.events if event.pixel_id in chunk.missing_pixels]
    _orphaned(outcome, chunk.missing_pixels, len(gone))


@dataclass(frozen=True)
class _Write:
    """One item of the transaction, and what a failed condition on it would mean (`kind`, `subject`)."""

    kind: str  # marker | received_check | pixel | visitor_day | visitor | counter
    subject: Any
    item: Any
    actions: list[Any] | None = None
    condition: Any = None

    def apply(self, tx: Transaction) -> None:
        # Tagged with itself: a cancellation reason comes back with the write it is about.
        if self.kind in {"pixel", "received_check"}:
            tx.condition_check(
                type(self.item), self.item.pk, self.item.sk, condition=self.condition, tag=self
            )
        elif self.actions is not None:
            tx.update(self.item, actions=self.actions, tag=self)
        else:
            tx.save(self.item, condition=self.condition, tag=self)


def _learn(chunk: _Chunk, reasons: list[tuple[_Write, str]]) -> bool:
    """Records which conditions failed; False when none did, or one we do not know how to handle."""
    learned = False
    for write, reason in reasons:
        if reason != "ConditionalCheckFailed":
            continue
        learned = True
        if write.kind in {"marker", "received_check"}:
            chunk.counted_before.add(write.subject)
        elif write.kind == "visitor_day":
            chunk.known.add(write.subject)
        elif write.kind == "pixel":
            chunk.missing_pixels.add(write.subject)
        else:
            learned = False
    return learned


def _writes(
    events: list[PixelEvent],
    pixels: dict[int, PixelItem],
    known: set[Key],
    latest_received: Mapping[int, float],
) -> list[_Write]:
    writes: list[_Write] = []
    by_pixel: dict[int, list[PixelEvent]] = defaultdict(list)
    absent = EventMarkerItem.pk.does_not_exist()
    for event in events:
        by_pixel[event.pixel_id].append(event)
        dropped = event.dropped is not None
        key = EventMarkerItem.key(event.pixel_id, event.event_id, dropped=dropped)
        writes.append(
            _Write("marker", event_key(event), EventMarkerItem(*key, expires_at=MARKER_TTL), condition=absent)
        )
        if dropped:  # an id already received is not counted again as dropped
            received = EventMarkerItem(*EventMarkerItem.key(event.pixel_id, event.event_id))
            writes.append(_Write("received_check", event_key(event), received, condition=absent))
    for pixel_id, pixel_events in by_pixel.items():
        still = same_pixel(pixels[pixel_id])
        writes.append(_Write("pixel", pixel_id, PixelItem(*PixelItem.key(pixel_id)), condition=still))
        writes.extend(_counter_writes(pixels[pixel_id], pixel_events, known, latest_received))
    return writes


def _counter_writes(
    pixel: PixelItem, events: list[PixelEvent], known: set[Key], latest_received: Mapping[int, float]
) -> list[_Write]:
    pixel_id = pixel.number
    writes: list[_Write] = []
    received = [event for event in events if event.dropped is None]
    totals_actions: list[Any] = []
    if received:
        totals_actions.append(TotalsItem.events_received.add(len(received)))
        totals_actions.append(TotalsItem.last_received_at.set(latest_received[pixel_id]))
    if dropped := len(events) - len(received):
        totals_actions.append(TotalsItem.events_dropped.add(dropped))
    if bots := sum(1 for event in events if event.dropped == BOT_REASON):
        totals_actions.append(TotalsItem.events_bots.add(bots))
    if rate_limited := sum(1 for event in events if event.dropped == RATE_LIMIT_REASON):
        totals_actions.append(TotalsItem.events_rate_limited.add(rate_limited))
    # In the tenant's index beside its pixel: tenantQueries reads a tenant's totals with its pixels.
    index_pk, index_sk = TotalsItem.index_key(pixel.tenant_id, pixel_id)
    totals_actions += [TableItem.gsi1pk.set(index_pk), TableItem.gsi1sk.set(index_sk)]
    writes.append(_counter(TotalsItem(*TotalsItem.key(pixel_id)), totals_actions))

    # Match keys by the day each event was received: one update per day, whatever the batch's size.
    received_days: dict[str, list[PixelEvent]] = defaultdict(list)
    for event in received:
        received_days[event.received_day].append(event)
    for day, day_events in received_days.items():
        carried = Counter(key for event in day_events for key in event.match_keys())
        actions: list[Any] = [MatchKeysDayItem.events.add(len(day_events))]
        actions += [
            getattr(MatchKeysDayItem, f"key_{key}").add(count) for key, count in sorted(carried.items())
        ]
        writes.append(_counter(MatchKeysDayItem(*MatchKeysDayItem.key(pixel_id, day)), actions))

    page_views = [event for event in received if event.is_page_view]
    for day, views in Counter(event.day for event in page_views).items():
        new_visitor_days = sorted(
            {
                key
                for event in page_views
                if event.day == day
                and event.visitor_md5
                and (key := VisitorDayItem.key(pixel_id, day, event.visitor_md5)) not in known
            }
        )
        for key in new_visitor_days:
            writes.append(
                _Write("visitor_day", key, VisitorDayItem(*key), condition=VisitorDayItem.pk.does_not_exist())
            )
        day_actions: list[Any] = [DayItem.pageviews.add(views)]
        if new_visitor_days:
            day_actions.append(DayItem.visitors.add(len(new_visitor_days)))
        writes.append(_counter(DayItem(*DayItem.key(pixel_id, day)), day_actions))
    for (day, domain), views in Counter((e.day, e.domain) for e in page_views if e.domain).items():
        item = DayDomainItem(*DayDomainItem.key(pixel_id, day, domain))
        writes.append(_counter(item, [DayDomainItem.domain.set(domain), DayDomainItem.pageviews.add(views)]))

    # A visitor's item is read only for whether it exists ("User Found"): it is written only with a
    # new visitor-day (the two are written together), and only when not known to exist already.
    new_visitors = sorted(
        {
            key
            for event in page_views
            if event.visitor_md5
            and VisitorDayItem.key(pixel_id, event.day, event.visitor_md5) not in known
            and (key := VisitorItem.key(pixel_id, event.visitor_md5)) not in known
        }
    )
    for key in new_visitors:
        writes.append(
            _Write("visitor", key, VisitorItem(*key), actions=[TableItem.item_type.set(VisitorItem)])
        )
    return writes


def _counter(item: Any, actions: list[Any]) -> _Write:
    # UpdateItem creates the item when missing, but only with the attributes it names: name the
    # item type too, or the item could not be read back as its model.
    return _Write("counter", item.sk, item, actions=[*actions, TableItem.item_type.set(type(item))])
