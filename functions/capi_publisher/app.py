"""Lambda entry point of the CAPI publisher: SQS batch of publishable events -> Meta.

Events are sent grouped by pixel (pixel_core.publishing), within the invocation's time. Events of a
pixel without a usable token are held (put back on the queue, delayed, as new messages) and their
originals acknowledged. Events that could not be published yet (Meta down after the retries, not
tried for lack of time) and unreadable messages are reported as batch item failures: SQS redelivers
them, and after five receives moves them to the dead-letter queue.
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pixel_core.events import PixelEvent
from pixel_core.observability import count, logger, metrics
from pixel_core.publishing import publish

# A batch whose every record fails is answered with all of them as failures, not an exception:
# SQS treats both alike, and the function's error alarm stays for the function's own errors.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class NotPublished(Exception):
    """Raised for a record whose event must come back later."""


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # SQS batches have no request id of their own: the invocation's id ties the batch's lines together.
    logger.set_correlation_id(context.aws_request_id)
    parsed: dict[str, PixelEvent] = {}
    for record in event["Records"]:
        try:
            parsed[record["messageId"]] = PixelEvent.from_message(record["body"])
        except ValueError:
            logger.warning("Unreadable publish message", extra={"message_id": record["messageId"]})
    outcome = publish(
        parsed.values(), remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000
    )

    def verdict(record: SQSRecord) -> None:
        # Second pass through Powertools, so that it builds the partial batch response.
        publishable = parsed.get(record.message_id)
        if publishable is None or publishable.event_id in outcome.failed:
            raise NotPublished(record.message_id)

    with processor(records=event["Records"], handler=verdict):
        processor.process()
    count("EventsPublished", outcome.published)
    count("EventsExpired", outcome.expired)
    count("EventsRejected", outcome.rejected)
    count("EventsHeld", len(outcome.held))
    count("EventsOrphaned", outcome.orphaned)
    count("PublishFailures", len(outcome.failed))
    count("UnreadableMessages", len(event["Records"]) - len(parsed))
    count("MetaRequests", outcome.requests)
    logger.info(
        "Batch published",
        extra={
            "records": len(event["Records"]),
            "unreadable": len(event["Records"]) - len(parsed),
            "published": outcome.published,
            "expired": outcome.expired,
            "rejected": outcome.rejected,
            "held": len(outcome.held),
            "skipped": outcome.skipped,
            "orphaned": outcome.orphaned,
            "failed": len(outcome.failed),
            "requests": outcome.requests,
            "out_of_time": outcome.out_of_time,
        },
    )
    return processor.response()
