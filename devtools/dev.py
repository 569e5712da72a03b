"""`make dev`: the whole system on this machine, without Docker or an AWS account.

Amazon's DynamoDB Local (data kept under .local/dynamodb, so a restart keeps it), moto's server for
the other AWS services, the template's tables and queues, the local API Gateway in front of the
functions' real handlers on http://127.0.0.1:$PORT, and the SQS event sources feeding the others.

DynamoDB Local and moto run in process groups of their own, so Ctrl-C in the terminal (SIGINT to the
foreground group) reaches only this process. Ctrl-C or SIGTERM then stops in order, a line per step:
the API stops taking requests and finishes those in flight; the queues are drained through the
counter aggregator and the publisher (bounded by DRAIN_SECONDS: moto keeps SQS in memory, so what is
still queued when it stops is lost); only then the local Meta, moto and DynamoDB Local stop.
"""

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from devtools.api_gateway import LocalHttpApi, routes_of
from devtools.dynamodb_local import DynamoDBLocal
from devtools.fake_meta import FakeMeta
from devtools.functions import load_handler
from devtools.moto_server import MotoServerProcess
from devtools.provision import ProvisionedResources, provision
from devtools.servers import LocalServer
from devtools.sqs_event_source import SqsEventSource
from devtools.template import REPO_ROOT, load_template, sqs_triggers

DATA_DIR = REPO_ROOT / ".local" / "dynamodb"
TABLE_NAME = "pixel-gateway-local"
IN_FLIGHT_SECONDS = 30.0  # requests the API accepted before the stop may finish (the function's timeout)
DRAIN_SECONDS = 30.0  # the queues' drain at shutdown
_DRAIN_CHECK_SECONDS = 0.2
_QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True)
class DevSettings:
    port: int
    dynamodb_port: int
    moto_port: int
    meta_port: int
    # Set to use a real Graph API instead of the local fake (events then leave this machine).
    graph_api_base_url: str | None
    tenant_id: str
    app_id: str
    app_secret: str
    data_dir: Path

    @classmethod
    def from_environment(cls) -> "DevSettings":
        env = os.environ
        return cls(
            port=int(env.get("PORT", "3000")),
            dynamodb_port=int(env.get("DYNAMODB_LOCAL_PORT", "8000")),
            moto_port=int(env.get("MOTO_PORT", "5100")),
            meta_port=int(env.get("META_PORT", "5200")),
            graph_api_base_url=env.get("GRAPH_API_BASE_URL") or None,
            tenant_id=env.get("DEV_TENANT_ID", "IaoreXfj"),
            app_id=env.get("DEV_APP_ID", "dev-app"),
            app_secret=env.get("DEV_APP_SECRET", "dev-secret-change-me"),
            data_dir=Path(env.get("DEV_DATA_DIR", str(DATA_DIR))),
        )


# make dev and make services: no profile, no session token (devtools/fake_aws.py has the tests').
LOCAL_AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",  # a fake, on purpose
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def use_fake_credentials() -> None:
    """Nothing here may reach a real account: fake credentials, no profile."""
    os.environ.update(LOCAL_AWS_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


def local_aws_environment(
    dynamodb_url: str, moto_url: str, resources: ProvisionedResources, graph_api: str
) -> dict[str, str]:
    """What points the functions at the local services (also written for `sam local` by
    devtools/services.py, with the URLs a container sees)."""
    return {
        "PUBLISH_QUEUE_URL": resources.queue_urls["PublishQueue"],
        "CLEANUP_QUEUE_URL": resources.queue_urls["CleanupQueue"],
        "GRAPH_API_BASE_URL": graph_api,
        "TABLE_NAME": TABLE_NAME,
        "DYNAMODB_ENDPOINT_URL": dynamodb_url,
        "AWS_ENDPOINT_URL_SQS": moto_url,
        "AWS_ENDPOINT_URL_KMS": moto_url,
        "EVENTS_QUEUE_URL": resources.queue_urls["EventsQueue"],
        "TOKEN_KMS_KEY_ID": resources.kms_aliases["AccessTokenKeyAlias"],
        "POWERTOOLS_SERVICE_NAME": "pixel-gateway",
        "STAGE": os.environ.get("STAGE", "dev"),
    }


def use_local_aws(dynamodb_url: str, moto_url: str, resources: ProvisionedResources, graph_api: str) -> None:
    """Environment for the functions, set before they are imported (configuration is read once)."""
    os.environ.update(local_aws_environment(dynamodb_url, moto_url, resources, graph_api))


def ensure_dev_credentials(dev: DevSettings) -> None:
    from pixel_core import auth  # noqa: PLC0415  # after use_local_aws(): reads its configuration on import

    auth.create_tenant(dev.tenant_id, "Development tenant")
    auth.create_app({dev.tenant_id}, name="Development app", app_id=dev.app_id, app_secret=dev.app_secret)


def banner(dev: DevSettings, dynamodb_url: str, moto_url: str, graph_api: str) -> str:
    base = f"http://127.0.0.1:{dev.port}"
    auth = f'{{"appId": "{dev.app_id}", "appSecret": "{dev.app_secret}"}}'
    return f"""
Pixel Gateway is running (stage {os.environ["STAGE"]}).
  GraphQL      {base}/graphql   and   {base}/capig/graphql/
  Health       {base}/health
  Snippet      <script async src="{base}/px.js" data-pixel="123"></script>  (pages on the pixel's domains)
  DynamoDB     {dynamodb_url} (Amazon's DynamoDB Local; data in {dev.data_dir})
  SQS / KMS    {moto_url} (moto)
  Meta         {graph_api}{" (a local fake: what it received is at " + graph_api + "/__received)" if "127.0.0.1" in graph_api else ""}
Development credentials (DEV_TENANT_ID, DEV_APP_ID, DEV_APP_SECRET):
  tenant {dev.tenant_id}   appId {dev.app_id}   appSecret {dev.app_secret}
Try:
  curl -s {base}/graphql -H 'Content-Type: application/json' -d '{{"query": "mutation P($event: ApiPixelsEventInput!) {{ pixels(event: $event) {{ code data message }} }}", "variables": {{"event": {{"action": "create", "pixel_id": 123}}}}}}' -u {dev.app_id}:{dev.app_secret}
  curl -s {base}/graphql -H 'Content-Type: application/json' -d '{{"query": "mutation Domains($auth: AuthRequestInput!, $event: ApiDomainsEventInput!) {{ domains(auth: $auth, event: $event) {{ code data message }} }}", "variables": {{"auth": {auth}, "event": {{"pixel_id": 123, "action": "add", "domain": "example.com"}}}}}}'
Ctrl-C stops everything.
"""


class StopRequested(BaseException):  # like KeyboardInterrupt: not an error
    """Raised in the main thread by the first Ctrl-C or SIGTERM."""


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM: the first raises StopRequested in the main thread, wherever it
    is (waiting, or still starting); later ones only say that the stop is under way, so the drain
    and the services' stop are never cut short by an exception (nor print a traceback)."""

    def __init__(self) -> None:
        self.stopping = False

    def install(self) -> None:
        # SIGHUP: the terminal closed. Its shell signals only the groups it knows, so the children,
        # in groups of their own, rely on this process to stop them.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stopping:
            _write(f"{name}: already stopping (bounded, see above).\n")
            return
        self.stopping = True
        _write(f"\n{name}: stopping, a line per step.\n")
        raise StopRequested(name)


def _write(text: str) -> None:
    # os.write, not print(): a signal handler may run while the main thread is inside a print().
    with contextlib.suppress(OSError):
        os.write(sys.stdout.fileno(), text.encode())


def say(line: str) -> None:
    # A terminal that has gone away (SIGHUP) must not turn the stop into an error.
    with contextlib.suppress(OSError):
        print(line, flush=True)


@contextlib.contextmanager
def running(server: LocalServer, name: str) -> Iterator[Any]:
    """``with running(server, name) as started:`` starts it, and stops it with a line saying so."""
    started = server.start()  # a start that fails (or is interrupted) stops what it started itself
    try:
        yield started
    finally:
        say(f"Stopping {name}...")
        server.stop()
        say(f"Stopped {name}.")


@dataclass(frozen=True)
class BackingServices:
    dynamodb_url: str
    moto_url: str  # SQS and KMS
    fake_meta_url: str
    graph_api: str  # what the functions call: GRAPH_API_BASE_URL, else the local fake Meta
    resources: ProvisionedResources


@contextlib.contextmanager
def backing_services(
    dev: DevSettings, template: dict[str, Any], host: str = "127.0.0.1"
) -> Iterator[BackingServices]:
    """DynamoDB Local, moto and the local Meta, started and provisioned from the template; stopped
    on the way out, a line each. ``host``: the address they all listen on (loopback unless
    ``make services`` is asked for every interface); the URLs given are loopback ones."""
    with (
        running(
            DynamoDBLocal(port=dev.dynamodb_port, db_path=dev.data_dir, host=host), "DynamoDB Local"
        ) as dynamodb,
        running(MotoServerProcess(port=dev.moto_port, host=host), "moto (SQS, KMS)") as moto,
        running(FakeMeta(port=dev.meta_port, host=host), "the local Meta") as fake_meta,
    ):
        resources = provision(
            template,
            dynamodb_endpoint=dynamodb.endpoint_url,
            sqs_endpoint=moto.endpoint_url,
            kms_endpoint=moto.endpoint_url,
            table_names={"PixelTable": TABLE_NAME},
        )
        yield BackingServices(
            dynamodb_url=dynamodb.endpoint_url,
            moto_url=moto.endpoint_url,
            fake_meta_url=fake_meta.base_url,
            graph_api=dev.graph_api_base_url or fake_meta.base_url,
            resources=resources,
        )


def serve(dev: DevSettings) -> None:
    use_fake_credentials()
    template = load_template()
    with backing_services(dev, template) as services:
        resources, moto_url, graph_api = services.resources, services.moto_url, services.graph_api
        use_local_aws(services.dynamodb_url, moto_url, resources, graph_api)
        ensure_dev_credentials(dev)
        event_sources: list[SqsEventSource] = []
        try:
            event_sources += start_event_sources(template, resources, moto_url)
            api = LocalHttpApi(dev.port, routes_of(template))
            try:
                threading.Thread(target=api.serve_forever, name="local-api-gateway", daemon=True).start()
                say(banner(dev, services.dynamodb_url, moto_url, graph_api))
                while True:  # until Ctrl-C or SIGTERM (StopRequested)
                    time.sleep(3600)
            finally:
                stop_api(api)
                # What the API accepted is counted (and published) before moto and DynamoDB Local stop.
                drain(event_sources, template, resources, moto_url)
        finally:
            stop_event_sources(event_sources)


def stop_api(api: LocalHttpApi) -> None:
    say("Stopping the API: no new requests; finishing those in flight...")
    unfinished = api.stop_serving(timeout=IN_FLIGHT_SECONDS)
    if unfinished:
        say(f"Stopped the API; {unfinished} requests still running after {IN_FLIGHT_SECONDS:.0f} s.")
    else:
        say("Stopped the API.")


def queue_counts(sqs: Any, queue_urls: dict[str, str]) -> dict[str, int]:
    """Messages per queue, visible, in flight or delayed; -1 for a queue that cannot be counted."""
    counts = {}
    for queue_id, url in queue_urls.items():
        try:
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(_QUEUE_COUNTS))
            counts[queue_id] = sum(int(attributes["Attributes"].get(name, 0)) for name in _QUEUE_COUNTS)
        except Exception as error:  # said in one line; the drain gives up on that queue
            say(f"Cannot count the messages of {queue_id}: {error}")
            counts[queue_id] = -1
    return counts


def drain(
    sources: list[SqsEventSource], template: dict[str, object], resources: ProvisionedResources, moto_url: str
) -> None:
    """Wait, at most DRAIN_SECONDS, until every queue a function polls is empty, the event sources
    still polling: the aggregator counts the events and forwards the publishable ones, the
    publisher sends those. Empty twice in a row: a message forwarded while one round counted the
    queues is seen by the next."""
    if not sources:
        return
    import boto3  # noqa: PLC0415

    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    polled = {t.queue_id: resources.queue_urls[t.queue_id] for t in sqs_triggers(template)}
    started = time.monotonic()
    counts = queue_counts(sqs, polled)
    queued = ", ".join(f"{count} in {queue_id}" for queue_id, count in counts.items())
    say(f"Draining the queues ({queued}), at most {DRAIN_SECONDS:.0f} s...")
    empty_rounds = 0
    while time.monotonic() - started < DRAIN_SECONDS:
        empty_rounds = empty_rounds + 1 if all(count <= 0 for count in counts.values()) else 0
        if empty_rounds >= 2:  # twice in a row, see above
            break
        time.sleep(_DRAIN_CHECK_SECONDS)
        counts = queue_counts(sqs, polled)
    left = {queue_id: count for queue_id, count in counts.items() if count > 0}
    if left:
        lost = ", ".join(f"{count} in {queue_id}" for queue_id, count in left.items())
        say(
            f"Gave up draining after {DRAIN_SECONDS:.0f} s: {lost} are lost when moto stops "
            "(SQS is in memory); failing messages are logged above."
        )
    else:
        say(f"Drained the queues in {time.monotonic() - started:.1f} s.")
    others = {queue_id: url for queue_id, url in resources.queue_urls.items() if queue_id not in polled}
    dead = {queue_id: count for queue_id, count in queue_counts(sqs, others).items() if count > 0}
    if dead:
        said = ", ".join(f"{count} in {queue_id}" for queue_id, count in dead.items())
        say(f"Dead-lettered messages are lost when moto stops: {said}.")


def stop_event_sources(sources: list[SqsEventSource]) -> None:
    """Stop polling, every source at once (each finishes the batch it is handling)."""
    if not sources:
        return
    say("Stopping the SQS event sources...")
    stoppers = [
        threading.Thread(target=source.stop, kwargs={"drain": False, "timeout": 5}) for source in sources
    ]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    say("Stopped the SQS event sources.")


def start_event_sources(
    template: dict[str, object], resources: ProvisionedResources, moto_url: str
) -> list[SqsEventSource]:
    """Every SQS-triggered function of the template, polled as Lambda's event source mapping would."""
    import boto3  # noqa: PLC0415

    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    sources = []
    for trigger in sqs_triggers(template):
        handler = load_handler(trigger.code_uri, trigger.handler, module_alias=f"{trigger.function_id}_app")
        source = SqsEventSource(
            sqs_client=sqs,
            queue_url=resources.queue_urls[trigger.queue_id],
            queue_arn=resources.queue_arns[trigger.queue_id],
            handler=handler,
            batch_size=trigger.batch_size,
            batching_window_seconds=trigger.batching_window_seconds,
            function_name=trigger.function_id,
            memory_limit_in_mb=trigger.memory_mb,
            timeout_seconds=trigger.timeout_seconds,
        )
        sources.append(source.start())
    return sources


# Libraries that log their set-up at INFO ("Found credentials in environment variables", PynamoDB's
# settings file): a start-up of `make dev` prints only what a developer needs. Their warnings stay.
CHATTY_LOGGERS = ("botocore", "pynamodb", "urllib3")


def quiet_libraries() -> None:
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main() -> int:
    signals = StopSignals()
    signals.install()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_libraries()
    dev = DevSettings.from_environment()
    dev.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        serve(dev)
    except StopRequested:
        # Raised while waiting (or while starting); everything it unwound has been stopped by now.
        pass
    finally:
        say("Pixel Gateway stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
