"""Server events in Meta's own format (Conversions API), taken with a pixel access key.

What a server would send to `graph.facebook.com/{version}/{pixel}/events`, or to a Conversions API
Gateway's `/capi/{pixel}/events`: checked the way Meta checks it (one invalid event refuses the
whole request, as Meta does), `user_data` normalised and hashed here (pixel_core.user_data), and
then the same decisions as every other intake (receiving and publishing status, domain and event
filters) before the events go on the events queue, from where they are counted and published.

Errors are Meta's: `MetaApiError` carries the HTTP status, code, subcode and type that Meta answers
with, so that an SDK written against Meta handles them unchanged (docs/api.md, "Server events").
"""

import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pixel_core import access_keys
from pixel_core.config import settings
from pixel_core.events import (
    EVENT_ID,
    MAX_CUSTOM_DATA_BYTES,
    MAX_CUSTOM_DATA_DEPTH,
    MAX_EVENT_AGE_SECONDS,
    MAX_EVENT_NAME_LENGTH,
    MAX_EVENTS_PER_REQUEST,
    MAX_URL_LENGTH,
    TEST_EVENT_CODE,
    InvalidEventMessage,
    PixelEvent,
    is_custom_data,
    is_page_url,
    reason_text,
)
from pixel_core.intake import drop_reason, unpublishable_reason
from pixel_core.models import PixelItem, TenantItem, find
from pixel_core.observability import count
from pixel_core.pixel_domains import cleaned
from pixel_core.pixels import recent_tenant
from pixel_core.queues import enqueue_all
from pixel_core.user_data import InvalidUserData, prepare

# Meta's action_source values (Conversions API, "Server event parameters").
ACTION_SOURCES = frozenset(
    {
        "email",
        "website",
        "app",
        "phone_call",
        "chat",
        "physical_store",
        "system_generated",
        "business_messaging",
        "other",
    }
)
# Passed to Meta as given (their types checked); any other field of an event is refused.
OPTION_FIELDS = (
    "opt_out",
    "data_processing_options",
    "data_processing_options_country",
    "data_processing_options_state",
    "referrer_url",
)
EVENT_FIELDS = frozenset(
    {"event_name", "event_time", "event_id", "action_source", "event_source_url", "user_data", "custom_data"}
) | frozenset(OPTION_FIELDS)
# Meta takes events up to a minute or so ahead of its clock; senders' clocks drift that much.
MAX_CLOCK_SKEW_SECONDS = 60

# Meta's codes: 190 a bad token (here: key), 100 an invalid parameter, with these subcodes.
INVALID_PARAMETER_SUBCODE = 2804019
TIMESTAMP_TOO_OLD_SUBCODE = 2804003


@dataclass(frozen=True)
class MetaApiError(Exception):
    """An answer in the Graph API's error shape, with the HTTP status Meta gives it."""

    status: int
    code: int
    message: str
    error_type: str = "OAuthException"
    subcode: int | None = None
    user_title: str | None = None
    user_message: str | None = None
    transient: bool = False  # Meta's is_transient: retrying the same request may succeed

    def body(self, trace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.error_type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.user_title is not None or self.transient:
            error["is_transient"] = self.transient
        if self.user_title is not None:
            error["error_user_title"] = self.user_title
            error["error_user_msg"] = self.user_message
        return {"error": {**error, "fbtrace_id": trace_id}}


def invalid_key() -> MetaApiError:
    # The same answer for an unknown pixel: a key holder learns nothing about other pixels.
    return MetaApiError(400, 190, "Invalid OAuth access token - Cannot parse access token")


def invalid_parameter(
    what: str, subcode: int = INVALID_PARAMETER_SUBCODE, title: str = "Invalid parameter"
) -> MetaApiError:
    return MetaApiError(400, 100, "Invalid parameter", subcode=subcode, user_title=title, user_message=what)


def trace_id() -> str:
    """Meta puts an fbtrace_id in every answer; ours identify nothing but the answer."""
    return secrets.token_urlsafe(8)


class ServerRequest(NamedTuple):
    pixel_id: int
    access_key: str | None
    data: object  # the events, as parsed from the body (validated by `accept`)
    test_event_code: object = None


def accept(request: ServerRequest) -> int:
    """Checks, decides and queues the request's events; how many were received (Meta's
    `events_received`). Raises MetaApiError, and then queues nothing."""
    # A consistent read, never a cached pixel: a rotated key stops working at once.
    pixel = find(PixelItem, PixelItem.key(request.pixel_id), consistent=True)
    if pixel is None or not access_keys.opens(pixel, request.access_key):
        count("ServerEventsRefused")
        raise invalid_key()
    raw_events = _event_list(request.data)
    test_event_code = _test_event_code(request.test_event_code)
    now = time.time()
    tenant = recent_tenant(pixel.tenant_id)
    events = [
        pixel_event(pixel, tenant, checked_event(index, raw, now), test_event_code, now)
        for index, raw in enumerate(raw_events)
    ]
    enqueue_all(events, settings.events_queue_url)
    count("EventsAccepted", sum(1 for event in events if event.dropped is None))
    count("EventsDropped", sum(1 for event in events if event.dropped is not None))
    return len(events)


def _event_list(data: object) -> list[object]:
    # The Graph API takes `data` as a JSON array or as a string holding one (its SDKs send the latter).
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise invalid_parameter("The parameter data must be a JSON array of events.") from None
    if not isinstance(data, list) or not data:
        raise invalid_parameter("The parameter data is required and must be a non-empty array of events.")
    if len(data) > MAX_EVENTS_PER_REQUEST:
        raise invalid_parameter(f"At most {MAX_EVENTS_PER_REQUEST} events can be sent in one request.")
    return data


def _test_event_code(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not TEST_EVENT_CODE.fullmatch(value):
        raise invalid_parameter("The parameter test_event_code is invalid.")
    return value


class CheckedEvent(NamedTuple):
    """One event, valid by Meta's rules, its user_data already hashed."""

    event_name: str
    event_time: int
    event_id: str
    action_source: str
    event_source_url: str | None
    user_data: dict[str, Any]
    custom_data: dict[str, Any] | None
    options: dict[str, Any]
    email_md5: str | None


def checked_event(index: int, raw: object, now: float) -> CheckedEvent:
    where = f"data[{index}]"
    if isinstance(raw, str):  # an event may be a string holding one, as the Graph API allows
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise invalid_parameter(f"{where}: an event must be a JSON object.") from None
    if not isinstance(raw, dict):
        raise invalid_parameter(f"{where}: an event must be a JSON object.")
    unknown = sorted(str(name)[:64] for name in raw if name not in EVENT_FIELDS)
    if unknown:
        raise invalid_parameter(f"{where}: unknown parameter {unknown[0]}.")
    name = raw.get("event_name")
    if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_EVENT_NAME_LENGTH:
        raise invalid_parameter(f"{where}: the parameter event_name is required.")
    event_time = _event_time(where, raw.get("event_time"), now)
    action_source = raw.get("action_source")
    if action_source not in ACTION_SOURCES:
        raise invalid_parameter(
            f"{where}: the parameter action_source is required and must be one of "
            + ", ".join(sorted(ACTION_SOURCES))
            + "."
        )
    url = _url(where, raw.get("event_source_url"))
    user_data = raw.get("user_data")
    if not isinstance(user_data, dict) or not user_data:
        raise invalid_parameter(f"{where}: the parameter user_data is required.")
    email_md5 = _email_md5(user_data.get("em"))
    try:
        prepared = prepare(user_data)
    except InvalidUserData as error:
        raise invalid_parameter(f"{where}: {error}") from None
    if action_source == "website" and (url is None or not prepared.get("client_user_agent")):
        raise invalid_parameter(
            f"{where}: website events need event_source_url and user_data.client_user_agent."
        )
    return CheckedEvent(
        event_name=name.strip(),
        event_time=event_time,
        event_id=_event_id(where, raw.get("event_id")),
        action_source=str(action_source),
        event_source_url=url,
        user_data=prepared,
        custom_data=_custom_data(where, raw.get("custom_data")),
        options=_options(where, raw),
        email_md5=email_md5,
    )


def _event_time(where: str, value: object, now: float) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)  # form-encoded senders send numbers as text
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_parameter(
            f"{where}: the parameter event_time is required and must be a Unix timestamp in seconds."
        )
    if value < now - MAX_EVENT_AGE_SECONDS:
        raise invalid_parameter(
            f"{where}: the timestamp for this event is more than 7 days in the past.",
            subcode=TIMESTAMP_TOO_OLD_SUBCODE,
            title="Event Timestamp Too Old",
        )
    if value > now + MAX_CLOCK_SKEW_SECONDS:
        raise invalid_parameter(f"{where}: the parameter event_time is in the future.")
    return value


def _event_id(where: str, value: object) -> str:
    if value is None or value == "":
        return str(uuid.uuid4())  # the pipeline deduplicates on it; Meta then gets the same one
    if not isinstance(value, str) or not EVENT_ID.fullmatch(value):
        raise invalid_parameter(f"{where}: event_id must be 1-128 letters, digits or . _ : -")
    return value


def _url(where: str, value: object) -> str | None:
    if value is None or value == "":
        return None
    if not is_page_url(value):
        raise invalid_parameter(
            f"{where}: event_source_url must be an http(s) URL of at most {MAX_URL_LENGTH} characters."
        )
    return str(value)


def _custom_data(where: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not is_custom_data(value):
        raise invalid_parameter(
            f"{where}: custom_data must be a strict-JSON object of at most {MAX_CUSTOM_DATA_BYTES} bytes"
            f" and {MAX_CUSTOM_DATA_DEPTH} levels."
        )
    return value


def _options(where: str, raw: dict[str, Any]) -> dict[str, Any]:
    options = {name: raw[name] for name in OPTION_FIELDS if name in raw}
    opt_out = options.get("opt_out", False)
    processing = options.get("data_processing_options", [])
    referrer = options.get("referrer_url", "")
    if not isinstance(opt_out, bool):
        raise invalid_parameter(f"{where}: the parameter opt_out must be true or false.")
    if not isinstance(processing, list) or not all(
        isinstance(item, str) and len(item) <= 32 for item in processing
    ):
        raise invalid_parameter(f"{where}: the parameter data_processing_options must be a list of strings.")
    for name in ("data_processing_options_country", "data_processing_options_state"):
        value = options.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10_000:
            raise invalid_parameter(f"{where}: the parameter {name} must be an integer code.")
    if not isinstance(referrer, str) or len(referrer) > MAX_URL_LENGTH:
        raise invalid_parameter(
            f"{where}: the parameter referrer_url must be a URL of at most {MAX_URL_LENGTH} characters."
        )
    return options


def _email_md5(value: object) -> str | None:
    """The visitor key of an e-mail sent in clear (the HeroPixel API's MD5), so that server
    pageviews count visitors as the others do; a hashed e-mail cannot be turned into it."""
    first = value[0] if isinstance(value, list) and value else value
    if not isinstance(first, str) or "@" not in first:
        return None
    return hashlib.md5(first.strip().lower().encode(), usedforsecurity=False).hexdigest()


def pixel_event(
    pixel: PixelItem, tenant: TenantItem | None, event: CheckedEvent, test_event_code: str | None, now: float
) -> PixelEvent:
    host = urlsplit(event.event_source_url).hostname if event.event_source_url else None
    domain = cleaned(host) if host else None
    agent = event.user_data.get("client_user_agent")
    dropped = drop_reason(pixel, tenant, domain, agent if isinstance(agent, str) else None)
    pixel_event = PixelEvent(
        event_id=event.event_id,
        event_name=event.event_name,
        pixel_id=pixel.number,
        tenant_id=pixel.tenant_id,
        event_time=event.event_time,
        received_at=round(now, 3),
        domain=domain,
        visitor_md5=event.email_md5,
        dropped=reason_text(dropped) if dropped else None,
        event_source_url=event.event_source_url,
        custom_data=event.custom_data,
        unpublishable=_reason(unpublishable_reason(pixel, tenant, event.event_name)),
        incarnation=pixel.incarnation,
        user_data=event.user_data,
        action_source=event.action_source,
        meta_options=event.options or None,
        test_event_code=test_event_code,
    )
    try:
        return pixel_event.checked()
    except InvalidEventMessage as error:  # e.g. a message over SQS's size with every field at its limit
        raise invalid_parameter(f"The event {event.event_id} is too large or malformed ({error}).") from None


def _reason(reason: str | None) -> str | None:
    return None if reason is None else reason_text(reason)
