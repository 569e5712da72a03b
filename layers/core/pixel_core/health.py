"""Readiness: can this container reach what a request needs?"""

from pixel_core.models import TableItem, find
from pixel_core.observability import logger

_PROBE_KEY = ("HEALTH", "HEALTH")


def readiness() -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        find(TableItem, _PROBE_KEY)
        checks["database"] = "ok"
    except Exception:
        logger.exception("Readiness check failed", extra={"check": "database"})
        checks["database"] = "unavailable"
    return checks
