"""Sending to the events queue. The SQS client is made once per container, on first use, so
requests that never send (domains, pixels) do not pay for it at cold start."""

import functools
from typing import Any

from pixel_core.config import settings
from pixel_core.events import PixelEvent


@functools.cache
def sqs_client() -> Any:
    import boto3  # noqa: PLC0415  # see the module docstring
    from botocore.config import Config  # noqa: PLC0415

    # Short timeouts: a pageview should fail fast rather than hold its caller.
    config = Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("sqs", region_name=settings.region, config=config)


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
