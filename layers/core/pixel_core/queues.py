"""Sending to the events queue. The SQS client is made once per container, on first use, so
requests that never send (domains, pixels) do not pay for it at cold start."""

import functools
import time
from typing import Any

from pixel_core import aws
from pixel_core.config import settings
from pixel_core.events import PixelEvent

SQS_BATCH_LIMIT = 10  # SendMessageBatch's entries
MAX_DELAY_SECONDS = 900  # SQS's maximum DelaySeconds
# A batch entry SQS failed on its side (SenderFault false) is sent again, this many times.
ENTRY_ATTEMPTS = 3


class EnqueueFailed(RuntimeError):
    """SQS did not take every message, even after retrying the failed entries."""


@functools.cache
def sqs_client() -> Any:
    return aws.client("sqs")


def enqueue(event: PixelEvent, queue_url: str | None = None) -> None:
    sqs_client().send_message(QueueUrl=queue_url or settings.events_queue_url, MessageBody=event.to_message())


def enqueue_all(events: list[PixelEvent], queue_url: str, *, delay_seconds: int = 0) -> None:
    """Sends in batches of ten (SQS's limit), each message delayed by `delay_seconds`.

    A partial failure is never a loss: entries SQS failed on its side are sent again (with a short
    backoff); if some still fail, or SQS refuses an entry as the sender's fault, EnqueueFailed is
    raised, after everything else was sent. The caller then fails its own batch, so that the events
    come back; a message sent twice is deduplicated downstream (markers, Meta's event_id).
    """
    if not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
        raise ValueError(f"delay_seconds must be 0..{MAX_DELAY_SECONDS}, not {delay_seconds}")
    client = sqs_client()
    lost = 0
    for start in range(0, len(events), SQS_BATCH_LIMIT):
        chunk = events[start : start + SQS_BATCH_LIMIT]
        pending = {
            str(n): {"Id": str(n), "MessageBody": event.to_message(), "DelaySeconds": delay_seconds}
            for n, event in enumerate(chunk)
        }
        for attempt in range(1, ENTRY_ATTEMPTS + 1):
            answer = client.send_message_batch(QueueUrl=queue_url, Entries=list(pending.values()))
            failed = answer.get("Failed", [])
            pending = {entry["Id"]: pending[entry["Id"]] for entry in failed}
            if not pending or any(entry.get("SenderFault") for entry in failed):
                break  # done, or an entry that sending again cannot fix
            if attempt < ENTRY_ATTEMPTS:
                time.sleep(0.05 * 2**attempt)
        lost += len(pending)
    if lost:
        raise EnqueueFailed(f"SQS did not take {lost} of {len(events)} messages")
