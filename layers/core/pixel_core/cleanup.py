"""Deleting a pixel: at once for everyone, then its partition cleaned up in the background.

A pixel's partition holds up to millions of items (15+ days of markers, every visitor, every
day), far more than one API call can delete. So deleting is one transaction that removes the pixel
item and writes a `PixelDeletionItem` in its place; from then on the pixel is gone for intake,
the API, the aggregator (its condition check on the pixel item fails, so nothing is counted into
the partition again) and the publisher. A clean-up request on `CLEANUP_QUEUE_URL` then has the
PixelCleanupFunction delete the rest, page by page, within a time budget per invocation: each
invocation starts again from the top of the partition (what it deleted is gone), so a crash or a
redelivery simply resumes, and when it runs out of time it queues the request once more. The
deletion item goes last; until it is gone the pixel id cannot be set up again (409).

The request message, version 1: `{"v": 1, "pixel_id": "<digits>"}`.
"""

import json
from collections.abc import Callable
from typing import NamedTuple

from pynamodb.exceptions import DeleteError

from pixel_core.config import settings
from pixel_core.models import (
    PixelDeletionItem,
    PixelItem,
    TableItem,
    find,
    is_condition_failure,
    pixel_partition,
)
from pixel_core.observability import logger
from pixel_core.queues import sqs_client

FORMAT_VERSION = 1
PAGE_SIZE = 1_000  # keys read per Query page; deleted 25 a request (BatchWriteItem's limit)


class InvalidCleanupRequest(ValueError):
    """A message the clean-up cannot read."""


class CleanupRequest(NamedTuple):
    pixel_id: int

    def to_message(self) -> str:
        return json.dumps({"v": FORMAT_VERSION, "pixel_id": str(self.pixel_id)}, separators=(",", ":"))

    @classmethod
    def from_message(cls, body: str) -> "CleanupRequest":
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            raise InvalidCleanupRequest("not JSON") from None
        pixel_id = (
            data.get("pixel_id") if isinstance(data, dict) and data.get("v") == FORMAT_VERSION else None
        )
        if (
            not isinstance(pixel_id, str)
            or not pixel_id.isascii()
            or not pixel_id.isdigit()
            or len(pixel_id) > 20
        ):
            raise InvalidCleanupRequest("not a version 1 clean-up request")
        return cls(int(pixel_id))


def request_cleanup(pixel_id: int) -> None:
    sqs_client().send_message(
        QueueUrl=settings.cleanup_queue_url, MessageBody=CleanupRequest(pixel_id).to_message()
    )


class CleanupOutcome(NamedTuple):
    """What one run of the clean-up did: items deleted, and whether the partition is empty."""

    deleted: int = 0
    done: bool = False


def clean_up(request: CleanupRequest, *, time_left: Callable[[], bool]) -> CleanupOutcome:
    """Deletes the deleted pixel's items while `time_left()`; `done` once the partition is empty."""
    deletion_key = PixelDeletionItem.key(request.pixel_id)
    if find(PixelDeletionItem, deletion_key, consistent=True) is None:
        return CleanupOutcome(done=True)  # finished before (a redelivered request), or never deleted
    if find(PixelItem, PixelItem.key(request.pixel_id), consistent=True) is not None:
        # Cannot happen while the deletion item exists (set-up refuses): never delete a live pixel.
        logger.error("Clean-up refused: the pixel exists", extra={"pixel_id": request.pixel_id})
        return CleanupOutcome(done=True)
    deleted = 0
    while time_left():
        page = list(
            TableItem.query(
                pixel_partition(request.pixel_id),
                consistent_read=True,
                limit=PAGE_SIZE,
                attributes_to_get=["pk", "sk", "item_type"],
            )
        )
        rest = [item for item in page if item.sk != deletion_key[1]]
        if not rest:
            try:
                PixelDeletionItem(*deletion_key).delete(condition=PixelDeletionItem.pk.exists())
            except DeleteError as error:
                if not is_condition_failure(error):
                    raise  # else a concurrent clean-up of the same pixel finished first
            return CleanupOutcome(deleted, done=True)
        with TableItem.batch_write() as batch:
            for item in rest:
                batch.delete(item)
        deleted += len(rest)
    return CleanupOutcome(deleted)
