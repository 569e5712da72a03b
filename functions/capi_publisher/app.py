"""Lambda entry point of the CAPI publisher: SQS batch of publishable events -> Meta.

Events are sent grouped by pixel (pixel_core.publishing). Events that could not be published
(Meta down after the retries, a refused token) are reported as batch item failures: SQS
redelivers them, and after five receives moves them to the dead-letter queue.
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pixel_core.events import PixelEvent
from pixel_core.observability import count, logger, metrics
from pixel_core.publishing import publish

processor = BatchProcessor(event_type=EventType.SQS)


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
    outcome = publish(parsed.values())

    def verdict(record: SQSRecord) -> None:
        # Second pass through Powertools, so that it builds the partial batch response.
        publishable = parsed.get(record.message_id)
        if publishable is None or publishable.event_id in outcome.failed:
            raise NotPublished(record.message_id)

    with processor(records=event["Records"], handler=verdict):
        processor.process()
    count("EventsPublished", outcome.published)
    count("EventsExpired", outcome.expired)
    count("PublishFailures", len(outcome.failed))
    count("MetaRequests", outcome.requests)
    logger.info(
        "Batch published",
        extra={
            "records": len(event["Records"]),
            "published": outcome.published,
            "expired": outcome.expired,
            "skipped": outcome.skipped,
            "failed": len(outcome.failed),
            "requests": outcome.requests,
        },
    )
    return processor.response()
