"""AWS answered in memory, at botocore's HTTP layer: every client does all it does for a real
request (parameters, serialising, endpoint resolution, credentials, signing, parsing the answer)
except the network round trip, which is replaced by an answer made here.

The cold start figure installs it in a fresh interpreter after the handler was imported (so it
imports nothing but botocore and the standard library); `install` returns what was asked, in order.
Answers: DynamoDB GetItem from `items` (keyed "pk|sk", in DynamoDB's JSON), SQS SendMessage with
the MD5 of the body (as SQS does; botocore checks it), KMS is never called by a pageview.
"""

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import botocore.httpsession
from botocore.awsrequest import AWSPreparedRequest, AWSResponse

type Items = Mapping[str, Mapping[str, Any]]


def item_key(pk: str, sk: str) -> str:
    return f"{pk}|{sk}"


class _Body:
    """The part of urllib3's response that AWSResponse reads."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, *_args: Any, **_kwargs: Any) -> Iterator[bytes]:
        yield self._content


class InMemoryAws:
    def __init__(self, items: Items) -> None:
        self.items = items
        self.calls: list[str] = []  # "DynamoDB_20120810.GetItem", "AmazonSQS.SendMessage", ...

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        operation = target.decode() if isinstance(target, bytes) else str(target)
        self.calls.append(operation)
        body = json.loads(request.body or b"{}")
        return AWSResponse(
            request.url,
            200,
            {"Content-Type": "application/x-amz-json-1.0"},
            _Body(self.answer(operation, body)),
        )

    def answer(self, operation: str, body: dict[str, Any]) -> bytes:
        if operation == "DynamoDB_20120810.GetItem":
            key = body["Key"]
            item = self.items.get(item_key(key["pk"]["S"], key["sk"]["S"]))
            return json.dumps({"Item": item} if item is not None else {}).encode()
        if operation == "AmazonSQS.SendMessage":
            digest = hashlib.md5(body["MessageBody"].encode(), usedforsecurity=False).hexdigest()
            return json.dumps({"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": digest}).encode()
        raise NotImplementedError(f"no in-memory answer for {operation}")


def install(items: Items) -> InMemoryAws:
    """From now on, every botocore client of this process is answered by the returned fake."""
    fake = InMemoryAws(items)

    def send(_session: botocore.httpsession.URLLib3Session, request: AWSPreparedRequest) -> AWSResponse:
        return fake.send(request)

    botocore.httpsession.URLLib3Session.send = send  # the one seam: every client sends through it
    return fake
