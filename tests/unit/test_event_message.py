"""One definition of the event message: whatever intake accepts, the aggregator reads and counts.

Intake and the consumers share every limit and pattern (pixel_core/events.py); a property test
drives every input field of an event to and past its limits and follows each accepted event
through the real queue (moto) and the real counting.
"""

import itertools
import json
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixel_core import events
from pixel_core.auth import Principal
from pixel_core.clock import utc_now
from pixel_core.counters import count_events
from pixel_core.errors import BadRequest
from pixel_core.events import InvalidEventMessage, PixelEvent
from pixel_core.intake import Client, TrackRequest, accept_event
from pixel_core.models import PixelItem, TotalsItem

PIXEL = 777
TENANT = "tenant-a"
PRINCIPAL = Principal(app_id="test", tenant_ids=frozenset({TENANT}))
ATTACHED = "shop.example.com"
_pixel_numbers = itertools.count(1_000)


def label(size: int) -> st.SearchStrategy[str]:
    return st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=size, max_size=size)


# Host names up to and past DNS's 253 characters, attached, subdomains of the attached one, or not.
long_domains = st.builds(
    lambda labels: ".".join([*labels, "com"]),
    st.lists(st.integers(1, 63).flatmap(label), min_size=1, max_size=5),
)
domains = st.one_of(
    st.just(ATTACHED), st.builds(lambda sub: f"{sub}.{ATTACHED}", label(8)), long_domains, st.just("")
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=40,
)
track_requests = st.builds(
    TrackRequest,
    pixel_id=st.just(PIXEL),
    event_name=st.one_of(
        st.just("PageView"), st.text(min_size=1, max_size=events.MAX_EVENT_NAME_LENGTH + 2), label(128)
    ),
    domain=domains,
    url=st.one_of(
        st.none(),
        st.builds(lambda host, path: f"https://{host}/{path}", domains, st.text(max_size=2100)),
    ),
    email=st.one_of(st.none(), st.emails(), st.text(max_size=300)),
    md5=st.one_of(st.none(), st.text("0123456789abcdefABCDEF\n ", min_size=30, max_size=34)),
    event_id=st.one_of(
        st.none(),
        st.text("abcXYZ019._:-", min_size=1, max_size=129),
        st.builds(lambda value: value + "\n", st.text("abc", min_size=1, max_size=10)),
    ),
    event_time=st.one_of(st.none(), st.integers(int(time.time()) - 100 * 86_400, int(time.time()) + 7200)),
    custom_data=st.one_of(st.none(), st.dictionaries(st.text(max_size=20), json_values, max_size=6)),
)
clients = st.builds(
    Client,
    ip=st.one_of(st.none(), st.just("2001:0db8:85a3:0000:0000:8a2e:0370:7334"), st.just("203.0.113.7")),
    user_agent=st.one_of(st.none(), st.text(max_size=1200)),
)


@pytest.fixture
def pixel(moto_table):
    PixelItem.new(PIXEL, TENANT, created_at=utc_now(), domains={ATTACHED}).save()
    return PIXEL


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=track_requests, client=clients)
def test_every_event_intake_accepts_round_trips_through_the_queue_and_is_counted(
    moto_table, queued_messages, request, client
):
    # Given an event with every field drawn up to and past its limits, for a pixel of its own (the
    # examples share one table, and may draw the same event id)
    pixel_id = next(_pixel_numbers)
    PixelItem.new(pixel_id, TENANT, created_at=utc_now(), domains={ATTACHED}).save()
    # When intake is asked to accept it
    try:
        accepted = accept_event(PRINCIPAL, request._replace(pixel_id=pixel_id), client)
    except BadRequest:
        assert queued_messages() == []  # refused: nothing queued
        return
    # Then the message on the queue reads back as the very event intake built, and is counted once
    (body,) = queued_messages()
    message = PixelEvent.from_message(body)
    assert message == accepted.event
    assert count_events([message]).counted == 1
    totals = TotalsItem.get(*TotalsItem.key(pixel_id))
    if accepted.event.dropped is None:
        assert (totals.events_received, totals.events_dropped) == (1, 0)
    else:
        assert (totals.events_received, totals.events_dropped) == (0, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", "order-42\n"),
        ("visitor_md5", "0" * 32 + "\n"),
        ("email_sha256", "a" * 64 + "\n"),
    ],
)
def test_patterns_match_the_whole_value_so_a_trailing_newline_is_refused(field, value):
    event = PixelEvent("e1", "PageView", 1, "t", 1, 1.0)
    body = json.loads(event.to_message())
    body[field] = value
    with pytest.raises(InvalidEventMessage, match=field):
        PixelEvent.from_message(json.dumps(body))


def test_intake_refuses_a_trailing_newline_in_an_event_id(pixel, queued_messages):
    request = TrackRequest(pixel_id=PIXEL, event_name="Purchase", domain=ATTACHED, event_id="order-42\n")
    with pytest.raises(BadRequest, match="Invalid eventId"):
        accept_event(PRINCIPAL, request, Client())
    assert queued_messages() == []


@pytest.mark.parametrize(
    "custom_data",
    [{"value": math.nan}, {"value": math.inf}, {"value": -math.inf}, {"note": "\ud800"}, {"\udfff": 1}],
    ids=["nan", "infinity", "minus-infinity", "lone-surrogate-value", "lone-surrogate-key"],
)
def test_custom_data_that_is_not_strict_json_is_a_400_at_intake(pixel, queued_messages, custom_data):
    request = TrackRequest(pixel_id=PIXEL, event_name="Purchase", domain=ATTACHED, custom_data=custom_data)
    with pytest.raises(BadRequest):
        accept_event(PRINCIPAL, request, Client())
    assert queued_messages() == []


def test_an_emoji_in_custom_data_is_strict_json_and_goes_through(pixel, queued_messages):
    request = TrackRequest(
        pixel_id=PIXEL, event_name="Purchase", domain=ATTACHED, custom_data={"note": "thanks \U0001f600"}
    )
    accepted = accept_event(PRINCIPAL, request, Client())
    (body,) = queued_messages()
    assert (
        PixelEvent.from_message(body).custom_data
        == {"note": "thanks \U0001f600"}
        == accepted.event.custom_data
    )


def test_an_event_name_at_intakes_limit_is_counted_not_dead_lettered(pixel, queued_messages):
    # The aggregator's parser once stopped at 64 characters while intake took 128.
    name = "E" * events.MAX_EVENT_NAME_LENGTH
    accept_event(PRINCIPAL, TrackRequest(pixel_id=PIXEL, event_name=name, domain=ATTACHED), Client())
    (body,) = queued_messages()
    assert count_events([PixelEvent.from_message(body)]).counted == 1


def test_a_drop_reason_for_the_longest_valid_domain_fits_the_message(pixel, queued_messages):
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "com"])
    assert len(longest) == 253  # DNS allows no longer name
    accepted = accept_event(
        PRINCIPAL, TrackRequest(pixel_id=PIXEL, event_name="PageView", domain=longest), Client()
    )
    assert accepted.event.dropped is not None
    assert longest in accepted.event.dropped
    (body,) = queued_messages()
    assert PixelEvent.from_message(body).dropped == accepted.event.dropped


def valid_message() -> dict[str, object]:
    return json.loads(PixelEvent("e1", "PageView", 1, "t", 1_700_000_000, 1_700_000_000.5).to_message())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: {**m, "v": 2}, "not a version 1 event message"),
        (lambda m: [m], "not a version 1 event message"),
        (lambda m: {**m, "event_name": ""}, "event_name: expected a string of 1-128 characters"),
        (lambda m: {**m, "event_name": "E" * 129}, "event_name: expected a string of 1-128 characters"),
        (lambda m: {**m, "tenant_id": 7}, "tenant_id: expected a string of 1-128 characters"),
        (lambda m: {**m, "pixel_id": 1}, "pixel_id: expected a string of digits"),
        (lambda m: {**m, "pixel_id": "12a"}, "pixel_id: expected a string of digits"),
        (lambda m: {**m, "pixel_id": "١٢"}, "pixel_id: expected a string of digits"),  # Arabic-Indic digits
        (lambda m: {**m, "pixel_id": "1" * 21}, "pixel_id: expected a string of digits"),
        (lambda m: {**m, "event_time": True}, "event_time: expected a Unix timestamp"),
        (lambda m: {**m, "event_time": "1700000000"}, "event_time: expected a Unix timestamp"),
        (lambda m: {**m, "event_time": -1}, "event_time: expected a Unix timestamp"),
        (lambda m: {**m, "received_at": 2.0**40}, "received_at: expected a Unix timestamp"),
        (lambda m: {**m, "domain": "d" * 254}, "domain: expected a string of 1-253 characters"),
        (lambda m: {**m, "custom_data": [1]}, "custom_data: expected an object"),
        (lambda m: {**m, "incarnation": "not-hex-digits!!"}, "incarnation: malformed"),
    ],
    ids=[
        "version-2",
        "not-an-object",
        "empty-event-name",
        "long-event-name",
        "tenant-not-a-string",
        "pixel-id-a-number",
        "pixel-id-not-digits",
        "pixel-id-non-ascii-digits",
        "pixel-id-21-digits",
        "event-time-a-bool",
        "event-time-a-string",
        "event-time-negative",
        "received-at-too-far",
        "domain-over-253",
        "custom-data-a-list",
        "bad-incarnation",
    ],
)
def test_a_message_the_aggregator_cannot_count_is_refused_naming_the_field_at_fault(change, reason):
    # Given a valid message (which reads back), changed in one field
    assert PixelEvent.from_message(json.dumps(valid_message())).event_id == "e1"
    body = json.dumps(change(valid_message()))
    # When it is read, Then it is refused with the reason
    with pytest.raises(InvalidEventMessage) as refused:
        PixelEvent.from_message(body)
    assert str(refused.value) == reason


def test_a_message_that_is_too_large_or_not_json_is_refused_before_it_is_read():
    with pytest.raises(InvalidEventMessage, match=r"^message too large$"):
        PixelEvent.from_message(json.dumps({**valid_message(), "user_agent": "x" * events.MAX_MESSAGE_BYTES}))
    with pytest.raises(InvalidEventMessage, match=r"^not JSON: Expecting value$"):
        PixelEvent.from_message("not json")


def test_an_event_whose_custom_data_is_not_strict_json_fails_its_check_before_any_message_is_made():
    valid = PixelEvent.from_message(json.dumps(valid_message()))
    assert valid.checked() == valid
    with pytest.raises(InvalidEventMessage, match="not strict JSON"):
        valid._replace(custom_data={"v": math.nan}).checked()
