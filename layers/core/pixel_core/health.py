"""Readiness: can this container reach what a request needs?"""

from collections.abc import Callable

from pixel_core.config import settings
from pixel_core.models import TableItem, find
from pixel_core.observability import logger
from pixel_core.queues import sqs_client

_PROBE_KEY = ("HEALTH", "HEALTH")


def _database() -> None:
    find(TableItem, _PROBE_KEY)


def _events_queue() -> None:
    sqs_client().get_queue_attributes(QueueUrl=settings.events_queue_url, AttributeNames=["QueueArn"])


CHECKS: dict[str, Callable[[], None]] = {"database": _database, "events_queue": _events_queue}


def readiness() -> dict[str, str]:
    checks: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception:
            logger.exception("Readiness check failed", extra={"check": name})
            checks[name] = "unavailable"
    return checks
