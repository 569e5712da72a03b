"""`make dev`: the whole system on this machine, without Docker or an AWS account.

Amazon's DynamoDB Local (data kept under .local/dynamodb, so a restart keeps it), moto's server for
the other AWS services, the template's tables and queues, and the API's ASGI app served by uvicorn
on http://127.0.0.1:$PORT. Ctrl-C or SIGTERM stops everything.
"""

import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from devtools.api_gateway import LocalHttpApi, routes_of
from devtools.dynamodb_local import DynamoDBLocal
from devtools.fake_meta import FakeMeta
from devtools.functions import load_handler
from devtools.moto_server import MotoServerProcess
from devtools.provision import ProvisionedResources, provision
from devtools.sqs_event_source import SqsEventSource
from devtools.template import REPO_ROOT, load_template, sqs_triggers

DATA_DIR = REPO_ROOT / ".local" / "dynamodb"
TABLE_NAME = "pixel-gateway-local"


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


def use_fake_credentials() -> None:
    """Nothing here may reach a real account: fake credentials, no profile."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106  # a fake, on purpose
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)


def use_local_aws(dynamodb_url: str, moto_url: str, resources: ProvisionedResources, graph_api: str) -> None:
    """Environment for the functions, set before they are imported (configuration is read once)."""
    os.environ.update(
        PUBLISH_QUEUE_URL=resources.queue_urls["PublishQueue"],
        GRAPH_API_BASE_URL=graph_api,
        TABLE_NAME=TABLE_NAME,
        DYNAMODB_ENDPOINT_URL=dynamodb_url,
        AWS_ENDPOINT_URL_SQS=moto_url,
        AWS_ENDPOINT_URL_KMS=moto_url,
        EVENTS_QUEUE_URL=resources.queue_urls["EventsQueue"],
        TOKEN_KMS_KEY_ID=resources.kms_aliases["AccessTokenKeyAlias"],
        POWERTOOLS_SERVICE_NAME="pixel-gateway",
    )
    os.environ.setdefault("STAGE", "dev")


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


def serve(dev: DevSettings) -> None:
    use_fake_credentials()
    template = load_template()
    with (
        DynamoDBLocal(port=dev.dynamodb_port, db_path=dev.data_dir) as dynamodb,
        MotoServerProcess(port=dev.moto_port) as moto,
        FakeMeta(port=dev.meta_port) as fake_meta,
    ):
        graph_api = dev.graph_api_base_url or fake_meta.base_url
        resources = provision(
            template,
            dynamodb_endpoint=dynamodb.endpoint_url,
            sqs_endpoint=moto.endpoint_url,
            kms_endpoint=moto.endpoint_url,
            table_names={"PixelTable": TABLE_NAME},
        )
        use_local_aws(dynamodb.endpoint_url, moto.endpoint_url, resources, graph_api)
        ensure_dev_credentials(dev)
        event_sources = start_event_sources(template, resources, moto.endpoint_url)
        api = LocalHttpApi(dev.port, routes_of(template))
        print(banner(dev, dynamodb.endpoint_url, moto.endpoint_url, graph_api), flush=True)
        try:
            # Until Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit, see exit_on_sigterm).
            api.serve_forever()
        finally:
            api.server_close()
            # What the API accepted is counted before DynamoDB Local and moto stop.
            print("Draining the queues...", flush=True)
            for source in event_sources:
                source.stop(drain=True, timeout=30)


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


def exit_on_sigterm(signum: int, _frame: object) -> None:
    # As an exception, SIGTERM unwinds the with-blocks, which drain the queues and stop
    # DynamoDB Local and moto, instead of killing the process outright.
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dev = DevSettings.from_environment()
    dev.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        serve(dev)
    finally:
        print("Pixel Gateway stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
