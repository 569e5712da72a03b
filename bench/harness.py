"""What the warm and aws_requests figures share: the GraphQL function's real Lambda handler, with
every AWS call answered in memory by moto, and a tenant, app and pixel to act on.

Not a figure itself. moto is imported first, so every botocore client made afterwards is answered by
it; the clients the application keeps for the container's lifetime are patched explicitly as well,
in case one was made earlier.
"""

from moto import mock_aws  # noqa: I001  # first: see the module docstring
from moto.core.models import patch_client

import base64
import contextlib
import functools
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from devtools.api_gateway import http_api_event
from devtools.sqs_event_source import LambdaContext
from devtools.functions import load_handler
from devtools.provision import _client as provisioning_client
from devtools.provision import provision
from devtools.template import REPO_ROOT, load_template
from pixel_core import auth, pixel_domains, pixels, queues, tokens
from pixel_core.config import settings
from pixel_core.models import TableItem, bind_models

EVENTS = REPO_ROOT / "events"
PIXEL_ID = 123  # the pixel of the sample events in events/
DOMAIN = "example.com"
TENANT_ID = "IaoreXfj"  # the CAPIG document's sample tenant
SOURCE_IP = "203.0.113.10"
USER_AGENT = "Mozilla/5.0 (bench)"
# moto answers requests to AWS's own endpoints; nothing leaves the process.
_ENDPOINTS = {
    "dynamodb_endpoint": "https://dynamodb.us-east-1.amazonaws.com",
    "sqs_endpoint": "https://sqs.us-east-1.amazonaws.com",
    "kms_endpoint": "https://kms.us-east-1.amazonaws.com",
}

type Event = dict[str, Any]
type Response = dict[str, Any]


@dataclass(frozen=True)
class Caller:
    """The app a request authenticates as, the tenant it is bound to, and that tenant's pixel."""

    app_id: str
    app_secret: str
    tenant_id: str
    pixel_id: int

    @property
    def auth(self) -> dict[str, str]:
        return {"appId": self.app_id, "appSecret": self.app_secret}

    @property
    def basic_authorization(self) -> str:
        return "Basic " + base64.b64encode(f"{self.app_id}:{self.app_secret}".encode()).decode()


@dataclass(frozen=True)
class Container:
    """One warm Lambda container of the GraphQL function, its AWS answered by moto in process."""

    handler: Callable[[Event, Any], Response]
    caller: Caller

    def invoke(self, event: Event) -> Response:
        # Each invocation has a context of its own, as in Lambda.
        context = LambdaContext.for_invocation("pixel-gateway-bench-GraphQLFunction", timeout_seconds=10)
        return self.handler(event, context)


@functools.cache
def graphql_handler() -> Callable[[Event, Any], Response]:
    """`app.handler` of functions/graphql_api, loaded from its file as Lambda does (once)."""
    handler = load_handler("functions/graphql_api", "app.handler", module_alias="bench_graphql_api_app")
    return cast(Callable[[Event, Any], Response], handler)  # the API's handler always answers


def aws_clients() -> dict[str, Any]:
    """The botocore clients the function keeps for the container's lifetime, by service."""
    return {
        "dynamodb": TableItem._get_connection().connection.client,
        "sqs": queues.sqs_client(),
        "kms": tokens.kms_client(),
    }


@contextlib.contextmanager
def client_hooks(hooks: dict[str, Callable[..., None]]) -> Iterator[None]:
    """Registers botocore event hooks (`before-call`, ...) on every client of aws_clients() meanwhile."""
    clients = list(aws_clients().values())
    for client in clients:
        for event_name, hook in hooks.items():
            client.meta.events.register(event_name, hook, unique_id=f"bench-{event_name}")
    try:
        yield
    finally:
        for client in clients:
            for event_name in hooks:
                client.meta.events.unregister(event_name, unique_id=f"bench-{event_name}")


def forget_container_caches() -> None:
    """What a new container has not read yet: verified credentials, recently read pixels and tenants."""
    auth.forget_verified_apps()
    pixels.forget_recent_pixels()


@contextlib.contextmanager
def quiet_handler_output() -> Iterator[None]:
    """The handler's JSON log lines and EMF metrics (stdout in Lambda) go to /dev/null meanwhile:
    still formatted and written, as in Lambda, but not mixed into the figures."""
    from pixel_core.observability import logger  # noqa: PLC0415  # after the environment is set

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), warnings.catch_warnings():
        # Mangum 0.22 asks for the event loop with none running; harmless in Lambda (pyproject.toml).
        warnings.filterwarnings(
            "ignore", message="There is no current event loop", category=DeprecationWarning
        )
        # As pixel_core.observability says at import (a test run resets the filters it set then).
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        streams = [h for h in logger._logger.handlers if isinstance(h, logging.StreamHandler)]
        previous = [handler.setStream(sink) for handler in streams]
        try:
            yield
        finally:
            for handler, stream in zip(streams, previous, strict=True):
                if stream is not None:
                    handler.setStream(stream)


def _queue_prefix() -> str:
    """The stack name the configured events queue URL implies (`<prefix>-EventsQueue`)."""
    name = settings.events_queue_url.rsplit("/", 1)[-1]
    if not name.endswith("-EventsQueue"):
        raise RuntimeError(f"EVENTS_QUEUE_URL {settings.events_queue_url!r} does not name an EventsQueue")
    return name.removesuffix("-EventsQueue")


@contextlib.contextmanager
def warm_container() -> Iterator[Container]:
    """moto in process with the template's table, queues and KMS key; a tenant, an app bound to it and
    pixel 123 with example.com attached; and the real handler, caches empty as in a new container."""
    with mock_aws(), quiet_handler_output():
        # provision's clients come from a session that may predate moto's import (the pipeline
        # figure, run first, provisions DynamoDB Local with it): have moto answer them too.
        for service in ("dynamodb", "sqs", "kms"):
            patch_client(provisioning_client(service, _ENDPOINTS[f"{service}_endpoint"]))
        resources = provision(
            load_template(),
            **_ENDPOINTS,
            table_names={"PixelTable": settings.table_name},
            queue_prefix=_queue_prefix(),
        )
        if resources.queue_urls.get("EventsQueue") != settings.events_queue_url:
            raise RuntimeError(
                f"moto's events queue {resources.queue_urls.get('EventsQueue')} is not the configured "
                f"EVENTS_QUEUE_URL {settings.events_queue_url}"
            )
        bind_models(table_name=settings.table_name, host=None)
        for client in aws_clients().values():
            patch_client(client)
        forget_container_caches()
        auth.create_tenant(TENANT_ID, name="Bench")
        credentials = auth.create_app({TENANT_ID}, name="bench")
        principal = auth.authenticate(credentials.app_id, credentials.app_secret)
        pixels.create_pixel(principal, tenant_id=TENANT_ID, pixel_id=PIXEL_ID, name="Shop")
        pixel_domains.add_domain(principal, PIXEL_ID, DOMAIN)
        forget_container_caches()
        caller = Caller(credentials.app_id, credentials.app_secret, TENANT_ID, PIXEL_ID)
        try:
            yield Container(graphql_handler(), caller)
        finally:
            forget_container_caches()


def sample_event(name: str, caller: Caller) -> Event:
    """An API Gateway event of events/, with the caller's credentials in place of the placeholders."""
    text = (EVENTS / f"{name}.json").read_text()
    text = text.replace("<app-id>", caller.app_id).replace("<app-secret>", caller.app_secret)
    text = text.replace("Basic <basic-credentials>", caller.basic_authorization)
    event: Event = json.loads(text)
    return event


def graphql_event(
    query: str, variables: dict[str, Any], *, authorization: str | None = None, path: str = "/graphql"
) -> Event:
    """An API Gateway (HTTP API, payload 2.0) event of a GraphQL POST, as the local API Gateway makes."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    headers = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
        "user-agent": USER_AGENT,
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-proto": "https",
    }
    if authorization is not None:
        headers["authorization"] = authorization
    return http_api_event("POST", path, headers, body, SOURCE_IP, f"POST {path}")


def graphql_data(response: Response) -> dict[str, Any]:
    """The `data` of a GraphQL answer; an HTTP error or a GraphQL error stops the figure."""
    if response.get("statusCode") != 200:
        raise RuntimeError(f"the handler answered {response.get('statusCode')}: {response.get('body')}")
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    answer = json.loads(body)
    if answer.get("errors") or not answer.get("data"):
        raise RuntimeError(f"the handler answered with errors: {answer}")
    data: dict[str, Any] = answer["data"]
    return data


def envelope(response: Response, field: str) -> dict[str, Any]:
    """A HeroPixel `{code, data, message}` answer; anything but code 200 stops the figure."""
    answer: dict[str, Any] = graphql_data(response)[field]
    if answer.get("code") != 200:
        raise RuntimeError(f"{field} answered {answer}")
    return answer
