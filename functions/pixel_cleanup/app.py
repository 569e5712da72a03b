"""Lambda entry point of the pixel clean-up: SQS clean-up requests -> a deleted pixel's items removed.

Each request deletes what it can within the invocation's time (pixel_core.cleanup), then, if the
partition is not empty yet, queues itself again. A request that fails is redelivered by SQS and
resumes where the last one stopped; after five receives it waits in the dead-letter queue.
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pixel_core.cleanup import CleanupRequest, clean_up, request_cleanup
from pixel_core.observability import count, logger, metrics

processor = BatchProcessor(event_type=EventType.SQS)
# Left for the last page's deletes and the request queued again, after the time check passed.
TIME_MARGIN_MS = 10_000


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    logger.set_correlation_id(context.aws_request_id)

    def clean(record: SQSRecord) -> None:
        request = CleanupRequest.from_message(record.body)
        outcome = clean_up(request, time_left=lambda: context.get_remaining_time_in_millis() > TIME_MARGIN_MS)
        if not outcome.done:
            request_cleanup(request.pixel_id)  # carries on in a fresh invocation
        count("PixelItemsCleanedUp", outcome.deleted)
        logger.info(
            "Pixel cleaned up" if outcome.done else "Pixel clean-up continues",
            extra={"pixel_id": request.pixel_id, "deleted": outcome.deleted},
        )

    with processor(records=event["Records"], handler=clean):
        processor.process()
    return processor.response()
