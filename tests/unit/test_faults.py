"""AWS failing under a request, through the real Lambda handler (issue 6, item 5).

DynamoDB throttling, an SQS send failure and a KMS failure each give the caller a generic 500 (the
HeroPixel envelope, or a GraphQL error with extensions.code 500), leave nothing written half-way,
and are logged once, as JSON, with the API Gateway request id as correlation id and no secret.

Faults are injected at botocore's `before-send` event (tests/support/faults.py); botocore's own
backoff sleeps are recorded instead of slept.
"""

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from pixel_core import auth, queues, tokens
from pixel_core.clock import utc_now
from pixel_core.config import settings
from pixel_core.models import PixelItem, find
from pixel_core.tokens import decrypt_access_token
from tests.support.api_events import graphql_post, response_body
from tests.support.documents import PAGEVIEW, SEED_QUERY
from tests.support.faults import (
    aws_json_error,
    dynamodb_client,
    dynamodb_throttling,
    max_attempts,
    unreachable,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TENANT = "IaoreXfj"
PIXEL = "18904456377094531"
EMAIL = "john_smith@gmail.com"
EMAIL_MD5 = hashlib.md5(EMAIL.encode(), usedforsecurity=False).hexdigest()
OLD_TOKEN = "EAAB-old-token-never-logged-1f2e3d"
NEW_TOKEN = "EAAB-new-token-never-logged-9a8b7c"
SETUP = (
    "mutation Setup($tenantId: ID!, $input: PixelConnectionCreationInput!) { tenantMutations(tenantId: $tenantId) "
    "{ signalMutations { setupPixelSignalConfig(input: $input) { id connectionStatus { accessTokenAvailable } } } } }"
)
INTERNAL_ERROR = {"code": 500, "data": {}, "message": "Internal server error"}


# --- the Lambda handler and its events ------------------------------------------------------------


@pytest.fixture
def credentials(moto_table):
    """An app of tenant IaoreXfj (in moto), and the `auth` argument that names it."""
    auth.create_tenant(TENANT)
    created = auth.create_app({TENANT})
    return created, {"appId": created.app_id, "appSecret": created.app_secret}


@pytest.fixture
def pixel_123(credentials):
    PixelItem.new(123, TENANT, created_at=utc_now()).save()
    return 123


def domains_event(app_auth: dict[str, str], action: str, domain: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"pixel_id": 123, "action": action}
    if domain is not None:
        event["domain"] = domain
    return graphql_post(SEED_QUERY, {"auth": app_auth, "event": event})


def pageview_event(app_auth: dict[str, str]) -> dict[str, Any]:
    event = {"pixelId": 123, "domain": "example.com", "email": EMAIL}
    return graphql_post(PAGEVIEW, {"auth": app_auth, "event": event})


def setup_event(basic_header: str, token: str, name: str) -> dict[str, Any]:
    setup_input = {
        "pixelId": PIXEL,
        "businessId": "2840127409433732",
        "accessToken": token,
        "apiVersion": "v14.0",
        "externalId": "633612748410ba6e902",
        "name": name,
    }
    return graphql_post(
        SETUP, {"tenantId": TENANT, "input": setup_input}, path="/capig/graphql/", authorization=basic_header
    )


def basic_header(created: Any) -> str:
    return "Basic " + base64.b64encode(f"{created.app_id}:{created.app_secret}".encode()).decode()


# --- what was written, and what was logged --------------------------------------------------------


def table_snapshot(table_name: str) -> list[dict[str, Any]]:
    """Every item of the table, read with a client of its own (no fault injected there)."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    items = [
        item
        for page in client.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True)
        for item in page["Items"]
    ]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def the_one_error(records: list[dict[str, Any]], event: dict[str, Any]) -> dict[str, Any]:
    """The request's only ERROR record; it carries the request's correlation id."""
    errors = [record for record in records if record["level"] == "ERROR"]
    assert len(errors) == 1, errors
    assert errors[0]["correlation_id"] == event["requestContext"]["requestId"]
    return errors[0]


def assert_no_secret_logged(records: list[dict[str, Any]], *secrets: str) -> None:
    text = json.dumps(records)
    for secret in secrets:
        assert secret not in text


# --- fault injection ------------------------------------------------------------------------------


def changed_items(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Keys of the items added, removed or changed."""

    def by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(item["pk"]["S"], item["sk"]["S"]): item for item in items}

    old, new = by_key(before), by_key(after)
    return {key for key in old.keys() | new.keys() if old.get(key) != new.get(key)}


DOMAIN_ID_SEQUENCE = ("SEQUENCE#domain_id", "SEQUENCE")
THROTTLING_ERRORS = ["ProvisionedThroughputExceededException", "ThrottlingException"]


# --- DynamoDB throttling --------------------------------------------------------------------------


@pytest.mark.parametrize("error_code", THROTTLING_ERRORS)
@pytest.mark.parametrize(
    ("throttled", "may_change"),
    [
        ("*", set()),
        # The id is taken from its atomic counter before the transaction: a failed write may use up
        # an id (ids are unique and never reused, not gap-free). Nothing else may change.
        ("TransactWriteItems", {DOMAIN_ID_SEQUENCE}),
    ],
    ids=["every-dynamodb-call", "only-the-transaction"],
)
def test_domains_add_under_dynamodb_throttling_on_every_attempt_is_a_500_envelope_that_writes_no_domain_and_logs_one_error_with_the_correlation_id(
    handler,
    lambda_context,
    credentials,
    pixel_123,
    moto_table,
    inject,
    backoff_sleeps,
    json_logs,
    queued_messages,
    error_code,
    throttled,
    may_change,
):
    # Given pixel 123 with one domain, and DynamoDB throttling every attempt of some calls
    created, app_auth = credentials
    first = handler(domains_event(app_auth, "add", "first.example"), lambda_context)
    assert response_body(first)["data"]["domains"]["code"] == 200
    before = table_snapshot(moto_table)
    client = dynamodb_client()
    fault = inject(client, throttled, dynamodb_throttling(error_code))
    event = domains_event(app_auth, "add", "example.com")
    # When the add request arrives
    response = handler(event, lambda_context)
    # Then botocore retried the throttled call to its limit, and the caller gets a generic 500 envelope
    assert len(set(fault.attempts)) == 1
    assert len(fault.attempts) == max_attempts(client) == 4
    assert len(backoff_sleeps) == len(fault.attempts) - 1
    assert response["statusCode"] == 200  # in band, as the HeroPixel documents answer errors
    assert response_body(response) == {"data": {"domains": INTERNAL_ERROR}}
    assert error_code not in response["body"]
    # And one ERROR record, with the request's correlation id and the cause; no secret anywhere
    records = json_logs()
    error = the_one_error(records, event)
    assert error["operation"] == "domains"
    assert error_code in error["exception"]  # the throttling, not only the failed transaction
    assert_no_secret_logged(records, created.app_secret)
    # And nothing written half-way: no domain item, the pixel's domain set unchanged, nothing queued
    assert changed_items(before, table_snapshot(moto_table)) <= may_change
    fault.lift()
    listed = response_body(handler(domains_event(app_auth, "list"), lambda_context))["data"]["domains"]
    assert [domain["domain"] for domain in listed["data"]["domains"]] == ["first.example"]
    assert PixelItem.get(*PixelItem.key(123)).domains == {"first.example"}
    assert queued_messages() == []


@pytest.mark.parametrize("error_code", THROTTLING_ERRORS)
@pytest.mark.parametrize("warm", [False, True], ids=["cold-container", "warm-container"])
def test_pageview_under_dynamodb_throttling_on_every_attempt_is_a_500_envelope_that_queues_nothing_and_logs_one_error_with_the_correlation_id(
    handler,
    lambda_context,
    credentials,
    pixel_123,
    moto_table,
    inject,
    backoff_sleeps,
    json_logs,
    queued_messages,
    error_code,
    warm,
):
    # Given pixel 123, a container that has (warm) or has not (cold) cached the app and the pixel,
    # and DynamoDB throttling every attempt of every call
    created, app_auth = credentials
    if warm:
        assert (
            response_body(handler(pageview_event(app_auth), lambda_context))["data"]["pageview"]["code"]
            == 200
        )
        assert len(queued_messages()) == 1
    before = table_snapshot(moto_table)
    client = dynamodb_client()
    fault = inject(client, "*", dynamodb_throttling(error_code))
    event = pageview_event(app_auth)
    # When an identified pageview arrives
    response = handler(event, lambda_context)
    # Then the first DynamoDB read (the app when cold, the visitor when warm) was retried to the
    # limit, and the caller gets a generic 500 envelope
    assert fault.attempts == ["GetItem"] * max_attempts(client)
    assert len(backoff_sleeps) == len(fault.attempts) - 1
    assert response_body(response) == {"data": {"pageview": INTERNAL_ERROR}}
    # And one ERROR record with the correlation id; neither the secret nor the e-mail (or its hash)
    records = json_logs()
    error = the_one_error(records, event)
    assert error["operation"] == "pageview"
    assert error_code in error["exception"]
    assert_no_secret_logged(records, created.app_secret, EMAIL, EMAIL_MD5)
    # And nothing was queued, nothing written
    fault.lift()
    assert queued_messages() == []
    assert changed_items(before, table_snapshot(moto_table)) == set()


# --- SQS send failure -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "respond",
    [
        aws_json_error(503, "com.amazonaws.sqs#ServiceUnavailable", "application/x-amz-json-1.0"),
        aws_json_error(400, "com.amazonaws.sqs#RequestThrottled", "application/x-amz-json-1.0"),
        unreachable,
    ],
    ids=["service-unavailable", "throttled", "unreachable"],
)
def test_pageview_whose_sqs_send_fails_every_attempt_is_a_500_envelope_that_queues_nothing_and_logs_one_error_with_the_correlation_id(
    handler,
    lambda_context,
    credentials,
    pixel_123,
    moto_table,
    inject,
    json_logs,
    queued_messages,
    respond,
):
    # Given pixel 123 and an events queue that refuses every attempt to send
    created, app_auth = credentials
    before = table_snapshot(moto_table)
    client = queues.sqs_client()
    fault = inject(client, "SendMessage", respond)
    event = pageview_event(app_auth)
    # When an identified pageview arrives
    response = handler(event, lambda_context)
    # Then the send was attempted as often as the client allows, and the caller gets a 500 envelope
    assert fault.attempts == ["SendMessage"] * max_attempts(client)
    assert response_body(response) == {"data": {"pageview": INTERNAL_ERROR}}
    # And one ERROR record with the correlation id, without the secret or the e-mail (or its hash)
    records = json_logs()
    error = the_one_error(records, event)
    assert error["operation"] == "pageview"
    assert_no_secret_logged(records, created.app_secret, EMAIL, EMAIL_MD5)
    # And nothing is on the queue, nothing in the table
    fault.lift()
    assert queued_messages() == []
    assert changed_items(before, table_snapshot(moto_table)) == set()


# --- KMS failure ----------------------------------------------------------------------------------


@dataclass
class KmsFailure:
    """KMS refusing the real client's Encrypt; `calls` records each attempt botocore made."""

    calls: Any  # a Fault of tests/support/faults.py
    expected_attempts: int
    restore: Callable[[], None]


def kms_failing(code: str, inject: Any) -> KmsFailure:
    """KMS answering Encrypt with `code`: moto's own answer where moto gives it (the key's alias
    deleted: NotFoundException), else KMS's answer injected at botocore's before-send (moto 5.2.5
    encrypts with a disabled key, and never answers KMSInternalException)."""
    client = tokens.kms_client()
    if code == "NotFoundException":
        kms = boto3.client("kms", region_name="us-east-1")
        alias = settings.token_key_id
        key_id = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
        kms.delete_alias(AliasName=alias)
        calls = inject(client, "Encrypt", lambda _request: None)  # recorded, answered by moto
        return KmsFailure(calls, 1, lambda: kms.create_alias(AliasName=alias, TargetKeyId=key_id))
    status = 500 if code == "KMSInternalException" else 400
    fault = inject(client, "Encrypt", aws_json_error(status, code, "application/x-amz-json-1.1"))
    # botocore retries KMS's 500s to its limit; a 400 is the answer at once
    return KmsFailure(fault, max_attempts(client) if status == 500 else 1, fault.lift)


KMS_ERRORS = ["NotFoundException", "KMSInternalException", "DisabledException", "AccessDeniedException"]


def capig_error_of(response: dict[str, Any]) -> dict[str, Any]:
    (error,) = response_body(response)["errors"]
    return error


@pytest.mark.parametrize("code", KMS_ERRORS)
def test_setup_pixel_signal_config_of_a_new_pixel_when_kms_fails_is_a_graphql_500_that_creates_no_pixel_and_logs_one_error_without_the_token(
    handler, lambda_context, credentials, moto_table, inject, json_logs, code
):
    # Given KMS failing to encrypt
    created, _ = credentials
    before = table_snapshot(moto_table)
    kms = kms_failing(code, inject)
    event = setup_event(basic_header(created), NEW_TOKEN, "Shop")
    # When a new pixel is set up with its access token
    response = handler(event, lambda_context)
    # Then the caller gets a GraphQL error with code 500 and the generic message, without internals
    assert kms.calls.attempts == ["Encrypt"] * kms.expected_attempts
    assert response["statusCode"] == 200
    error = capig_error_of(response)
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == 500
    assert code not in response["body"]
    assert NEW_TOKEN not in response["body"]
    # And one ERROR record with the correlation id and the cause; the token in no record
    records = json_logs()
    assert code in the_one_error(records, event)["exception"]
    assert_no_secret_logged(records, NEW_TOKEN, created.app_secret)
    # And no pixel was created, nor anything else
    assert find(PixelItem, PixelItem.key(int(PIXEL)), consistent=True) is None
    assert changed_items(before, table_snapshot(moto_table)) == set()


@pytest.mark.parametrize("code", KMS_ERRORS)
def test_setup_pixel_signal_config_replacing_a_token_when_kms_fails_is_a_graphql_500_that_leaves_the_pixel_and_its_old_token_as_they_were(
    handler, lambda_context, credentials, moto_table, inject, json_logs, code
):
    # Given a pixel set up with an access token (KMS working, in moto), then KMS failing
    created, _ = credentials
    first = handler(setup_event(basic_header(created), OLD_TOKEN, "Shop"), lambda_context)
    assert "errors" not in response_body(first)
    before = table_snapshot(moto_table)
    kms = kms_failing(code, inject)
    event = setup_event(basic_header(created), NEW_TOKEN, "Renamed shop")
    # When the connection is set up again with a new token and a new name
    response = handler(event, lambda_context)
    # Then the caller gets a GraphQL error with code 500 and the generic message
    assert kms.calls.attempts == ["Encrypt"] * kms.expected_attempts
    error = capig_error_of(response)
    assert (error["message"], error["extensions"]["code"]) == ("Internal server error", 500)
    assert NEW_TOKEN not in response["body"]
    # And one ERROR record with the correlation id; neither token in any record
    records = json_logs()
    assert code in the_one_error(records, event)["exception"]
    assert_no_secret_logged(records, OLD_TOKEN, NEW_TOKEN, created.app_secret)
    # And the pixel is exactly as it was: same name, same (still decryptable) old token
    assert changed_items(before, table_snapshot(moto_table)) == set()
    kms.restore()
    pixel = PixelItem.get(*PixelItem.key(int(PIXEL)))
    assert pixel.name == "Shop"
    assert pixel.access_token_ciphertext is not None
    assert (
        decrypt_access_token(pixel.access_token_ciphertext, tenant_id=TENANT, pixel_id=int(PIXEL))
        == OLD_TOKEN
    )
