"""pixel_core.tokens: access tokens encrypted with the template's KMS key (moto, in process).

moto's KMS really binds the encryption context: it is the AES-GCM additional authenticated data, so
a wrong tenant or pixel fails inside KMS (checked below against the raw client), not in our code.
"""

import base64
import logging
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devtools.provision import ProvisionedResources
from pixel_core import tokens
from pixel_core.config import settings
from pixel_core.tokens import TokenDecryptionError, decrypt_access_token, encrypt_access_token
from tests.support.faults import aws_json_error, max_attempts, unreachable

TOKEN = "EAAGm0PX4ZCpsBAKZCZBsecretTOKENforPixel123ZDZD"
TENANT = "IaoreXfj"
PIXEL = 123


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kms() -> Any:
    return boto3.client("kms", region_name="us-east-1")


def secrets_in(text: str, *secrets: str) -> list[str]:
    return [secret for secret in secrets if secret in text]


# KMS refusing a request, as the JSON protocol answers it (for faults injected through botocore).
KMS_INTERNAL_ERROR = aws_json_error(500, "KMSInternalException", "application/x-amz-json-1.1")
KEY_ALIAS = "alias/pixel-gateway-test/access-tokens"


def test_a_token_encrypted_for_a_tenant_and_pixel_decrypts_back_to_the_same_token(
    aws: ProvisionedResources,
) -> None:
    # Given a token encrypted for a tenant's pixel
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)

    # When it is decrypted for the same tenant and pixel
    token = decrypt_access_token(ciphertext, tenant_id=TENANT, pixel_id=PIXEL)

    # Then it is the original token
    assert token == TOKEN


def test_a_token_of_4096_bytes_round_trips_and_non_ascii_tokens_round_trip(aws: ProvisionedResources) -> None:
    for token in ("x" * 4096, "jéton-ü-€-" + "a" * 100):
        ciphertext = encrypt_access_token(token, tenant_id=TENANT, pixel_id=PIXEL)

        assert decrypt_access_token(ciphertext, tenant_id=TENANT, pixel_id=PIXEL) == token


def test_the_ciphertext_is_base64_of_a_kms_blob_under_the_aliased_key_that_contains_neither_the_token_nor_its_base64(
    aws: ProvisionedResources,
) -> None:
    # Given the provisioned alias of the template's access token key
    key_arn = kms().describe_key(KeyId="alias/pixel-gateway-test/access-tokens")["KeyMetadata"]["Arn"]

    # When a token is encrypted
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)

    # Then what is stored is neither the token nor contains it, in clear or base64, nor does its blob
    assert ciphertext != TOKEN
    assert secrets_in(ciphertext, TOKEN, b64(TOKEN)) == []
    blob = base64.b64decode(ciphertext, validate=True)
    assert TOKEN.encode() not in blob
    assert b64(TOKEN).encode() not in blob
    # And it is a KMS ciphertext of that key, bound to exactly {tenant_id, pixel_id} (what IAM allows)
    answer = kms().decrypt(CiphertextBlob=blob, EncryptionContext={"tenant_id": TENANT, "pixel_id": "123"})
    assert (answer["Plaintext"], answer["KeyId"]) == (TOKEN.encode(), key_arn)


def test_encrypting_the_same_token_twice_gives_different_ciphertexts(aws: ProvisionedResources) -> None:
    first = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    second = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)

    assert first != second


def test_moto_kms_itself_refuses_a_ciphertext_with_another_or_no_encryption_context(
    aws: ProvisionedResources,
) -> None:
    # Given a token encrypted for tenant IaoreXfj's pixel 123
    blob = base64.b64decode(encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL))

    # When the raw KMS client decrypts it with another context, or none
    for context in ({"tenant_id": "other", "pixel_id": "123"}, {"tenant_id": TENANT, "pixel_id": "124"}, {}):
        with pytest.raises(ClientError) as caught:
            kms().decrypt(CiphertextBlob=blob, EncryptionContext=context)

        # Then KMS (the emulator, like the real service) refuses it
        assert caught.value.response["Error"]["Code"] == "InvalidCiphertextException"


@pytest.mark.parametrize(
    ("tenant_id", "pixel_id"),
    [("tenant2", PIXEL), (TENANT, 124), ("tenant2", 124), (TENANT.lower(), PIXEL)],
    ids=["another-tenant", "another-pixel", "both-other", "tenant-differs-by-case"],
)
def test_decrypting_for_another_tenant_or_another_pixel_raises_token_decryption_error(
    aws: ProvisionedResources, tenant_id: str, pixel_id: int
) -> None:
    # Given a token encrypted for tenant IaoreXfj's pixel 123
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)

    # When another tenant or pixel decrypts it
    with pytest.raises(TokenDecryptionError) as caught:
        decrypt_access_token(ciphertext, tenant_id=tenant_id, pixel_id=pixel_id)

    # Then it fails with KMS's reason, without the token or the ciphertext, and chains nothing
    assert "InvalidCiphertextException" in str(caught.value)
    assert secrets_in(str(caught.value), TOKEN, b64(TOKEN), ciphertext) == []
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)


def _flip_last_byte(ciphertext: str) -> str:
    blob = bytearray(base64.b64decode(ciphertext))
    blob[-1] ^= 0x01
    return base64.b64encode(bytes(blob)).decode()


def _flip_first_byte(ciphertext: str) -> str:
    blob = bytearray(base64.b64decode(ciphertext))
    blob[0] ^= 0x01
    return base64.b64encode(bytes(blob)).decode()


def _truncate(ciphertext: str) -> str:
    return base64.b64encode(base64.b64decode(ciphertext)[:-8]).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        _flip_last_byte,
        _flip_first_byte,
        _truncate,
        lambda ciphertext: ciphertext[:-4] + "!!!!",  # not base64
        lambda ciphertext: ciphertext[1:],  # base64 with a bad length
        lambda ciphertext: "",
        lambda ciphertext: base64.b64encode(b"junk").decode(),
    ],
    ids=["last-byte", "first-byte", "truncated", "not-base64", "bad-length", "empty", "junk"],
)
def test_tampered_ciphertext_raises_token_decryption_error(aws: ProvisionedResources, tamper: Any) -> None:
    # Given a stored ciphertext that was altered
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    tampered = tamper(ciphertext)
    assert tampered != ciphertext

    # When it is decrypted for the right tenant and pixel
    with pytest.raises(TokenDecryptionError) as caught:
        decrypt_access_token(tampered, tenant_id=TENANT, pixel_id=PIXEL)

    # Then it fails without the token or either ciphertext in the error
    assert secrets_in(str(caught.value), TOKEN, b64(TOKEN), ciphertext) == []
    assert tampered == "" or tampered not in str(caught.value)
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)


def test_a_ciphertext_made_under_another_kms_key_is_refused_even_with_the_right_context(
    aws: ProvisionedResources,
) -> None:
    # Given the same token and context encrypted under a key that is not the access token key
    other_key = kms().create_key()["KeyMetadata"]["KeyId"]
    context = {"tenant_id": TENANT, "pixel_id": str(PIXEL)}
    blob = kms().encrypt(KeyId=other_key, Plaintext=TOKEN.encode(), EncryptionContext=context)[
        "CiphertextBlob"
    ]

    # When it is decrypted as a stored access token
    with pytest.raises(TokenDecryptionError) as caught:
        decrypt_access_token(base64.b64encode(blob).decode(), tenant_id=TENANT, pixel_id=PIXEL)

    # Then the pinned KeyId makes KMS refuse it
    assert "AccessDeniedException" in str(caught.value)


def test_a_plaintext_that_is_not_utf8_fails_without_chaining_the_decode_error_that_holds_the_bytes(
    aws: ProvisionedResources,
) -> None:
    # Given bytes that are not UTF-8, encrypted with the right key and context
    secret = b"\xff\xfe" + TOKEN.encode()
    blob = kms().encrypt(
        KeyId="alias/pixel-gateway-test/access-tokens",
        Plaintext=secret,
        EncryptionContext={"tenant_id": TENANT, "pixel_id": str(PIXEL)},
    )["CiphertextBlob"]

    # When they are decrypted as an access token
    with pytest.raises(TokenDecryptionError, match="not UTF-8") as caught:
        decrypt_access_token(base64.b64encode(blob).decode(), tenant_id=TENANT, pixel_id=PIXEL)

    # Then no UnicodeDecodeError (whose .object is the plaintext) rides along
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "token",
    ["", "x" * 4097, "é" * 2049],
    ids=["empty", "4097-bytes", "2049-chars-of-4098-bytes"],
)
def test_empty_and_oversized_tokens_are_rejected_before_reaching_kms(
    aws: ProvisionedResources, inject: Any, token: str
) -> None:
    # Given every request of the real KMS client recorded (and let through) at botocore's before-send
    calls = inject(tokens.kms_client(), "*", lambda _request: None)

    # When the token is encrypted
    with pytest.raises(ValueError, match=r"^Invalid access token$") as caught:
        encrypt_access_token(token, tenant_id=TENANT, pixel_id=PIXEL)

    # Then it is rejected with a message that does not repeat it, and KMS was never asked
    assert str(caught.value) == "Invalid access token"
    assert calls.attempts == []
    # (the recorder does see a call that reaches KMS, so its silence above means something)
    encrypt_access_token("t", tenant_id=TENANT, pixel_id=PIXEL)
    assert calls.attempts == ["Encrypt"]


def test_no_log_record_nor_output_contains_the_token_or_ciphertext_even_with_botocore_logging_at_debug(
    aws: ProvisionedResources, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given every logger at DEBUG, botocore's request and response bodies included
    caplog.set_level(logging.DEBUG)

    # When a token is encrypted, decrypted, and fails to decrypt for another tenant and when tampered
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    assert decrypt_access_token(ciphertext, tenant_id=TENANT, pixel_id=PIXEL) == TOKEN
    with pytest.raises(TokenDecryptionError):
        decrypt_access_token(ciphertext, tenant_id="tenant2", pixel_id=PIXEL)
    with pytest.raises(TokenDecryptionError):
        decrypt_access_token(_flip_last_byte(ciphertext), tenant_id=TENANT, pixel_id=PIXEL)
    with pytest.raises(ValueError, match="Invalid access token"):
        encrypt_access_token(TOKEN * 200, tenant_id=TENANT, pixel_id=PIXEL)

    # Then botocore did log the KMS calls, and no record nor output holds the token or a ciphertext
    kms_records = [r for r in caplog.records if r.name.startswith("botocore") and "Decrypt" in r.getMessage()]
    assert kms_records, "botocore logged nothing at DEBUG: this test would prove nothing"
    assert any("<redacted>" in r.getMessage() for r in caplog.records)
    logged = "\n".join([r.getMessage() for r in caplog.records] + [caplog.text])
    secrets = (TOKEN, b64(TOKEN), ciphertext, _flip_last_byte(ciphertext))
    assert secrets_in(logged, *secrets) == []
    output = capsys.readouterr()
    assert secrets_in(output.out + output.err, *secrets) == []


def test_a_kms_failure_on_encrypt_reaches_the_caller_as_kms_answered_and_neither_the_exception_nor_botocores_debug_logs_carry_the_token(
    aws: ProvisionedResources, inject: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Given every logger at DEBUG, and KMS answering every Encrypt attempt of the real client with
    # an internal error (injected at botocore's before-send: the request is built, signed and logged)
    caplog.set_level(logging.DEBUG)
    client = tokens.kms_client()
    sent_bodies: list[bytes] = []

    def kms_internal_error_after_reading(request: Any) -> Any:
        sent_bodies.append(request.body)
        return KMS_INTERNAL_ERROR(request)

    fault = inject(client, "Encrypt", kms_internal_error_after_reading)

    # When a token is encrypted
    with pytest.raises(ClientError) as caught:
        encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)

    # Then the request that failed did carry the token (so its absence below means something), and
    # botocore retried it to its limit and logged it
    assert fault.attempts == ["Encrypt"] * max_attempts(client)
    assert all(b64(TOKEN).encode() in body for body in sent_bodies)
    assert [r for r in caplog.records if r.name.startswith("botocore") and "Encrypt" in r.getMessage()]
    # And the caller gets KMS's error as botocore parsed it from the response
    assert caught.value.response["Error"]["Code"] == "KMSInternalException"
    assert caught.value.operation_name == "Encrypt"
    # And neither the exception nor any log record carries the token or its base64
    assert secrets_in(f"{caught.value} {caught.value!r}", TOKEN, b64(TOKEN)) == []
    logged = "\n".join([r.getMessage() for r in caplog.records] + [caplog.text])
    assert secrets_in(logged, TOKEN, b64(TOKEN)) == []


@pytest.mark.parametrize(
    ("respond", "reason"),
    [(KMS_INTERNAL_ERROR, "KMSInternalException"), (unreachable, "EndpointConnectionError")],
    ids=["kms-error", "unreachable"],
)
def test_a_kms_failure_on_decrypt_raises_token_decryption_error_naming_only_the_reason(
    aws: ProvisionedResources, inject: Any, respond: Any, reason: str
) -> None:
    # Given a stored ciphertext, then every Decrypt attempt of the real client failing (injected at
    # botocore's before-send: botocore parses the answer and retries as it would in Lambda)
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    client = tokens.kms_client()
    fault = inject(client, "Decrypt", respond)

    # When it is decrypted
    with pytest.raises(TokenDecryptionError) as caught:
        decrypt_access_token(ciphertext, tenant_id=TENANT, pixel_id=PIXEL)

    # Then botocore gave up after its retries, and the error names the reason only
    assert fault.attempts == ["Decrypt"] * max_attempts(client)
    assert str(caught.value) == f"Access token could not be decrypted ({reason})"
    assert (caught.value.__cause__, caught.value.__context__) == (None, None)


def test_a_key_alias_that_kms_no_longer_knows_fails_encrypt_as_kms_answered_and_decrypt_as_not_found(
    aws: ProvisionedResources,
) -> None:
    # Given a stored ciphertext, then the key's alias deleted in KMS (moto's own answer follows)
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    kms().delete_alias(AliasName=KEY_ALIAS)

    # When a token is encrypted, Then the caller gets KMS's NotFoundException, without the token
    with pytest.raises(ClientError) as caught:
        encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    assert caught.value.response["Error"]["Code"] == "NotFoundException"
    assert secrets_in(f"{caught.value} {caught.value!r}", TOKEN, b64(TOKEN)) == []
    # And when the stored one is decrypted, Then the error names KMS's reason only
    with pytest.raises(TokenDecryptionError) as refused:
        decrypt_access_token(ciphertext, tenant_id=TENANT, pixel_id=PIXEL)
    assert str(refused.value) == "Access token could not be decrypted (NotFoundException)"


def test_without_a_configured_key_encrypt_raises_and_decrypt_raises_token_decryption_error(
    aws: ProvisionedResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stored ciphertext, then a container without TOKEN_KMS_KEY_ID
    ciphertext = encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    monkeypatch.setattr(tokens, "settings", settings._replace(token_key_id=""))

    # When it encrypts or decrypts, Then it says what is missing
    with pytest.raises(RuntimeError, match="TOKEN_KMS_KEY_ID is not configured"):
        encrypt_access_token(TOKEN, tenant_id=TENANT, pixel_id=PIXEL)
    with pytest.raises(TokenDecryptionError, match="TOKEN_KMS_KEY_ID is not configured"):
        decrypt_access_token(ciphertext, tenant_id=TENANT, pixel_id=PIXEL)


def test_the_kms_client_is_made_once_per_container_with_short_timeouts(aws: ProvisionedResources) -> None:
    tokens.kms_client.cache_clear()

    client = tokens.kms_client()

    assert tokens.kms_client() is client
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (1, 3)
    assert client.meta.region_name == "us-east-1"
