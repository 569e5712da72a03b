"""Figure: what 1 million pageviews cost to run, at us-east-1 on-demand list prices, for the naive
baseline, the aggregator before issue 16 and after it.

DynamoDB write and read units, aggregator requests and CPU come from the pipeline figure's run
(measured once, `bench.pipeline.measured`); the GraphQL function's pageview is measured here
through its real Lambda handler with AWS answered in memory by moto (`bench.harness`). What cannot
be measured locally is assumed, and says so: the round trip of an AWS request from Lambda, and the
CPU share Lambda gives a function of the template's memory size.
"""

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import Figure, Options, pipeline
from bench.aws_requests import PAGEVIEW
from bench.harness import DOMAIN, client_hooks, envelope, graphql_event, warm_container
from devtools.template import load_template

PAGEVIEWS = 1_000_000
# us-east-1 on-demand list prices in USD, as used here (December 2026; free tiers left out). They
# agree with AWS's pricing pages as we know them: HTTP API $1.00 per million requests (first 300
# million a month, each 512 KB a request); Lambda on arm64 $0.0000133334 per GB-second and $0.20 per
# million requests; SQS standard $0.40 per million requests (each 64 KiB of a request counts as
# one); DynamoDB on-demand $0.625 per million write request units and $0.125 per million read
# request units (the prices since the cut of November 2024).
PRICES_AS_OF = "December 2026"
HTTP_API_PER_MILLION_REQUESTS = 1.00
LAMBDA_ARM64_PER_GB_SECOND = 0.0000133334
LAMBDA_PER_MILLION_REQUESTS = 0.20
SQS_PER_MILLION_REQUESTS = 0.40
DYNAMODB_PER_MILLION_WRITE_UNITS = 0.625
DYNAMODB_PER_MILLION_READ_UNITS = 0.125

# Assumed, not measured: an AWS request from Lambda to SQS or DynamoDB in the same region takes
# about this long, and a function has one vCPU at 1,769 MB (Lambda's documented figure), a share
# in proportion below; this machine's core is taken for a Graviton one.
ROUND_TRIP_SECONDS = 0.010
MEMORY_OF_ONE_VCPU_MB = 1_769
# What the event source's SQS requests hold at most: ReceiveMessage returns 10 messages,
# DeleteMessageBatch takes 10.
SQS_MESSAGES_PER_REQUEST = 10
EMAIL = "visitor@example.com"
ITERATIONS = 40


def memory_mb(function: str) -> int:
    """A function's MemorySize in template.yaml: its own, or the Globals' one."""
    template = load_template()
    own = template["Resources"][function]["Properties"].get("MemorySize")
    return int(own if own is not None else template["Globals"]["Function"]["MemorySize"])


def billed_seconds(cpu_seconds: float, aws_requests: float, memory: int) -> float:
    """What Lambda would bill for CPU work measured here and AWS requests made, at `memory` MB."""
    slowdown = max(1.0, MEMORY_OF_ONE_VCPU_MB / memory)
    return cpu_seconds * slowdown + aws_requests * ROUND_TRIP_SECONDS


@dataclass(frozen=True)
class Pageview:
    """One warm pageview of the GraphQL function, as measured in process."""

    seconds_outside_aws: float  # median
    aws_requests: int
    read_units: float  # DynamoDB


class _Calls:
    """AWS calls of the function's clients: how many, the time inside them, DynamoDB's parameters."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.dynamodb: list[pipeline.Call] = []
        self._started: list[float] = []

    def before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.count += 1
        if model.service_model.service_name == "dynamodb":
            self.dynamodb.append(pipeline.Call(model.name, params, None, None, 0))
        self._started.append(time.perf_counter())

    def after(self, **_: Any) -> None:
        self.seconds += time.perf_counter() - self._started.pop()


def measure_pageviews(iterations: int = ITERATIONS) -> dict[bool, Pageview]:
    """A warm anonymous and a warm identified pageview (by `identified`), each the median of
    `iterations` after one to warm up."""
    measured: dict[bool, Pageview] = {}
    with warm_container() as container:
        for identified in (False, True):
            fields: dict[str, Any] = {"pixelId": container.caller.pixel_id, "domain": DOMAIN}
            if identified:
                fields["email"] = EMAIL
            event = graphql_event(PAGEVIEW, {"auth": container.caller.auth, "event": fields})
            envelope(container.invoke(event), "pageview")  # warm: the caches filled
            outside: list[float] = []
            calls = _Calls()
            # before-parameter-build: the API parameters, before botocore serializes them.
            hooks: dict[str, Callable[..., None]] = {
                "before-parameter-build": calls.before,
                "after-call": calls.after,
            }
            with client_hooks(hooks):
                for _ in range(iterations):
                    aws_before, started = calls.seconds, time.perf_counter()
                    envelope(container.invoke(event), "pageview")
                    outside.append(time.perf_counter() - started - (calls.seconds - aws_before))
            if calls.count % iterations:
                raise RuntimeError(
                    f"{calls.count} AWS calls in {iterations} pageviews: not the same each time"
                )
            measured[identified] = Pageview(
                statistics.median(outside),
                calls.count // iterations,
                sum(pipeline.read_units(call) for call in calls.dynamodb) / iterations,
            )
    return measured


@dataclass(frozen=True)
class Costs:
    """USD for PAGEVIEWS pageviews, by service."""

    http_api: float
    api_function: float
    aggregator_function: float
    sqs: float
    dynamodb_writes: float
    dynamodb_reads: float

    @property
    def total(self) -> float:
        return (
            self.http_api
            + self.api_function
            + self.aggregator_function
            + self.sqs
            + self.dynamodb_writes
            + self.dynamodb_reads
        )


def costs(run: pipeline.Run, pageview_seconds: float, pageview_read_units: float) -> Costs:
    """What PAGEVIEWS pageviews cost with `run`'s way of counting, the API side the same for all."""
    millions = PAGEVIEWS / 1_000_000
    api_memory = memory_mb("GraphQLFunction") / 1024
    aggregator_memory_mb = memory_mb("CounterAggregatorFunction")
    per_event = 1 / run.events
    invocations = PAGEVIEWS / run.batch_size
    batch_seconds = billed_seconds(
        run.cpu_seconds / run.batches, run.total_requests / run.batches, aggregator_memory_mb
    )
    # Lambda bills whole milliseconds, per invocation.
    aggregator_seconds = invocations * math.ceil(batch_seconds * 1000) / 1000
    api_seconds = PAGEVIEWS * math.ceil(pageview_seconds * 1000) / 1000
    sqs_requests = PAGEVIEWS * (1 + 2 / SQS_MESSAGES_PER_REQUEST)  # send; receive and delete
    return Costs(
        http_api=millions * HTTP_API_PER_MILLION_REQUESTS,
        api_function=millions * LAMBDA_PER_MILLION_REQUESTS
        + api_seconds * api_memory * LAMBDA_ARM64_PER_GB_SECOND,
        aggregator_function=invocations / 1_000_000 * LAMBDA_PER_MILLION_REQUESTS
        + aggregator_seconds * aggregator_memory_mb / 1024 * LAMBDA_ARM64_PER_GB_SECOND,
        sqs=sqs_requests / 1_000_000 * SQS_PER_MILLION_REQUESTS,
        dynamodb_writes=PAGEVIEWS * run.wcu * per_event / 1_000_000 * DYNAMODB_PER_MILLION_WRITE_UNITS,
        dynamodb_reads=(PAGEVIEWS * (run.rcu * per_event + pageview_read_units))
        / 1_000_000
        * DYNAMODB_PER_MILLION_READ_UNITS,
    )


def run(options: Options) -> Figure:
    result = pipeline.measured(options.events, options.seed)
    return figure(result, measure_pageviews())


def figure(result: pipeline.PipelineResult, pageviews: dict[bool, Pageview]) -> Figure:
    identified_share = sum(1 for event in result.workload.events if event.visitor_md5) / len(
        result.workload.events
    )

    def mix(value: float, of_identified: float) -> float:
        return value * (1 - identified_share) + of_identified * identified_share

    api_memory = memory_mb("GraphQLFunction")
    anonymous, identified = pageviews[False], pageviews[True]
    pageview_seconds = mix(
        billed_seconds(anonymous.seconds_outside_aws, anonymous.aws_requests, api_memory),
        billed_seconds(identified.seconds_outside_aws, identified.aws_requests, api_memory),
    )
    read_units = mix(anonymous.read_units, identified.read_units)
    runs = [result.naive, result.before, result.aggregated]
    by_run = [costs(run, pageview_seconds, read_units) for run in runs]
    table = Figure(
        title=f"Cost of {PAGEVIEWS:,} pageviews, USD at us-east-1 on-demand list prices ({PRICES_AS_OF})",
        columns=("", *(run.name for run in runs), "after/before"),
    )
    for label, attribute in (
        ("API Gateway HTTP API", "http_api"),
        ("Lambda: GraphQL function", "api_function"),
        ("Lambda: counter aggregator", "aggregator_function"),
        ("SQS", "sqs"),
        ("DynamoDB writes", "dynamodb_writes"),
        ("DynamoDB reads", "dynamodb_reads"),
        ("total", "total"),
    ):
        values = [getattr(cost, attribute) for cost in by_run]
        table.add(label, *(f"{value:.3f}" for value in values), f"{values[2] / values[1]:.3f}x")
    write_share = by_run[2].dynamodb_writes / by_run[2].total
    table.notes += [
        f"after against before: {by_run[2].total:.2f} against {by_run[1].total:.2f} USD per million "
        f"pageviews ({by_run[2].total / by_run[1].total:.3f}x), naive {by_run[0].total:.2f}; DynamoDB "
        f"writes are {write_share:.0%} of it after.",
        f"prices ({PRICES_AS_OF}, us-east-1, on demand, free tiers left out): HTTP API "
        f"${HTTP_API_PER_MILLION_REQUESTS:.2f} per million requests (first 300 million a month); Lambda "
        f"arm64 ${LAMBDA_ARM64_PER_GB_SECOND:.10f} per GB-s and ${LAMBDA_PER_MILLION_REQUESTS:.2f} per million "
        f"requests; SQS standard ${SQS_PER_MILLION_REQUESTS:.2f} per million requests (64 KiB each); "
        f"DynamoDB on-demand ${DYNAMODB_PER_MILLION_WRITE_UNITS} per million write and "
        f"${DYNAMODB_PER_MILLION_READ_UNITS} per million read request units (since November 2024).",
        f"DynamoDB: the write and read units of the pipeline figure's runs ({result.aggregated.events:,} "
        f"pageviews, {identified_share:.0%} identified), plus the GraphQL function's reads per pageview "
        f"(measured: {anonymous.read_units} anonymous, {identified.read_units} identified: the visitor, "
        "eventually consistent; the pixel and tenant are cached by the container and left out).",
        f"Lambda, arm64, memory from template.yaml: GraphQL function {api_memory} MB, one invocation per "
        f"pageview billed {pageview_seconds * 1000:.1f} ms on average (measured in process with moto: "
        f"{anonymous.seconds_outside_aws * 1000:.2f} ms anonymous, {identified.seconds_outside_aws * 1000:.2f} "
        f"ms identified outside AWS calls, times {MEMORY_OF_ONE_VCPU_MB:,}/{api_memory} for the CPU share "
        f"Lambda gives {api_memory} MB, plus an assumed {ROUND_TRIP_SECONDS * 1000:.0f} ms per AWS request: "
        f"{anonymous.aws_requests} and {identified.aws_requests}). Counter aggregator "
        f"{memory_mb('CounterAggregatorFunction')} MB, one invocation per batch of {result.aggregated.batch_size}, "
        "billed its measured count_events CPU the same way plus the assumed round trip per DynamoDB request "
        "(the naive loop: its own requests, one by one). Both rounded up to the millisecond.",
        f"SQS: per pageview one SendMessage (intake), and a ReceiveMessage and a DeleteMessageBatch per "
        f"{SQS_MESSAGES_PER_REQUEST} messages for the event source; the same in every column. Left out: "
        "the event source's polls of an empty queue (a fixed cost, not per pageview), the publisher and "
        "its queue (only events of pixels connected to Meta), CloudWatch and data transfer.",
    ]
    return table
