"""The `pixels` mutation: create, get, list, delete."""

import re

import pytest

from pixel_core.models import next_sequence_value
from tests.support.documents import DOMAINS, PIXELS
from tests.support.faults import dynamodb_client, dynamodb_throttling, max_attempts, transaction_cancelled


def pixels(gql, app, event):
    result = gql(PIXELS, {"event": event}, app.basic_header)
    assert result.errors is None
    return result.data["pixels"]


def test_create_with_explicit_id_then_get_shows_name_tenant_and_domains(app, gql):
    created = pixels(gql, app, {"action": "create", "pixel_id": 123, "name": "  Shop  "})
    assert created["code"] == 200
    assert created["data"]["pixel_id"] == 123
    assert created["data"]["name"] == "Shop"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", created["data"]["created_at"])
    gql(DOMAINS, {"event": {"pixel_id": 123, "action": "add", "domain": "shop.example"}}, app.basic_header)
    got = pixels(gql, app, {"action": "get", "pixel_id": 123})
    assert got["data"] == {
        **created["data"],
        "domains": ["shop.example"],
        "events_received": 0,
        "events_dropped": 0,
        "last_received_at": None,
    }


def test_create_without_id_allocates_distinct_ids(app, gql):
    first = pixels(gql, app, {"action": "create"})["data"]["pixel_id"]
    second = pixels(gql, app, {"action": "create"})["data"]["pixel_id"]
    assert first != second
    assert {p["pixel_id"] for p in pixels(gql, app, {"action": "list"})["data"]["pixels"]} == {first, second}


def test_allocation_skips_ids_taken_explicitly(app, gql):
    pixels(gql, app, {"action": "create", "pixel_id": 1})
    allocated = pixels(gql, app, {"action": "create"})
    assert allocated["code"] == 200
    assert allocated["data"]["pixel_id"] != 1


def test_pixel_ids_are_unique_across_tenants(make_app, gql):
    first, second = make_app("a"), make_app("b")
    assert pixels(gql, first, {"action": "create", "pixel_id": 42})["code"] == 200
    conflict = pixels(gql, second, {"action": "create", "pixel_id": 42})
    assert conflict == {"code": 409, "data": {}, "message": "Pixel 42 already exists"}
    assert pixels(gql, second, {"action": "list"})["data"] == {"pixels": []}


def test_delete_removes_the_pixel_and_its_domains(app, gql, cleanup):
    pixels(gql, app, {"action": "create", "pixel_id": 5})
    gql(DOMAINS, {"event": {"pixel_id": 5, "action": "add", "domain": "five.example"}}, app.basic_header)
    assert pixels(gql, app, {"action": "delete", "pixel_id": 5}) == {
        "code": 200,
        "data": {"pixel_id": 5, "deleted": True},
        "message": "Success",
    }
    assert pixels(gql, app, {"action": "get", "pixel_id": 5})["code"] == 404
    # Until its clean-up ran, the id cannot be taken again
    assert pixels(gql, app, {"action": "create", "pixel_id": 5}) == {
        "code": 409,
        "data": {},
        "message": "Pixel 5 is being deleted; it can be set up again once that is done",
    }
    cleanup()
    # Re-created, it starts empty: nothing of the old partition survived
    pixels(gql, app, {"action": "create", "pixel_id": 5})
    assert pixels(gql, app, {"action": "get", "pixel_id": 5})["data"]["domains"] == []


@pytest.mark.parametrize(
    ("event", "code", "message"),
    [
        ({"action": "get"}, 400, "pixel_id is required for action 'get'"),
        ({"action": "delete"}, 400, "pixel_id is required for action 'delete'"),
        ({"action": "get", "pixel_id": 9}, 404, "Pixel 9 not found"),
        ({"action": "rename"}, 400, "Invalid action 'rename'. Allowed actions: create, get, list, delete"),
        ({"action": "create", "name": "x" * 257}, 400, "Pixel name must be at most 256 printable characters"),
        (
            {"action": "create", "name": "bad\x00name"},
            400,
            "Pixel name must be at most 256 printable characters",
        ),
        ({"action": "create", "tenant_id": "someone-else"}, 404, "Tenant someone-else not found"),
    ],
    ids=[
        "get-no-id",
        "delete-no-id",
        "get-unknown",
        "unknown-action",
        "long-name",
        "control-char",
        "foreign-tenant",
    ],
)
def test_pixels_errors_are_clear_and_change_nothing(app, gql, event, code, message):
    assert pixels(gql, app, event) == {"code": code, "data": {}, "message": message}
    assert pixels(gql, app, {"action": "list"})["data"] == {"pixels": []}


# --- DynamoDB refusing a transaction under a request (injected through botocore) -----------------

INTERNAL_ERROR = {"code": 500, "data": {}, "message": "Internal server error"}


def cancelled_on_the_pixel(items: int) -> list[str | None]:
    """The pixel's condition failed (it is the first item of each of these transactions)."""
    return ["ConditionalCheckFailed"] + [None] * (items - 1)


def domains(gql, app, action, domain="shop.example"):
    event = {"pixel_id": 123, "action": action, "domain": domain}
    return gql(DOMAINS, {"event": event}, app.basic_header).data["domains"]


@pytest.fixture
def pixel_123(app, gql):
    assert pixels(gql, app, {"action": "create", "pixel_id": 123})["code"] == 200


def test_a_pixel_deleted_while_a_domain_is_added_or_removed_is_a_404_that_leaves_no_domain_behind(
    app, gql, pixel_123, inject
):
    # Given DynamoDB finding the pixel gone when the domain's transaction commits
    fault = inject(dynamodb_client(), "TransactWriteItems", transaction_cancelled(cancelled_on_the_pixel))
    # When a domain is added, Then the answer is the pixel's 404, and no domain item was written
    assert domains(gql, app, "add") == {"code": 404, "data": {}, "message": "Pixel 123 not found"}
    fault.lift()
    assert domains(gql, app, "list")["data"]["domains"] == []
    # And the same for a removal of a domain it has
    assert domains(gql, app, "add")["code"] == 200
    inject(dynamodb_client(), "TransactWriteItems", transaction_cancelled(cancelled_on_the_pixel))
    assert domains(gql, app, "remove") == {"code": 404, "data": {}, "message": "Pixel 123 not found"}


def test_a_pixel_deleted_meanwhile_by_another_request_is_a_404_to_a_delete(app, gql, pixel_123, inject):
    inject(dynamodb_client(), "TransactWriteItems", transaction_cancelled(cancelled_on_the_pixel))
    assert pixels(gql, app, {"action": "delete", "pixel_id": 123}) == {
        "code": 404,
        "data": {},
        "message": "Pixel 123 not found",
    }


@pytest.mark.parametrize("action", ["create", "remove-domain", "delete"])
def test_dynamodb_throttling_every_attempt_of_a_write_is_a_500_envelope(app, gql, pixel_123, inject, action):
    # Given a domain attached, then DynamoDB throttling every transaction botocore attempts
    assert domains(gql, app, "add")["code"] == 200
    client = dynamodb_client()
    fault = inject(client, "TransactWriteItems", dynamodb_throttling("ThrottlingException"))
    # When the write is asked for
    if action == "create":
        answer = pixels(gql, app, {"action": "create", "pixel_id": 124})
    elif action == "remove-domain":
        answer = domains(gql, app, "remove")
    else:
        answer = pixels(gql, app, {"action": "delete", "pixel_id": 123})
    # Then it is the generic 500, after botocore's retries, and nothing changed
    assert answer == INTERNAL_ERROR
    assert fault.attempts == ["TransactWriteItems"] * max_attempts(client)
    fault.lift()
    assert [p["pixel_id"] for p in pixels(gql, app, {"action": "list"})["data"]["pixels"]] == [123]
    assert [d["domain"] for d in domains(gql, app, "list")["data"]["domains"]] == ["shop.example"]


def test_creating_a_pixel_without_an_id_gives_up_when_every_candidate_id_is_taken(app, gql, pixel_123):
    # Given the next five ids the sequence would hand out already taken by explicit ids
    upcoming = next_sequence_value("pixel_id") + 1
    for pixel_id in range(upcoming, upcoming + 5):
        assert pixels(gql, app, {"action": "create", "pixel_id": pixel_id})["code"] == 200
    # When a pixel is created without an id, Then it gives up with a 500 rather than loop on
    assert pixels(gql, app, {"action": "create"}) == {
        "code": 500,
        "data": {},
        "message": "Could not allocate a pixel id",
    }
    # And the next one gets the first free id
    assert pixels(gql, app, {"action": "create"})["data"]["pixel_id"] == upcoming + 5
