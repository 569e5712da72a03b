"""Time in one place: UTC always, and the wire format the HeroPixel documents use."""

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_millis(moment: datetime) -> str:
    """`2025-09-17T22:32:13.000Z`, as in the domains API examples."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_from_unix(seconds: float) -> str:
    return iso_millis(datetime.fromtimestamp(seconds, UTC))
