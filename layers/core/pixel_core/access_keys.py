"""Pixel access keys: what a server sending events in Meta's format holds (CAPIG's `accessKey`).

A key sends events to its one pixel and can do nothing else (docs/api.md, "Server events"). It is
stored twice and never in clear: its SHA-256, which intake compares in constant time with no KMS
call on the hot path (a key has 256 random bits, so a plain digest suffices, as for app secrets),
and its KMS ciphertext, so that the apps of the pixel's tenant can read it back.
"""

import hashlib
import hmac
import secrets

from pixel_core.models import PixelItem
from pixel_core.tokens import ACCESS_KEY_SECRET, decrypt_access_token, encrypt_access_token

KEY_BYTES = 32  # token_urlsafe: 43 characters
MAX_PRESENTED_LENGTH = 256  # longer is no key of ours; refused before hashing


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key_attributes(tenant_id: str, pixel_id: int) -> dict[str, str]:
    """A fresh key, as the two attributes a PixelItem stores of it."""
    key = secrets.token_urlsafe(KEY_BYTES)
    return {
        "access_key_sha256": digest(key),
        "access_key_ciphertext": encrypt_access_token(
            key, tenant_id=tenant_id, pixel_id=pixel_id, secret=ACCESS_KEY_SECRET
        ),
    }


def opens(pixel: PixelItem, presented: str | None) -> bool:
    """True when ``presented`` is this pixel's current key."""
    if not presented or len(presented) > MAX_PRESENTED_LENGTH or not pixel.access_key_sha256:
        return False
    return hmac.compare_digest(digest(presented), pixel.access_key_sha256)


def readable_key(pixel: PixelItem) -> str | None:
    """The pixel's key, for the apps of its tenant; None for a pixel set up before keys existed."""
    if not pixel.access_key_ciphertext:
        return None
    return decrypt_access_token(
        pixel.access_key_ciphertext,
        tenant_id=pixel.tenant_id,
        pixel_id=pixel.number,
        secret=ACCESS_KEY_SECRET,
    )
