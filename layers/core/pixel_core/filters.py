"""Event filters (event name -> PUBLISH | DROP) and domain filters (domain -> ALLOW | DROP).

A filter is global for a tenant, or set on one pixel; the pixel's own filter wins. They live as
maps on the tenant item and on the pixel item, so the event intake reads them with the pixel (one
GetItem each, cached briefly) instead of querying for them.
"""

import unicodedata
from collections.abc import Iterable
from typing import Any, NamedTuple

from pynamodb.exceptions import UpdateError

from pixel_core.domain_names import is_same_or_subdomain
from pixel_core.errors import BadRequest, Conflict, NotFound, PixelNotFound
from pixel_core.events import MAX_EVENT_NAME_LENGTH
from pixel_core.models import PixelItem, TenantItem, find, is_condition_failure
from pixel_core.pixel_domains import cleaned
from pixel_core.pixel_ids import InvalidPixelIdError, parse_pixel_id
from pixel_core.pixels import forget_recent_pixels

EVENT_FILTER_STATES = frozenset({"PUBLISH", "DROP"})
DOMAIN_FILTER_STATES = frozenset({"ALLOW", "DROP"})
MAX_PIXELS_PER_UPDATE = 100
MAX_FILTERS_PER_ITEM = 500  # keeps a pixel or tenant item far below DynamoDB's 400 KB
_MAP_UPDATE_ATTEMPTS = 5


class Filter(NamedTuple):
    kind: str  # "event" | "domain"
    subject: str  # the event name or the domain
    pixel_id: int | None  # None: the tenant's global filter
    state: str

    @property
    def id(self) -> str:
        prefix = "EventFilter" if self.kind == "event" else "DomainFilter"
        return f"{prefix}:{self.subject}:{self.pixel_id if self.pixel_id is not None else 'global'}"


def event_name_of(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_EVENT_NAME_LENGTH
        or value != value.strip()
        or any(unicodedata.category(ch).startswith("C") for ch in value)
    ):
        raise BadRequest(f"Invalid event name: expected 1-{MAX_EVENT_NAME_LENGTH} printable characters")
    return value


def pixel_ids_of(values: list[str] | None) -> list[int] | None:
    if values is None:
        return None
    if not values or len(values) > MAX_PIXELS_PER_UPDATE:
        raise BadRequest(f"pixelIds: give 1-{MAX_PIXELS_PER_UPDATE} pixel ids, or null for the global filter")
    try:
        return list(dict.fromkeys(parse_pixel_id(value) for value in values))
    except InvalidPixelIdError as error:
        raise BadRequest(f"pixelIds: {error}") from None


def set_event_filter(
    tenant_id: str, event_name: object, pixel_ids: list[str] | None, state: str
) -> list[Filter]:
    if state not in EVENT_FILTER_STATES:
        raise BadRequest(f"Invalid filter state '{state}'")
    return _set_filters("event", tenant_id, event_name_of(event_name), pixel_ids_of(pixel_ids), state)


def set_domain_filter(
    tenant_id: str, raw_domain: object, pixel_ids: list[str] | None, state: str
) -> list[Filter]:
    if state not in DOMAIN_FILTER_STATES:
        raise BadRequest(f"Invalid filter state '{state}'")
    domain = cleaned(raw_domain if isinstance(raw_domain, str) else None)
    return _set_filters("domain", tenant_id, domain, pixel_ids_of(pixel_ids), state)


def _set_filters(
    kind: str, tenant_id: str, subject: str, pixel_ids: list[int] | None, state: str
) -> list[Filter]:
    if pixel_ids is None:
        _put_in_map(TenantItem, TenantItem.key(tenant_id), kind, subject, state, owner=None)
        forget_recent_pixels()
        return [Filter(kind, subject, None, state)]
    # Every pixel is checked first, so that a foreign or missing one changes nothing at all.
    for pixel_id in pixel_ids:
        pixel = find(PixelItem, PixelItem.key(pixel_id))
        if pixel is None or pixel.tenant_id != tenant_id:
            raise PixelNotFound(pixel_id)
    for pixel_id in pixel_ids:
        _put_in_map(PixelItem, PixelItem.key(pixel_id), kind, subject, state, owner=tenant_id)
    forget_recent_pixels()
    return [Filter(kind, subject, pixel_id, state) for pixel_id in pixel_ids]


def _put_in_map(
    model: type[TenantItem] | type[PixelItem],
    key: tuple[str, str],
    kind: str,
    subject: str,
    state: str,
    *,
    owner: str | None,
) -> None:
    """Sets one entry of the item's filter map. The map is written whole, on the condition that it
    is still what was read (retried if another change came first): a per-entry update would need
    the subject as a document path, and PynamoDB parses `Lead[0]` there as a list index."""
    filters = model.event_filters if kind == "event" else model.domain_filters
    missing = NotFound("Account not found") if owner is None else PixelNotFound(int(key[0].split("#")[1]))
    for _ in range(_MAP_UPDATE_ATTEMPTS):
        current = find(model, key, consistent=True)
        if current is None or (owner is not None and getattr(current, "tenant_id", None) != owner):
            raise missing
        stored = getattr(current, "event_filters" if kind == "event" else "domain_filters")
        entries = _entries(stored)
        if subject not in entries and len(entries) >= MAX_FILTERS_PER_ITEM:
            raise BadRequest(f"At most {MAX_FILTERS_PER_ITEM} {kind} filters per pixel or account")
        # An item written before it had filters has no map at all.
        unchanged = (filters == entries) if entries else (filters.does_not_exist() | (filters == {}))
        exists = model.pk.exists() if owner is None else PixelItem.tenant_id == owner
        try:
            model(*key).update(
                actions=[filters.set({**entries, subject: state})], condition=exists & unchanged
            )
            return
        except UpdateError as error:
            if not is_condition_failure(error):
                raise
    raise Conflict("The filters changed while this update was applied; try again")


def verdict(item_filters: Any, global_filters: Any, subject: str, *, match_subdomains: bool) -> str | None:
    """The state of the most specific matching filter: the pixel's first, then the tenant's."""
    for filters in (item_filters, global_filters):
        entries = _entries(filters)
        matching = [
            name
            for name in entries
            if name == subject or (match_subdomains and is_same_or_subdomain(subject, name))
        ]
        if matching:
            return entries[max(matching, key=len)]
    return None


def filters_on(pixels: Iterable[PixelItem], tenant: TenantItem | None) -> tuple[list[Filter], list[Filter]]:
    """The tenant's event and domain filters, global ones first."""
    owners: list[tuple[TenantItem | PixelItem, int | None]] = [(pixel, pixel.number) for pixel in pixels]
    if tenant is not None:
        owners.insert(0, (tenant, None))
    event_filters = [
        Filter("event", name, pixel_id, state)
        for owner, pixel_id in owners
        for name, state in sorted(_entries(owner.event_filters).items())
    ]
    domain_filters = [
        Filter("domain", domain, pixel_id, state)
        for owner, pixel_id in owners
        for domain, state in sorted(_entries(owner.domain_filters).items())
    ]
    return event_filters, domain_filters


def _entries(filters: Any) -> dict[str, str]:
    if filters is None:
        return {}
    return dict(filters.as_dict()) if hasattr(filters, "as_dict") else dict(filters)
