"""devtools.sqs_event_source against moto's SQS server: Lambda's SQS event source mapping, locally.

The queue redrives to a dead-letter queue after 2 receives and has a 1 s visibility timeout, so
retries and redrive happen within a few seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from devtools import sqs_event_source
from devtools.moto_server import MotoServer
from devtools.sqs_event_source import SqsEventSource

REGION = "us-east-1"
MAX_RECEIVE_COUNT = 2


@dataclass(frozen=True)
class Queues:
    sqs: Any
    url: str
    arn: str
    dlq_url: str

    def send(self, *bodies: str) -> None:
        for start in range(0, len(bodies), 10):
            self.sqs.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start : start + 10])
                ],
            )

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) of the queue, or of ``url``."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def dead_letters(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        return messages


@dataclass
class RecordingHandler:
    """Records every invocation; ``failing_bodies`` are reported as failed, ``raising`` raises."""

    failing_bodies: set[str] = field(default_factory=set)
    raising: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    contexts: list[Any] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any] | None:
        self.events.append(event)
        self.contexts.append(context)
        if self.raising:
            raise RuntimeError("downstream unavailable")
        failures = [
            {"itemIdentifier": record["messageId"]}
            for record in event["Records"]
            if record["body"] in self.failing_bodies
        ]
        return {"batchItemFailures": failures}

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        return [event["Records"] for event in self.events]

    @property
    def bodies(self) -> Counter[str]:
        return Counter(record["body"] for batch in self.batches for record in batch)


class FakeClock:
    """devtools.sqs_event_source's time.monotonic(), moved by the test (its sleeps stay real)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(
        sqs_event_source, "time", types.SimpleNamespace(monotonic=fake.monotonic, sleep=time.sleep)
    )
    return fake


class ArrivalsBetweenReceives:
    """The source's SQS client, with messages arriving while it gathers a batch: after its n-th
    ReceiveMessage, and before the source sees the answer, the clock moves by ``arrivals[n][0]``
    seconds and the bodies ``arrivals[n][1]`` are sent. Every other call goes to the queues' client."""

    def __init__(
        self, queues: Queues, clock: FakeClock, arrivals: list[tuple[float, tuple[str, ...]]]
    ) -> None:
        self._queues = queues
        self._clock = clock
        self._arrivals = arrivals
        self.received: list[int] = []  # how many messages each ReceiveMessage returned

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self._queues.sqs.receive_message(**kwargs)
        self.received.append(len(answer.get("Messages", [])))
        if len(self.received) <= len(self._arrivals):
            seconds, bodies = self._arrivals[len(self.received) - 1]
            self._clock.advance(seconds)
            self._queues.send(*bodies)
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queues.sqs, name)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def queues(moto_server: MotoServer) -> Queues:
    """A fresh queue with a dead-letter queue (maxReceiveCount 2) and a 1 s visibility timeout."""
    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint_url, region_name=REGION)
    name = f"events-{uuid.uuid4().hex[:12]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Queues(sqs, url, arn, dlq_url)


def event_source(
    queues: Queues, handler: Callable[[dict[str, Any], Any], Any], **options: Any
) -> SqsEventSource:
    return SqsEventSource(
        sqs_client=queues.sqs, queue_url=queues.url, queue_arn=queues.arn, handler=handler, **options
    )


def poll_until(source: SqsEventSource, done: Callable[[], bool], max_polls: int = 20) -> None:
    """poll_once until ``done()``: moto's long poll misses messages whose visibility expires meanwhile.

    Bounded in polls, not seconds: each empty poll long-polls 1 s, and the 1 s visibility timeout
    brings the messages back within a few."""
    for _ in range(max_polls):
        if done():
            return
        source.poll_once()
    assert done(), f"condition not reached in {max_polls} polls"


def test_25_messages_are_each_delivered_exactly_once_in_batches_of_at_most_10_and_the_queue_ends_empty(
    queues: Queues,
) -> None:
    # Given 25 messages in the queue and an event source with batch_size 10
    bodies = [f"message-{n}" for n in range(25)]
    queues.send(*bodies)
    handler = RecordingHandler()
    source = event_source(queues, handler, batch_size=10)

    # When it polls until a poll finds nothing
    handled = []
    while count := source.poll_once():
        handled.append(count)

    # Then every message reached the handler exactly once, in batches of at most 10, all deleted
    assert handler.bodies == Counter(bodies)
    assert all(1 <= len(batch) <= 10 for batch in handler.batches)
    assert handled == [len(batch) for batch in handler.batches]
    assert sum(handled) == 25
    assert queues.counts() == (0, 0)
    assert queues.dead_letters() == []


def test_handler_gets_lambda_style_sqs_records_and_a_lambda_like_context_whose_remaining_time_follows_the_clock(
    queues: Queues, clock: FakeClock
) -> None:
    # Given a message with string, number and binary attributes
    queues.sqs.send_message(
        QueueUrl=queues.url,
        MessageBody='{"pixel": 1}',
        MessageAttributes={
            "tenant": {"DataType": "String", "StringValue": "acme"},
            "attempt": {"DataType": "Number", "StringValue": "3"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
        },
    )
    handler = RecordingHandler()
    source = event_source(queues, handler, function_name="counter-aggregator", timeout_seconds=10)

    # When the event source handles it
    assert source.poll_once() == 1

    # Then the record has the shape Lambda gives SQS records
    (record,) = handler.batches[0]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfMessageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == '{"pixel": 1}'
    assert record["md5OfBody"] == hashlib.md5(b'{"pixel": 1}').hexdigest()  # noqa: S324 - SQS's checksum
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.arn
    assert record["awsRegion"] == REGION
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {
        "tenant": {
            "stringValue": "acme",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "attempt": {"stringValue": "3", "stringListValues": [], "binaryListValues": [], "dataType": "Number"},
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\xff").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    # And the context names the function in the queue's account and region, with time left
    (context,) = handler.contexts
    account = queues.arn.split(":")[4]
    assert context.function_name == "counter-aggregator"
    assert context.invoked_function_arn == f"arn:aws:lambda:{REGION}:{account}:function:counter-aggregator"
    assert context.memory_limit_in_mb == "128"
    request_id = uuid.UUID(context.aws_request_id)
    assert (str(request_id), request_id.version) == (context.aws_request_id, 4)
    # And its remaining time is the function's timeout, less the time gone since the invocation began
    assert context.get_remaining_time_in_millis() == 10_000
    clock.advance(2.5)
    assert context.get_remaining_time_in_millis() == 7_500
    clock.advance(8)
    assert context.get_remaining_time_in_millis() == 0
    assert queues.counts() == (0, 0)


def test_messages_arriving_a_few_at_a_time_within_the_batching_window_arrive_in_one_batch_and_later_ones_wait_for_the_next(
    queues: Queues, clock: FakeClock
) -> None:
    # Given an event source with batch_size 10 and a 1 s batching window, and 3 messages in the queue;
    # while it gathers (on its clock, from the first arrival), 3 more arrive at once, 3 more 0.2 s
    # later, and 3 more when the window is over
    handler = RecordingHandler()
    client = ArrivalsBetweenReceives(
        queues,
        clock,
        arrivals=[(0.0, ("b1", "b2", "b3")), (0.2, ("c1", "c2", "c3")), (0.8, ("d1", "d2", "d3"))],
    )
    source = SqsEventSource(
        sqs_client=client,
        queue_url=queues.url,
        queue_arn=queues.arn,
        handler=handler,
        batch_size=10,
        batching_window_seconds=1.0,
    )
    queues.send("a1", "a2", "a3")

    # When it polls once
    handled = source.poll_once()

    # Then the handler was invoked once, with the 9 that arrived within the window, and the source
    # asked no more once the window was over: the last 3 wait in the queue for the next batch
    assert client.received == [3, 3, 3]
    assert handled == 9
    assert len(handler.events) == 1
    assert sorted(record["body"] for record in handler.batches[0]) == sorted(
        ["a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3"]
    )
    assert queues.counts() == (3, 0)


def test_a_message_reported_as_failed_is_retried_with_a_growing_receive_count_and_then_dead_lettered_while_the_rest_is_deleted_once(
    queues: Queues,
) -> None:
    # Given a batch in which the handler always reports "poison" as failed
    queues.send("ok-1", "poison", "ok-2")
    handler = RecordingHandler(failing_bodies={"poison"})
    source = event_source(queues, handler).start()

    # When the source runs until the queue is empty (drain), which takes maxReceiveCount visibility timeouts
    source.stop(drain=True, timeout=10)

    # Then the other messages were handled and deleted exactly once
    assert handler.bodies["ok-1"] == 1
    assert handler.bodies["ok-2"] == 1
    # And the failing one came back with ApproximateReceiveCount 1, 2, then went to the dead-letter queue
    poison_receive_counts = [
        record["attributes"]["ApproximateReceiveCount"]
        for batch in handler.batches
        for record in batch
        if record["body"] == "poison"
    ]
    assert poison_receive_counts == ["1", "2"]
    assert queues.counts() == (0, 0)
    dead_letters = queues.dead_letters()
    assert [message["Body"] for message in dead_letters] == ["poison"]
    assert int(dead_letters[0]["Attributes"]["ApproximateReceiveCount"]) > MAX_RECEIVE_COUNT


@pytest.mark.parametrize(
    "failure",
    [{"itemIdentifier": ""}, {"itemIdentifier": None}, {"itemIdentifier": "not-in-this-batch"}, {"id": "x"}],
    ids=["empty", "null", "unknown-message-id", "wrong-key-name"],
)
def test_an_invalid_item_identifier_fails_the_whole_batch_and_deletes_nothing(
    queues: Queues, failure: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # Given a handler whose batch response names an invalid item
    queues.send("first", "second")
    source = event_source(queues, lambda event, context: {"batchItemFailures": [failure]})

    # When it handles the batch
    with caplog.at_level(logging.ERROR, logger="devtools.sqs_event_source"):
        assert source.poll_once() == 2

    # Then, as in Lambda, nothing is deleted: both messages stay in flight for a retry
    assert queues.counts() == (0, 2)
    assert "invalid batch response" in caplog.text


def test_a_handler_running_past_its_timeout_fails_the_whole_batch(queues: Queues, clock: FakeClock) -> None:
    # Given a handler that takes longer than the function's timeout (on the source's clock)
    queues.send("slow")
    source = event_source(queues, lambda event, context: clock.advance(0.3), timeout_seconds=0.1)

    # When it handles the message
    assert source.poll_once() == 1

    # Then the message is not deleted (Lambda would have stopped the function)
    assert queues.counts() == (0, 1)


def test_a_raising_handler_deletes_nothing_and_the_same_messages_are_handled_once_it_recovers(
    queues: Queues, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a handler that raises
    queues.send("m1", "m2", "m3")
    handler = RecordingHandler(raising=True)
    source = event_source(queues, handler)

    # When it is invoked with the batch
    with caplog.at_level(logging.ERROR, logger="devtools.sqs_event_source"):
        assert source.poll_once() == 3

    # Then nothing was deleted and the exception was logged with its traceback
    assert queues.counts() == (0, 3)
    errors = [record for record in caplog.records if record.name == "devtools.sqs_event_source"]
    assert [(record.levelno, record.exc_info is not None) for record in errors] == [(logging.ERROR, True)]
    first_ids = sorted(record["messageId"] for record in handler.batches[0])

    # When the handler recovers and the messages come back after the visibility timeout
    handler.raising = False
    poll_until(source, lambda: sum(len(batch) for batch in handler.batches) >= 6)

    # Then the same messages were handled, on their second receive, and deleted
    redelivered = [record for batch in handler.batches[1:] for record in batch]
    assert sorted(record["messageId"] for record in redelivered) == first_ids
    assert {record["attributes"]["ApproximateReceiveCount"] for record in redelivered} == {"2"}
    assert queues.counts() == (0, 0)
    assert queues.dead_letters() == []


def test_stop_with_drain_handles_everything_sent_before_stop_and_then_polls_no_more(queues: Queues) -> None:
    # Given a running event source with small batches and a handler that takes a little time
    def slow_handler(event: dict[str, Any], context: Any) -> None:
        time.sleep(0.05)
        handler(event, context)

    handler = RecordingHandler()
    source = event_source(queues, slow_handler, batch_size=5).start()
    with pytest.raises(RuntimeError, match="already running"):
        source.start()
    bodies = [f"m{n}" for n in range(30)]
    queues.send(*bodies)

    # When it is stopped with drain right away
    source.stop(drain=True, timeout=60)

    # Then every message sent before stop was handled exactly once, and the queue is empty
    assert handler.bodies == Counter(bodies)
    assert queues.counts() == (0, 0)
    # And nothing polls any more: its thread is gone, and a later message stays in the queue
    assert [t for t in threading.enumerate() if t.name == "sqs-event-source-local-function"] == []
    queues.send("after-stop")
    assert queues.counts() == (1, 0)
    assert "after-stop" not in handler.bodies
    source.stop()  # a second stop is harmless
