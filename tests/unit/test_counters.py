"""The aggregator's counting is exact under at-least-once delivery.

Runs against moto and Amazon's DynamoDB Local (the `table` fixture).
"""

import itertools
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixel_core import counters, models
from pixel_core.auth import Principal
from pixel_core.clock import utc_now
from pixel_core.counters import CountingFailed, count_events, events_to_forward
from pixel_core.events import PixelEvent
from pixel_core.models import (
    MARKER_TTL,
    DayDomainItem,
    DayItem,
    EventMarkerItem,
    PixelItem,
    PublishedMarkerItem,
    TableItem,
    TotalsItem,
    TransactionMismatch,
    VisitorDayItem,
    VisitorItem,
    pixel_partition,
)
from pixel_core.stats import DayRange, pixel_stats
from tests.support.faults import (
    Script,
    dynamodb_client,
    dynamodb_throttling,
    max_attempts,
    transaction_cancelled,
)

DAY_1 = 1_795_500_000  # 2026-11-24T01:20:00Z
DAY_2 = DAY_1 + 86_400
_pixel_numbers = itertools.count(10_000)


_incarnations: dict[int, str | None] = {}


def new_pixel(tenant_id: str = "tenant") -> int:
    pixel_id = next(_pixel_numbers)
    pixel = PixelItem.new(pixel_id, tenant_id, created_at=utc_now())
    pixel.save()
    _incarnations[pixel_id] = pixel.incarnation
    return pixel_id


def event(
    pixel_id: int,
    *,
    when: int = DAY_1,
    domain: str = "a.example",
    md5: str | None = None,
    dropped=None,
    event_id: str | None = None,
    tenant_id: str = "tenant",
):
    """An event as intake would queue it for the pixel as it is now (owner and incarnation)."""
    return PixelEvent(
        event_id=event_id or str(uuid.uuid4()),
        event_name="PageView",
        pixel_id=pixel_id,
        tenant_id=tenant_id,
        event_time=when,
        received_at=round(time.time(), 3),  # just accepted: far from too old to count
        domain=domain,
        visitor_md5=md5,
        dropped=dropped,
        incarnation=_incarnations.get(pixel_id),
    )


def visitor(n: int) -> str:
    return f"{n:032x}"


def expected_counters(events: list[PixelEvent]) -> dict[str, Any]:
    """What the counters must say: computed from the distinct events, independently of the code."""
    unique = {e.event_id: e for e in events}.values()
    counted = [e for e in unique if e.dropped is None]
    snapshot: dict[str, Any] = {
        "received": len(counted),
        "dropped": sum(1 for e in unique if e.dropped),
        "days": defaultdict(lambda: {"pageviews": 0, "visitors": set()}),
        "domains": Counter(),
        "visitors": set(),
    }
    for e in counted:
        snapshot["days"][e.day]["pageviews"] += 1
        snapshot["domains"][(e.day, e.domain)] += 1
        if e.visitor_md5:
            snapshot["days"][e.day]["visitors"].add(e.visitor_md5)
            snapshot["visitors"].add(e.visitor_md5)
    snapshot["days"] = {day: (v["pageviews"], len(v["visitors"])) for day, v in snapshot["days"].items()}
    return snapshot


def stored_counters(pixel_id: int) -> dict[str, Any]:
    snapshot: dict[str, Any] = {
        "received": 0,
        "dropped": 0,
        "days": {},
        "domains": Counter(),
        "visitors": set(),
    }
    for item in TableItem.query(pixel_partition(pixel_id)):
        if isinstance(item, TotalsItem):
            snapshot["received"], snapshot["dropped"] = int(item.events_received), int(item.events_dropped)
        elif isinstance(item, DayItem):
            snapshot["days"][item.sk[4:]] = (int(item.pageviews), int(item.visitors))
        elif isinstance(item, DayDomainItem):
            snapshot["domains"][(item.sk[4:14], item.domain)] = int(item.pageviews)
        elif isinstance(item, VisitorItem):
            snapshot["visitors"].add(item.sk.split("#")[1])
    return snapshot


def mixed_batch(pixel_id: int) -> list[PixelEvent]:
    return [
        event(pixel_id, md5=visitor(1)),
        event(pixel_id, md5=visitor(1), domain="b.example"),
        event(pixel_id, md5=visitor(2)),
        event(pixel_id),
        event(pixel_id, when=DAY_2, md5=visitor(1)),
        event(pixel_id, dropped="domain x is not attached"),
    ]


def test_a_batch_is_counted_into_totals_days_domains_and_visitors(table):
    pixel_id = new_pixel()
    batch = mixed_batch(pixel_id)
    outcome = count_events(batch)
    assert outcome.counted == 6
    stored = stored_counters(pixel_id)
    assert stored == expected_counters(batch)
    assert stored["received"] == 5
    assert stored["dropped"] == 1
    assert stored["days"] == {"2026-11-24": (4, 2), "2026-11-25": (1, 1)}
    totals = TotalsItem.get(*TotalsItem.key(pixel_id))
    assert totals.last_received_at == max(e.received_at for e in batch if e.dropped is None)


def test_the_same_batch_delivered_three_times_counts_once(table):
    pixel_id = new_pixel()
    batch = mixed_batch(pixel_id)
    outcomes = [count_events(batch) for _ in range(3)]
    assert [o.counted for o in outcomes] == [6, 0, 0]
    assert [o.duplicates for o in outcomes] == [0, 6, 6]
    assert stored_counters(pixel_id) == expected_counters(batch)


def test_a_message_repeated_inside_one_batch_counts_once(table):
    pixel_id = new_pixel()
    first, second = event(pixel_id, md5=visitor(7)), event(pixel_id)
    outcome = count_events([first, second, first, first, second])
    assert outcome.counted == 2
    assert outcome.duplicates == 3
    assert stored_counters(pixel_id) == expected_counters([first, second])


def test_visitor_seen_again_in_a_later_batch_is_not_a_new_visitor_that_day(table):
    pixel_id = new_pixel()
    count_events([event(pixel_id, md5=visitor(1))])
    count_events([event(pixel_id, md5=visitor(1)), event(pixel_id, md5=visitor(2))])
    assert stored_counters(pixel_id)["days"] == {"2026-11-24": (3, 2)}
    assert stored_counters(pixel_id)["visitors"] == {visitor(1), visitor(2)}


def test_a_crash_after_the_commit_and_before_the_acknowledgement_counts_nothing_twice(table, monkeypatch):
    # Given a transaction that commits and then "crashes" before returning
    pixel_id = new_pixel()
    batch = mixed_batch(pixel_id)
    real_transaction = models.transaction

    @contextmanager
    def commit_then_crash():
        with real_transaction() as tx:
            yield tx
        raise RuntimeError("container died after the commit")

    monkeypatch.setattr(counters, "transaction", commit_then_crash)
    with pytest.raises(RuntimeError):
        count_events(batch)
    # When the batch is redelivered to a healthy aggregator
    monkeypatch.setattr(counters, "transaction", real_transaction)
    redelivered = count_events(batch)
    # Then nothing is counted twice and nothing is lost
    assert redelivered.counted == 0
    assert stored_counters(pixel_id) == expected_counters(batch)


def conflict_on_last_item(count: int) -> list[str | None]:
    return [None] * (count - 1) + ["TransactionConflict"]


def throttled_everywhere(count: int) -> list[str | None]:
    return ["ThrottlingError"] * count


THROTTLED = dynamodb_throttling("ThrottlingException")


def test_conflicts_and_throttling_on_the_first_attempts_are_retried_and_count_once(table, inject):
    # Given DynamoDB cancelling one transaction for a conflict, throttling every attempt botocore
    # makes of the next, and cancelling the third for throttled items
    pixel_id = new_pixel()
    batch = mixed_batch(pixel_id)
    client = dynamodb_client()
    script = Script(
        [
            transaction_cancelled(conflict_on_last_item),
            *[THROTTLED] * max_attempts(client),
            transaction_cancelled(throttled_everywhere),
        ]
    )
    fault = inject(client, "TransactWriteItems", script)
    # When the batch is counted
    sleeps: list[float] = []
    outcome = count_events(batch, sleep=sleeps.append)
    # Then each of the three failures was retried after a pause, and the counts are exact
    assert fault.attempts == ["TransactWriteItems"] * (max_attempts(client) + 3)
    assert len(sleeps) == 3
    assert all(0 < pause <= 2.0 for pause in sleeps)
    assert outcome.counted == 6
    assert outcome.transactions == 1
    assert stored_counters(pixel_id) == expected_counters(batch)


def test_retries_exhausted_fail_the_batch_without_writing_and_a_redelivery_counts_it_once(table, inject):
    pixel_id = new_pixel()
    batch = mixed_batch(pixel_id)
    fault = inject(dynamodb_client(), "TransactWriteItems", THROTTLED)
    with pytest.raises(CountingFailed, match="ThrottlingException"):
        count_events(batch, sleep=lambda _pause: None)
    assert stored_counters(pixel_id)["received"] == 0
    fault.lift()
    count_events(batch)
    assert stored_counters(pixel_id) == expected_counters(batch)


def test_cancellation_reasons_that_do_not_fit_the_request_fail_loudly_instead_of_guessing(table, inject):
    # Given DynamoDB answering with one reason fewer than the items sent
    pixel_id = new_pixel()
    inject(
        dynamodb_client(),
        "TransactWriteItems",
        transaction_cancelled(lambda n: ["ConditionalCheckFailed"] * (n - 1)),
    )
    # Then counting refuses to map them to items, and writes nothing
    with pytest.raises(TransactionMismatch):
        count_events(mixed_batch(pixel_id), sleep=lambda _pause: None)
    assert stored_counters(pixel_id)["received"] == 0


def test_items_added_in_any_order_map_their_cancellation_reasons_back_to_the_right_item(table, monkeypatch):
    # Given the writes of a batch in reverse order (counters first, markers last), one event
    # counted before and one visitor seen earlier that day
    pixel_id = new_pixel()
    seen, counted_before = event(pixel_id, md5=visitor(1)), event(pixel_id, md5=visitor(2))
    count_events([seen, counted_before])
    batch = [counted_before, event(pixel_id, md5=visitor(1)), event(pixel_id, md5=visitor(3))]
    real_writes = counters._writes
    monkeypatch.setattr(counters, "_writes", lambda *args: real_writes(*args)[::-1])
    monkeypatch.setattr(counters, "_existing_visitor_days", lambda _events: set())  # learn by conditions
    # When it is counted
    outcome = count_events(batch)
    # Then the failed conditions were read back to the marker and the visitor-day they concern
    assert (outcome.counted, outcome.duplicates) == (2, 1)
    assert stored_counters(pixel_id) == expected_counters([seen, counted_before, *batch[1:]])


def test_events_of_a_deleted_pixel_are_discarded_without_writing(table):
    gone = next(_pixel_numbers)
    alive = new_pixel()
    outcome = count_events([event(gone, md5=visitor(1)), event(alive)])
    assert outcome.orphaned == 1
    assert outcome.counted == 1
    assert list(TableItem.query(pixel_partition(gone))) == []
    assert stored_counters(alive)["received"] == 1


def test_a_large_batch_is_split_into_transactions_of_at_most_100_items(table, monkeypatch):
    # Given 250 events with many distinct visitors and domains over two pixels
    pixels = [new_pixel(), new_pixel()]
    batch = [
        event(pixels[n % 2], md5=visitor(n % 90), domain=f"d{n % 30}.example", when=DAY_1 + (n % 2) * 86_400)
        for n in range(250)
    ]
    sizes: list[int] = []
    real_transaction = models.transaction

    @contextmanager
    def measured():
        with real_transaction() as tx:
            yield tx
            sizes.append(len(tx.items))

    monkeypatch.setattr(counters, "transaction", measured)
    outcome = count_events(batch)
    # Then every transaction fits DynamoDB's limit, and the counters are exact
    assert outcome.counted == 250
    assert len(sizes) > 1
    assert max(sizes) <= 100
    for pixel_id in pixels:
        assert stored_counters(pixel_id) == expected_counters([e for e in batch if e.pixel_id == pixel_id])


def test_markers_carry_a_ttl_past_the_redelivery_window(table):
    pixel_id = new_pixel()
    one = event(pixel_id)
    count_events([one])
    marker = EventMarkerItem.get(*EventMarkerItem.key(pixel_id, one.event_id))
    assert marker.expires_at is not None
    assert marker.expires_at - utc_now() > models.REDELIVERY_WINDOW


def test_a_message_redriven_from_the_dead_letter_queue_weeks_later_still_counts_once(table):
    # Given an event counted when it arrived
    pixel_id = new_pixel()
    one = event(pixel_id, md5=visitor(1))
    count_events([one], now=one.received_at + 60)
    # When its message comes back at the end of the redelivery window (queue, DLQ, redrive)
    late = one.received_at + models.REDELIVERY_WINDOW.total_seconds()
    again = count_events([one], now=late)
    # Then its marker still exists and it is not counted again
    assert (again.counted, again.duplicates, again.too_old) == (0, 1, 0)
    assert stored_counters(pixel_id) == expected_counters([one])


def test_a_message_back_after_its_marker_may_have_expired_is_refused_as_too_old_not_counted_again(table):
    pixel_id = new_pixel()
    one = event(pixel_id)
    count_events([one], now=one.received_at + 60)
    outcome = count_events([one], now=one.received_at + models.MARKER_TTL.total_seconds())
    assert (outcome.counted, outcome.duplicates, outcome.too_old) == (0, 0, 1)
    assert stored_counters(pixel_id) == expected_counters([one])


def test_stats_reads_days_domains_and_distinct_visitors_over_a_range(table):
    pixel_id = new_pixel()
    count_events(mixed_batch(pixel_id))
    principal = Principal(app_id="test", tenant_ids=frozenset({"tenant"}))
    answer = pixel_stats(principal, pixel_id, DayRange.parse("2026-11-01", "2026-11-30"))
    assert answer["totals"] == {"pageviews": 5, "visitors": 2}
    assert answer["days"] == [
        {
            "date": "2026-11-24",
            "pageviews": 4,
            "visitors": 2,
            "domains": [{"domain": "a.example", "pageviews": 3}, {"domain": "b.example", "pageviews": 1}],
        },
        {
            "date": "2026-11-25",
            "pageviews": 1,
            "visitors": 1,
            "domains": [{"domain": "a.example", "pageviews": 1}],
        },
    ]
    only_second_day = pixel_stats(principal, pixel_id, DayRange.parse("2026-11-25", "2026-11-25"))
    assert only_second_day["totals"] == {"pageviews": 1, "visitors": 1}


# Delivery schedules: every event arrives at least once, in any grouping, some of them repeatedly.
events_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from(["a.example", "b.example", "c.example"]),
        st.integers(0, 1),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@pytest.mark.parametrize(
    "backend", ["moto", pytest.param("dynamodb_local", marks=pytest.mark.dynamodb_local)]
)
def test_any_delivery_schedule_gives_exact_counters(backend, request):
    request.getfixturevalue("moto_table" if backend == "moto" else "local_table")

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(specs=events_strategy, data=st.data())
    def property(specs, data):
        # Given events for a fresh pixel: visitor 0 is anonymous, a few are dropped
        pixel_id = new_pixel()
        events = [
            event(
                pixel_id,
                md5=visitor(v) if v else None,
                domain=d,
                when=DAY_1 + day * 86_400,
                dropped="x" if drop and v == 5 else None,
            )
            for v, d, day, drop in specs
        ]
        # When they are delivered in random batches, each at least once, some again, in any order
        deliveries = events + data.draw(st.lists(st.sampled_from(events), max_size=len(events)))
        deliveries = data.draw(st.permutations(deliveries))
        cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(deliveries) - 1)), max_size=5)))
        batches = [
            deliveries[i:j] for i, j in itertools.pairwise([0, *cuts, len(deliveries)]) if deliveries[i:j]
        ]
        for batch in batches:
            count_events(batch)
        # Then the counters are those of the distinct events
        assert stored_counters(pixel_id) == expected_counters(events)
        assert sum(
            1 for item in TableItem.query(pixel_partition(pixel_id)) if isinstance(item, VisitorDayItem)
        ) == sum(visitors for _pageviews, visitors in expected_counters(events)["days"].values())

    property()


def test_the_same_event_id_sent_to_two_pixels_in_one_batch_is_counted_for_each(table):
    # Given one order id used by two pixels of two tenants (one may even reuse the other's ids)
    first, second = new_pixel("tenant"), new_pixel("other-tenant")
    batch = [event(first, event_id="order-42"), event(second, event_id="order-42", tenant_id="other-tenant")]
    # When both come in one batch
    outcome = count_events(batch)
    # Then each pixel counts its own
    assert (outcome.counted, outcome.duplicates) == (2, 0)
    assert stored_counters(first)["received"] == stored_counters(second)["received"] == 1


def test_events_of_a_pixel_deleted_and_set_up_again_are_orphaned_not_counted_into_the_new_one(table):
    # Given events queued for pixel P, then P deleted and set up again by another tenant
    pixel_id = new_pixel("tenant-a")
    old_events = [event(pixel_id, md5=visitor(1), tenant_id="tenant-a") for _ in range(3)]
    PixelItem(*PixelItem.key(pixel_id)).delete()
    PixelItem.new(pixel_id, "tenant-b", created_at=utc_now()).save()
    _incarnations[pixel_id] = PixelItem.get(*PixelItem.key(pixel_id)).incarnation
    new_event = event(pixel_id, md5=visitor(2), tenant_id="tenant-b")
    # When the old events (redriven, say) and a new one are counted together
    outcome = count_events([*old_events, new_event])
    # Then only the new incarnation's event is counted; the others are orphaned
    assert (outcome.counted, outcome.orphaned) == (1, 3)
    assert stored_counters(pixel_id) == expected_counters([new_event])


def test_an_event_of_the_right_pixel_id_but_another_owner_is_orphaned(table):
    pixel_id = new_pixel("tenant-a")
    outcome = count_events([event(pixel_id, tenant_id="tenant-b")])
    assert (outcome.counted, outcome.orphaned) == (0, 1)
    assert stored_counters(pixel_id)["received"] == 0


def test_a_dropped_id_sent_again_and_accepted_is_received_and_a_drop_of_a_received_id_counts_nothing(table):
    # Given an event id dropped by a filter, then sent again once the filter allows it
    pixel_id = new_pixel()
    dropped = event(pixel_id, event_id="order-7", dropped="domain a.example is blocked by a domain filter")
    first = count_events([dropped])
    accepted = dropped._replace(dropped=None)
    second = count_events([accepted])
    # When the dropped message is redelivered, and the id is sent and dropped once more
    third = count_events([dropped, dropped._replace(received_at=dropped.received_at + 1)])
    # Then it was dropped once, received once (so it may be published), and nothing more
    assert (first.counted, second.counted, third.counted, third.duplicates) == (1, 1, 0, 2)
    assert second.counted_events == [accepted]
    stored = stored_counters(pixel_id)
    assert (stored["received"], stored["dropped"]) == (1, 1)


def test_a_batch_with_a_dropped_and_an_accepted_copy_of_one_id_counts_it_received(table):
    pixel_id = new_pixel()
    accepted = event(pixel_id, event_id="order-8")
    dropped = accepted._replace(dropped="receiving is turned off for pixel")
    outcome = count_events([dropped, accepted])
    assert (outcome.counted, outcome.duplicates) == (1, 1)
    assert (stored_counters(pixel_id)["received"], stored_counters(pixel_id)["dropped"]) == (1, 0)


def test_only_counted_events_are_forwarded_and_a_duplicate_only_while_it_is_not_yet_published(table):
    # Given a batch with a publishable event, an unpublishable one and a dropped one
    pixel_id = new_pixel()
    publishable = event(pixel_id)
    unpublishable = event(pixel_id)._replace(unpublishable="publishing is turned off")
    dropped = event(pixel_id, dropped="receiving is turned off for pixel")
    batch = [publishable, unpublishable, dropped]
    # When it is counted, then redelivered before and after the publisher has published it
    first = events_to_forward(count_events(batch))
    redelivered = events_to_forward(count_events(batch))
    PublishedMarkerItem(
        *PublishedMarkerItem.key(pixel_id, publishable.event_id), expires_at=MARKER_TTL
    ).save()
    after_publication = events_to_forward(count_events(batch))
    # Then only the publishable one goes on, again while unpublished, and never once published
    assert first == [publishable]
    assert redelivered == [publishable]
    assert after_publication == []


def test_a_dropped_id_then_accepted_is_forwarded_as_counted_so_published_never_exceeds_received(table):
    pixel_id = new_pixel()
    dropped = event(pixel_id, event_id="order-9", dropped="domain a.example is blocked by a domain filter")
    assert events_to_forward(count_events([dropped])) == []
    accepted = dropped._replace(dropped=None)
    outcome = count_events([accepted])
    assert (outcome.counted, outcome.duplicates) == (1, 0)
    assert events_to_forward(outcome) == [accepted]


def test_totals_are_indexed_beside_their_pixel_so_tenant_queries_read_them_with_one_query(
    table, app, gql, monkeypatch
):
    # Given a pixel of the app's tenant counted by the aggregator, and one whose totals were
    # written before they were indexed (no gsi1 keys)
    counted, legacy = new_pixel(app.tenant_id), new_pixel(app.tenant_id)
    count_events([event(counted, tenant_id=app.tenant_id), event(counted, tenant_id=app.tenant_id)])
    TotalsItem(*TotalsItem.key(legacy), events_received=7).save()
    keys_read: list[Any] = []
    real_batch_get = TotalsItem.batch_get

    def batch_get(keys: Any, **kwargs: Any) -> Any:
        keys_read.extend(keys)
        return real_batch_get(keys, **kwargs)

    monkeypatch.setattr(TotalsItem, "batch_get", batch_get)
    # When the tenant's connection statuses are read
    answer = gql(
        """query Q($tenantId: ID!) { tenantQueries(tenantId: $tenantId) { account { signalConfigs {
          connectionId connectionStatus { totalEventsReceived } } } } }""",
        {"tenantId": app.tenant_id},
        app.basic_header,
    )
    # Then both are exact, and only the unindexed one was read by key
    assert answer.errors is None, answer.errors
    received = {
        int(config["connectionId"]): config["connectionStatus"]["totalEventsReceived"]
        for config in answer.data["tenantQueries"]["account"]["signalConfigs"]
    }
    assert received == {counted: 2.0, legacy: 7.0}
    assert keys_read == [TotalsItem.key(legacy)]
    # And the index holds the counted pixel's totals under its tenant
    (indexed,) = [
        i for i in TableItem.tenant_pixels.query(f"TENANT#{app.tenant_id}") if isinstance(i, TotalsItem)
    ]
    assert indexed.pixel_number == counted
