"""The event message: what intake puts on the events queue and the aggregator reads.

Format version 1, one JSON object per SQS message (a sample is events/sqs_pixel_events.json):

| field            | type            | meaning                                                   |
|------------------|-----------------|-----------------------------------------------------------|
| v                | 1               | format version                                            |
| event_id         | string          | unique; the same all the way to Meta                      |
| event_name       | string          | `PageView`, ...                                           |
| pixel_id         | string (digits) | 64-bit pixel id                                           |
| tenant_id        | string          | owner of the pixel at intake                              |
| event_time       | int             | Unix seconds, when it happened                            |
| received_at      | number          | Unix seconds, when intake accepted it                     |
| domain           | string or null  | cleaned host name                                         |
| visitor_md5      | string or null  | MD5 of the normalized e-mail                              |
| email_sha256     | string or null  | SHA-256 of the normalized e-mail (never the e-mail)       |
| dropped          | string or null  | why intake dropped it; null when accepted                 |
| client_ip        | string or null  | caller's address                                          |
| user_agent       | string or null  | caller's user agent                                       |
| event_source_url | string or null  | the page the event happened on                            |
| custom_data      | object or null  | `track`'s custom data, passed on to Meta                  |
| unpublishable    | string or null  | why it must not go to Meta (publishing off, event filter) |
| incarnation      | string or null  | the pixel's incarnation at intake (16 hex digits)         |
| user_data        | object or null  | a server event's Meta-ready user_data: SHA-256 hashes, and fbp, fbc, IP, user agent as given |
| action_source    | string or null  | Meta's action_source; null: `website`                      |
| meta_options     | object or null  | a server event's opt_out, data_processing_options (with _country, _state), referrer_url |
| test_event_code  | string or null  | a server request's test code (Meta's Test Events tool)    |
"""

import json
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeGuard
from urllib.parse import urlsplit

from pixel_core.strict_json import is_strict_json

FORMAT_VERSION = 1
PAGE_VIEW = "PageView"
MAX_MESSAGE_BYTES = 64 * 1024
# Every limit and pattern of the message, once: intake checks what it builds against the same rules
# the consumers read with (`PixelEvent.checked`), so no message is accepted that cannot be counted.
# Patterns are always matched whole (fullmatch): `$` alone would let a trailing newline through.
EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MD5 = re.compile(r"[0-9a-f]{32}")
SHA256 = re.compile(r"[0-9a-f]{64}")
INCARNATION = re.compile(r"[0-9a-f]{16}")
MAX_EVENT_NAME_LENGTH = 128
MAX_TENANT_ID_LENGTH = 128
MAX_DOMAIN_LENGTH = 253  # DNS's limit on a name
MAX_REASON_LENGTH = 512  # `dropped` and `unpublishable`; intake cuts longer reasons (`reason_text`)
MAX_CLIENT_IP_LENGTH = 64
MAX_USER_AGENT_LENGTH = 1024  # intake cuts longer ones
MAX_URL_LENGTH = 2048
MAX_CUSTOM_DATA_BYTES = 8 * 1024
MAX_CUSTOM_DATA_DEPTH = 10
MAX_USER_DATA_BYTES = 16 * 1024  # every key with its most values and longest user agent fits
MAX_ACTION_SOURCE_LENGTH = 32
TEST_EVENT_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Meta's: at most this many events a request, each at most this old (it refuses the whole request).
MAX_EVENTS_PER_REQUEST = 1_000
MAX_EVENT_AGE_SECONDS = 7 * 86_400


def is_page_url(value: object) -> bool:
    """An event's page (event_source_url): an http(s) URL with a host, of at most MAX_URL_LENGTH."""
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH:
        return False
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def is_custom_data(value: object) -> TypeGuard[dict[str, Any]]:
    """custom_data Meta can take: a strict-JSON object (no NaN, Infinity or lone surrogate) of at
    most MAX_CUSTOM_DATA_BYTES and MAX_CUSTOM_DATA_DEPTH levels."""
    return (
        isinstance(value, dict)
        and _depth(value) <= MAX_CUSTOM_DATA_DEPTH
        and is_strict_json(value)
        and len(json.dumps(value)) <= MAX_CUSTOM_DATA_BYTES
    )


def _depth(value: object) -> int:
    """Nesting depth, without recursion (hostile data can be nested thousands deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_CUSTOM_DATA_DEPTH:
            break
        children = (
            current.values() if isinstance(current, dict) else current if isinstance(current, list) else ()
        )
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def reason_text(reason: str) -> str:
    return reason if len(reason) <= MAX_REASON_LENGTH else reason[: MAX_REASON_LENGTH - 3] + "..."


class InvalidEventMessage(ValueError):
    """A message the aggregator cannot count: it goes back to the queue and on to the DLQ."""


class PixelEvent(NamedTuple):
    event_id: str
    event_name: str
    pixel_id: int
    tenant_id: str
    event_time: int
    received_at: float
    domain: str | None = None
    visitor_md5: str | None = None
    email_sha256: str | None = None
    dropped: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    event_source_url: str | None = None
    custom_data: dict[str, Any] | None = None
    unpublishable: str | None = None
    incarnation: str | None = None
    user_data: dict[str, Any] | None = None
    action_source: str | None = None
    meta_options: dict[str, Any] | None = None
    test_event_code: str | None = None

    @property
    def day(self) -> str:
        """UTC day of the event, the unit of the daily counters."""
        return datetime.fromtimestamp(self.event_time, UTC).strftime("%Y-%m-%d")

    @property
    def received_day(self) -> str:
        """UTC day intake received it: the unit of the match-key counters (received events)."""
        return datetime.fromtimestamp(self.received_at, UTC).strftime("%Y-%m-%d")

    @property
    def is_page_view(self) -> bool:
        return self.event_name == PAGE_VIEW

    @property
    def is_publishable(self) -> bool:
        return self.dropped is None and self.unpublishable is None

    def meta_user_data(self) -> dict[str, Any]:
        """The user_data Meta gets: a server event's own (hashed at intake), with the e-mail's
        SHA-256 (never an MD5: Meta cannot use one), the client's IP and user agent filled in."""
        user_data: dict[str, Any] = dict(self.user_data or {})
        if self.email_sha256:
            user_data.setdefault("em", [self.email_sha256])
        if self.client_ip:
            user_data.setdefault("client_ip_address", self.client_ip)
        if self.user_agent:
            user_data.setdefault("client_user_agent", self.user_agent)
        return user_data

    def match_keys(self) -> set[str]:
        """The match keys this event carries to Meta, as counted per pixel and day."""
        return {key for key, value in self.meta_user_data().items() if value not in (None, "", [])}

    def to_message(self) -> str:
        body = self._asdict()
        body["pixel_id"] = str(self.pixel_id)
        return json.dumps({"v": FORMAT_VERSION, **body}, separators=(",", ":"), allow_nan=False)

    def checked(self) -> "PixelEvent":
        """This event as the consumers will read it, or InvalidEventMessage naming the field at fault."""
        if not is_strict_json(self._asdict()):
            raise InvalidEventMessage("not strict JSON: NaN, Infinity or a lone surrogate")
        return self.from_message(self.to_message())

    @classmethod
    def from_message(cls, body: str) -> "PixelEvent":
        if len(body) > MAX_MESSAGE_BYTES:
            raise InvalidEventMessage("message too large")
        try:
            data = json.loads(body)
        except json.JSONDecodeError as error:
            raise InvalidEventMessage(f"not JSON: {error.msg}") from None
        if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
            raise InvalidEventMessage("not a version 1 event message")
        return cls(
            event_id=_matching(data, "event_id", EVENT_ID),
            event_name=_text(data, "event_name", MAX_EVENT_NAME_LENGTH),
            pixel_id=_pixel_id(data.get("pixel_id")),
            tenant_id=_text(data, "tenant_id", MAX_TENANT_ID_LENGTH),
            event_time=_number(data, "event_time", int),
            received_at=_number(data, "received_at", float),
            domain=_optional_text(data, "domain", MAX_DOMAIN_LENGTH),
            visitor_md5=_optional_matching(data, "visitor_md5", MD5),
            email_sha256=_optional_matching(data, "email_sha256", SHA256),
            dropped=_optional_text(data, "dropped", MAX_REASON_LENGTH),
            client_ip=_optional_text(data, "client_ip", MAX_CLIENT_IP_LENGTH),
            user_agent=_optional_text(data, "user_agent", MAX_USER_AGENT_LENGTH),
            event_source_url=_optional_text(data, "event_source_url", MAX_URL_LENGTH),
            custom_data=_optional_object(data, "custom_data"),
            unpublishable=_optional_text(data, "unpublishable", MAX_REASON_LENGTH),
            incarnation=_optional_matching(data, "incarnation", INCARNATION),
            user_data=_optional_object(data, "user_data", MAX_USER_DATA_BYTES),
            action_source=_optional_text(data, "action_source", MAX_ACTION_SOURCE_LENGTH),
            meta_options=_optional_object(data, "meta_options", MAX_CUSTOM_DATA_BYTES),
            test_event_code=_optional_matching(data, "test_event_code", TEST_EVENT_CODE),
        )


def _text(data: dict[str, Any], name: str, max_length: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise InvalidEventMessage(f"{name}: expected a string of 1-{max_length} characters")
    return value


def _optional_text(data: dict[str, Any], name: str, max_length: int) -> str | None:
    return None if data.get(name) is None else _text(data, name, max_length)


def _matching(data: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidEventMessage(f"{name}: malformed")
    return value


def _optional_matching(data: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str | None:
    return None if data.get(name) is None else _matching(data, name, pattern)


def _number[NumberT: (int, float)](data: dict[str, Any], name: str, kind: type[NumberT]) -> NumberT:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**40:
        raise InvalidEventMessage(f"{name}: expected a Unix timestamp")
    return kind(value)


def _optional_object(data: dict[str, Any], name: str, max_bytes: int | None = None) -> dict[str, Any] | None:
    value = data.get(name)
    if value is not None and not isinstance(value, dict):
        raise InvalidEventMessage(f"{name}: expected an object")
    if value is not None and max_bytes is not None and len(json.dumps(value)) > max_bytes:
        raise InvalidEventMessage(f"{name}: larger than {max_bytes} bytes")
    return value


def _pixel_id(value: object) -> int:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 20:
        raise InvalidEventMessage("pixel_id: expected a string of digits")
    return int(value)
