"""Who may call, and what they may see: credentials, Basic auth, tenant isolation."""

import base64
import hashlib
import json
import logging

import pytest

from devtools import admin
from pixel_core import auth
from pixel_core.models import AppItem, find
from tests.support.api_events import graphql_post
from tests.support.documents import DOMAINS, PIXELS, SEED_QUERY

UNAUTHORIZED = {"code": 401, "data": {}, "message": "Unauthorized"}
LIST_123 = {"pixel_id": 123, "action": "list"}
SERVICE_LOGGER = "pixel-gateway"  # Powertools' Logger(service=...) logs under the service's name


@pytest.fixture
def pixel_123(app, gql):
    assert (
        gql(PIXELS, {"event": {"action": "create", "pixel_id": 123}}, app.basic_header).data["pixels"]["code"]
        == 200
    )


def test_only_a_sha256_digest_of_the_secret_is_stored(app):
    stored = find(AppItem, AppItem.key(app.app_id))
    assert stored is not None
    assert stored.secret_sha256 == hashlib.sha256(app.app_secret.encode()).hexdigest()
    assert app.app_secret not in str(stored.serialize())


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param(lambda app: {"appId": app.app_id, "appSecret": app.app_secret + "x"}, id="wrong-secret"),
        pytest.param(lambda app: {"appId": "no-such-app", "appSecret": app.app_secret}, id="unknown-app"),
        pytest.param(lambda app: {"appId": app.app_id, "appSecret": ""}, id="empty-secret"),
        pytest.param(lambda app: {"appId": "", "appSecret": ""}, id="empty-both"),
        pytest.param(lambda app: {"appId": app.app_id, "appSecret": "s" * 100_000}, id="oversized-secret"),
        pytest.param(lambda app: {"appId": "a" * 100_000, "appSecret": "s"}, id="oversized-app-id"),
        pytest.param(lambda app: {"appId": app.app_id + "\x00", "appSecret": app.app_secret}, id="nul-byte"),
    ],
)
def test_bad_credentials_are_answered_401_in_the_envelope(app, gql, pixel_123, credentials):
    result = gql(SEED_QUERY, {"auth": credentials(app), "event": LIST_123})
    assert result.errors is None
    assert result.data == {"domains": UNAUTHORIZED}


def test_basic_auth_header_is_accepted_instead_of_the_auth_argument(app, gql, pixel_123):
    result = gql(DOMAINS, {"event": LIST_123}, app.basic_header)
    assert result.data["domains"]["code"] == 200


def test_empty_auth_argument_falls_back_to_basic_auth(app, gql, pixel_123):
    # The pageview document's own example sends `auth: {appId: "", appSecret: ""}` inline.
    result = gql(SEED_QUERY, {"auth": {"appId": "", "appSecret": ""}, "event": LIST_123}, app.basic_header)
    assert result.data["domains"]["code"] == 200


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + "A" * 10_000,
    ],
    ids=["absent", "empty", "bearer", "not-base64", "no-colon", "not-utf8", "oversized"],
)
def test_missing_or_malformed_basic_auth_is_401(app, gql, pixel_123, header):
    result = gql(DOMAINS, {"event": LIST_123}, header)
    assert result.data == {"domains": UNAUTHORIZED}


def test_another_tenants_pixel_is_answered_exactly_like_a_missing_one(make_app, gql):
    # Given two tenants, each with its own app, and a pixel owned by the first
    owner, stranger = make_app("owner"), make_app("stranger")
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 777}}, owner.basic_header)
    gql(SEED_QUERY, {"auth": owner.auth, "event": {"pixel_id": 777, "action": "add", "domain": "owner.com"}})
    # When the stranger acts on it, and on a pixel that does not exist
    answers = {
        action: gql(
            SEED_QUERY,
            {"auth": stranger.auth, "event": {"pixel_id": pixel, "action": action, "domain": "owner.com"}},
        )
        for pixel, action in ((777, "list"), (777, "add"), (777, "remove"))
    }
    missing = gql(SEED_QUERY, {"auth": stranger.auth, "event": {"pixel_id": 778, "action": "list"}})
    # Then every answer is the not-found one, and nothing changed
    for answer in answers.values():
        assert answer.data == {"domains": {"code": 404, "data": {}, "message": "Pixel 777 not found"}}
    assert missing.data == {"domains": {"code": 404, "data": {}, "message": "Pixel 778 not found"}}
    for action in ("get", "delete"):
        result = gql(PIXELS, {"event": {"action": action, "pixel_id": 777}}, stranger.basic_header)
        assert result.data == {"pixels": {"code": 404, "data": {}, "message": "Pixel 777 not found"}}
    owners_view = gql(SEED_QUERY, {"auth": owner.auth, "event": {"pixel_id": 777, "action": "list"}})
    assert [d["domain"] for d in owners_view.data["domains"]["data"]["domains"]] == ["owner.com"]


def test_an_app_bound_to_several_tenants_sees_all_of_them(make_app, gql, table):
    first, second = make_app("first"), make_app("second")
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 1001}}, first.basic_header)
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 1002}}, second.basic_header)
    partner = auth.create_app({"first", "second"})
    header = "Basic " + base64.b64encode(f"{partner.app_id}:{partner.app_secret}".encode()).decode()
    listed = gql(PIXELS, {"event": {"action": "list"}}, header).data["pixels"]["data"]["pixels"]
    assert [(p["pixel_id"], p["tenant_id"]) for p in listed] == [(1001, "first"), (1002, "second")]
    # Creating needs the tenant named when there is more than one
    ambiguous = gql(PIXELS, {"event": {"action": "create"}}, header).data["pixels"]
    assert ambiguous["code"] == 400
    named = gql(PIXELS, {"event": {"action": "create", "tenant_id": "second"}}, header).data["pixels"]
    assert named["code"] == 200
    assert named["data"]["tenant_id"] == "second"


def test_creating_an_app_for_an_unknown_tenant_is_refused(table):
    with pytest.raises(ValueError, match="unknown tenant"):
        auth.create_app({"nobody"})


def test_deleted_app_can_no_longer_authenticate(app, gql, pixel_123):
    assert auth.delete_app(app.app_id)
    assert gql(SEED_QUERY, {"auth": app.auth, "event": LIST_123}).data == {"domains": UNAUTHORIZED}


def test_no_secret_reaches_the_logs_of_the_lambda_handler_even_when_requests_fail_though_each_request_is_logged(
    app, pixel_123, handler, lambda_context, json_logs, caplog, capsys
):
    # Given every logger at DEBUG, the service's own included, and three requests through the real
    # Lambda handler (the layer that logs): a good one, a wrong secret, and Basic auth with a bad pixel id
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SERVICE_LOGGER)
    events = [
        graphql_post(SEED_QUERY, {"auth": app.auth, "event": LIST_123}),
        graphql_post(
            SEED_QUERY, {"auth": {"appId": app.app_id, "appSecret": app.app_secret + "x"}, "event": LIST_123}
        ),
        graphql_post(DOMAINS, {"event": {"pixel_id": "x", "action": "list"}}, authorization=app.basic_header),
    ]

    # When the handler answers them
    answers = [json.loads(handler(event, lambda_context)["body"]) for event in events]

    # Then they were answered as expected: a list, a 401, and a GraphQL variable error
    assert answers[0]["data"]["domains"]["code"] == 200
    assert answers[1] == {"data": {"domains": UNAUTHORIZED}}
    assert answers[2]["errors"]
    # And the capture did see each request's access line (so an absence below means something)
    records = json_logs()
    handled = [r for r in records if r["message"] == "Request handled"]
    assert [r["correlation_id"] for r in handled] == [e["requestContext"]["requestId"] for e in events]
    # And neither the secret nor the Basic credentials appear in any record or output
    captured = capsys.readouterr()
    logged = json.dumps(records) + caplog.text + captured.out + captured.err
    assert app.app_secret not in logged
    assert app.basic_header.split()[1] not in logged


def test_rotating_a_secret_with_pixel_admin_stops_the_old_one_at_once_here_and_keeps_the_app_and_its_tenants(
    make_app, gql, capsys
):
    # Given an app bound to two tenants, each with a pixel, verified (and so cached) with its secret
    first, second = make_app("first"), make_app("second")
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 1001}}, first.basic_header)
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 1002}}, second.basic_header)
    partner = auth.create_app({"first", "second"}, name="Partner")
    old = {"appId": partner.app_id, "appSecret": partner.app_secret}
    assert (
        gql(SEED_QUERY, {"auth": old, "event": {"pixel_id": 1001, "action": "list"}}).data["domains"]["code"]
        == 200
    )

    # When its secret is rotated with pixel-admin's command (against the table the test uses)
    assert admin.run(admin.parse_args(["app", "rotate-secret", partner.app_id])) == 0
    printed = capsys.readouterr().out
    new_secret = next(line.split()[1] for line in printed.splitlines() if line.startswith("appSecret:"))

    # Then the old secret is refused at once in this container, though it was cached as verified
    assert new_secret != partner.app_secret
    assert gql(SEED_QUERY, {"auth": old, "event": {"pixel_id": 1001, "action": "list"}}).data == {
        "domains": UNAUTHORIZED
    }
    # And the new secret works, for the same app id, still bound to both tenants
    new = {"appId": partner.app_id, "appSecret": new_secret}
    for pixel_id in (1001, 1002):
        answer = gql(SEED_QUERY, {"auth": new, "event": {"pixel_id": pixel_id, "action": "list"}})
        assert answer.data["domains"]["code"] == 200
    stored = find(AppItem, AppItem.key(partner.app_id))
    assert stored is not None
    assert (stored.name, set(stored.tenant_ids)) == ("Partner", {"first", "second"})
    assert stored.secret_sha256 == hashlib.sha256(new_secret.encode()).hexdigest()
    # And the old secret is nowhere in what the command printed
    assert partner.app_secret not in printed


def test_rotating_the_secret_of_an_unknown_app_is_refused_and_creates_nothing(table, capsys):
    assert admin.run(admin.parse_args(["app", "rotate-secret", "app_nobody"])) == 1
    assert capsys.readouterr().err == "no app app_nobody\n"
    assert find(AppItem, AppItem.key("app_nobody")) is None
