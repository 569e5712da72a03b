"""A pixel's rate of browser events: at most `browser_events_per_pixel_per_minute` a minute.

Browser collection needs no secret, so anyone can send a pixel's events; this bounds what a flood
can put into a pixel's counters and through to Meta. One counter item per pixel and minute
(`RateWindowItem`), one `ADD` per request (a write unit), shared by every container, so the limit
holds however far the function scales. Events over it are not refused: they are queued as dropped
with `RATE_LIMIT_REASON` and counted (nothing a browser sent 204 for goes unaccounted).

A container that saw a minute full stops writing for the rest of that minute: a flood then costs
no more writes than the limit itself. If the counter cannot be written (throttled, unreachable),
the events are admitted: a limit on abuse must not drop a site's real traffic.
"""

import threading
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError
from pynamodb.exceptions import PynamoDBException

from pixel_core.models import RateWindowItem
from pixel_core.observability import logger

RATE_LIMIT_REASON = "rate limit"  # the `dropped` reason; counted per pixel (TotalsItem.events_rate_limited)
WINDOW_SECONDS = 60
WINDOW_TTL_SECONDS = 3_600

_full_windows: dict[int, int] = {}  # pixel id -> the minute this container saw it reach its limit
_lock = threading.Lock()


def admitted(pixel_id: int, events: int, limit_per_minute: int, now: float) -> int:
    """How many of a request's `events` the pixel takes this minute (the first ones); all when
    `limit_per_minute` is 0 (no limit)."""
    if limit_per_minute <= 0 or events <= 0:
        return events
    minute = int(now // WINDOW_SECONDS)
    with _lock:
        if _full_windows.get(pixel_id) == minute:
            return 0
    total = _add(pixel_id, minute, events, now)
    if total is None:
        return events
    if total >= limit_per_minute:
        with _lock:
            _full_windows[pixel_id] = minute
    before = total - events
    return max(0, min(events, limit_per_minute - before))


def _add(pixel_id: int, minute: int, events: int, now: float) -> int | None:
    """The minute's total after adding `events`; None when it could not be counted."""
    item = RateWindowItem(*RateWindowItem.key(pixel_id, minute))
    try:
        item.update(
            actions=[
                RateWindowItem.events.add(events),
                RateWindowItem.expires_at.set(datetime.fromtimestamp(now + WINDOW_TTL_SECONDS, UTC)),
                RateWindowItem.item_type.set(RateWindowItem),
            ]
        )
    except (PynamoDBException, BotoCoreError):
        logger.warning(
            "Browser rate not counted: events admitted", extra={"pixel_id": pixel_id}, exc_info=True
        )
        return None
    return int(item.events)


def forget_full_windows() -> None:
    """Forgets which pixels this container saw full (for tests, which reuse one process)."""
    with _lock:
        _full_windows.clear()
