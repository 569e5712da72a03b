"""Sending to the events queue. The SQS client is made once per container, on first use, so
requests that never send (domains, pixels) do not pay for it at cold start."""

import functools
from typing import Any

from pixel_core import aws
from pixel_core.config import settings
from pixel_core.events import PixelEvent


@functools.cache
def sqs_client() -> Any:
    return aws.client("sqs")


def enqueue(event: PixelEvent, queue_url: str | None = None) -> None:
    sqs_client().send_message(QueueUrl=queue_url or settings.events_queue_url, MessageBody=event.to_message())


def enqueue_all(events: list[PixelEvent], queue_url: str) -> None:
    """Sends in batches of ten (SQS's limit); a batch entry that failed is an error, not a loss."""
    client = sqs_client()
    for start in range(0, len(events), 10):
        chunk = events[start : start + 10]
        entries = [{"Id": str(n), "MessageBody": event.to_message()} for n, event in enumerate(chunk)]
        answer = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} of {len(entries)} messages")
