"""Figure: a warm request through the real Lambda handler against graphql-core executing it directly.

The request is the domains document's `list` (events/graphql_list_domains.json), an API Gateway
(HTTP API, payload 2.0) event handed to `app.handler` of a warm container: Powertools' logger and
metrics decorators, Mangum, the ASGI app, Ariadne (JSON body, cached parse and validation), the
resolvers, the JSON answer. The baseline executes the same document, parsed once beforehand, with
`graphql.execute_sync` against the same executable schema (`graphql_api.server.schema`), the same
variables, the same data: the resolvers and their AWS calls without anything around them.

AWS is moto, in process, for both. moto takes tens of milliseconds per DynamoDB call, which
dominates both sides (as the figure's definition intends); the rows "outside AWS calls" subtract the
time spent between botocore's `before-call` and `after-call` events, to show what the layers add.
"""

import copy
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from graphql import execute_sync, parse

from bench import Figure, Options
from bench.harness import SOURCE_IP, USER_AGENT, client_hooks, graphql_data, sample_event, warm_container

ITERATIONS = 100
WARM_UP = 20
TARGET_RATIO = 3.0


class AwsCallClock:
    """Time spent inside AWS client calls, from botocore's before-call to its after-call event, and
    how many calls were made."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._started: list[float] = []

    def before(self, **_kwargs: Any) -> None:
        self.calls += 1
        self._started.append(time.perf_counter())

    def after(self, **_kwargs: Any) -> None:
        self.seconds += time.perf_counter() - self._started.pop()

    def hooks(self) -> dict[str, Any]:
        return {"before-call": self.before, "after-call": self.after, "after-call-error": self.after}


@dataclass(frozen=True)
class Timings:
    total: list[float]  # seconds, per request
    in_aws: list[float]  # seconds of each request spent inside AWS client calls

    @property
    def outside_aws(self) -> list[float]:
        return [total - aws for total, aws in zip(self.total, self.in_aws, strict=True)]


@dataclass(frozen=True)
class WarmResult:
    handler: Timings
    direct: Timings
    aws_calls_per_request: int

    @property
    def ratio(self) -> float:
        return statistics.median(self.handler.total) / statistics.median(self.direct.total)


def measure(iterations: int = ITERATIONS, warm_up: int = WARM_UP) -> WarmResult:
    from graphql_api.server import schema  # noqa: PLC0415  # after the environment is set

    with warm_container() as container:
        event = sample_event("graphql_list_domains", container.caller)
        body = json.loads(event["body"])
        document = parse(body["query"])
        variables = body["variables"]
        context = {"authorization": None, "client_ip": SOURCE_IP, "user_agent": USER_AGENT}

        def through_handler() -> dict[str, Any]:
            return graphql_data(container.invoke(copy.deepcopy(event)))

        def direct() -> dict[str, Any]:
            result = execute_sync(schema, document, variable_values=variables, context_value=context)
            if result.errors or result.data is None:
                raise RuntimeError(f"graphql-core answered with errors: {result.errors}")
            return result.data

        handler_answer, direct_answer = through_handler(), direct()
        if handler_answer != direct_answer or handler_answer["domains"]["code"] != 200:
            raise RuntimeError(f"the two paths disagree: {handler_answer} != {direct_answer}")
        for _ in range(warm_up):
            through_handler()
            direct()

        clock = AwsCallClock()
        handler: list[float] = []
        handler_aws: list[float] = []
        baseline: list[float] = []
        baseline_aws: list[float] = []
        with client_hooks(clock.hooks()):
            # Alternating, so that the machine's load falls on both alike.
            for _ in range(iterations):
                request = copy.deepcopy(event)  # Mangum reads the event; each request gets its own
                aws_before, started = clock.seconds, time.perf_counter()
                container.invoke(request)
                handler.append(time.perf_counter() - started)
                handler_aws.append(clock.seconds - aws_before)
                aws_before, started = clock.seconds, time.perf_counter()
                execute_sync(schema, document, variable_values=variables, context_value=context)
                baseline.append(time.perf_counter() - started)
                baseline_aws.append(clock.seconds - aws_before)
    per_request, remainder = divmod(clock.calls, 2 * iterations)
    if remainder:
        raise RuntimeError(
            f"{clock.calls} AWS calls in {iterations} requests on each path: not the same per request"
        )
    return WarmResult(Timings(handler, handler_aws), Timings(baseline, baseline_aws), per_request)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator > 0 else "-"


def figure(result: WarmResult) -> Figure:
    count = len(result.handler.total)
    table = Figure(
        title="Warm request: `domains list` through the Lambda handler vs graphql-core directly (moto in process)",
        columns=("", "handler", "graphql-core", "handler/graphql-core"),
    )

    def row(
        label: str, of_handler: list[float], of_direct: list[float], summary: Any = statistics.median
    ) -> None:
        values = summary(of_handler), summary(of_direct)
        table.add(label, _ms(values[0]), _ms(values[1]), _ratio(*values))

    row(f"per request, ms (median of {count})", result.handler.total, result.direct.total)
    row("  fastest", result.handler.total, result.direct.total, min)
    row("  in AWS calls (moto), median", result.handler.in_aws, result.direct.in_aws)
    row("  outside AWS calls, median", result.handler.outside_aws, result.direct.outside_aws)
    verdict = "met" if result.ratio <= TARGET_RATIO else "NOT met"
    table.notes += [
        f"target: handler/graphql-core at most {TARGET_RATIO:.0f}x per request; {verdict} ({result.ratio:.2f}x).",
        "handler: the API Gateway event of events/graphql_list_domains.json (credentials in the `auth` "
        "argument) through app.handler of a warm container: Powertools logger and metrics (their output "
        "to /dev/null), Mangum, the ASGI app, Ariadne with the document cache, the resolvers, JSON.",
        "graphql-core: graphql.execute_sync(graphql_api.server.schema, the document parsed once, the same "
        "variables, a context like the ASGI app's): the same resolvers, without validation or HTTP.",
        f"both: the same moto (mock_aws, in process), the same tenant, app and pixel 123 with one domain; "
        f"{result.aws_calls_per_request} AWS calls per request on each path (the pixel and its domains; "
        f"the app's credentials stay verified in the container); {count} requests each, alternating, "
        f"after {WARM_UP} of each to warm up.",
        "moto's in-memory DynamoDB dominates both (as the figure's definition intends); 'in AWS calls' is "
        "the time between botocore's before-call and after-call events (moto answering, botocore parsing "
        "its answer), 'outside' the rest: what the layers around the resolvers add.",
        "absolute times are noisy: the machine runs other test suites meanwhile; compare the ratios.",
    ]
    return table


def run(options: Options) -> Figure:
    del options  # a fixed request; its iterations are this module's
    return figure(measure())
