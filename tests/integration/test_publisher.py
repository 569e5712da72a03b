"""Publishing to Meta's Conversions API, against a real local HTTP server standing in for Meta."""

import dataclasses
import json
import logging
import math
import time
import types
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from devtools import iam_recorder
from devtools.fake_meta import Answer
from devtools.functions import load_handler
from devtools.sqs_event_source import SqsEventSource
from devtools.template import sqs_triggers
from pixel_core import publishing, queues, tokens
from pixel_core.events import MAX_EVENTS_PER_REQUEST, PixelEvent
from pixel_core.models import PixelItem, TableItem, TotalsItem, find
from pixel_core.signal_configs import Connection, setup_pixel
from tests.conftest import CLIENT_IP, USER_AGENT
from tests.support.documents import META_TOKEN
from tests.support.faults import (
    Script,
    _Raw,
    aws_json_error,
    dynamodb_client,
    dynamodb_throttling,
    max_attempts,
    transaction_cancelled,
)

PIXEL = 18904456377094531
EMAIL = "john_smith@gmail.com"
EMAIL_SHA256 = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # Meta's own example
TRACK = "mutation T($event: TrackEventInput!) { track(event: $event) { code data message } }"
CAPIG_STATUS = """mutation S($id: ID!, $tenantId: ID!, $input: SignalConfigStatusInput!) {
  tenantMutations(tenantId: $tenantId) { signalMutations { updateSignalConfigCapiPublish(id: $id, input: $input) { success } } } }"""
EVENT_FILTER = """mutation F($tenantId: ID!, $input: UpdateEventFilterInput!) {
  tenantMutations(tenantId: $tenantId) { updateEventFilter(input: $input) { updatedFilter { id } } } }"""


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
        META_TOKEN,
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
        incarnation=connected.incarnation,
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


@pytest.mark.slow
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
            incarnation=connected.incarnation,
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
        incarnation=connected.incarnation,
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
    for secret in (META_TOKEN, EMAIL, EMAIL_SHA256, "john_smith"):
        assert secret not in logged  # ...without any of these


# --- Failure paths: each event is isolated, nothing is lost, and no pixel floods its queue -------

OTHER_PIXEL = 18904456377094532
NEW_TOKEN = "EAAB-replacement-token-9876543210"
PUBLISHER = "CapiPublisherFunction"


def new_connection(pixel_id: int = PIXEL, token: str = NEW_TOKEN) -> Connection:
    return Connection(pixel_id, "2840127409433732", token, "633612748410ba6e902", "v14.0", None)


def forwarded_event(
    app, event_id: str, *, pixel_id: int = PIXEL, age_seconds: float = 0, **fields
) -> PixelEvent:
    """An event as the aggregator forwards it to the publish queue (for the pixel as it is now)."""
    now = time.time()
    pixel = find(PixelItem, PixelItem.key(pixel_id))
    fields.setdefault("incarnation", pixel.incarnation if pixel else None)
    return PixelEvent(
        event_id=event_id,
        event_name="Purchase",
        pixel_id=pixel_id,
        tenant_id=app.tenant_id,
        event_time=int(now - age_seconds),
        received_at=round(now - age_seconds, 3),
        domain="shop.example.com",
        **fields,
    )


def put_on_queue(aws, sqs, bodies: list[str], logical_id: str = "PublishQueue") -> None:
    """Sends message bodies with the test's own SQS client (set-up, not the code under test)."""
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies[start : start + 10])]
        answer = sqs.send_message_batch(QueueUrl=aws.queue_urls[logical_id], Entries=entries)
        assert not answer.get("Failed"), answer


def queue_depth(aws, sqs, logical_id: str = "PublishQueue") -> dict[str, int]:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = sqs.get_queue_attributes(QueueUrl=aws.queue_urls[logical_id], AttributeNames=names)[
        "Attributes"
    ]
    return {
        "visible": int(attributes[names[0]]),
        "in_flight": int(attributes[names[1]]),
        "delayed": int(attributes[names[2]]),
    }


def publisher_source(
    aws, sqs, template, *, batch_size: int | None = None, timeout_seconds: float | None = None
):
    """The publisher behind its queue with the template's batch size (1,000) or another; poll() runs one batch."""
    (trigger,) = [t for t in sqs_triggers(template) if t.function_id == PUBLISHER]
    source = SqsEventSource(
        sqs_client=sqs,
        queue_url=aws.queue_urls[trigger.queue_id],
        queue_arn=aws.queue_arns[trigger.queue_id],
        handler=load_handler(trigger.code_uri, trigger.handler, module_alias=f"{PUBLISHER}_app"),
        batch_size=batch_size or trigger.batch_size,
        batching_window_seconds=trigger.batching_window_seconds,
        poll_wait_seconds=0,
        function_name=PUBLISHER,
        memory_limit_in_mb=trigger.memory_mb,
        timeout_seconds=timeout_seconds or trigger.timeout_seconds,
    )

    def poll() -> int:
        with iam_recorder.acting_as(iam_recorder.event_source_of(PUBLISHER)):
            return source.poll_once()

    return poll


def pixel_item(pixel_id: int = PIXEL) -> PixelItem:
    return PixelItem.get(*PixelItem.key(pixel_id), consistent_read=True)


def logged(json_logs, message: str) -> list[dict[str, Any]]:
    return [record for record in json_logs() if record["message"] == message]


# Halving is the general case, at Meta's full request size (1,000) on DynamoDB Local; moto copies
# its whole table on every transaction and scans its whole queue on every receive, so there the
# same halving runs on 300. Meta naming the event needs no big request at all.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("meta_names_the_event", "size"), [(False, 1000), (True, 40)], ids=["bisected", "meta-names-data-index"]
)
def test_a_meta_4xx_for_one_event_of_a_full_request_publishes_the_others_counts_1_as_rejected_and_leaves_nothing_in_the_dead_letter_queue(
    request,
    app,
    connected,
    meta,
    aws,
    sqs,
    template,
    queued_messages,
    json_logs,
    meta_names_the_event,
    size,
):
    # Given 1,000 events (300 on moto) on the publish queue, one of which Meta refuses with its code-100 answer
    if request.node.callspec.params["table"] == "moto":
        size = min(size, 300)
    events = [forwarded_event(app, f"bulk-{n}") for n in range(size)]
    put_on_queue(aws, sqs, [event.to_message() for event in events])
    meta.always(Answer.refusing(f"bulk-{size * 5 // 8}", names_event=meta_names_the_event))
    # When the publisher takes them in batches of up to the template's size (1,000), as Lambda would
    poll = publisher_source(aws, sqs, template)
    while poll():
        pass
    # Then the other 999 reached Meta once each, 1 is counted as rejected, and nothing is left anywhere
    accepted = [event["event_id"] for event in meta.events()]
    assert sorted(accepted) == sorted(f"bulk-{n}" for n in range(size) if n != size * 5 // 8)
    assert (int(totals().events_published), int(totals().events_rejected)) == (size - 1, 1)
    assert queued_messages("PublishQueue") == []
    assert queued_messages("PublishDeadLetterQueue") == []
    # ...in few requests: the event Meta names is dropped at once, else halving finds it in ~log2(batch)
    refused = [request for request in meta.requests() if request.status == 400]
    if meta_names_the_event:
        assert len(refused) == 1
    else:
        assert 1 <= len(refused) <= math.ceil(math.log2(MAX_EVENTS_PER_REQUEST)) + 1
        assert [len(request.body["data"]) for request in refused][-1] == 1
    # ...an error about one event is no error of the pixel, and the log names Meta's code, not the event
    assert pixel_item().attribute_values.get("api_error_code") is None
    (rejected,) = logged(json_logs, "Events rejected")
    assert (rejected["meta_code"], rejected["events"], rejected["pixel_id"]) == (100, 1, PIXEL)
    assert f"bulk-{size * 5 // 8}" not in json.dumps(json_logs())
    batches = logged(json_logs, "Batch published")
    assert sum(batch["published"] for batch in batches) == size - 1
    assert [batch["failed"] for batch in batches] == [0] * len(batches)


def test_a_redelivered_rejected_event_is_neither_sent_nor_counted_again(app, connected, meta):
    # Given an event Meta refused and that was counted as rejected
    meta.always(Answer.refusing("bad"))
    first = publishing.publish([forwarded_event(app, "bad")])
    # When the same message comes again (a redelivery)
    again = publishing.publish([forwarded_event(app, "bad")])
    # Then it is skipped: one request to Meta in all, one rejection counted
    assert (first.rejected, again.rejected, again.skipped) == (1, 0, 1)
    assert len(meta.requests()) == 1
    assert int(totals().events_rejected) == 1


def test_a_4xx_meta_gives_for_every_event_is_about_the_request_so_nothing_is_rejected_and_the_events_come_back(
    app, connected, meta
):
    # Given Meta refusing every request of the pixel with code 100, naming no event (a wrong test code, ...)
    meta.always(Answer.invalid_parameter("Invalid parameter"))
    events = [forwarded_event(app, f"all-{n}") for n in range(4)]
    # When the events are published
    outcome = publishing.publish(events)
    # Then halving found no event Meta takes: none is counted as rejected, all go back to SQS, and
    # the error is recorded as the pixel's
    assert len(meta.requests()) == 1 + 2 + 4
    assert (outcome.rejected, outcome.failed) == (0, {event.event_id for event in events})
    assert find(TotalsItem, TotalsItem.key(PIXEL)) is None
    assert pixel_item().api_error_code == 100


@pytest.mark.parametrize(
    "custom_data",
    [
        {"value": float("nan")},
        {"value": float("inf")},
        {"value": -float("inf")},
        {"name": "\ud83d"},
        {"\udc00": 1},
    ],
    ids=["nan", "infinity", "minus-infinity", "lone-surrogate-value", "lone-surrogate-key"],
)
def test_custom_data_that_is_not_strict_json_is_a_400_at_intake_and_nothing_is_queued(
    app, gql, connected, queued_messages, custom_data
):
    # When track is called with custom data Python's json accepts but JSON does not
    answer = gql(
        TRACK,
        {
            "event": {
                "pixelId": str(PIXEL),
                "eventName": "Purchase",
                "domain": "shop.example.com",
                "customData": custom_data,
            }
        },
        app.basic_header,
    ).data["track"]
    # Then it is refused in the existing error style, and nothing goes to the queue
    assert answer["code"] == 400
    assert answer["message"].startswith("Invalid customData")
    assert "strict JSON" in answer["message"]
    assert queued_messages() == []


def test_an_event_that_is_not_strict_json_is_rejected_without_sending_and_its_request_stays_valid(
    app, connected, meta
):
    # Given a queued event whose custom data holds NaN (queued before intake refused that), and a good one
    bad = forwarded_event(app, "nan", custom_data={"value": float("nan")})
    good = forwarded_event(app, "good", custom_data={"value": 1.5})
    # When they are published
    outcome = publishing.publish([bad, good])
    # Then only the good one is sent, in a request that is strict JSON, and the other counts as rejected
    (request,) = meta.requests()
    assert [event["event_id"] for event in request.body["data"]] == ["good"]
    json.dumps(request.body, allow_nan=False)
    assert (outcome.published, outcome.rejected, outcome.failed) == (1, 1, set())
    assert (int(totals().events_published), int(totals().events_rejected)) == (1, 1)


@pytest.mark.parametrize(
    "answer",
    [
        Answer(delay_seconds=publishing.REQUEST_TIMEOUT_SECONDS + 0.5),
        Answer.hang_up(),
        Answer.rate_limited(),
        Answer.unavailable(),
    ],
    ids=["timeout", "connection-error", "429", "503"],
)
def test_meta_timing_out_hanging_up_or_rate_limiting_hands_the_events_back_to_sqs_without_setting_api_error_code(
    app, connected, meta, aws, sqs, template, answer
):
    # Given Meta failing every attempt
    meta.always(answer)
    put_on_queue(aws, sqs, [forwarded_event(app, "e1").to_message(), forwarded_event(app, "e2").to_message()])
    # When the publisher runs its batch
    publisher_source(aws, sqs, template)()
    # Then Meta got the request on each attempt, and the events wait on the queue for SQS's redelivery
    assert len(meta.requests()) == publishing.ATTEMPTS
    assert queue_depth(aws, sqs) == {"visible": 0, "in_flight": 2, "delayed": 0}
    assert find(TotalsItem, TotalsItem.key(PIXEL)) is None  # nothing counted as published
    # ...and nothing about the pixel is concluded from it
    pixel = pixel_item()
    assert (pixel.attribute_values.get("api_error_code"), pixel.token_rejected) == (None, False)


def test_a_meta_error_about_the_pixel_sets_api_error_code_and_a_later_success_clears_it(app, connected, meta):
    # Given Meta refusing the pixel itself (missing permission, code 10)
    meta.script(
        Answer(403, {"error": {"message": "Permission denied", "type": "OAuthException", "code": 10}})
    )
    refused = publishing.publish([forwarded_event(app, "p1")])
    assert refused.failed == {"p1"}
    assert pixel_item().api_error_code == 10
    # When a later request succeeds
    published = publishing.publish([forwarded_event(app, "p1")])
    # Then the event is published and the pixel's error is cleared
    assert published.published == 1
    assert pixel_item().attribute_values.get("api_error_code") is None


def test_a_token_replaced_while_meta_was_refusing_the_old_one_stays_connected_and_publishes_the_held_event(
    app, connected, meta, aws, sqs, template, monkeypatch
):
    # Given Meta refusing the token, while, during that request, a new token is stored
    monkeypatch.setattr(publishing, "HOLD_DELAY_SECONDS", 0)
    meta.script(
        dataclasses.replace(
            Answer.invalid_token(), while_in_flight=lambda: setup_pixel(app.tenant_id, new_connection())
        )
    )
    put_on_queue(aws, sqs, [forwarded_event(app, "in-flight").to_message()])
    poll = publisher_source(aws, sqs, template)
    # When the publisher runs, and then runs again over the held event
    poll()
    assert meta.in_flight_errors() == []
    pixel = pixel_item()
    # Then Meta's refusal of the old token did not mark the new one rejected
    assert (pixel.attribute_values.get("api_error_code"), pixel.token_rejected) == (None, False)
    poll()
    # ...and the event, held rather than failed, went out with the new token
    assert [request.access_token for request in meta.requests()] == [META_TOKEN, NEW_TOKEN]
    assert [event["event_id"] for event in meta.events()] == ["in-flight"]
    assert int(totals().events_published) == 1
    assert queue_depth(aws, sqs, "PublishDeadLetterQueue") == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_a_token_kms_cannot_decrypt_holds_the_events_without_calling_meta_until_the_key_works_again(
    app, connected, meta, aws, sqs, template, monkeypatch, json_logs, inject
):
    # Given KMS refusing Decrypt because the key is disabled (moto decrypts with a disabled key,
    # so KMS's own DisabledException answer is injected)
    disabled = inject(
        tokens.kms_client(), "Decrypt", aws_json_error(400, "DisabledException", "application/x-amz-json-1.1")
    )
    put_on_queue(aws, sqs, [forwarded_event(app, "k1").to_message(), forwarded_event(app, "k2").to_message()])
    poll = publisher_source(aws, sqs, template)
    # When the publisher runs
    poll()
    # Then nothing was sent, and the events wait as new, delayed messages: no receive used up
    assert disabled.attempts
    assert meta.requests() == []
    assert queue_depth(aws, sqs) == {"visible": 0, "in_flight": 0, "delayed": 2}
    (held,) = logged(json_logs, "Events held until their pixel has a usable token")
    assert (held["events"], held["pixels"], held["delay_seconds"]) == (
        2,
        [PIXEL],
        publishing.HOLD_DELAY_SECONDS,
    )
    (batch,) = logged(json_logs, "Batch published")
    assert (batch["held"], batch["failed"]) == (2, 0)
    assert pixel_item().token_rejected is False  # KMS's problem is not Meta's verdict on the token
    # And once the key works again, a held event is published
    disabled.lift()
    publishing.publish([forwarded_event(app, "k1")])
    assert [event["event_id"] for event in meta.events()] == ["k1"]


def test_events_of_a_pixel_whose_token_was_removed_are_held_without_calling_meta(
    app, connected, meta, aws, sqs
):
    PixelItem(*PixelItem.key(PIXEL)).update(actions=[PixelItem.access_token_ciphertext.remove()])
    outcome = publishing.publish([forwarded_event(app, "no-token")])
    assert ([event.event_id for event in outcome.held], outcome.failed, meta.requests()) == (
        ["no-token"],
        set(),
        [],
    )
    assert queue_depth(aws, sqs)["delayed"] == 1


def test_events_that_cannot_be_held_are_handed_back_to_sqs(app, connected, meta, aws, sqs, template, inject):
    # Given a rejected token, and SQS refusing every message the publisher sends
    PixelItem(*PixelItem.key(PIXEL)).update(actions=[PixelItem.token_rejected.set(True)])
    put_on_queue(aws, sqs, [forwarded_event(app, "h1").to_message()])
    inject(
        queues.sqs_client(),
        "SendMessageBatch",
        aws_json_error(500, "AWS.SimpleQueueService.InternalError", "application/x-amz-json-1.0"),
    )
    # When the publisher runs
    publisher_source(aws, sqs, template)()
    # Then the original is not acknowledged: it comes back after the visibility timeout
    assert queue_depth(aws, sqs) == {"visible": 0, "in_flight": 1, "delayed": 0}


def test_two_publishers_racing_on_the_same_events_send_them_twice_at_most_and_count_each_once(
    app, connected, meta
):
    # Given a second publisher that takes the same events while the first one's request is in flight
    events = [forwarded_event(app, f"race-{n}") for n in range(5)]
    second: list[publishing.PublishOutcome] = []
    meta.script(Answer(while_in_flight=lambda: second.append(publishing.publish(events))))
    # When the first one's request returns
    first = publishing.publish(events)
    # Then both were accepted by Meta (which deduplicates on event_id), and each event counted once
    assert meta.in_flight_errors() == []
    assert [len(request.body["data"]) for request in meta.requests()] == [5, 5]
    assert (second[0].published, first.published, first.skipped, first.failed) == (5, 0, 5, set())
    assert int(totals().events_published) == 5


def test_publishing_turned_off_after_an_event_was_forwarded_sends_nothing_and_acknowledges_it(
    app, gql, connected, meta, aggregator, publisher, aws, sqs, queued_messages
):
    # Given an event forwarded to the publish queue
    track(gql, app)
    aggregator()
    assert queue_depth(aws, sqs)["visible"] == 1
    # When publishing is turned off before the publisher takes it
    gql(CAPIG_STATUS, {"id": str(PIXEL), "tenantId": app.tenant_id, "input": {"status": 0}}, app.basic_header)
    publisher()
    # Then Meta gets nothing, and the message is gone rather than retried
    assert meta.requests() == []
    assert queue_depth(aws, sqs) == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert queued_messages("PublishDeadLetterQueue") == []
    assert int(totals().events_published) == 0


def test_an_unreadable_publish_message_ends_in_the_dead_letter_queue_and_the_rest_of_its_batch_is_published(
    app, connected, meta, aws, sqs, publisher, instant_redelivery, queued_messages
):
    # Given a batch with an unreadable message next to a good event
    put_on_queue(aws, sqs, ["{not an event", forwarded_event(app, "readable").to_message()])
    # When the publisher runs until SQS gives up on the unreadable one
    publisher()
    # Then the good event is published once, and only the unreadable message is kept for inspection
    assert [event["event_id"] for event in meta.events()] == ["readable"]
    assert queued_messages("PublishDeadLetterQueue") == ["{not an event"]
    assert queued_messages("PublishQueue") == []


def test_a_publish_batch_whose_records_are_all_unreadable_reports_each_as_failed_and_they_end_in_the_dead_letter_queue(
    app, connected, meta, aws, sqs, publisher, instant_redelivery, queued_messages, json_logs
):
    put_on_queue(aws, sqs, ["{", '{"v": 99}'])
    publisher()
    assert sorted(queued_messages("PublishDeadLetterQueue")) == sorted(["{", '{"v": 99}'])
    assert meta.requests() == []
    # Answered as two item failures, not an exception (the function's error alarm is for its own errors)
    batches = logged(json_logs, "Batch published")
    assert batches
    assert all(batch["unreadable"] == batch["records"] for batch in batches)


def test_an_events_batch_whose_records_are_all_unreadable_ends_in_the_events_dead_letter_queue_and_nothing_is_counted(
    app, connected, aws, sqs, aggregator, queued_messages
):
    # Given only unreadable messages on the events queue, redelivered at once
    sqs.set_queue_attributes(QueueUrl=aws.queue_urls["EventsQueue"], Attributes={"VisibilityTimeout": "0"})
    put_on_queue(aws, sqs, ["{", "[]"], logical_id="EventsQueue")
    # When the aggregator runs until SQS gives up on them
    aggregator()
    # Then both are kept in the dead-letter queue, nothing is counted and nothing forwarded
    assert sorted(queued_messages("EventsDeadLetterQueue")) == sorted(["{", "[]"])
    assert queued_messages("PublishQueue") == []
    counted = find(TotalsItem, TotalsItem.key(PIXEL))
    assert counted is None or int(counted.events_received) == 0


def sqs_partly_failing(sqs, *, fail_ids: set[str]):
    """SendMessageBatch as SQS answers when it fails some entries on its side: the others are sent
    (through the test's own client, to the same queue), the failed ones come back as `Failed`."""

    def respond(request) -> AWSResponse:
        call = json.loads(request.body)
        kept = [entry for entry in call["Entries"] if entry["Id"] not in fail_ids]
        successful = (
            sqs.send_message_batch(QueueUrl=call["QueueUrl"], Entries=kept)["Successful"] if kept else []
        )
        failed = [
            {
                "Id": entry["Id"],
                "SenderFault": False,
                "Code": "InternalError",
                "Message": "Injected by the test",
            }
            for entry in call["Entries"]
            if entry["Id"] in fail_ids
        ]
        body = json.dumps({"Successful": successful, "Failed": failed}).encode()
        headers = {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "fault-injected"}
        return AWSResponse(request.url, 200, headers, _Raw(body))

    return respond


def test_a_partial_send_message_batch_failure_while_forwarding_is_retried_and_every_event_reaches_the_publish_queue_once(
    app, gql, connected, aggregator, aws, sqs, inject, queued_messages
):
    # Given SQS failing two of the entries of the aggregator's first SendMessageBatch on its side
    ids = {track(gql, app, eventName=f"E{n}") for n in range(4)}
    fault = inject(
        queues.sqs_client(), "SendMessageBatch", Script([sqs_partly_failing(sqs, fail_ids={"1", "3"})])
    )
    # When the aggregator forwards them
    aggregator()
    # Then the failed entries were sent again, and each event is on the publish queue exactly once
    assert fault.attempts == ["SendMessageBatch", "SendMessageBatch"]
    forwarded = [json.loads(body)["event_id"] for body in queued_messages("PublishQueue")]
    assert sorted(forwarded) == sorted(ids)
    assert int(totals().events_received) == 4


def test_a_send_message_batch_failure_that_persists_fails_the_aggregators_batch_and_loses_nothing(
    app, gql, connected, aggregator, aws, sqs, inject, queued_messages
):
    # Given SQS failing one entry on every attempt of the aggregator's first forward
    sqs.set_queue_attributes(QueueUrl=aws.queue_urls["EventsQueue"], Attributes={"VisibilityTimeout": "0"})
    ids = {track(gql, app, eventName=f"E{n}") for n in range(3)}
    failing = sqs_partly_failing(sqs, fail_ids={"2"})
    inject(queues.sqs_client(), "SendMessageBatch", Script([failing] * queues.ENTRY_ATTEMPTS))
    # When the aggregator runs (its batch fails as a whole, and SQS redelivers it)
    aggregator()
    # Then every event reached the publish queue (some twice: the publisher deduplicates) and counted once
    forwarded = [json.loads(body)["event_id"] for body in queued_messages("PublishQueue")]
    assert set(forwarded) == ids
    assert int(totals().events_received) == 3
    assert queued_messages("EventsDeadLetterQueue") == []


def test_a_transaction_conflict_while_recording_published_events_is_retried_and_the_events_are_not_failed(
    app, connected, meta, inject
):
    # Given DynamoDB cancelling the first recording for a conflict with another transaction
    fault = inject(
        dynamodb_client(),
        "TransactWriteItems",
        Script([transaction_cancelled(lambda n: ["TransactionConflict"] + [None] * (n - 1))]),
    )
    sleeps: list[float] = []
    # When three events are published
    outcome = publishing.publish([forwarded_event(app, f"c{n}") for n in range(3)], sleep=sleeps.append)
    # Then the recording was retried after a backoff, and nothing is handed back
    assert fault.attempts.count("TransactWriteItems") == 2
    assert len(sleeps) == 1
    assert (outcome.published, outcome.failed) == (3, set())
    assert int(totals().events_published) == 3
    assert len(meta.requests()) == 1


def test_a_throttled_recording_is_retried_after_botocores_own_retries_and_the_events_are_not_failed(
    app, connected, meta, inject
):
    client = dynamodb_client()
    throttled = dynamodb_throttling("ThrottlingException")
    inject(client, "TransactWriteItems", Script([throttled] * max_attempts(client)))
    sleeps: list[float] = []
    outcome = publishing.publish([forwarded_event(app, "t1")], sleep=sleeps.append)
    assert (outcome.published, outcome.failed, len(sleeps)) == (1, set(), 1)
    assert int(totals().events_published) == 1


def test_a_recording_that_keeps_failing_hands_the_events_back_and_a_redelivery_counts_them_once(
    app, connected, meta, inject
):
    # Given DynamoDB refusing the recording outright
    fault = inject(
        dynamodb_client(),
        "TransactWriteItems",
        aws_json_error(
            400, "com.amazonaws.dynamodb.v20120810#ValidationException", "application/x-amz-json-1.0"
        ),
    )
    events = [forwarded_event(app, "v1"), forwarded_event(app, "v2")]
    first = publishing.publish(events)
    # Then the events come back (not lost), and once DynamoDB works, a redelivery counts them once
    assert (first.published, first.failed) == (0, {"v1", "v2"})
    fault.lift()
    again = publishing.publish(events)
    assert (again.published, again.failed) == (2, set())
    assert int(totals().events_published) == 2
    assert len(meta.requests()) == 2  # sent again: Meta deduplicates on event_id


def test_a_batch_received_with_less_time_left_than_one_request_needs_sends_nothing_and_hands_every_event_back(
    app, connected, meta, aws, sqs, template, json_logs
):
    # Given a function whose whole timeout is shorter than the margin one request needs
    put_on_queue(aws, sqs, [forwarded_event(app, "late").to_message()])
    poll = publisher_source(aws, sqs, template, timeout_seconds=publishing.TIME_MARGIN_SECONDS - 1)
    # When it runs
    poll()
    # Then it sent nothing, returned in time, and the event waits for its redelivery
    assert meta.requests() == []
    assert queue_depth(aws, sqs) == {"visible": 0, "in_flight": 1, "delayed": 0}
    (batch,) = logged(json_logs, "Batch published")
    assert (batch["failed"], batch["out_of_time"]) == (1, True)


def test_the_publisher_stops_before_its_timeout_and_reports_only_the_events_it_did_not_try(
    app, connected, meta, aws, sqs, template, monkeypatch, json_logs
):
    # Given two pixels' events, a 2 s margin, 3 s of function time, and Meta's first answer taking 1.4 s
    setup_pixel(app.tenant_id, new_connection(OTHER_PIXEL, META_TOKEN))
    monkeypatch.setattr(publishing, "TIME_MARGIN_SECONDS", 2.0)
    meta.script(Answer(delay_seconds=1.4))
    events = [forwarded_event(app, "first-pixel"), forwarded_event(app, "second-pixel", pixel_id=OTHER_PIXEL)]
    put_on_queue(aws, sqs, [event.to_message() for event in events])
    poll = publisher_source(aws, sqs, template, timeout_seconds=3.0)
    # When the publisher runs
    poll()
    # Then it published the first pixel's event, did not start a request for the other, and handed
    # back only that one (the emulator fails a batch whose handler overran: here it did not)
    (request,) = meta.requests()
    (sent,) = request.body["data"]
    assert request.status == 200
    assert queue_depth(aws, sqs) == {"visible": 0, "in_flight": 1, "delayed": 0}
    (batch,) = logged(json_logs, "Batch published")
    assert (batch["published"], batch["failed"], batch["out_of_time"]) == (1, 1, True)
    assert int(TotalsItem.get(*TotalsItem.key(int(request.pixel_id))).events_published) == 1
    assert sent["event_id"] in {"first-pixel", "second-pixel"}


def test_a_rejected_token_then_a_new_token_stored_1_hour_later_every_event_within_7_days_is_published_once_and_none_reach_the_dead_letter_queue(
    app, gql, connected, meta, aggregator, aws, sqs, template, monkeypatch, queued_messages
):
    # Given Meta rejecting the pixel's token, and held events coming back at once (instead of after
    # 15 min) while the publisher's clock is moved on by 15 min a cycle
    monkeypatch.setattr(publishing, "HOLD_DELAY_SECONDS", 0)
    clock = [time.time()]
    monkeypatch.setattr(publishing, "time", types.SimpleNamespace(time=lambda: clock[0], sleep=time.sleep))
    meta.always(Answer.invalid_token())
    fresh = {track(gql, app) for _ in range(3)}
    six_days_old = track(gql, app, eventTime=int(clock[0]) - 6 * 86_400)
    almost_seven_days_old = track(gql, app, eventTime=int(clock[0]) - 7 * 86_400 + 2_400)  # 7 days at +40 min
    aggregator()
    poll = publisher_source(aws, sqs, template, batch_size=10)
    # When the publisher runs through an hour of hold cycles before a new token is stored
    for _cycle in range(4):
        assert poll() == 5
        clock[0] += queues.MAX_DELAY_SECONDS  # the hold delay outside tests
    # ...each waiting event is a fresh message, not one that used up its receives
    waiting = sqs.receive_message(
        QueueUrl=aws.queue_urls["PublishQueue"],
        MaxNumberOfMessages=10,
        AttributeNames=["All"],
        VisibilityTimeout=0,
    )["Messages"]
    assert [message["Attributes"]["ApproximateReceiveCount"] for message in waiting] == ["1"] * 4
    # ...and Meta was asked once, not once per cycle or per event
    assert [request.status for request in meta.requests()] == [400]
    assert pixel_item().token_rejected is True
    setup_pixel(app.tenant_id, new_connection())
    meta.reset()
    poll()
    # Then every event still within 7 days is published exactly once with the new token, the one that
    # passed 7 days while waiting is counted as expired, and no event reached the dead-letter queue
    published = [event["event_id"] for event in meta.events()]
    assert sorted(published) == sorted(fresh | {six_days_old})
    assert {request.access_token for request in meta.requests()} == {NEW_TOKEN}
    assert almost_seven_days_old not in published
    assert (int(totals().events_published), int(totals().events_expired)) == (4, 1)
    assert poll() == 0
    assert queued_messages("PublishQueue") == []
    assert queued_messages("PublishDeadLetterQueue") == []


def test_events_of_a_pixel_deleted_and_set_up_again_are_orphaned_not_sent_with_the_new_token(
    app, connected, meta
):
    # Given an event forwarded for the pixel, which is then deleted and set up again (new incarnation)
    old = forwarded_event(app, "old-1")
    PixelItem(*PixelItem.key(PIXEL)).update(actions=[PixelItem.incarnation.set("0123456789abcdef")])
    # When it reaches the publisher, with one of the new incarnation
    outcome = publishing.publish([old, forwarded_event(app, "new-1")])
    # Then only the new one goes to Meta; the old one is orphaned, not counted
    assert (outcome.published, outcome.orphaned) == (1, 1)
    assert [event["event_id"] for event in meta.events()] == ["new-1"]
    assert int(totals().events_published) == 1


def test_a_pixel_deleted_while_its_events_were_being_published_gets_no_counters_back(app, connected, meta):
    # Given Meta accepting an event while the pixel is deleted under the publisher
    event = forwarded_event(app, "late-1")

    def delete_the_pixel() -> None:
        PixelItem(*PixelItem.key(PIXEL)).delete()
        TotalsItem(*TotalsItem.key(PIXEL)).delete()

    meta.script(Answer(while_in_flight=delete_the_pixel))
    # When the publisher records the publication
    outcome = publishing.publish([event])
    # Then nothing is written back into the deleted pixel's partition
    assert outcome.published == 0
    assert find(TotalsItem, TotalsItem.key(PIXEL)) is None
    assert list(TableItem.query(f"PIXEL#{PIXEL}", TableItem.sk.startswith("PUBLISHED#"))) == []
