"""Faults injected at botocore's `before-send` event, for any client (PynamoDB's, SQS, KMS).

The request is built, signed and retried by botocore as usual, but every attempt gets our response
(or connection error) instead of the emulator's, and the emulator never executes it. Loaded as a
pytest plugin (pyproject's addopts), so `inject` and `backoff_sleeps` are fixtures everywhere.
"""

import json
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError


class _Raw:
    """What botocore reads an HTTP response body from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._data


def aws_json_error(status: int, type_name: str, content_type: str) -> Callable[..., AWSResponse]:
    """A responder answering like an AWS JSON-protocol service that refuses the request."""

    def respond(request: Any) -> AWSResponse:
        body = json.dumps({"__type": type_name, "message": "Injected by the test"}).encode()
        headers = {"content-type": content_type, "x-amzn-requestid": "fault-injected"}
        return AWSResponse(request.url, status, headers, _Raw(body))

    return respond


def unreachable(request: Any) -> AWSResponse:
    raise EndpointConnectionError(endpoint_url=request.url)


def dynamodb_throttling(type_name: str) -> Callable[..., AWSResponse]:
    return aws_json_error(400, f"com.amazonaws.dynamodb.v20120810#{type_name}", "application/x-amz-json-1.0")


@dataclass
class Fault:
    """Every attempt of some calls of a client gets an injected failure, until lifted."""

    client: Any
    event_name: str
    respond: Callable[[Any], AWSResponse | None]  # None lets that attempt through
    attempts: list[str] = field(default_factory=list)  # the operation of each attempt, retries included

    def _fail(self, request: Any, event_name: str, **_kwargs: Any) -> AWSResponse | None:
        self.attempts.append(event_name.rsplit(".", 1)[-1])
        response = self.respond(request)
        if response is None:
            return None
        # botocore calls every before-send handler and takes the first answer, ours; moto, called
        # after us, would still execute the request. Aimed at a host nobody serves, moto ignores it.
        request.url = "https://fault-injected.invalid/"
        return response

    def start(self) -> "Fault":
        self.client.meta.events.register_first(self.event_name, self._fail)  # before moto answers
        return self

    def lift(self) -> None:
        self.client.meta.events.unregister(self.event_name, self._fail)


@pytest.fixture
def backoff_sleeps(monkeypatch) -> list[float]:
    """botocore's retry backoff, recorded rather than slept (botocore.endpoint sleeps nowhere else)."""
    sleeps: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=sleeps.append))
    return sleeps


@pytest.fixture
def inject(backoff_sleeps) -> Iterator[Callable[..., Fault]]:
    """inject(client, operation or "*", responder) -> the started Fault; lifted after the test."""
    faults: list[Fault] = []

    def inject(client: Any, operation: str, respond: Callable[[Any], AWSResponse | None]) -> Fault:
        service = client.meta.service_model.service_id.hyphenize()
        event_name = f"before-send.{service}" + ("" if operation == "*" else f".{operation}")
        faults.append(Fault(client, event_name, respond).start())
        return faults[-1]

    yield inject
    for fault in faults:
        fault.lift()


def dynamodb_client() -> Any:
    """The botocore client every PynamoDB model of the table uses."""
    # Imported here: this plugin loads before conftest sets the environment that settings read.
    from pixel_core.models import TableItem

    return TableItem._get_connection().connection.client


def max_attempts(client: Any) -> int:
    return int(client.meta.config.retries["total_max_attempts"])


def transaction_cancelled(codes_for: Callable[[int], list[str | None]]) -> Callable[..., AWSResponse]:
    """DynamoDB cancelling a TransactWriteItems: `codes_for(number of items)` gives one reason per item
    (None: that item was fine), as DynamoDB does."""

    def respond(request: Any) -> AWSResponse:
        items = json.loads(request.body)["TransactItems"]
        codes = codes_for(len(items))
        reasons = [{"Code": code or "None"} for code in codes]
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons {codes}",
                "CancellationReasons": reasons,
            }
        ).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "fault-injected"}
        return AWSResponse(request.url, 400, headers, _Raw(body))

    return respond


@dataclass
class Script:
    """Answers the next calls in turn with `responders` (None: let the call through), then lets all through."""

    responders: list[Callable[[Any], AWSResponse] | None]
    calls: int = 0

    def __call__(self, request: Any) -> AWSResponse | None:
        self.calls += 1
        if self.calls <= len(self.responders) and (respond := self.responders[self.calls - 1]) is not None:
            return respond(request)
        return None
