"""Figure: what the two read-heavy queries read: DynamoDB read units, requests and latency of `stats`
over 7, 31 and 92 days of a busy pixel, and of `tenantQueries` for a tenant with 100 pixels, each
against the query cost it is charged (graphql_api/limits.py).

The table is DynamoDB Local's (its ConsumedCapacity is what is summed), built from the template and
filled as the aggregator leaves a busy pixel: every day of the 92 counted (DAY, 5 DAY#D, MK), and
VISITORS_PER_DAY visitor-day items on the first day, the day every range starts on. `stats` reads a
range's visitor-days in key order and stops after `MAX_VISITOR_DAYS_READ` (+1), which the first day
alone exceeds, so the visitor-days of later days would never be read: they are not written (4.6
million items would take an hour to load, and change no figure). The other 99 pixels of the tenant
each have their TOTALS item.

Each operation goes through the GraphQL function's real Lambda handler (Basic auth, as the
documents' operations), with the container's caches cleared before every request, so each request
reads everything a first one does (its app, its pixel, ...). Latency is DynamoDB Local's on this
machine, not DynamoDB's: compare the operations with one another, not with production.
"""

import base64
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from graphql import parse, validate

from bench import Figure, Options
from bench.harness import quiet_handler_output
from bench.pipeline import fresh_table
from devtools.api_gateway import http_api_event
from devtools.dynamodb_local import DynamoDBLocal
from devtools.functions import load_handler
from devtools.sqs_event_source import LambdaContext
from pixel_core import auth, pixels
from pixel_core.clock import utc_now
from pixel_core.models import (
    DayDomainItem,
    DayItem,
    MatchKeysDayItem,
    PixelItem,
    TableItem,
    TotalsItem,
    VisitorDayItem,
)
from pixel_core.stats import MAX_RANGE_DAYS, MAX_VISITOR_DAYS_READ
from tests.support.documents import STATS, TENANT_QUERIES

VISITORS_PER_DAY = 50_000
TENANT_PIXELS = 100
DOMAINS_PER_DAY = 5
RANGES = (7, 31, 92)
REPEATS = 5
FIRST_DAY = date(2026, 1, 1)
TENANT_ID = "IaoreXfj"  # the CAPIG samples' tenant
BUSY_PIXEL = 1_000_000_000_001
READ_OPERATIONS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"})


@dataclass
class Reads:
    """What one request read: capacity DynamoDB reported, and the requests it took."""

    read_units: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Operation:
    label: str
    cost: int  # the query cost the request is charged
    reads: Reads  # of one request
    seconds: list[float]  # one per request

    @property
    def within_cost(self) -> bool:
        return self.reads.read_units <= self.cost


class ReadRecorder:
    """Asks DynamoDB for the consumed capacity of every read and sums it, on PynamoDB's client."""

    def __init__(self, client: Any) -> None:
        self.current: Reads | None = None
        client.meta.events.register("before-parameter-build.dynamodb", self._ask_for_capacity)
        client.meta.events.register("after-call.dynamodb", self._count)

    @contextmanager
    def recording(self) -> Iterator[Reads]:
        self.current = Reads()
        try:
            yield self.current
        finally:
            self.current = None

    def _ask_for_capacity(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in READ_OPERATIONS:
            params["ReturnConsumedCapacity"] = "TOTAL"

    def _count(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if self.current is None:
            return
        self.current.requests[model.name] += 1
        capacity = parsed.get("ConsumedCapacity")
        for entry in capacity if isinstance(capacity, list) else [capacity] if capacity else []:
            self.current.read_units += float(entry.get("CapacityUnits", 0.0))


def charged_cost(query: str, variables: dict[str, Any]) -> int:
    """The cost graphql_api/limits.py charges the request (with a maximum of 0 it reports it)."""
    from graphql_api import limits  # noqa: PLC0415  # after bench set the environment
    from graphql_api.server import schema  # noqa: PLC0415

    (error,) = validate(schema, parse(query), [limits.request_cost_rule(0, variables, None)])
    return int(error.extensions["cost"]["requestedQueryCost"])  # type: ignore[index]


def fill(visitors_per_day: int, tenant_pixels: int) -> dict[str, str]:
    """The tenant, its app and pixels, the busy pixel's counters; returns the Basic auth header."""
    auth.create_tenant(TENANT_ID)
    credentials = auth.create_app({TENANT_ID})
    now = utc_now()
    domains = [f"shop{n}.example.com" for n in range(DOMAINS_PER_DAY)]
    with TableItem.batch_write() as batch:
        for number in range(tenant_pixels):
            pixel_id = BUSY_PIXEL + number
            batch.save(PixelItem.new(pixel_id, TENANT_ID, created_at=now, domains=set(domains)))
            index_pk, index_sk = TotalsItem.index_key(TENANT_ID, pixel_id)  # as the aggregator writes it
            batch.save(
                TotalsItem(
                    *TotalsItem.key(pixel_id),
                    events_received=3 * visitors_per_day,
                    gsi1pk=index_pk,
                    gsi1sk=index_sk,
                )
            )
        for offset in range(MAX_RANGE_DAYS):
            day = (FIRST_DAY + timedelta(days=offset)).isoformat()
            batch.save(
                DayItem(
                    *DayItem.key(BUSY_PIXEL, day), pageviews=3 * visitors_per_day, visitors=visitors_per_day
                )
            )
            batch.save(MatchKeysDayItem(*MatchKeysDayItem.key(BUSY_PIXEL, day), events=3 * visitors_per_day))
            for domain in domains:
                key = DayDomainItem.key(BUSY_PIXEL, day, domain)
                batch.save(DayDomainItem(*key, domain=domain, pageviews=3 * visitors_per_day // len(domains)))
        first_day = FIRST_DAY.isoformat()
        for visitor in range(visitors_per_day):
            md5 = uuid.UUID(int=visitor).hex  # 32 hex digits, as an md5
            batch.save(VisitorDayItem(*VisitorDayItem.key(BUSY_PIXEL, first_day, md5)))
    token = base64.b64encode(f"{credentials.app_id}:{credentials.app_secret}".encode()).decode()
    return {"authorization": f"Basic {token}", "content-type": "application/json"}


def requests_to_measure(tenant_pixels: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, path, document, variables) of each measured request."""
    measured: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            f"stats, {days} days",
            "/graphql",
            STATS,
            {
                "event": {
                    "pixel_id": BUSY_PIXEL,
                    "from": FIRST_DAY.isoformat(),
                    "to": (FIRST_DAY + timedelta(days=days - 1)).isoformat(),
                }
            },
        )
        for days in RANGES
    ]
    measured.append(
        (f"tenantQueries, {tenant_pixels} pixels", "/capig/graphql/", TENANT_QUERIES, {"tenantId": TENANT_ID})
    )
    return measured


def measure(
    endpoint: str,
    *,
    visitors_per_day: int = VISITORS_PER_DAY,
    tenant_pixels: int = TENANT_PIXELS,
    repeats: int = REPEATS,
) -> tuple[list[Operation], float]:
    """Every operation of `requests_to_measure`; and the seconds filling the table took."""
    with fresh_table(endpoint, f"bench-reads-{uuid.uuid4().hex[:8]}") as client:
        started = time.perf_counter()
        headers = fill(visitors_per_day, tenant_pixels)
        fill_seconds = time.perf_counter() - started
        handler: Callable[[dict[str, Any], Any], dict[str, Any]] = load_handler(
            "functions/graphql_api", "app.handler", module_alias="bench_reads_graphql_api_app"
        )  # type: ignore[assignment]  # the API's handler always answers
        recorder = ReadRecorder(client)
        operations = []
        for label, path, query, variables in requests_to_measure(tenant_pixels):
            body = json.dumps({"query": query, "variables": variables}).encode()
            seconds: list[float] = []
            recorded: list[Reads] = []
            for _ in range(repeats):
                auth.forget_verified_apps()
                pixels.forget_recent_pixels()
                event = http_api_event("POST", path, headers, body, "203.0.113.10", f"POST {path}")
                context = LambdaContext.for_invocation(
                    "pixel-gateway-bench-GraphQLFunction", timeout_seconds=30
                )
                with recorder.recording() as reads:
                    started = time.perf_counter()
                    response = handler(event, context)
                    seconds.append(time.perf_counter() - started)
                recorded.append(reads)
                _check_answer(label, response)
            # Every request reads the same (caches cleared): the last one's reads stand for all.
            operations.append(Operation(label, charged_cost(query, variables), recorded[-1], seconds))
    return operations, fill_seconds


def _check_answer(label: str, response: dict[str, Any]) -> None:
    answer = json.loads(response["body"])
    if response["statusCode"] != 200 or answer.get("errors"):
        raise RuntimeError(f"{label} failed: {response['statusCode']} {answer}")
    if label.startswith("stats") and answer["data"]["stats"]["code"] != 200:
        raise RuntimeError(f"{label} failed: {answer}")


def figure(operations: list[Operation], fill_seconds: float, visitors_per_day: int) -> Figure:
    repeats = len(operations[0].seconds)
    table = Figure(
        title="Reads: stats of a busy pixel and tenantQueries of a 100-pixel tenant, against their query cost "
        "(DynamoDB Local)",
        columns=(
            "",
            "read units",
            "query cost",
            "units/cost",
            "requests",
            f"median of {repeats}, ms",
            "fastest, ms",
        ),
    )
    for operation in operations:
        requests = ", ".join(f"{count} {name}" for name, count in sorted(operation.reads.requests.items()))
        table.add(
            operation.label,
            f"{operation.reads.read_units:,.1f}",
            str(operation.cost),
            f"{operation.reads.read_units / operation.cost:.2f}",
            requests,
            f"{statistics.median(operation.seconds) * 1000:,.1f}",
            f"{min(operation.seconds) * 1000:,.1f}",
        )
    over = [operation.label for operation in operations if not operation.within_cost]
    table.notes += [
        "target: every operation reads at most as many units as the query cost it is charged; "
        + ("met." if not over else f"NOT met: {', '.join(over)}."),
        f"the busy pixel: {visitors_per_day:,} visitors a day, 3 pageviews each, {DOMAINS_PER_DAY} domains; "
        f"every range starts on its first day, whose {visitors_per_day:,} visitor-day items alone exceed "
        f"what stats reads ({MAX_VISITOR_DAYS_READ:,} + 1): past that bound the range's visitors are the "
        "sum of the days' (an upper bound, visitorsExact false). Filling the table took "
        f"{fill_seconds:.1f} s.",
        "read units: DynamoDB Local's ConsumedCapacity (eventually consistent reads: half a unit per 4 KB "
        "of items read, a Query's items summed before rounding, each BatchGetItem item rounded on its "
        "own); requests: the DynamoDB calls of one request, caches cleared (its app and pixel read too).",
        "query cost: what graphql_api/limits.py charges the request (stats 5 + 2 a day of its range; "
        "tenantQueries 2 + eventFilters 3 + domainFilters 3 + signalConfigs 3 + 1 a field below them).",
        "latency: the Lambda handler's, with DynamoDB Local on this machine answering; compare the rows.",
    ]
    return table


def run(options: Options) -> Figure:
    del options  # the workload is the issue's: 50,000 visitors a day, a 100-pixel tenant
    with DynamoDBLocal() as server, quiet_handler_output():  # the handler's access lines, not the figure's
        operations, fill_seconds = measure(server.endpoint_url)
    return figure(operations, fill_seconds, VISITORS_PER_DAY)
