"""Access tokens of Meta pixel connections, encrypted with the template's KMS key (AccessTokenKey).

A token is stored only as the base64 of its KMS ciphertext. The encryption context binds it to its
tenant and pixel: a ciphertext copied to another tenant's or pixel's item does not decrypt.

Neither a token nor its ciphertext ever goes into an exception message or a log record. botocore logs
request and response bodies at DEBUG (the base64 of the plaintext included), so the KMS client comes
with a logging filter that blanks the `Plaintext` and `CiphertextBlob` fields of those records.

The KMS client is made once per container, on first use, so requests that never touch a token do not
pay for it at cold start (as pixel_core.queues does for SQS).
"""

import base64
import functools
import logging
import re
from typing import Any

from pixel_core import aws
from pixel_core.config import settings

# KMS Encrypt takes at most 4096 bytes of plaintext.
MAX_TOKEN_BYTES = 4096

_SECRET_FIELDS = re.compile(r'("(?:Plaintext|CiphertextBlob)"\s*:\s*")[^"]*(")')
# The botocore loggers that write request and response bodies.
_BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers")


class TokenDecryptionError(Exception):
    """A stored access token could not be decrypted (wrong tenant or pixel, tampered, KMS error)."""


class _RedactKmsPayloads(logging.Filter):
    """Blanks KMS plaintexts and ciphertexts in botocore's DEBUG records of request/response bodies."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is the logging machinery's business, not ours
            return True
        if '"Plaintext"' in message or '"CiphertextBlob"' in message:
            record.msg = _SECRET_FIELDS.sub(r"\1<redacted>\2", message)
            record.args = None
        return True


_redact_kms_payloads = _RedactKmsPayloads()


@functools.cache
def kms_client() -> Any:
    for name in _BODY_LOGGERS:
        logging.getLogger(name).addFilter(_redact_kms_payloads)  # the same filter is added only once
    return aws.client("kms")


def _key_id() -> str:
    if not settings.token_key_id:
        raise RuntimeError("TOKEN_KMS_KEY_ID is not configured")
    return settings.token_key_id


# The encryption context's `secret` of a pixel access key (pixel_core.access_keys). Meta access
# tokens have none: the template lets the API function decrypt only what carries this one, and the
# publisher only what carries none, so neither function can read the other's secrets.
ACCESS_KEY_SECRET = "pixel-access-key"  # noqa: S105  # a label in the encryption context, not a secret


def _encryption_context(tenant_id: str, pixel_id: int, secret: str | None = None) -> dict[str, str]:
    context = {"tenant_id": tenant_id, "pixel_id": str(pixel_id)}
    return context if secret is None else {**context, "secret": secret}


def encrypt_access_token(token: str, *, tenant_id: str, pixel_id: int, secret: str | None = None) -> str:
    """Base64 of the KMS ciphertext of ``token``, bound to ``tenant_id``, ``pixel_id`` (and ``secret``).

    Raises ValueError for an empty token or one over 4096 bytes (UTF-8); KMS errors propagate as
    botocore exceptions, whose messages come from KMS and carry no plaintext.
    """
    plaintext = token.encode("utf-8")
    if not plaintext or len(plaintext) > MAX_TOKEN_BYTES:
        raise ValueError("Invalid access token")
    response = kms_client().encrypt(
        KeyId=_key_id(),
        Plaintext=plaintext,
        EncryptionContext=_encryption_context(tenant_id, pixel_id, secret),
    )
    return base64.b64encode(response["CiphertextBlob"]).decode("ascii")


def decrypt_access_token(ciphertext: str, *, tenant_id: str, pixel_id: int, secret: str | None = None) -> str:
    """The access token that ``encrypt_access_token`` encrypted for this tenant and pixel.

    Raises TokenDecryptionError on any failure. Its message names the kind of failure only, and it
    is raised outside of any ``except`` block, so it carries no chained exception (a
    UnicodeDecodeError, for one, would hold the decrypted bytes).
    """
    token, failure = _decrypt(ciphertext, _encryption_context(tenant_id, pixel_id, secret))
    if token is None:
        raise TokenDecryptionError(f"Access token could not be decrypted ({failure})")
    return token


def _decrypt(ciphertext: str, context: dict[str, str]) -> tuple[str | None, str]:
    """(token, "") or (None, the kind of failure)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415  # see the module docstring

    if not settings.token_key_id:
        return None, "TOKEN_KMS_KEY_ID is not configured"
    try:
        blob = base64.b64decode(ciphertext, validate=True)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        return None, "not base64"
    if not blob:
        return None, "empty"
    try:
        # KeyId pins the key: a ciphertext made under any other key is refused.
        response = kms_client().decrypt(
            KeyId=settings.token_key_id, CiphertextBlob=blob, EncryptionContext=context
        )
    except ClientError as error:
        return None, str(error.response.get("Error", {}).get("Code", "ClientError"))
    except BotoCoreError as error:
        return None, type(error).__name__
    try:
        return response["Plaintext"].decode("utf-8"), ""
    except UnicodeDecodeError:
        return None, "not UTF-8"
