"""`stats` reads a bounded number of items and costs what its range can read.

Per-day numbers come from the DAY# counters and are always exact; the range's distinct visitors
come from its visitor-day items, read up to `stats.MAX_VISITOR_DAYS_READ`: past it the total is
the sum of the days' visitors (an upper bound) and `visitors_exact` is false. The counters are
written directly (PynamoDB batch writes) with the bound lowered, so the tests stay fast.
"""

from typing import Any

import pytest
from graphql import parse, validate

from graphql_api import limits
from graphql_api.server import schema
from pixel_core import stats
from pixel_core.config import settings
from pixel_core.models import DayDomainItem, DayItem, TableItem, VisitorDayItem
from tests.support.documents import PIXELS, STATS

PIXEL = 777
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
VISITORS_A_DAY = 15  # 45 visitor-days over DAYS, of 25 distinct visitors (see `busy_pixel`)
BOUND, PAGE = 30, 7


def md5(visitor: int) -> str:
    return f"{visitor:032x}"


@pytest.fixture
def bound(monkeypatch) -> int:
    monkeypatch.setattr(stats, "MAX_VISITOR_DAYS_READ", BOUND)
    monkeypatch.setattr(stats, "VISITOR_DAYS_PAGE_SIZE", PAGE)
    return BOUND


@pytest.fixture
def busy_pixel(app, gql) -> int:
    """Visitors 0-14 on day 1, 5-19 on day 2, 10-24 on day 3: 45 visitor-days, 25 distinct."""
    created = gql(PIXELS, {"event": {"action": "create", "pixel_id": PIXEL}}, app.basic_header)
    assert created.data["pixels"]["code"] == 200
    with TableItem.batch_write() as batch:
        for number, day in enumerate(DAYS):
            visitors = range(5 * number, 5 * number + VISITORS_A_DAY)
            batch.save(DayItem(*DayItem.key(PIXEL, day), pageviews=100 + number, visitors=len(visitors)))
            for visitor in visitors:
                batch.save(VisitorDayItem(*VisitorDayItem.key(PIXEL, day, md5(visitor))))
    return PIXEL


def ask_stats(gql: Any, app: Any, start: str, end: str) -> dict[str, Any]:
    result = gql(STATS, {"event": {"pixel_id": PIXEL, "from": start, "to": end}}, app.basic_header)
    assert result.errors is None, result.errors
    answer: dict[str, Any] = result.data["stats"]
    assert answer["code"] == 200, answer
    return answer["data"]


@pytest.fixture
def visitor_day_reads(monkeypatch) -> list[Any]:
    """The result iterators of every visitor-day query `stats` runs (their `total_count`: items read)."""
    reads: list[Any] = []
    original = TableItem.query

    def query(hash_key: Any, range_key_condition: Any = None, **kwargs: Any) -> Any:
        found = original(hash_key, range_key_condition, **kwargs)
        if "DV#" in str(range_key_condition):
            reads.append(found)
        return found

    monkeypatch.setattr(TableItem, "query", query)
    return reads


def test_a_range_with_more_visitor_days_than_the_bound_is_flagged_and_its_days_stay_exact(
    app, gql, bound, busy_pixel, visitor_day_reads
):
    # When the whole range (45 visitor-days, over a bound of 30) is asked for
    data = ask_stats(gql, app, "2026-11-01", "2026-11-30")
    assert bound < 45
    # Then the distinct-visitor total says it is not exact: it is the days' sum, an upper bound
    assert data["visitors_exact"] is False
    assert data["totals"] == {"pageviews": 303, "visitors": 45}
    assert data["totals"]["visitors"] >= 25  # the true number of distinct visitors
    # And every day is exact, from its counters
    assert [(day["date"], day["pageviews"], day["visitors"]) for day in data["days"]] == [
        ("2026-11-01", 100, 15),
        ("2026-11-02", 101, 15),
        ("2026-11-03", 102, 15),
    ]
    # And no visitor-day was read: the days' own visitor counts (exactly how many visitor-days
    # there are) already said the range is past the bound
    assert visitor_day_reads == []


def test_a_range_within_the_bound_reads_its_visitor_days_and_no_more(
    app, gql, bound, busy_pixel, visitor_day_reads
):
    # When two days (30 visitor-days, the bound) are asked for
    ask_stats(gql, app, "2026-11-02", "2026-11-03")
    # Then exactly those were read, in pages of PAGE items
    (read,) = visitor_day_reads
    assert read.total_count == 30


def test_a_small_range_stays_exact_and_counts_each_visitor_once(app, gql, bound, busy_pixel):
    # 15 visitor-days: under the bound
    one_day = ask_stats(gql, app, "2026-11-02", "2026-11-02")
    assert one_day["visitors_exact"] is True
    assert one_day["totals"] == {"pageviews": 101, "visitors": 15}
    # 30 visitor-days, exactly the bound: still exact; visitors 5-14 seen twice count once
    two_days = ask_stats(gql, app, "2026-11-01", "2026-11-02")
    assert two_days["visitors_exact"] is True
    assert two_days["totals"] == {"pageviews": 201, "visitors": 20}


def test_with_the_deployed_bound_a_busy_range_is_exact(app, gql, busy_pixel):
    data = ask_stats(gql, app, "2026-11-01", "2026-11-03")
    assert data["visitors_exact"] is True
    assert data["totals"] == {"pageviews": 303, "visitors": 25}


def test_the_deployed_bound_reads_at_most_five_pages_of_visitor_days():
    pages = -(-(stats.MAX_VISITOR_DAYS_READ + 1) // stats.VISITOR_DAYS_PAGE_SIZE)
    assert (stats.MAX_VISITOR_DAYS_READ, pages, pages * stats.VISITOR_DAYS_PAGE_SIZE) == (20_000, 5, 25_000)


# Cost


def cost_of(query: str, variables: dict[str, Any] | None = None) -> int:
    """The cost the cost rule computes (with a maximum of 0, it reports every cost)."""
    (error,) = validate(schema, parse(query), [limits.request_cost_rule(0, variables, None)])
    return int(error.extensions["cost"]["requestedQueryCost"])  # type: ignore[index]


def stats_cost(start: str, end: str) -> int:
    return cost_of(STATS, {"event": {"pixel_id": 1, "from": start, "to": end}})


def test_stats_costs_five_and_two_a_day_of_its_range():
    # stats 5 + 2 a day, and its code, data and message 1 each
    assert stats_cost("2026-11-01", "2026-11-01") == 5 + 2 + 3
    assert stats_cost("2026-11-01", "2026-11-30") == 5 + 60 + 3
    assert stats_cost("2026-09-01", "2026-11-30") == 5 + 2 * 91 + 3
    ninety_two = stats_cost("2026-09-01", "2026-12-01")
    assert ninety_two == 5 + 2 * 92 + 3 == 192
    assert ninety_two > stats_cost("2026-11-01", "2026-11-01")
    assert ninety_two <= settings.max_query_cost


def test_a_literal_range_costs_the_same_as_a_range_in_variables():
    literal = (
        'query { stats(event: {pixel_id: 1, from: "2026-09-01", to: "2026-12-01"}) { code data message } }'
    )
    assert cost_of(literal) == stats_cost("2026-09-01", "2026-12-01")


def test_a_refused_range_costs_one_day_because_it_is_answered_400_unread():
    one_day = stats_cost("2026-11-01", "2026-11-01")
    assert stats_cost("2026-01-01", "2026-12-31") == one_day  # longer than 92 days
    assert stats_cost("2026-11-02", "2026-11-01") == one_day  # reversed
    assert stats_cost("yesterday", "today") == one_day


def test_aliases_cannot_multiply_full_range_stats_past_the_default_maximum():
    def aliased(count: int) -> str:
        fields = " ".join(
            f's{n}: stats(event: {{pixel_id: 1, from: "2026-09-01", to: "2026-12-01"}}) {{ code }}'
            for n in range(count)
        )
        return f"query {{ {fields} }}"

    assert cost_of(aliased(2)) <= settings.max_query_cost
    assert cost_of(aliased(3)) > settings.max_query_cost


def test_a_range_with_more_day_domains_than_the_bound_keeps_exact_days_and_says_its_domains_are_partial(
    app, gql, monkeypatch
):
    # Given a pixel without domains (it takes any) seen on 40 domains a day over three days
    monkeypatch.setattr(stats, "MAX_DAY_DOMAINS_READ", 50)
    created = gql(PIXELS, {"event": {"action": "create", "pixel_id": PIXEL}}, app.basic_header)
    assert created.data["pixels"]["code"] == 200
    with TableItem.batch_write() as batch:
        for number, day in enumerate(DAYS):
            batch.save(DayItem(*DayItem.key(PIXEL, day), pageviews=400 + number, visitors=0))
            for site in range(40):
                item = DayDomainItem(
                    *DayDomainItem.key(PIXEL, day, f"site{site}.example"),
                    domain=f"site{site}.example",
                    pageviews=10,
                )
                batch.save(item)
    # When stats reads the range, and one day of it
    data = ask_stats(gql, app, DAYS[0], DAYS[-1])
    one_day = ask_stats(gql, app, DAYS[0], DAYS[0])
    # Then every day's pageviews are exact, and the domains are flagged as partial only past the bound
    assert [day["pageviews"] for day in data["days"]] == [400, 401, 402]
    assert data["totals"]["pageviews"] == 1203
    assert data["domains_exact"] is False
    assert sum(len(day["domains"]) for day in data["days"]) == 50
    assert one_day["domains_exact"] is True
    assert len(one_day["days"][0]["domains"]) == 40
