"""The `pixels` mutation: create, get, list, delete."""

import re

import pytest

from tests.support.documents import DOMAINS, PIXELS


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
