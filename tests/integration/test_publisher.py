"""Publishing to Meta's Conversions API, against a real local HTTP server standing in for Meta."""

import dataclasses
import json
import logging
import time

import pytest

from devtools.fake_meta import Answer, FakeMeta
from pixel_core import config, publishing
from pixel_core.events import PixelEvent
from pixel_core.models import PixelItem, TotalsItem
from pixel_core.signal_configs import Connection, setup_pixel
from tests.conftest import CLIENT_IP, USER_AGENT

PIXEL = 18904456377094531
TOKEN = "EAAB-test-access-token-0123456789"
EMAIL = "john_smith@gmail.com"
EMAIL_SHA256 = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # Meta's own example
TRACK = "mutation T($event: TrackEventInput!) { track(event: $event) { code data message } }"
CAPIG_STATUS = """mutation S($id: ID!, $tenantId: ID!, $input: SignalConfigStatusInput!) {
  tenantMutations(tenantId: $tenantId) { signalMutations { updateSignalConfigCapiPublish(id: $id, input: $input) { success } } } }"""
EVENT_FILTER = """mutation F($tenantId: ID!, $input: UpdateEventFilterInput!) {
  tenantMutations(tenantId: $tenantId) { updateEventFilter(input: $input) { updatedFilter { id } } } }"""


@pytest.fixture
def meta(monkeypatch):
    with FakeMeta() as fake:
        monkeypatch.setattr(
            publishing, "settings", dataclasses.replace(config.settings, graph_api_base_url=fake.base_url)
        )
        yield fake


@pytest.fixture
def connected(app, table):
    connection = Connection(PIXEL, "2840127409433732", TOKEN, "633612748410ba6e902", "v14.0", None)
    return setup_pixel(app.tenant_id, connection)


@pytest.fixture
def instant_redelivery(aws, sqs):
    """Failed publish messages come back at once instead of after the visibility timeout."""
    sqs.set_queue_attributes(QueueUrl=aws.queue_urls["PublishQueue"], Attributes={"VisibilityTimeout": "0"})


def track(gql, app, **event):
    answer = gql(
        TRACK,
        {
            "event": {
                "pixelId": str(PIXEL),
                "eventName": "Purchase",
                "url": "https://shop.example.com/checkout",
                **event,
            }
        },
        app.basic_header,
    )
    assert answer.errors is None, answer.errors
    assert answer.data["track"]["code"] == 200, answer.data
    return answer.data["track"]["data"]["event_id"]


def totals():
    return TotalsItem.get(*TotalsItem.key(PIXEL))


def test_events_reach_meta_once_in_its_wire_format_and_are_counted_as_published(
    app, gql, connected, meta, aggregator, publisher
):
    # Given three tracked events, one with an e-mail and custom data
    ids = [
        track(gql, app, email=f"  {EMAIL.upper()} ", customData={"value": 42.5, "currency": "EUR"}),
        track(gql, app, eventName="PageView"),
        track(gql, app, eventName="AddToCart", eventId="cart-1"),
    ]
    # When the aggregator and the publisher have run
    aggregator()
    publisher()
    # Then Meta got one request for the pixel, with the token, each event once, as Meta specifies
    (request,) = meta.requests()
    assert (request.pixel_id, request.api_version, request.access_token, request.status) == (
        str(PIXEL),
        "v14.0",
        TOKEN,
        200,
    )
    sent = {event["event_id"]: event for event in request.body["data"]}
    assert set(sent) == set(ids)
    purchase = sent[ids[0]]
    assert purchase["event_name"] == "Purchase"
    assert purchase["action_source"] == "website"
    assert purchase["event_source_url"] == "https://shop.example.com/checkout"
    assert abs(purchase["event_time"] - time.time()) < 120
    assert purchase["user_data"] == {
        "em": [EMAIL_SHA256],
        "client_ip_address": CLIENT_IP,
        "client_user_agent": USER_AGENT,
    }
    assert purchase["custom_data"] == {"value": 42.5, "currency": "EUR"}
    assert "em" not in sent[ids[1]]["user_data"]
    assert "test_event_code" not in request.body
    assert (int(totals().events_published), int(totals().events_received)) == (3, 3)
    assert abs(float(totals().last_published_at) - time.time()) < 120


def test_a_redelivered_publish_batch_is_neither_sent_nor_counted_twice(app, gql, connected, meta, aws, sqs):
    event = PixelEvent(
        event_id="once",
        event_name="Lead",
        pixel_id=PIXEL,
        tenant_id=app.tenant_id,
        event_time=int(time.time()),
        received_at=time.time(),
        domain="example.com",
    )
    outcomes = [publishing.publish([event, event]) for _ in range(3)]
    assert [o.published for o in outcomes] == [1, 0, 0]
    assert [o.skipped for o in outcomes] == [0, 1, 1]
    assert len(meta.events()) == 1
    assert int(totals().events_published) == 1


def test_an_outage_loses_nothing_and_each_event_is_published_once_it_recovers(
    app, gql, connected, meta, aggregator, publisher, instant_redelivery, queued_messages
):
    # Given Meta answering 503 for a while (longer than one invocation's retries)
    meta.script(*[Answer.unavailable()] * (publishing.ATTEMPTS + 2))
    ids = {track(gql, app) for _ in range(4)}
    aggregator()
    # When the publisher keeps being invoked as SQS redelivers
    publisher()
    # Then after the outage every event arrived exactly once, and nothing waits in a dead-letter queue
    statuses = [request.status for request in meta.requests()]
    assert statuses[: publishing.ATTEMPTS + 2] == [503] * (publishing.ATTEMPTS + 2)
    assert statuses[-1] == 200
    delivered = [event["event_id"] for event in meta.events()]
    assert sorted(delivered) == sorted(ids)
    assert int(totals().events_published) == 4
    assert queued_messages("PublishDeadLetterQueue") == []


def test_an_invalid_token_answer_sets_api_error_code_and_disconnects_until_replaced(
    app, gql, connected, meta, aggregator, publisher, aws, sqs
):
    meta.always(Answer.invalid_token())
    track(gql, app)
    aggregator()
    publisher()
    pixel = PixelItem.get(*PixelItem.key(PIXEL))
    assert (pixel.api_error_code, pixel.token_rejected) == (190, True)
    assert int(totals().events_published) == 0
    # The event is not lost: it waits on the publish queue, as a new delayed message, for a new token
    attributes = sqs.get_queue_attributes(QueueUrl=aws.queue_urls["PublishQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert (
        int(attributes["ApproximateNumberOfMessagesDelayed"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        int(attributes["ApproximateNumberOfMessages"]),
    ) == (1, 0, 0)
    # And a replaced token reconnects the pixel
    setup_pixel(
        app.tenant_id,
        Connection(PIXEL, "2840127409433732", "EAAB-new-token", "633612748410ba6e902", "v14.0", None),
    )
    pixel = PixelItem.get(*PixelItem.key(PIXEL))
    assert pixel.attribute_values.get("api_error_code") is None
    assert pixel.token_rejected is False


def test_an_event_older_than_seven_days_is_not_sent_and_is_counted_as_expired(
    app, gql, connected, meta, aggregator, publisher
):
    track(gql, app, eventTime=int(time.time()) - 8 * 86_400)
    fresh = track(gql, app)
    aggregator()
    publisher()
    assert [event["event_id"] for event in meta.events()] == [fresh]
    assert (int(totals().events_published), int(totals().events_expired)) == (1, 1)


def test_publishing_off_or_an_event_filter_drop_sends_nothing_for_those_events(
    app, gql, connected, meta, aggregator, publisher, queued_messages
):
    gql(
        EVENT_FILTER,
        {"tenantId": app.tenant_id, "input": {"eventName": "Lead", "filterState": "DROP"}},
        app.basic_header,
    )
    track(gql, app, eventName="Lead")
    gql(CAPIG_STATUS, {"id": str(PIXEL), "tenantId": app.tenant_id, "input": {"status": 0}}, app.basic_header)
    track(gql, app, eventName="Purchase")
    aggregator()
    assert queued_messages("PublishQueue") == []
    publisher()
    assert meta.requests() == []
    assert (int(totals().events_received), int(totals().events_published)) == (2, 0)


def test_1001_events_for_one_pixel_go_out_in_two_requests(app, connected, meta):
    now = int(time.time())
    events = [
        PixelEvent(
            event_id=f"bulk-{n}",
            event_name="PageView",
            pixel_id=PIXEL,
            tenant_id=app.tenant_id,
            event_time=now,
            received_at=now,
            domain="example.com",
        )
        for n in range(1001)
    ]
    outcome = publishing.publish(events)
    assert outcome.published == 1001
    assert [len(request.body["data"]) for request in meta.requests()] == [1000, 1]
    assert int(totals().events_published) == 1001


def test_a_test_event_code_is_passed_through(app, connected, meta):
    PixelItem(*PixelItem.key(PIXEL)).update(actions=[PixelItem.test_event_code.set("TEST123")])
    event = PixelEvent(
        event_id="t1",
        event_name="Lead",
        pixel_id=PIXEL,
        tenant_id=app.tenant_id,
        event_time=int(time.time()),
        received_at=time.time(),
    )
    publishing.publish([event])
    (request,) = meta.requests()
    assert request.body["test_event_code"] == "TEST123"


def test_no_token_email_or_hashed_email_reaches_the_logs(
    app, gql, connected, meta, aggregator, publisher, caplog, capsys, json_logs
):
    # At the production log level, through a success and a refused token
    caplog.set_level(logging.INFO)
    track(gql, app, email=EMAIL)
    aggregator()
    publisher()
    meta.always(Answer.invalid_token())
    track(gql, app, email=EMAIL)
    aggregator()
    publisher()
    captured = capsys.readouterr()
    logged = caplog.text + captured.out + captured.err + json.dumps(json_logs())
    assert "Meta refused events" in logged  # the failure was logged...
    published = [record for record in json_logs() if record["message"] == "Batch published"]
    assert published
    assert all(record["correlation_id"] for record in published)
    for secret in (TOKEN, EMAIL, EMAIL_SHA256, "john_smith"):
        assert secret not in logged  # ...without any of these
