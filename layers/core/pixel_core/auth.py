"""App credentials: who is calling, and which tenants it may act on.

Secrets are random tokens shown once; only their SHA-256 digest is stored (a slow password hash
buys nothing for 256-bit random secrets and would cost every request). Digests are compared in
constant time, and an unknown app costs the same comparison as a wrong secret.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from typing import NamedTuple

from cachetools import TTLCache, cached
from pynamodb.expressions.update import Action

from pixel_core.clock import utc_now
from pixel_core.config import settings
from pixel_core.errors import Unauthorized
from pixel_core.models import AppItem, TenantItem, find

# Bounds on what a caller may send before any lookup: hostile sizes are rejected unread.
MAX_APP_ID_LENGTH = 128
MAX_SECRET_LENGTH = 256
_UNKNOWN_APP_DIGEST = hashlib.sha256(b"no such app").hexdigest()


class Principal(NamedTuple):
    app_id: str
    tenant_ids: frozenset[str]

    def may_act_on(self, tenant_id: str) -> bool:
        return tenant_id in self.tenant_ids


class NewCredentials(NamedTuple):
    app_id: str
    app_secret: str
    tenant_ids: frozenset[str]


def secret_digest(app_secret: str) -> str:
    return hashlib.sha256(app_secret.encode()).hexdigest()


def authenticate(app_id: object, app_secret: object) -> Principal:
    if not (
        isinstance(app_id, str)
        and isinstance(app_secret, str)
        and 0 < len(app_id) <= MAX_APP_ID_LENGTH
        and 0 < len(app_secret) <= MAX_SECRET_LENGTH
    ):
        raise Unauthorized()
    return _verified(app_id, secret_digest(app_secret))


# Successful checks only: a wrong secret is looked up every time, so nothing about it is kept.
@cached(TTLCache(maxsize=1024, ttl=settings.auth_cache_seconds), lock=threading.Lock())
def _verified(app_id: str, presented_digest: str) -> Principal:
    app = find(AppItem, AppItem.key(app_id))
    stored_digest = app.secret_sha256 if app else _UNKNOWN_APP_DIGEST
    if not hmac.compare_digest(stored_digest, presented_digest) or app is None:
        raise Unauthorized()
    return Principal(app_id=app.app_id, tenant_ids=frozenset(app.tenant_ids or ()))


def basic_credentials(authorization_header: str | None) -> tuple[str, str] | None:
    """`Basic base64(appId:appSecret)` -> (appId, appSecret); None when absent or malformed."""
    if not authorization_header or len(authorization_header) > 1024:
        return None
    scheme, _, encoded = authorization_header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    app_id, separator, app_secret = decoded.partition(":")
    return (app_id, app_secret) if separator else None


def create_tenant(tenant_id: str, name: str | None = None) -> TenantItem:
    """Creates the tenant, or renames an existing one: its global filters and creation time stay."""
    tenant = TenantItem(*TenantItem.key(tenant_id))
    actions: list[Action] = [
        TenantItem.item_type.set(TenantItem),
        TenantItem.tenant_id.set(tenant_id),
        TenantItem.created_at.set(TenantItem.created_at | utc_now()),
    ]
    if name is not None:
        actions.append(TenantItem.name.set(name))
    tenant.update(actions=actions)
    return tenant


def create_app(
    tenant_ids: set[str], *, name: str | None = None, app_id: str | None = None, app_secret: str | None = None
) -> NewCredentials:
    """Creates (or, given an existing app id, replaces) an app credential bound to existing tenants."""
    if not tenant_ids:
        raise ValueError("an app must be bound to at least one tenant")
    missing = sorted(t for t in tenant_ids if find(TenantItem, TenantItem.key(t)) is None)
    if missing:
        raise ValueError(f"unknown tenant(s): {', '.join(missing)}")
    app_id = app_id or f"app_{secrets.token_hex(8)}"
    app_secret = app_secret or secrets.token_urlsafe(32)
    forget_verified_apps()  # a rotated secret stops working here at once, elsewhere within the TTL
    AppItem(
        *AppItem.key(app_id),
        app_id=app_id,
        name=name,
        secret_sha256=secret_digest(app_secret),
        tenant_ids=set(tenant_ids),
        created_at=utc_now(),
    ).save()
    return NewCredentials(app_id=app_id, app_secret=app_secret, tenant_ids=frozenset(tenant_ids))


def forget_verified_apps() -> None:
    """Drops this container's cache of verified credentials (tests, and the admin tool)."""
    _verified.cache_clear()


def delete_app(app_id: str) -> bool:
    app = find(AppItem, AppItem.key(app_id))
    if app is None:
        return False
    app.delete()
    forget_verified_apps()
    return True
