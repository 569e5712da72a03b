"""The pipeline end to end in one process: pageview -> SQS (moto) -> aggregator -> counters."""

import json

PAGEVIEW = "mutation PV($event: PageviewEventInput!) { pageview(event: $event) { code message } }"
PIXELS = "mutation Pixels($event: ApiPixelsEventInput!) { pixels(event: $event) { code data message } }"


def test_a_poison_message_ends_in_the_dead_letter_queue_and_the_rest_of_its_batch_is_counted_once(
    app, gql, aws, sqs, aggregator, queued_messages
):
    # Given three pageviews and one unreadable message on the events queue, redelivered at once
    events_queue = aws.queue_urls["EventsQueue"]
    sqs.set_queue_attributes(QueueUrl=events_queue, Attributes={"VisibilityTimeout": "0"})
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 5}}, app.basic_header)
    for email in ("a@x.com", "b@x.com", None):
        answer = gql(
            PAGEVIEW, {"event": {"pixelId": 5, "domain": "example.com", "email": email}}, app.basic_header
        )
        assert answer.data["pageview"]["code"] == 200
    sqs.send_message(QueueUrl=events_queue, MessageBody='{"v": 1, "event_id": "poison"')
    # When the aggregator has worked through the queue
    aggregator()
    # Then the poison message is in the dead-letter queue, intact, and the rest counted once
    assert queued_messages("EventsDeadLetterQueue") == ['{"v": 1, "event_id": "poison"']
    assert queued_messages("EventsQueue") == []
    pixel = gql(PIXELS, {"event": {"action": "get", "pixel_id": 5}}, app.basic_header).data["pixels"]["data"]
    assert pixel["events_received"] == 3
    assert pixel["events_dropped"] == 0


def test_a_redelivered_batch_after_a_lost_acknowledgement_is_not_counted_again(
    app, gql, aws, sqs, lambda_context, aggregator_handler
):
    # Given pageviews whose batch the aggregator counts but never acknowledges (as after a crash)
    handler = aggregator_handler
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 6}}, app.basic_header)
    for _ in range(4):
        gql(PAGEVIEW, {"event": {"pixelId": 6, "domain": "example.com"}}, app.basic_header)
    messages = sqs.receive_message(QueueUrl=aws.queue_urls["EventsQueue"], MaxNumberOfMessages=10)["Messages"]
    event = {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": aws.queue_arns["EventsQueue"],
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }
    # When the same batch is delivered three times
    answers = [handler(json.loads(json.dumps(event)), lambda_context) for _ in range(3)]
    # Then every delivery succeeds and the events count once
    assert answers == [{"batchItemFailures": []}] * 3
    pixel = gql(PIXELS, {"event": {"action": "get", "pixel_id": 6}}, app.basic_header).data["pixels"]["data"]
    assert pixel["events_received"] == 4
