"""Lambda's SQS event source mapping, locally: poll a queue (moto's, in `make dev`) and invoke a handler.

Reproduces what "Using Lambda with Amazon SQS" describes for a standard queue with
``FunctionResponseTypes: [ReportBatchItemFailures]``:

- batches of up to ``batch_size`` messages, gathered over at most ``batching_window_seconds``;
- the Lambda SQS event and a Lambda-like context;
- messages are deleted only after the handler returned, and only those it did not report as failed;
  a raised exception, a timeout or a malformed response fails the whole batch;
- failed messages are left alone: they come back after the queue's visibility timeout, and SQS moves
  them to the dead-letter queue once the RedrivePolicy's maxReceiveCount is exceeded.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], dict[str, Any] | None]

SQS_BATCH_LIMIT = 10  # ReceiveMessage's MaxNumberOfMessages and DeleteMessageBatch's entries
_DRAIN_CHECK_SECONDS = 0.1
_ERROR_BACKOFF_SECONDS = 1.0  # after a failed ReceiveMessage, so a dead endpoint is not hammered
_COUNT_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",  # sent before stop() too, so drain waits for them as well
)


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of the Python runtime's context object that handlers (and Powertools) read."""

    function_name: str
    memory_limit_in_mb: str  # a string in the real runtime (read from an environment variable)
    invoked_function_arn: str
    aws_request_id: str
    deadline: float  # time.monotonic() at which Lambda would stop the invocation
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    @classmethod
    def for_invocation(
        cls,
        function_name: str,
        *,
        timeout_seconds: float,
        memory_limit_in_mb: int = 512,
        function_arn: str | None = None,
    ) -> LambdaContext:
        """The context of one invocation starting now, with a request id of its own."""
        return cls(
            function_name=function_name,
            memory_limit_in_mb=str(memory_limit_in_mb),
            invoked_function_arn=function_arn
            or f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + timeout_seconds,
            log_group_name=f"/aws/lambda/{function_name}",
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class SqsEventSource:
    """Polls one queue and invokes ``handler`` with batches, as an SQS event source mapping does.

    ``poll_once`` handles one batch in the calling thread; ``start``/``stop`` run it in a loop in a
    background thread. ``memory_limit_in_mb`` and ``timeout_seconds`` default to Lambda's defaults;
    pass the function's MemorySize and Timeout from the template.
    """

    def __init__(
        self,
        *,
        sqs_client: Any,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        batch_size: int = 10,
        batching_window_seconds: float = 0.0,
        function_name: str = "local-function",
        poll_wait_seconds: int = 1,
        memory_limit_in_mb: int = 128,
        timeout_seconds: float = 3.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if batch_size > SQS_BATCH_LIMIT and batching_window_seconds < 1:
            # Lambda refuses this too: without a window only one ReceiveMessage (10 messages) is made.
            raise ValueError("a batch_size over 10 needs batching_window_seconds of at least 1")
        if not 0 <= poll_wait_seconds <= 20:
            raise ValueError("poll_wait_seconds must be within 0..20 (SQS's WaitTimeSeconds)")
        self._sqs = sqs_client
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._batch_size = batch_size
        self._window = batching_window_seconds
        self._poll_wait = poll_wait_seconds
        self._function_name = function_name
        self._memory = memory_limit_in_mb
        self._timeout = timeout_seconds
        # arn:aws:sqs:<region>:<account>:<name>; the function lives in the same region and account.
        _, partition, _, self._region, self._account, _ = queue_arn.split(":", 5)
        self._function_arn = f"arn:{partition}:lambda:{self._region}:{self._account}:function:{function_name}"
        self._lock = threading.Lock()  # guards _thread and _stopping across start()/stop() callers
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- one batch ---------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Receive one batch, invoke the handler, delete what succeeded.

        Returns the number of messages the handler was invoked with (0: the queue had none to give),
        whatever the outcome.
        """
        messages = self._receive_batch()
        if not messages:
            return 0
        failed_ids = self._invoke(messages)
        self._delete([message for message in messages if message["MessageId"] not in failed_ids])
        return len(messages)

    def _receive_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        first_arrival = 0.0
        while len(batch) < self._batch_size:
            wait = self._poll_wait
            if batch:
                remaining = self._window - (time.monotonic() - first_arrival)
                if remaining <= 0:
                    break
                # WaitTimeSeconds is whole seconds; rounding up may overrun the window by < 1 s.
                wait = min(wait, math.ceil(remaining))
            received: list[dict[str, Any]] = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(SQS_BATCH_LIMIT, self._batch_size - len(batch)),
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not received:
                break  # an empty batch means no invocation, as in Lambda
            if not batch:
                first_arrival = time.monotonic()
            batch.extend(received)
            if self._window <= 0:
                break  # no window: a single ReceiveMessage's worth
        return batch

    def _invoke(self, messages: list[dict[str, Any]]) -> set[str]:
        """Run the handler; the message ids to keep (all of them when the batch failed as a whole)."""
        all_ids = {message["MessageId"] for message in messages}
        started = time.monotonic()
        context = LambdaContext.for_invocation(
            self._function_name,
            timeout_seconds=self._timeout,
            memory_limit_in_mb=self._memory,
            function_arn=self._function_arn,
        )
        # Lambda hands the function a freshly deserialized event and serializes its response.
        event = {"Records": [self._record(message) for message in messages]}
        try:
            response = json.loads(json.dumps(self._handler(event, context)))
        except Exception:
            logger.exception(
                "%s failed (request %s); its %d messages will be retried",
                self._function_name,
                context.aws_request_id,
                len(messages),
            )
            return all_ids
        if time.monotonic() - started > self._timeout:
            # Lambda would have stopped the function: a timeout fails the whole batch.
            logger.error(
                "%s timed out after %.1f s (request %s); its %d messages will be retried",
                self._function_name,
                self._timeout,
                context.aws_request_id,
                len(messages),
            )
            return all_ids
        failed = _reported_failures(response, all_ids)
        if failed is None:
            logger.error(
                "%s returned an invalid batch response (request %s); its %d messages will be retried: %r",
                self._function_name,
                context.aws_request_id,
                len(messages),
                response,
            )
            return all_ids
        if failed:
            logger.info(
                "%s reported %d of %d messages as failed", self._function_name, len(failed), len(messages)
            )
        return failed

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": self._region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), SQS_BATCH_LIMIT):
            chunk = messages[start : start + SQS_BATCH_LIMIT]
            # Ids are positions: a message received twice in one batch must not make them collide.
            result = self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(chunk)
                ],
            )
            for failure in result.get("Failed", []):
                # E.g. the visibility timeout ran out while the handler ran: SQS will deliver it again.
                logger.warning(
                    "could not delete message %s: %s %s",
                    chunk[int(failure["Id"])]["MessageId"],
                    failure.get("Code"),
                    failure.get("Message"),
                )

    # -- background polling ------------------------------------------------------------------------

    def start(self) -> Self:
        """Poll in a background (daemon) thread until ``stop``."""
        with self._lock:
            if self._thread is not None:
                raise RuntimeError(f"the event source of {self._function_name} is already running")
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"sqs-event-source-{self._function_name}", daemon=True
            )
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:
                # Lambda keeps polling through errors (throttling, a queue briefly unreachable).
                logger.exception("polling %s for %s failed", self._queue_url, self._function_name)
                self._stopping.wait(_ERROR_BACKOFF_SECONDS)

    def stop(self, *, drain: bool = True, timeout: float = 30.0) -> None:
        """Stop polling. With ``drain``, first keep polling until the queue is empty or ``timeout``.

        Messages whose handler keeps failing stay in flight until they reach the dead-letter queue
        (or forever without a RedrivePolicy), so the drain is bounded by ``timeout``. The batch in
        progress is always finished: its messages were received and must not wait out their
        visibility timeout for nothing. Safe to call twice, and without ``start``.
        """
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            deadline = time.monotonic() + timeout
            if drain:
                while self._queued_messages() > 0 and time.monotonic() < deadline:
                    time.sleep(_DRAIN_CHECK_SECONDS)
            self._stopping.set()
            # The loop only notices the flag between batches: allow for a receive and a handler run.
            thread.join(max(deadline - time.monotonic(), self._poll_wait + self._window + self._timeout + 1))
            if thread.is_alive():
                logger.warning(
                    "the event source of %s is still busy; it stops after this batch", self._function_name
                )
            self._thread = None

    def _queued_messages(self) -> int:
        try:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self._queue_url, AttributeNames=list(_COUNT_ATTRIBUTES)
            )["Attributes"]
        except Exception:
            logger.exception("cannot count the messages of %s; not draining further", self._queue_url)
            return 0
        return sum(int(attributes.get(name, 0)) for name in _COUNT_ATTRIBUTES)


def _reported_failures(response: Any, message_ids: set[str]) -> set[str] | None:
    """The ids of a ReportBatchItemFailures response; None when Lambda would fail the whole batch."""
    if response is None:
        return set()  # a null response: complete success
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()  # no (or a null) list: complete success
    if not isinstance(failures, list):
        return None
    failed: set[str] = set()
    for failure in failures:
        # Empty or null identifiers, other key names and unknown message ids fail the whole batch.
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        failed.add(identifier)
    return failed


def _lambda_message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """boto3's ``{"StringValue"|"BinaryValue", "DataType"}`` -> Lambda's camelCase, binary in base64."""
    converted: dict[str, Any] = {}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    converted["stringListValues"] = list(value.get("StringListValues", []))
    converted["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
    ]
    converted["dataType"] = value["DataType"]
    return converted
