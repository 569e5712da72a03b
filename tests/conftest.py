"""Shared fixtures.

Fake AWS credentials are set before anything imports boto3, so a forgotten mock fails instead of
reaching an account. Tables come from template.yaml, so the key schema under test is the deployed one.
"""

import base64
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import iam_recorder
from devtools.fake_aws import use_fake_aws

use_fake_aws()
# Every AWS call a function's code makes in this session, for tests/unit/test_iam_policies.py.
IAM_SESSION_CALLS = iam_recorder.Recorder()
iam_recorder.start(IAM_SESSION_CALLS)
for _name, _value in {
    "TABLE_NAME": "pixel-gateway-test",
    "EVENTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/pixel-gateway-test-EventsQueue",
    "PUBLISH_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/pixel-gateway-test-PublishQueue",
    "CLEANUP_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/pixel-gateway-test-CleanupQueue",
    "GRAPH_API_BASE_URL": "http://127.0.0.1:9",  # discard port: tests that publish start a fake Meta
    "STAGE": "dev",
    "POWERTOOLS_SERVICE_NAME": "pixel-gateway",
    "POWERTOOLS_METRICS_NAMESPACE": "PixelGateway",
    "TOKEN_KMS_KEY_ID": "alias/pixel-gateway-test/access-tokens",
}.items():
    os.environ[_name] = _value

import pytest  # noqa: E402
from graphql import graphql_sync  # noqa: E402
from moto import mock_aws  # noqa: E402

from devtools.dynamodb_local import DynamoDBLocal  # noqa: E402
from devtools.functions import register_template_functions  # noqa: E402
from devtools.provision import ProvisionedResources, provision  # noqa: E402
from devtools.template import load_template  # noqa: E402
from pixel_core import auth  # noqa: E402
from pixel_core.models import bind_models  # noqa: E402

AWS_DYNAMODB_ENDPOINT = "https://dynamodb.us-east-1.amazonaws.com"
AWS_SQS_ENDPOINT = "https://sqs.us-east-1.amazonaws.com"
# What the `gql` fixture's requests look like they come from.
CLIENT_IP = "203.0.113.7"
USER_AGENT = "Mozilla/5.0 (pytest)"
AWS_KMS_ENDPOINT = "https://kms.us-east-1.amazonaws.com"
_table_numbers = itertools.count(1)
register_template_functions()  # calls from a function's code folder are that function's


def pytest_addoption(parser: pytest.Parser) -> None:
    # Each pytest-xdist worker records only the calls of the tests it ran, so `make test` checks the
    # whole run's calls in a second, single-process step (see tests/unit/test_iam_policies.py).
    parser.addoption(
        "--iam-calls-out",
        metavar="DIR",
        type=Path,
        help="write the AWS calls the functions made into DIR, a file per process, and leave the "
        "session-wide IAM check to a later run with --iam-calls-in DIR",
    )
    parser.addoption(
        "--iam-calls-in",
        metavar="DIR",
        type=Path,
        help="the session-wide IAM check also counts the calls an earlier run wrote into DIR",
    )


def _runs_last(item: pytest.Item) -> bool:
    return bool(getattr(getattr(item, "function", None), "run_last", False))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` run first, and ``run_last`` (the IAM check over the whole session's
    calls) after the rest.

    With ``--iam-calls-out`` they are deselected instead: a later ``--iam-calls-in`` run has them.
    So they are on a pytest-xdist worker, which sees only its own tests' calls (make test runs both).
    """
    if config.getoption("iam_calls_out") is not None or hasattr(config, "workerinput"):
        deselected = [item for item in items if _runs_last(item)]
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not _runs_last(item)]
    items.sort(key=lambda item: (_runs_last(item), item.get_closest_marker("slow") is None))


def pytest_sessionfinish(session: pytest.Session) -> None:
    folder = session.config.getoption("iam_calls_out")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
        IAM_SESSION_CALLS.save(folder / f"{worker}.json")


@pytest.fixture(scope="session")
def iam_session_calls(pytestconfig: pytest.Config) -> iam_recorder.Recorder:
    """What the functions' code called in AWS so far in this session (see devtools/iam_recorder.py),
    with the calls of the earlier run named by ``--iam-calls-in``."""
    folder = pytestconfig.getoption("iam_calls_in")
    if folder is not None:
        files = sorted(folder.glob("*.json"))
        if not files:
            raise pytest.UsageError(f"--iam-calls-in {folder}: no calls were written there")
        for path in files:
            IAM_SESSION_CALLS.load(path)
    return IAM_SESSION_CALLS


@pytest.fixture(autouse=True)
def fresh_container_caches() -> None:
    """Each test starts like a new Lambda container: nothing remembered from another test's tables."""
    from pixel_core.auth import forget_verified_apps
    from pixel_core.pixels import forget_recent_pixels
    from pixel_core.rate_limits import forget_full_windows

    forget_verified_apps()
    forget_recent_pixels()
    forget_full_windows()


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture
def aws(template: dict[str, Any]) -> Iterator[ProvisionedResources]:
    """moto in process, with the template's queues, KMS keys (and table) created in it."""
    with mock_aws():
        yield provision(
            template,
            dynamodb_endpoint=AWS_DYNAMODB_ENDPOINT,
            sqs_endpoint=AWS_SQS_ENDPOINT,
            table_names={"PixelTable": "pixel-gateway-test"},
            queue_prefix="pixel-gateway-test",
            kms_endpoint=AWS_KMS_ENDPOINT,
        )


@pytest.fixture
def moto_table(aws: ProvisionedResources) -> str:
    """The template's table in moto, in process; models bound to it."""
    bind_models(table_name="pixel-gateway-test", host=None)
    return "pixel-gateway-test"


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """Amazon's DynamoDB Local, in memory, on a free port: started once per session."""
    with DynamoDBLocal() as server:
        yield server


@pytest.fixture
def local_table(
    template: dict[str, Any], dynamodb_local: DynamoDBLocal, aws: ProvisionedResources
) -> Iterator[str]:
    """A fresh table (from the template) in DynamoDB Local for each test; models bound to it."""
    name = f"pixel-gateway-test-{next(_table_numbers)}"
    provision(
        template,
        dynamodb_endpoint=dynamodb_local.endpoint_url,
        sqs_endpoint=None,
        table_names={"PixelTable": name},
    )
    bind_models(table_name=name, host=dynamodb_local.endpoint_url)
    yield name
    bind_models(table_name="pixel-gateway-test", host=None)


@pytest.fixture(params=["moto", pytest.param("dynamodb_local", marks=pytest.mark.dynamodb_local)])
def table(request: pytest.FixtureRequest) -> str:
    """Runs a test once against moto and once against Amazon's DynamoDB Local."""
    return str(request.getfixturevalue("moto_table" if request.param == "moto" else "local_table"))


@dataclass(frozen=True)
class App:
    app_id: str
    app_secret: str
    tenant_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"appId": self.app_id, "appSecret": self.app_secret}

    @property
    def basic_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.app_id}:{self.app_secret}".encode()).decode()


@pytest.fixture
def make_app(table: str) -> Any:
    """Creates a tenant and an app bound to it."""
    numbers = itertools.count(1)

    def create(tenant_id: str | None = None) -> App:
        tenant_id = tenant_id or f"tenant{next(numbers)}"
        auth.create_tenant(tenant_id)
        credentials = auth.create_app({tenant_id})
        return App(credentials.app_id, credentials.app_secret, tenant_id)

    return create


@pytest.fixture
def app(make_app: Any) -> App:
    return make_app("IaoreXfj")


@pytest.fixture
def gql() -> Any:
    """Executes a document against the executable schema, as the ASGI app would."""
    from graphql_api.server import schema

    def execute(query: str, variables: dict[str, Any] | None = None, authorization: str | None = None) -> Any:
        context = {"authorization": authorization, "client_ip": CLIENT_IP, "user_agent": USER_AGENT}
        with iam_recorder.acting_as("GraphQLFunction"):
            return graphql_sync(schema, query, variable_values=variables, context_value=context)

    return execute


@pytest.fixture(scope="module")
def handler() -> Any:
    """The GraphQL function's `app.handler`, loaded from its file as Lambda does (once per module)."""
    from devtools.functions import load_handler

    return load_handler("functions/graphql_api", "app.handler", module_alias="graphql_api_app")


@pytest.fixture
def aggregator_handler() -> Any:
    """The counter aggregator's `app.handler`, loaded from its file as Lambda does."""
    from devtools.functions import load_handler

    return load_handler("functions/counter_aggregator", "app.handler", module_alias="counter_aggregator_app")


@pytest.fixture
def lambda_context() -> Any:
    from devtools.sqs_event_source import LambdaContext

    return LambdaContext.for_invocation("pixel-gateway-test", timeout_seconds=10)


@pytest.fixture
def json_logs() -> Iterator[Any]:
    """Returns the JSON log records the service logger wrote during the test (parsed)."""
    import io
    import json
    import logging

    from pixel_core.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger._logger.removeHandler(handler)


@pytest.fixture
def sqs(aws: ProvisionedResources) -> Any:
    import boto3

    return boto3.client("sqs", region_name="us-east-1")


def _sqs_function(aws: ProvisionedResources, sqs: Any, template: dict[str, Any], function_id: str) -> Any:
    """A function of the template behind its queue, as the SQS event source would run it.

    Returns a function that polls until the queue has nothing visible left."""
    from devtools.functions import load_handler
    from devtools.sqs_event_source import SqsEventSource
    from devtools.template import sqs_triggers

    (trigger,) = [t for t in sqs_triggers(template) if t.function_id == function_id]
    source = SqsEventSource(
        sqs_client=sqs,
        queue_url=aws.queue_urls[trigger.queue_id],
        queue_arn=aws.queue_arns[trigger.queue_id],
        handler=load_handler(trigger.code_uri, trigger.handler, module_alias=f"{function_id}_app"),
        batch_size=10,
        poll_wait_seconds=0,
        function_name=trigger.function_id,
        timeout_seconds=trigger.timeout_seconds,
    )

    def drain(max_polls: int = 1000) -> int:
        handled = 0
        for _ in range(max_polls):
            # Lambda's poller, with the function's role: SAM grants it for `Type: SQS` events.
            with iam_recorder.acting_as(iam_recorder.event_source_of(function_id)):
                received = source.poll_once()
            if received == 0:
                return handled
            handled += received
        raise AssertionError("the events queue did not drain")

    return drain


@pytest.fixture
def meta(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local fake Meta (devtools/fake_meta.py), where the publisher sends for this test."""

    from devtools.fake_meta import FakeMeta
    from pixel_core import config, publishing

    with FakeMeta() as fake:
        monkeypatch.setattr(
            publishing, "settings", config.settings._replace(graph_api_base_url=fake.base_url)
        )
        yield fake


@pytest.fixture
def connected(app: App, table: str) -> Any:
    """The reference's pixel (tests.support.documents.PIXEL) set up for `app`'s tenant, with a token."""
    from pixel_core.signal_configs import Connection, setup_pixel
    from tests.support.documents import META_TOKEN, PIXEL

    connection = Connection(
        int(PIXEL),
        "2840127409433732",
        META_TOKEN,
        "633612748410ba6e902",
        "v14.0",
        None,
    )
    return setup_pixel(app.tenant_id, connection)


@pytest.fixture
def aggregator(aws: ProvisionedResources, sqs: Any, template: dict[str, Any]) -> Any:
    """Runs the counter aggregator over what waits on the events queue."""
    return _sqs_function(aws, sqs, template, "CounterAggregatorFunction")


@pytest.fixture
def publisher(aws: ProvisionedResources, sqs: Any, template: dict[str, Any]) -> Any:
    """Runs the CAPI publisher over what waits on the publish queue."""
    return _sqs_function(aws, sqs, template, "CapiPublisherFunction")


@pytest.fixture
def cleanup(aws: ProvisionedResources, sqs: Any, template: dict[str, Any]) -> Any:
    """Runs the pixel clean-up over what waits on the clean-up queue."""
    return _sqs_function(aws, sqs, template, "PixelCleanupFunction")


@pytest.fixture
def queued_messages(aws: ProvisionedResources, sqs: Any) -> Any:
    """Reads (and removes) what is waiting on a queue of the template, by logical id."""

    def read(logical_id: str = "EventsQueue") -> list[str]:
        bodies: list[str] = []
        while True:
            answer = sqs.receive_message(QueueUrl=aws.queue_urls[logical_id], MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(message["Body"])
                sqs.delete_message(
                    QueueUrl=aws.queue_urls[logical_id], ReceiptHandle=message["ReceiptHandle"]
                )

    return read
