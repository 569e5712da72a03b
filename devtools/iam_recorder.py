"""Records the AWS calls each function's code makes, as IAM would authorize them.

``install()`` hooks every botocore client made from then on (boto3's, PynamoDB's and
``pixel_core.aws``'s all come from ``botocore.session.Session.create_client``) with a
``provide-client-params`` handler. A call is attributed to a function when it runs inside
``acting_as(function_id)`` (``devtools.functions.load_handler`` wraps handlers in it) or, failing
that, when a frame of the call stack is in the code folder of a function registered with
``register_code_folder``; other calls (test set-up, provisioning, operator tools) are not recorded.

Each call becomes one or more ``Call``: the IAM action (``TransactWriteItems`` counts as its item
actions, ``SendMessageBatch`` as ``sqs:SendMessage``, ...), the resource ARN (table, index, queue,
KMS key or alias) and, for KMS, the encryption context. Standard library and botocore only.
"""

from __future__ import annotations

import contextvars
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import botocore.session

ACCOUNT = "123456789012"  # moto's account; DynamoDB and KMS requests do not name one

_current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("iam_function", default=None)
_code_folders: dict[str, str] = {}  # absolute folder (with a trailing separator) -> function id
_recorders: list[Recorder] = []
_lock = threading.Lock()
_original_create_client = botocore.session.Session.create_client


@dataclass(frozen=True, order=True)
class Call:
    function: str
    action: str  # "dynamodb:PutItem"
    resource: str  # an ARN
    encryption_context: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        context = f" context={dict(self.encryption_context)}" if self.encryption_context else ""
        return f"{self.function}: {self.action} on {self.resource}{context}"


class Recorder:
    """The distinct calls made while it is active (see ``recording``)."""

    def __init__(self) -> None:
        self.calls: set[Call] = set()

    def of(self, function: str) -> set[Call]:
        return {call for call in self.calls if call.function == function}

    def save(self, path: Path) -> None:
        """Writes the calls as JSON, for a check that runs in another process (pytest-xdist)."""
        rows = sorted(
            [call.function, call.action, call.resource, call.encryption_context] for call in self.calls
        )
        path.write_text(json.dumps(rows))

    def load(self, path: Path) -> None:
        """Adds the calls that ``save`` wrote to ``path``."""
        for function, action, resource, context in json.loads(path.read_text()):
            self.calls.add(Call(function, action, resource, tuple(tuple(pair) for pair in context)))


@contextmanager
def recording(recorder: Recorder | None = None) -> Iterator[Recorder]:
    """Records into ``recorder`` (a new one by default) until the block ends."""
    install()
    active = recorder or Recorder()
    with _lock:
        _recorders.append(active)
    try:
        yield active
    finally:
        with _lock:
            _recorders.remove(active)


def start(recorder: Recorder) -> None:
    """Records into ``recorder`` for the rest of the process (a session-wide recorder)."""
    install()
    with _lock:
        _recorders.append(recorder)


@contextmanager
def acting_as(function_id: str) -> Iterator[None]:
    """AWS calls made in this block (and in asyncio tasks it starts) are ``function_id``'s."""
    token = _current_function.set(function_id)
    try:
        yield
    finally:
        _current_function.reset(token)


def register_code_folder(folder: Path, function_id: str) -> None:
    """Calls made from code in ``folder`` (a function's CodeUri) are ``function_id``'s."""
    _code_folders[str(folder.resolve()) + "/"] = function_id


def current_function() -> str | None:
    explicit = _current_function.get()
    if explicit is not None or not _code_folders:
        return explicit
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        for folder, function_id in _code_folders.items():
            if filename.startswith(folder):
                return function_id
        frame = frame.f_back
    return None


def install() -> None:
    """Hooks every botocore client created from now on (idempotent)."""
    if botocore.session.Session.create_client is not _original_create_client:
        return

    def create_client(self: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
        client = _original_create_client(self, *args, **kwargs)
        region = client.meta.region_name or "us-east-1"
        service = client.meta.service_model.signing_name

        def on_call(params: Mapping[str, Any], model: Any, **_: Any) -> None:
            if not _recorders:
                return
            function = current_function()
            if function is None:
                return
            calls = {Call(function, *rest) for rest in iam_requests(service, model.name, params, region)}
            with _lock:
                for recorder in _recorders:
                    recorder.calls |= calls

        client.meta.events.register("provide-client-params", on_call, unique_id="iam-recorder")
        return client

    botocore.session.Session.create_client = create_client


# -- what IAM authorizes --------------------------------------------------------------------------

_TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
# SQS authorizes a batch request as its single-message action.
_SQS_BATCH_ACTIONS = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}

Request = tuple[str, str, tuple[tuple[str, str], ...]]  # action, resource ARN, encryption context


def iam_requests(service: str, operation: str, params: Mapping[str, Any], region: str) -> list[Request]:
    """The (action, resource, encryption context) IAM evaluates for one API call."""
    if service == "dynamodb":
        return _dynamodb(operation, params, region)
    if service == "sqs":
        return [(f"sqs:{_SQS_BATCH_ACTIONS.get(operation, operation)}", _queue_arn(params, region), ())]
    if service == "kms":
        key = str(params.get("KeyId", "*"))
        if not key.startswith("arn:"):
            kind = "" if key.startswith("alias/") else "key/"
            key = f"arn:aws:kms:{region}:{ACCOUNT}:{kind}{key}"
        context = tuple(sorted((str(k), str(v)) for k, v in params.get("EncryptionContext", {}).items()))
        return [(f"kms:{operation}", key, context)]
    return [(f"{service}:{operation}", "*", ())]


def _table_arn(region: str, table: str, index: str | None = None) -> str:
    arn = table if table.startswith("arn:") else f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _dynamodb(operation: str, params: Mapping[str, Any], region: str) -> list[Request]:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        requests: list[Request] = []
        for item in params.get("TransactItems", []):
            for kind, body in item.items():
                requests.append(
                    (f"dynamodb:{_TRANSACT_ITEM_ACTIONS[kind]}", _table_arn(region, body["TableName"]), ())
                )
        return requests
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [
            (f"dynamodb:{operation}", _table_arn(region, table), ())
            for table in params.get("RequestItems", {})
        ]
    table = params.get("TableName") or params.get("TableArn") or "*"
    return [(f"dynamodb:{operation}", _table_arn(region, str(table), params.get("IndexName")), ())]


def _queue_arn(params: Mapping[str, Any], region: str) -> str:
    if "QueueUrl" in params:
        # https://sqs.<region>.amazonaws.com/<account>/<name>, or an emulator's http://host:port/<account>/<name>
        account, _, name = urlsplit(str(params["QueueUrl"])).path.strip("/").partition("/")
        return f"arn:aws:sqs:{region}:{account}:{name}"
    if "QueueName" in params:
        return f"arn:aws:sqs:{region}:{params.get('QueueOwnerAWSAccountId', ACCOUNT)}:{params['QueueName']}"
    return "*"


def event_source_of(function_id: str) -> str:
    """Who Lambda's SQS poller acts as: the function's role, with what SAM adds for `Type: SQS`."""
    return f"{function_id}/SQSEventSource"
