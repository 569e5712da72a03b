"""Cleaning and validation of user-supplied domain names.

Users paste anything from a bare host to a full URL; `clean_domain` reduces it to the
host name (IDNA A-label form) or rejects it with one generic error message.
"""

import re
import unicodedata

import idna

# Checked before any parsing so that hostile input costs next to nothing.
MAX_RAW_LENGTH = 2048
MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_PORT = 65535

INVALID_DOMAIN_MESSAGE = "Invalid domain format"

# Any "scheme://", or the "//" of a protocol-relative URL.
_SCHEME_PREFIX = re.compile(r"\A(?:[a-z][a-z0-9+.-]*:)?//")
_AUTHORITY_END = re.compile(r"[/?#]")
_LABEL = re.compile(rf"[a-z0-9](?:[a-z0-9-]{{0,{MAX_LABEL_LENGTH - 2}}}[a-z0-9])?")
# A numeric TLD is what rejects IPv4 addresses in every notation (127.0.0.1, 127.1, ...).
_TLD = re.compile(r"[a-z]+|xn--[a-z0-9-]+")
# str.strip() would also eat separators such as \x1c-\x1f and \x85; only these may be trimmed.
_TRIMMABLE_CONTROLS = frozenset("\t\n\v\f\r")
# RFC 6761: every name under .localhost resolves to the loopback address.
_LOOPBACK_TLD = "localhost"


class InvalidDomainError(ValueError):
    """The input is not a usable public host name."""

    def __init__(self, message: str = INVALID_DOMAIN_MESSAGE) -> None:
        super().__init__(message)


def clean_domain(raw: str) -> str:
    """Return the cleaned host name of `raw`, or raise InvalidDomainError."""
    host = _extract_host(_trimmed_lowercase_text(raw))
    if not host.isascii():
        host = _to_a_labels(host)
    # After IDNA, so that an ideographic full stop at the end counts as the trailing dot.
    host = host.removesuffix(".")
    if not _is_valid_host(host):
        raise InvalidDomainError
    return host


def is_same_or_subdomain(host: str, parent: str) -> bool:
    """Tell whether `host` is `parent` or lies under it; both must already be cleaned."""
    return host == parent or host.endswith("." + parent)


def _trimmed_lowercase_text(raw: object) -> str:
    # Typed as object: callers outside mypy's reach do pass None, numbers and the like.
    if not isinstance(raw, str) or len(raw) > MAX_RAW_LENGTH:
        raise InvalidDomainError
    # Backslashes are rejected because browsers read them as "/" and URL parsers disagree.
    if any(ch == "\\" or (unicodedata.category(ch) == "Cc" and ch not in _TRIMMABLE_CONTROLS) for ch in raw):
        raise InvalidDomainError
    text = raw.strip()
    if any(ch.isspace() for ch in text):
        raise InvalidDomainError
    return text.lower()


def _extract_host(text: str) -> str:
    # Parsed by hand: urllib.parse reads "example.com:8080" as scheme "example.com".
    authority = _AUTHORITY_END.split(_SCHEME_PREFIX.sub("", text, count=1), maxsplit=1)[0]
    # The last "@" ends the credentials, as in the WHATWG URL standard.
    host_and_port = authority.rpartition("@")[2]
    if host_and_port.startswith("["):
        raise InvalidDomainError  # IPv6 literal
    host, _, port = host_and_port.partition(":")
    # A bare IPv6 address splits into a short "host" and a "port" full of colons.
    if port and not (port.isascii() and port.isdigit() and int(port) <= MAX_PORT):
        raise InvalidDomainError
    return host


def _to_a_labels(host: str) -> str:
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError and codec errors on lone surrogates
        raise InvalidDomainError from exc


def _is_valid_host(host: str) -> bool:
    labels = host.split(".")
    return (
        len(host) <= MAX_DOMAIN_LENGTH
        and len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and _TLD.fullmatch(labels[-1]) is not None
        and labels[-1] != _LOOPBACK_TLD
    )
