"""Pixels: created for a tenant, visible only to apps that may act on that tenant."""

import threading
import unicodedata

from cachetools import TTLCache, cached
from pynamodb.exceptions import TransactWriteError

from pixel_core.auth import Principal
from pixel_core.cleanup import request_cleanup
from pixel_core.clock import utc_now
from pixel_core.config import settings
from pixel_core.errors import BadRequest, Conflict, GatewayError, NotFound, PixelNotFound
from pixel_core.models import (
    PixelDeletionItem,
    PixelItem,
    TableItem,
    TenantItem,
    find,
    next_sequence_value,
    same_pixel,
    tenant_partition,
    transaction,
)

MAX_NAME_LENGTH = 256
_ALLOCATION_ATTEMPTS = 5


def pixel_for(principal: Principal, pixel_id: int) -> PixelItem:
    """The pixel, if the caller may act on its tenant; otherwise exactly as if it did not exist."""
    pixel = find(PixelItem, PixelItem.key(pixel_id))
    if pixel is None or not principal.may_act_on(pixel.tenant_id):
        raise PixelNotFound(pixel_id)
    return pixel


def recent_pixel(pixel_id: int) -> PixelItem | None:
    """The pixel as this container read it in the last few seconds (PIXEL_CACHE_SECONDS), for
    intake that has no principal (browser collection); None when there is none."""
    try:
        return _recent_pixel(pixel_id)
    except PixelNotFound:
        return None


def recent_pixel_for(principal: Principal, pixel_id: int) -> PixelItem:
    """Like pixel_for, but may answer from what this container read in the last few seconds
    (PIXEL_CACHE_SECONDS): for the event intake, where every request would otherwise read it."""
    pixel = _recent_pixel(pixel_id)  # raises PixelNotFound itself
    if not principal.may_act_on(pixel.tenant_id):
        raise PixelNotFound(pixel_id)
    return pixel


# Exceptions are not cached: a pixel created a moment ago is found at once.
@cached(TTLCache(maxsize=4096, ttl=settings.pixel_cache_seconds), lock=threading.Lock())
def _recent_pixel(pixel_id: int) -> PixelItem:
    pixel = find(PixelItem, PixelItem.key(pixel_id))
    if pixel is None:
        raise PixelNotFound(pixel_id)
    return pixel


# A tenant's global filters, read with every event like its pixel; None is not cached either.
@cached(TTLCache(maxsize=1024, ttl=settings.pixel_cache_seconds), lock=threading.Lock())
def _recent_tenant(tenant_id: str) -> TenantItem:
    tenant = find(TenantItem, TenantItem.key(tenant_id))
    if tenant is None:
        raise NotFound(f"Tenant {tenant_id} not found")
    return tenant


def recent_tenant(tenant_id: str) -> TenantItem | None:
    try:
        return _recent_tenant(tenant_id)
    except NotFound:
        return None


def forget_recent_pixels() -> None:
    """Drops this container's recently read pixels and tenants, after it changed one (other
    containers catch up within PIXEL_CACHE_SECONDS)."""
    _recent_pixel.cache_clear()
    _recent_tenant.cache_clear()


def tenant_for(principal: Principal, tenant_id: str | None) -> str:
    if tenant_id is None:
        if len(principal.tenant_ids) == 1:
            return next(iter(principal.tenant_ids))
        raise BadRequest("tenant_id is required: this app acts on several tenants")
    if not principal.may_act_on(tenant_id):
        raise NotFound(f"Tenant {tenant_id} not found")
    return tenant_id


def clean_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or any(unicodedata.category(ch) == "Cc" for ch in name):
        raise BadRequest(f"Pixel name must be at most {MAX_NAME_LENGTH} printable characters")
    return name or None


def create_pixel(
    principal: Principal, *, tenant_id: str | None, pixel_id: int | None, name: str | None
) -> PixelItem:
    tenant_id = tenant_for(principal, tenant_id)
    name = clean_name(name)
    if pixel_id is not None:
        if not insert_pixel(PixelItem.new(pixel_id, tenant_id, name=name, created_at=utc_now())):
            raise Conflict(f"Pixel {pixel_id} already exists")
        return pixel_for(principal, pixel_id)
    # Explicit ids may already occupy allocated numbers: skip them.
    for _ in range(_ALLOCATION_ATTEMPTS):
        candidate = PixelItem.new(next_sequence_value("pixel_id"), tenant_id, name=name, created_at=utc_now())
        if insert_pixel(candidate):
            return candidate
    raise GatewayError("Could not allocate a pixel id")


def insert_pixel(pixel: PixelItem) -> bool:
    """Creates the pixel if its id is free: False if it exists, 409 while its deletion runs."""
    try:
        with transaction() as tx:
            tx.save(pixel, condition=PixelItem.pk.does_not_exist(), tag=PixelItem)
            pk, sk = PixelDeletionItem.key(pixel.number)
            tx.condition_check(
                PixelDeletionItem,
                pk,
                sk,
                condition=PixelDeletionItem.pk.does_not_exist(),
                tag=PixelDeletionItem,
            )
    except TransactWriteError as error:
        failed = {tag for tag, code in tx.reasons(error) if code == "ConditionalCheckFailed"}
        if PixelDeletionItem in failed:
            raise Conflict(
                f"Pixel {pixel.pixel_id} is being deleted; it can be set up again once that is done"
            ) from None
        if PixelItem in failed:
            return False
        raise
    return True


def list_pixels(principal: Principal, tenant_id: str | None = None) -> list[PixelItem]:
    tenants = [tenant_for(principal, tenant_id)] if tenant_id is not None else sorted(principal.tenant_ids)
    pixels = [
        item
        for tenant in tenants
        for item in TableItem.tenant_pixels.query(tenant_partition(tenant))
        if isinstance(item, PixelItem)
    ]
    return sorted(pixels, key=lambda pixel: pixel.number)


def delete_pixel(principal: Principal, pixel_id: int) -> None:
    """Deletes the pixel at once; its partition (domains, filters, counters) is cleaned up in the
    background (pixel_core/cleanup.py). The request is queued first: if the deletion then fails,
    the clean-up finds no deletion item and does nothing."""
    pixel = pixel_for(principal, pixel_id)
    request_cleanup(pixel_id)
    try:
        with transaction() as tx:
            tx.delete(PixelItem(*PixelItem.key(pixel_id)), condition=same_pixel(pixel), tag=PixelItem)
            deletion = PixelDeletionItem(
                *PixelDeletionItem.key(pixel_id),
                tenant_id=pixel.tenant_id,
                incarnation=pixel.incarnation,
                requested_at=utc_now(),
            )
            tx.save(deletion, condition=PixelDeletionItem.pk.does_not_exist(), tag=PixelDeletionItem)
    except TransactWriteError as error:
        if any(code == "ConditionalCheckFailed" for _tag, code in tx.reasons(error)):
            raise PixelNotFound(pixel_id) from None  # deleted (or deleted and set up again) meanwhile
        raise
    forget_recent_pixels()
