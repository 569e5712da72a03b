"""The Conversions API Gateway control plane: pixels as Meta "signal configs" of a tenant."""

import re
import unicodedata
from typing import Any, NamedTuple

from pynamodb.exceptions import UpdateError

from pixel_core import access_keys, stats
from pixel_core.auth import Principal
from pixel_core.clock import utc_now
from pixel_core.errors import BadRequest, PixelNotFound, Unauthorized
from pixel_core.events import TEST_EVENT_CODE
from pixel_core.models import PixelItem, TotalsItem, find, is_condition_failure
from pixel_core.pixel_ids import InvalidPixelIdError, parse_pixel_id
from pixel_core.pixels import MAX_NAME_LENGTH, clean_name, delete_pixel, forget_recent_pixels, insert_pixel
from pixel_core.tokens import encrypt_access_token

_API_VERSION = re.compile(r"v\d{1,3}\.\d{1,2}")
_IDENTIFIER_MAX = 128
MAX_ACCESS_TOKEN_LENGTH = 4096


def tenant_scope(principal: Principal, tenant_id: object) -> str:
    if not isinstance(tenant_id, str) or not principal.may_act_on(tenant_id):
        raise Unauthorized("Not authorized for this account")
    return tenant_id


def pixel_id_of(value: object) -> int:
    try:
        return parse_pixel_id(value)
    except InvalidPixelIdError as error:
        raise BadRequest(f"Invalid pixel id: {error}") from None


def tenant_pixel(tenant_id: str, pixel_id: int) -> PixelItem:
    """The tenant's pixel; another tenant's is answered like a missing one."""
    pixel = find(PixelItem, PixelItem.key(pixel_id))
    if pixel is None or pixel.tenant_id != tenant_id:
        raise PixelNotFound(pixel_id)
    return pixel


class Connection(NamedTuple):
    pixel_id: int
    business_id: str
    access_token: str
    external_id: str
    api_version: str | None
    name: str | None
    test_event_code: str | None = None  # None: leave as it is; "": clear

    @classmethod
    def from_input(cls, data: dict[str, Any]) -> "Connection":
        token = data.get("access_token")
        if not isinstance(token, str) or not token.strip() or len(token) > MAX_ACCESS_TOKEN_LENGTH:
            raise BadRequest("Invalid input: accessToken")
        api_version = data.get("api_version")
        if api_version is not None and not _API_VERSION.fullmatch(api_version):
            raise BadRequest("Invalid input: apiVersion must look like v21.0")
        name = data.get("name")
        if name is not None and len(name) > MAX_NAME_LENGTH:
            raise BadRequest(f"Invalid input: name is longer than {MAX_NAME_LENGTH} characters")
        return cls(
            pixel_id=pixel_id_of(data.get("pixel_id")),
            business_id=_identifier(data.get("business_id"), "businessId"),
            access_token=token.strip(),
            external_id=_identifier(data.get("external_id"), "externalId"),
            api_version=api_version,
            name=clean_name(name),
            test_event_code=_test_event_code(data.get("test_event_code")),
        )


def _test_event_code(value: object) -> str | None:
    if value is None or value == "":
        return value  # None or "": both meaningful
    if not isinstance(value, str) or not TEST_EVENT_CODE.fullmatch(value):
        raise BadRequest("Invalid input: testEventCode")
    return value


def _identifier(value: object, field: str) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value.strip()) <= _IDENTIFIER_MAX
        or any(unicodedata.category(ch).startswith("C") for ch in value)
    ):
        raise BadRequest(f"Invalid input: {field}")
    return value.strip()


def setup_pixel(tenant_id: str, connection: Connection) -> PixelItem:
    """Creates the tenant's pixel with its Meta connection, or replaces the connection of its own."""
    ciphertext = encrypt_access_token(
        connection.access_token, tenant_id=tenant_id, pixel_id=connection.pixel_id
    )
    existing = find(PixelItem, PixelItem.key(connection.pixel_id), consistent=True)
    if existing is not None and existing.tenant_id != tenant_id:
        raise BadRequest(f"Invalid input: pixel {connection.pixel_id} cannot be set up for this account")
    connected: dict[str, Any] = {
        "business_id": connection.business_id,
        "external_id": connection.external_id,
        "api_version": connection.api_version,
        "access_token_ciphertext": ciphertext,
        "token_rejected": False,  # a new token gets a fresh chance with Meta
        "api_error_code": None,
    }
    if connection.name is not None:
        connected["name"] = connection.name
    if connection.test_event_code is not None:
        connected["test_event_code"] = connection.test_event_code or None
    if existing is None or not existing.access_key_sha256:
        # Set up again, a pixel keeps its access key: the servers that send with it keep working.
        connected.update(access_keys.new_key_attributes(tenant_id, connection.pixel_id))
    refused = BadRequest(f"Invalid input: pixel {connection.pixel_id} cannot be set up for this account")
    if existing is None:
        pixel = PixelItem.new(connection.pixel_id, tenant_id, created_at=utc_now(), **connected)
        if not insert_pixel(pixel):  # created meanwhile: concurrent set-ups cannot cross tenants
            raise refused
    else:
        # Only the connection's attributes, in one update expression, if the pixel is still ours: a
        # domain, filter or status change made meanwhile is kept (a whole-item put would undo it).
        pixel = PixelItem(*PixelItem.key(connection.pixel_id))
        actions = [
            getattr(PixelItem, name).remove() if value is None else getattr(PixelItem, name).set(value)
            for name, value in connected.items()
        ]
        try:
            pixel.update(actions=actions, condition=PixelItem.tenant_id == tenant_id)
        except UpdateError as error:
            if is_condition_failure(error):
                raise refused from None
            raise
    forget_recent_pixels()
    return pixel


# What each status mutation turns on (1) and off (0).
STATUS_ATTRIBUTES = {
    "receiving": PixelItem.receiving_enabled,  # updateSignalConfigEventsStatus
    "publishing": PixelItem.publishing_enabled,  # updateSignalConfigCapiPublish
    "bot_filtering": PixelItem.bot_filtering,  # updateSignalConfigBotFiltering (beyond the reference)
}


def set_status(tenant_id: str, pixel_id: int, status: object, *, which: str) -> PixelItem:
    if isinstance(status, bool) or status not in (0, 1):
        raise BadRequest("Invalid input: status must be 0 (deactivate) or 1 (activate)")
    pixel = tenant_pixel(tenant_id, pixel_id)
    attribute = STATUS_ATTRIBUTES[which]
    pixel.update(actions=[attribute.set(status == 1)], condition=PixelItem.tenant_id == tenant_id)
    forget_recent_pixels()
    return pixel


def rotate_access_key(tenant_id: str, pixel_id: int) -> PixelItem:
    """A new access key for the tenant's pixel; the old one stops working at once (intake reads the
    pixel's key with a consistent read, never from a cache)."""
    pixel = tenant_pixel(tenant_id, pixel_id)
    attributes = access_keys.new_key_attributes(tenant_id, pixel_id)
    try:
        pixel.update(
            actions=[getattr(PixelItem, name).set(value) for name, value in attributes.items()],
            condition=PixelItem.tenant_id == tenant_id,
        )
    except UpdateError as error:
        if is_condition_failure(error):  # deleted, or set up for another tenant, meanwhile
            raise PixelNotFound(pixel_id) from None
        raise
    forget_recent_pixels()
    return pixel


def delete_data_source(principal: Principal, tenant_id: str, pixel_id: int) -> None:
    tenant_pixel(tenant_id, pixel_id)
    delete_pixel(principal, pixel_id)


def connection_status(pixel: PixelItem, totals: TotalsItem | None) -> dict[str, Any]:
    token_stored = pixel.access_token_ciphertext is not None
    return {
        "id": f"ConnectionStatus:{pixel.pixel_id}",
        "access_token_available": token_stored,
        "active": bool(pixel.receiving_enabled and pixel.publishing_enabled),
        "connected": token_stored and not pixel.token_rejected,
        # Decrypted (one KMS call) only when a query selects it: graphql-core calls a callable value.
        "access_key": lambda _info: access_keys.readable_key(pixel),
        # One Query, likewise only when selected.
        "match_keys": lambda _info: stats.match_keys(pixel.number, stats.last_days(utc_now().date())),
        "event_bridge_active": bool(pixel.receiving_enabled),
        "bot_filtering_enabled": bool(pixel.bot_filtering),
        "total_events_from_bots": float(totals.events_bots) if totals else 0.0,
        "total_events_rate_limited": float(totals.events_rate_limited) if totals else 0.0,
        "publishing_enabled": bool(pixel.publishing_enabled),
        "api_error_code": int(pixel.api_error_code) if pixel.api_error_code is not None else None,
        "pixel_id": pixel.pixel_id,
        "pixel_name": pixel.name,
        "last_published": float(totals.last_published_at or 0) if totals else 0.0,
        "total_events_published": float(totals.events_published) if totals else 0.0,
        "last_received": float(totals.last_received_at or 0) if totals else 0.0,
        "total_events_received": float(totals.events_received) if totals else 0.0,
    }


def signal_config(pixel: PixelItem, totals: TotalsItem | None) -> dict[str, Any]:
    return {
        "id": f"SignalConfig:{pixel.pixel_id}",
        "domains": sorted(pixel.domains or ()),
        "connection_id": pixel.pixel_id,
        "connection_status": connection_status(pixel, totals),
    }


def totals_of(pixel_ids: list[int]) -> dict[int, TotalsItem]:
    if not pixel_ids:
        return {}
    found = TotalsItem.batch_get([TotalsItem.key(pixel_id) for pixel_id in pixel_ids])
    return {item.pixel_number: item for item in found}
