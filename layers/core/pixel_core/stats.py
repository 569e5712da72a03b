"""Reading the aggregator's counters: a pixel's totals, and per-day stats over a range of UTC days."""

from datetime import date, timedelta
from typing import Any, NamedTuple

from pixel_core.auth import Principal
from pixel_core.clock import iso_from_unix
from pixel_core.errors import BadRequest
from pixel_core.models import (
    DAY_PREFIX,
    MATCH_KEYS_PREFIX,
    VISITOR_DAY_PREFIX,
    DayDomainItem,
    DayItem,
    MatchKeysDayItem,
    TableItem,
    TotalsItem,
    find,
    pixel_partition,
)
from pixel_core.pixels import pixel_for
from pixel_core.user_data import MATCH_KEYS

MAX_RANGE_DAYS = 92
# What one `stats` request reads to count the range's distinct visitors: at most this many
# visitor-day items (one per visitor and day seen), one more to know whether there are more; past
# it, the total is flagged as an upper bound. Read in pages of VISITOR_DAYS_PAGE_SIZE, so at most
# 5 Query calls and 25,000 items (~100 bytes each: ~2.5 MB, ~300 read units) however busy the pixel.
MAX_VISITOR_DAYS_READ = 20_000
VISITOR_DAYS_PAGE_SIZE = 5_000
# Likewise the day-domain items (one per day and domain) that one request lists.
MAX_DAY_DOMAINS_READ = 10_000
MATCH_KEY_DAYS = 7  # connectionStatus.matchKeys: today (UTC) and the 6 days before


class DayRange(NamedTuple):
    start: date
    end: date

    @classmethod
    def parse(cls, start: object, end: object) -> "DayRange":
        first, last = _day(start, "from"), _day(end, "to")
        if last < first:
            raise BadRequest("'to' must not be before 'from'")
        if (last - first).days + 1 > MAX_RANGE_DAYS:
            raise BadRequest(f"The range may span at most {MAX_RANGE_DAYS} days")
        return cls(first, last)

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def sort_key_bounds(self, prefix: str) -> tuple[str, str]:
        # "~" sorts after every character used in the keys that follow a day.
        return f"{prefix}{self.start.isoformat()}", f"{prefix}{self.end.isoformat()}#~"


def match_keys(pixel_id: int, days: DayRange) -> dict[str, Any]:
    """Of the events received on `days`, how many carried each of Meta's match keys, and the share.

    Exact: read from the aggregator's per-day counters (one Query of at most 92 items), no scan.
    """
    low, high = days.sort_key_bounds(MATCH_KEYS_PREFIX)
    found = MatchKeysDayItem.query(pixel_partition(pixel_id), TableItem.sk.between(low, high))
    items = [item for item in found if isinstance(item, MatchKeysDayItem)]
    events = sum(int(item.events) for item in items)
    carried = {key: sum(item.carrying(key) for item in items) for key in MATCH_KEYS}
    return {
        "events": events,
        "keys": [
            {"key": key, "events": count, "share": count / events if events else 0.0}
            for key, count in carried.items()
        ],
    }


def last_days(today: date, count: int = MATCH_KEY_DAYS) -> DayRange:
    return DayRange(today - timedelta(days=count - 1), today)


def _day(value: object, name: str) -> date:
    if not isinstance(value, str) or len(value) != 10:
        raise BadRequest(f"'{name}' must be a date like 2026-11-24")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"'{name}' must be a date like 2026-11-24") from None


def pixel_totals(pixel_id: int) -> TotalsItem | None:
    return find(TotalsItem, TotalsItem.key(pixel_id))


def pixel_stats(principal: Principal, pixel_id: int, days: DayRange) -> dict[str, Any]:
    """Per-day counters (always exact) and totals; `visitors_exact` says whether the range's
    distinct visitors could be counted within `MAX_VISITOR_DAYS_READ` (see `_distinct_visitors`),
    `domains_exact` whether every day's domains were read within `MAX_DAY_DOMAINS_READ`."""
    pixel_for(principal, pixel_id)
    partition = pixel_partition(pixel_id)
    by_day: dict[str, dict[str, Any]] = {}
    # The days by key (at most 92, one BatchGetItem): exact whatever the number of domains.
    keys = [DayItem.key(pixel_id, day.isoformat()) for day in days.each_day()]
    for item in DayItem.batch_get(keys):
        day = item.sk[len(DAY_PREFIX) :]
        by_day[day] = {
            "date": day,
            "pageviews": int(item.pageviews),
            "visitors": int(item.visitors),
            "domains": [],
        }
    domains_exact = _add_domains(partition, days, by_day)
    for entry in by_day.values():
        entry["domains"].sort(key=lambda d: (-d["pageviews"], d["domain"]))
    visitor_days = sum(entry["visitors"] for entry in by_day.values())
    distinct = _distinct_visitors(partition, days, visitor_days)
    return {
        "pixel_id": pixel_id,
        "from": days.start.isoformat(),
        "to": days.end.isoformat(),
        "totals": {
            "pageviews": sum(entry["pageviews"] for entry in by_day.values()),
            # Past the bound: every visitor counted once per day seen, an upper bound.
            "visitors": distinct if distinct is not None else visitor_days,
        },
        "match_keys": match_keys(pixel_id, days),
        "visitors_exact": distinct is not None,
        "domains_exact": domains_exact,
        "days": [by_day[day] for day in sorted(by_day)],
    }


def _add_domains(partition: str, days: DayRange, by_day: dict[str, dict[str, Any]]) -> bool:
    """Each day's domains, from the day-domain items of the range; False when there were more than
    `MAX_DAY_DOMAINS_READ` (a pixel without domains takes any): the lists then hold what was read."""
    low, high = days.sort_key_bounds(DAY_PREFIX)
    found = TableItem.query(
        partition, TableItem.sk.between(low, high), limit=MAX_DAY_DOMAINS_READ + len(by_day) + 1
    )
    read = 0
    for item in found:
        if not isinstance(item, DayDomainItem):
            continue  # the day items, read by key above
        read += 1
        if read > MAX_DAY_DOMAINS_READ:
            return False
        day = item.sk[len(DAY_PREFIX) : len(DAY_PREFIX) + 10]
        if day in by_day:
            by_day[day]["domains"].append({"domain": item.domain, "pageviews": int(item.pageviews)})
    return True


def _distinct_visitors(partition: str, days: DayRange, visitor_days: int) -> int | None:
    """Visitors seen on any day of the range, each once, from the visitor-day items; None when the
    range holds more than `MAX_VISITOR_DAYS_READ` of them.

    `visitor_days` is the days' own visitor counts summed, which is exactly how many visitor-day
    items the range holds (the aggregator adds one to its day with each): a range past the bound is
    known without reading any, and one within it is read to its last item and no further.
    """
    if visitor_days > MAX_VISITOR_DAYS_READ:
        return None
    if visitor_days == 0:
        return 0
    low, high = days.sort_key_bounds(VISITOR_DAY_PREFIX)
    found = TableItem.query(
        partition,
        TableItem.sk.between(low, high),
        attributes_to_get=["sk", "item_type"],
        limit=MAX_VISITOR_DAYS_READ + 1,  # one more than the bound tells "more" from "exactly"
        page_size=VISITOR_DAYS_PAGE_SIZE,
    )
    md5s: set[str] = set()
    for read, item in enumerate(found, start=1):
        if read > MAX_VISITOR_DAYS_READ:
            return None
        md5s.add(item.sk.rsplit("#", 1)[1])
    return len(md5s)


def last_received_iso(totals: TotalsItem | None) -> str | None:
    if totals is None or totals.last_received_at is None:
        return None
    return iso_from_unix(float(totals.last_received_at))
