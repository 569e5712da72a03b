"""Deleting a pixel answers at once, and its partition is cleaned up in the background, resumably.

Runs the real clean-up function behind its queue (moto), as the SQS event source would.
"""

import itertools
import time
import uuid

import pytest

from devtools.functions import load_handler
from devtools.sqs_event_source import LambdaContext
from pixel_core import auth, cleanup
from pixel_core.auth import Principal
from pixel_core.cleanup import CleanupRequest, InvalidCleanupRequest, clean_up
from pixel_core.clock import utc_now
from pixel_core.counters import count_events
from pixel_core.errors import Conflict, PixelNotFound
from pixel_core.events import PixelEvent
from pixel_core.models import (
    MARKER_TTL,
    DayItem,
    EventMarkerItem,
    PixelDeletionItem,
    PixelItem,
    TableItem,
    VisitorItem,
    find,
    pixel_partition,
)
from pixel_core.pixel_domains import add_domain
from pixel_core.pixels import create_pixel, delete_pixel, pixel_for

TENANT = "tenant-d"
PRINCIPAL = Principal(app_id="test", tenant_ids=frozenset({TENANT, "tenant-e"}))
_pixel_numbers = itertools.count(700)


@pytest.fixture
def tenant(table):
    auth.create_tenant(TENANT)
    auth.create_tenant("tenant-e")
    return TENANT


def busy_pixel(items: int) -> PixelItem:
    """A pixel with `items` event markers, visitors and days in its partition, written in bulk."""
    pixel = create_pixel(PRINCIPAL, tenant_id=TENANT, pixel_id=next(_pixel_numbers), name=None)
    add_domain(PRINCIPAL, pixel.number, "shop.example.com")
    partition = pixel_partition(pixel.number)
    with TableItem.batch_write() as batch:
        for n in range(items):
            kind = n % 3
            if kind == 0:
                batch.save(EventMarkerItem(partition, f"EVENT#{n}", expires_at=MARKER_TTL))
            elif kind == 1:
                batch.save(VisitorItem(partition, f"VISITOR#{n:032x}"))
            else:
                batch.save(DayItem(partition, f"DAY#{n}", pageviews=1, visitors=1))
    return pixel


def partition_size(pixel_id: int) -> int:
    return sum(
        1 for _ in TableItem.query(pixel_partition(pixel_id), attributes_to_get=["pk", "sk", "item_type"])
    )


def event_of(pixel: PixelItem) -> PixelEvent:
    return PixelEvent(
        event_id=str(uuid.uuid4()),
        event_name="PageView",
        pixel_id=pixel.number,
        tenant_id=pixel.tenant_id,
        event_time=int(time.time()),
        received_at=time.time(),
        domain="shop.example.com",
        visitor_md5="1" * 32,
        incarnation=pixel.incarnation,
    )


@pytest.mark.slow
@pytest.mark.dynamodb_local
@pytest.mark.timeout(1200)  # DynamoDB Local takes about a millisecond an item: a hang guard, not a target
def test_a_pixel_with_100000_items_is_deleted_at_once_and_cleaned_up_completely(
    local_table, cleanup, monkeypatch
):
    # Given a busy pixel in DynamoDB Local (moto reads a whole partition per page: far too slow
    # here): 100,000 items in its partition besides the pixel and its domain
    auth.create_tenant(TENANT)
    started = time.monotonic()
    pixel = busy_pixel(100_000)
    print(f"100,000 items written in {time.monotonic() - started:.1f} s")
    queued_event = event_of(pixel)
    # When it is deleted
    delete_pixel(PRINCIPAL, pixel.number)
    # Then it is gone at once, for the API and for counting, before any clean-up ran
    with pytest.raises(PixelNotFound):
        pixel_for(PRINCIPAL, pixel.number)
    assert count_events([queued_event]).orphaned == 1
    # And the clean-up, given little time per invocation, resumes invocation after invocation
    monkeypatch.setattr(cleanup_app(), "TIME_MARGIN_MS", 59_000)  # of its 60 s: about 1 s an invocation
    started = time.monotonic()
    invocations = cleanup()
    print(f"cleaned up in {invocations} invocations, {time.monotonic() - started:.1f} s")
    assert invocations > 1
    # Until nothing of the pixel is left, its deletion item included
    assert partition_size(pixel.number) == 0
    assert find(PixelDeletionItem, PixelDeletionItem.key(pixel.number)) is None


def cleanup_app():
    import sys

    return sys.modules["PixelCleanupFunction_app"]


def test_the_pixel_id_cannot_be_set_up_again_until_the_clean_up_finished_then_it_can(tenant, cleanup):
    pixel = busy_pixel(30)
    delete_pixel(PRINCIPAL, pixel.number)
    with pytest.raises(Conflict, match="being deleted"):
        create_pixel(PRINCIPAL, tenant_id="tenant-e", pixel_id=pixel.number, name=None)
    cleanup()
    again = create_pixel(PRINCIPAL, tenant_id="tenant-e", pixel_id=pixel.number, name=None)
    # The new pixel starts empty: nothing of the old one is read as its data
    assert again.incarnation != pixel.incarnation
    assert [item.sk for item in TableItem.query(pixel_partition(pixel.number))] == ["PIXEL"]


def test_counts_written_while_the_clean_up_runs_do_not_resurrect_the_old_pixel(tenant, cleanup):
    # Given a deleted pixel whose clean-up has not run yet, and events of it still queued
    pixel = busy_pixel(10)
    delete_pixel(PRINCIPAL, pixel.number)
    late = [event_of(pixel) for _ in range(5)]
    # When the aggregator counts them, before and after the clean-up
    before = count_events(late[:3])
    cleanup()
    after = count_events(late[3:])
    # Then nothing was written into the partition: it stays empty
    assert (before.orphaned, after.orphaned, before.counted + after.counted) == (3, 2, 0)
    assert partition_size(pixel.number) == 0


def test_a_clean_up_that_crashed_half_way_resumes_on_redelivery(tenant, monkeypatch):
    pixel = busy_pixel(3_000)
    delete_pixel(PRINCIPAL, pixel.number)
    request = CleanupRequest(pixel.number)
    # Given a first attempt that dies after two pages
    pages = iter([True, True])

    def crash_after_two_pages() -> bool:
        if next(pages, None) is None:
            raise RuntimeError("container died")
        return True

    with pytest.raises(RuntimeError):
        clean_up(request, time_left=crash_after_two_pages)
    assert 0 < partition_size(pixel.number) < 3_000
    # When the request comes back, it finishes the job
    assert clean_up(request, time_left=lambda: True).done
    assert partition_size(pixel.number) == 0


def test_a_clean_up_request_for_a_pixel_that_was_not_deleted_deletes_nothing(tenant):
    pixel = busy_pixel(20)
    outcome = clean_up(CleanupRequest(pixel.number), time_left=lambda: True)
    assert (outcome.done, outcome.deleted) == (True, 0)
    assert partition_size(pixel.number) == 22  # its items, its domain and the pixel itself


def test_a_clean_up_never_deletes_a_pixel_that_exists_even_if_a_deletion_item_does(tenant):
    pixel = busy_pixel(5)
    PixelDeletionItem(*PixelDeletionItem.key(pixel.number), tenant_id=TENANT, requested_at=utc_now()).save()
    outcome = clean_up(CleanupRequest(pixel.number), time_left=lambda: True)
    assert (outcome.done, outcome.deleted) == (True, 0)
    assert find(PixelItem, PixelItem.key(pixel.number)) is not None


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "{}",
        '{"v": 2, "pixel_id": "1"}',
        '{"v": 1, "pixel_id": 1}',
        '{"v": 1, "pixel_id": "1\\n"}',
    ],
)
def test_unreadable_clean_up_requests_are_refused(body):
    with pytest.raises(InvalidCleanupRequest):
        CleanupRequest.from_message(body)


def test_an_unreadable_request_is_a_batch_item_failure_and_the_rest_is_cleaned(tenant, sqs, aws):
    pixel = busy_pixel(10)
    delete_pixel(PRINCIPAL, pixel.number)
    handler = load_handler("functions/pixel_cleanup", "app.handler", module_alias="PixelCleanupFunction_app")
    records = [
        {"messageId": "bad", "body": "not json", "attributes": {}, "messageAttributes": {}},
        {"messageId": "good", "body": CleanupRequest(pixel.number).to_message(), "attributes": {}},
    ]
    for record in records:
        record.update(
            eventSource="aws:sqs", receiptHandle=record["messageId"], md5OfBody="", awsRegion="us-east-1"
        )
    answer = handler({"Records": records}, LambdaContext.for_invocation("cleanup-test", timeout_seconds=60))
    assert answer == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert partition_size(pixel.number) == 0


def test_deleting_queues_the_clean_up_first_so_a_failed_deletion_leaves_nothing_to_clean(tenant, monkeypatch):
    pixel = busy_pixel(5)
    sent: list[int] = []
    monkeypatch.setattr("pixel_core.pixels.request_cleanup", sent.append)
    delete_pixel(PRINCIPAL, pixel.number)
    assert sent == [pixel.number]
    assert cleanup.CleanupRequest(pixel.number).to_message() == f'{{"v":1,"pixel_id":"{pixel.number}"}}'
