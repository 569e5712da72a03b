"""Lambda entry point of the counter aggregator: SQS batch of events -> exact DynamoDB counters.

Messages that cannot be parsed are reported as partial batch failures (SQS redelivers them, then
moves them to the dead-letter queue); the rest of the batch is counted in one aggregated pass.
If counting itself fails, the whole batch fails and is redelivered: the event markers keep the
counters exact. What was counted and may be published is then forwarded to the publish queue.
"""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pixel_core.config import settings
from pixel_core.counters import count_events, events_to_forward
from pixel_core.events import PixelEvent
from pixel_core.observability import count, logger, metrics
from pixel_core.queues import enqueue_all

processor = BatchProcessor(event_type=EventType.SQS)


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    # SQS batches have no request id of their own: the invocation's id ties the batch's lines together.
    logger.set_correlation_id(context.aws_request_id)
    parsed: list[PixelEvent] = []

    def parse(record: SQSRecord) -> None:
        parsed.append(PixelEvent.from_message(record.body))

    with processor(records=event["Records"], handler=parse):
        processor.process()
        # Inside the block: when every record failed, leaving it raises and fails the batch.
        # Counted, then forwarded: a crash in between leaves the events counted and unpublished, and
        # the redelivery forwards them (events_to_forward), so publishing never outruns counting.
        outcome = count_events(parsed)
        publishable = events_to_forward(outcome)
        if publishable:
            enqueue_all(publishable, settings.publish_queue_url)
    count("EventsCounted", outcome.counted)
    count("DuplicatesSkipped", outcome.duplicates)
    count("EventsOrphaned", outcome.orphaned)
    count("EventsTooOld", outcome.too_old)
    count("UnreadableMessages", len(processor.fail_messages))
    count("EventsForwarded", len(publishable))
    logger.info(
        "Batch counted",
        extra={
            "records": len(event["Records"]),
            "counted": outcome.counted,
            "duplicates": outcome.duplicates,
            "orphaned": outcome.orphaned,
            "too_old": outcome.too_old,
            "unparseable": len(processor.fail_messages),
            "forwarded": len(publishable),
            "transactions": outcome.transactions,
        },
    )
    return processor.response()
