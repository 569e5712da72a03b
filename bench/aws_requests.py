"""Figure: AWS requests per API operation in a warm container, against a cold container's.

Each operation is an API Gateway event through the GraphQL function's real Lambda handler, with moto
in process. Requests are counted with botocore's `before-call` event on the clients the function
keeps for the container's lifetime (PynamoDB's DynamoDB client, pixel_core.queues' SQS client,
pixel_core.tokens' KMS client); every botocore API call the process makes meanwhile is counted too,
and must be the same, so no other client goes uncounted.

warm: measured right after one identical request (a domain other than the measured one for
`domains add`, whose repeat would be a 409), so the container's caches are as in steady state.
first: the same, but the container has not read the pixel yet (or read it more than
PIXEL_CACHE_SECONDS ago) while the app's credentials are still verified: the first pageview after
the pixel cache expired. cold (the baseline): the per-container caches cleared before the request
(pixel_core.auth.forget_verified_apps, pixel_core.pixels.forget_recent_pixels), a new container's cost.
"""

import contextlib
import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient

from bench import Figure, Options
from bench.harness import (
    DOMAIN,
    Caller,
    Container,
    Event,
    Response,
    client_hooks,
    envelope,
    forget_container_caches,
    graphql_data,
    graphql_event,
    warm_container,
)
from pixel_core import pixels

DYNAMODB_READS = frozenset({"GetItem", "Query", "BatchGetItem", "Scan", "TransactGetItems"})
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})

DOMAINS = (
    "mutation Domains($auth: AuthRequestInput!, $event: ApiDomainsEventInput!) "
    "{ domains(auth: $auth, event: $event) { code data message } }"
)
PAGEVIEW = (
    "mutation HeroPixel($auth: AuthRequestInput, $event: PageviewEventInput!) "
    "{ pageview(auth: $auth, event: $event) { message code data } }"
)
TRACK = (
    "mutation T($auth: AuthRequestInput, $event: TrackEventInput!) "
    "{ track(auth: $auth, event: $event) { code data message } }"
)
STATUS = (
    "mutation updateSignalConfigStatusMutation($id: ID!, $tenantId: ID!, $input: SignalConfigStatusInput!) "
    "{ tenantMutations(tenantId: $tenantId) { signalMutations { updateSignalConfigEventsStatus(id: $id, "
    "input: $input) { success connectionStatus { id connected active eventBridgeActive publishingEnabled } } } } }"
)
EMAIL = "john_smith@gmail.com"

DOMAINS_ADD = "domains add"
PAGEVIEW_ANONYMOUS_FIRST = "pageview anonymous, first"
PAGEVIEW_ANONYMOUS = "pageview anonymous, repeated"
PAGEVIEW_IDENTIFIED_FIRST = "pageview identified, first"
PAGEVIEW_IDENTIFIED = "pageview identified, repeated"
TRACK_PURCHASE = "track (Purchase, identified)"
CAPIG_STATUS = "CAPIG updateSignalConfigEventsStatus"
TARGETS = (PAGEVIEW_ANONYMOUS, PAGEVIEW_IDENTIFIED)  # one SQS request, at most one DynamoDB read


@dataclass(frozen=True)
class Requests:
    """The AWS API calls one request made, in order, as (service, operation)."""

    calls: tuple[tuple[str, str], ...]

    def _count(self, service: str, operations: frozenset[str] | None = None) -> int:
        return sum(1 for s, op in self.calls if s == service and (operations is None or op in operations))

    @property
    def dynamodb_reads(self) -> int:
        return self._count("dynamodb", DYNAMODB_READS)

    @property
    def dynamodb_writes(self) -> int:
        return self._count("dynamodb", DYNAMODB_WRITES)

    @property
    def sqs(self) -> int:
        return self._count("sqs")

    @property
    def kms(self) -> int:
        return self._count("kms")

    @property
    def total(self) -> int:
        return len(self.calls)

    @property
    def uncategorised(self) -> int:
        return self.total - self.dynamodb_reads - self.dynamodb_writes - self.sqs - self.kms

    def describe(self) -> str:
        counts = Counter(operation for _service, operation in self.calls)
        return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in counts.items()) or "none"


@dataclass(frozen=True)
class Operation:
    label: str
    event: Callable[[Caller, int], Event]  # the request's number distinguishes requests that must differ
    check: Callable[[Response], object]  # raises unless the answer is a success
    pixel_not_read_yet: bool = False  # "first": the pixel cache is cleared after the warm-up


@dataclass(frozen=True)
class Measured:
    operation: Operation
    warm: Requests
    cold: Requests


@dataclass(frozen=True)
class AwsRequestsResult:
    rows: list[Measured]

    def row(self, label: str) -> Measured:
        (found,) = [row for row in self.rows if row.operation.label == label]
        return found

    def targets_met(self) -> bool:
        return all(
            self.row(label).warm.sqs == 1 and self.row(label).warm.dynamodb_reads <= 1 for label in TARGETS
        )


def _pageview(*, identified: bool) -> Callable[[Caller, int], Event]:
    def event(caller: Caller, _number: int) -> Event:
        fields: dict[str, Any] = {"pixelId": caller.pixel_id, "domain": DOMAIN}
        if identified:
            fields["email"] = EMAIL
        return graphql_event(PAGEVIEW, {"auth": caller.auth, "event": fields})

    return event


def _domains_add(caller: Caller, number: int) -> Event:
    event = {"pixel_id": caller.pixel_id, "action": "add", "domain": f"shop-{number}.example.org"}
    return graphql_event(DOMAINS, {"auth": caller.auth, "event": event})


def _track(caller: Caller, _number: int) -> Event:
    event = {
        "pixelId": str(caller.pixel_id),
        "eventName": "Purchase",
        "url": f"https://{DOMAIN}/checkout",
        "email": EMAIL,
        "customData": {"value": 42.5, "currency": "EUR"},
    }
    return graphql_event(TRACK, {"auth": caller.auth, "event": event})


def _capig_status(caller: Caller, _number: int) -> Event:
    variables = {"id": str(caller.pixel_id), "tenantId": caller.tenant_id, "input": {"status": 1}}
    return graphql_event(STATUS, variables, authorization=caller.basic_authorization, path="/capig/graphql/")


def _status_succeeded(response: Response) -> None:
    answer = graphql_data(response)["tenantMutations"]["signalMutations"]["updateSignalConfigEventsStatus"]
    if answer.get("success") is not True:
        raise RuntimeError(f"updateSignalConfigEventsStatus answered {answer}")


def _envelope_of(field: str) -> Callable[[Response], object]:
    return lambda response: envelope(response, field)


OPERATIONS = (
    Operation(DOMAINS_ADD, _domains_add, _envelope_of("domains")),
    Operation(PAGEVIEW_ANONYMOUS_FIRST, _pageview(identified=False), _envelope_of("pageview"), True),
    Operation(PAGEVIEW_ANONYMOUS, _pageview(identified=False), _envelope_of("pageview")),
    Operation(PAGEVIEW_IDENTIFIED_FIRST, _pageview(identified=True), _envelope_of("pageview"), True),
    Operation(PAGEVIEW_IDENTIFIED, _pageview(identified=True), _envelope_of("pageview")),
    Operation(TRACK_PURCHASE, _track, _envelope_of("track")),
    Operation(CAPIG_STATUS, _capig_status, _status_succeeded),
)


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[str, str]]]:
    """The calls made meanwhile, seen by the `before-call` hooks; every other botocore call too."""
    hooked: list[tuple[str, str]] = []
    everything: list[tuple[str, str]] = []

    def before_call(model: Any, **_kwargs: Any) -> None:
        hooked.append((model.service_model.service_name, model.name))

    original = BaseClient._make_api_call

    def make_api_call(client: Any, operation_name: str, api_params: Any) -> Any:
        everything.append((client.meta.service_model.service_name, operation_name))
        return original(client, operation_name, api_params)

    BaseClient._make_api_call = make_api_call
    try:
        with client_hooks({"before-call": before_call}):
            yield hooked
    finally:
        BaseClient._make_api_call = original
    if hooked != everything:
        raise RuntimeError(f"AWS calls outside the counted clients: hooked {hooked}, made {everything}")


def _requests(container: Container, operation: Operation, number: int) -> Requests:
    event = operation.event(container.caller, number)
    with recording() as calls:
        response = container.invoke(event)
    operation.check(response)
    return Requests(tuple(calls))


def measure() -> AwsRequestsResult:
    numbers = itertools.count(1)
    rows = []
    with warm_container() as container:
        for operation in OPERATIONS:
            operation.check(container.invoke(operation.event(container.caller, next(numbers))))  # warm-up
            if operation.pixel_not_read_yet:
                pixels.forget_recent_pixels()
            warm = _requests(container, operation, next(numbers))
            forget_container_caches()
            cold = _requests(container, operation, next(numbers))
            rows.append(Measured(operation, warm, cold))
    return AwsRequestsResult(rows)


def figure(result: AwsRequestsResult) -> Figure:
    table = Figure(
        title="AWS requests per operation through the Lambda handler: warm container vs cold (caches cleared)",
        columns=(
            "",
            "DDB reads",
            "DDB writes",
            "SQS",
            "KMS",
            "cold: DDB reads",
            "DDB writes",
            "SQS",
            "KMS",
            "requests warm/cold",
        ),
    )
    for row in result.rows:
        warm, cold = row.warm, row.cold
        table.add(
            row.operation.label,
            *(str(n) for n in (warm.dynamodb_reads, warm.dynamodb_writes, warm.sqs, warm.kms)),
            *(str(n) for n in (cold.dynamodb_reads, cold.dynamodb_writes, cold.sqs, cold.kms)),
            f"{warm.total}/{cold.total} = {warm.total / cold.total:.2f}x" if cold.total else "-",
        )
    unexplained = [
        row.operation.label for row in result.rows if row.warm.uncategorised or row.cold.uncategorised
    ]
    target_rows = ", ".join(
        f"{label}: {result.row(label).warm.sqs} SQS, {result.row(label).warm.dynamodb_reads} DynamoDB read(s)"
        for label in TARGETS
    )
    table.notes += [
        f"target: a warm pageview makes one SQS request and at most one DynamoDB read; "
        f"{'met' if result.targets_met() else 'NOT met'} ({target_rows}).",
        "DDB reads: GetItem, Query, BatchGetItem (Scan, TransactGetItems); writes: PutItem, UpdateItem, "
        "DeleteItem, BatchWriteItem, TransactWriteItems (a transaction is one request). Counted with "
        "botocore's before-call event: one per API call, retries not included (moto does not fail).",
        "warm: right after one identical request (for domains add, one adding another domain); first: "
        "the same but with the pixel not yet read by the container (pixel cache expired after "
        "PIXEL_CACHE_SECONDS, credentials still verified); cold: caches cleared before the request "
        "(forget_verified_apps, forget_recent_pixels), as in a new container.",
        "requests: pageview and track with the credentials in the `auth` argument, on pixel 123 "
        f"(domain {DOMAIN} attached) of the tenant; the CAPIG mutation with Basic auth on /capig/graphql/. "
        "moto in process; every answer is checked to be a success.",
        *(
            f"{row.operation.label}: warm {row.warm.describe()}; cold {row.cold.describe()}"
            for row in result.rows
        ),
        *([f"calls of no category in: {', '.join(unexplained)}"] if unexplained else []),
    ]
    return table


def run(options: Options) -> Figure:
    del options  # fixed requests
    return figure(measure())
