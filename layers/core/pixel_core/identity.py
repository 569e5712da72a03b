"""Visitor identity: e-mails are hashed at the edge and never kept, queued or logged in clear.

MD5 of the trimmed, lowercased e-mail identifies a visitor (the HeroPixel `md5` field);
SHA-256 of the same string is what Meta's Conversions API takes as `user_data.em`.
"""

import hashlib
import re
from typing import NamedTuple

from pixel_core.errors import BadRequest
from pixel_core.events import MD5

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
# Deliberately loose: one @, something either side, no spaces or control characters.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+")


class VisitorIdentity(NamedTuple):
    md5: str
    email_sha256: str | None  # only when the e-mail itself was given


def normalized_email(email: str) -> str:
    return email.strip().lower()


def identity_of(email: str | None, md5: str | None) -> VisitorIdentity | None:
    """The visitor's hashes; None for an anonymous pageview. Empty strings count as absent."""
    if email is not None and email.strip():
        normalized = normalized_email(email)
        if len(normalized) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(normalized):
            raise BadRequest("Invalid email")
        return VisitorIdentity(
            md5=hashlib.md5(normalized.encode(), usedforsecurity=False).hexdigest(),
            email_sha256=hashlib.sha256(normalized.encode()).hexdigest(),
        )
    if md5 is not None and md5.strip():
        candidate = md5.strip().lower()
        if not MD5.fullmatch(candidate):
            raise BadRequest("Invalid md5: expected 32 hexadecimal characters")
        return VisitorIdentity(md5=candidate, email_sha256=None)
    return None
