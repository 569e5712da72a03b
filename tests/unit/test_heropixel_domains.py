"""The HeroPixel domains mutation, with the documents' own requests and answers.

Every test runs twice: against moto and against Amazon's DynamoDB Local.
"""

import re

import pytest

from tests.support.documents import PIXELS, SEED_QUERY

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def pixel_123(app, gql):
    result = gql(PIXELS, {"event": {"action": "create", "pixel_id": 123}}, app.basic_header)
    assert result.data["pixels"]["code"] == 200
    return 123


def domains(gql, app, event):
    result = gql(SEED_QUERY, {"auth": app.auth, "event": event})
    assert result.errors is None
    return result.data


def test_seed_add_domain_answers_exactly_as_documented(app, gql, pixel_123):
    # When the document's "Add Domain" request is sent
    answer = domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "example.com"})
    # Then the answer is the document's, to the letter
    assert answer == {
        "domains": {"code": 200, "data": {"domain": "example.com", "pixel_id": 123}, "message": "Success"}
    }


def test_seed_remove_domain_answers_exactly_as_documented(app, gql, pixel_123):
    domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "example.com"})
    answer = domains(gql, app, {"pixel_id": 123, "action": "remove", "domain": "example.com"})
    assert answer == {
        "domains": {
            "code": 200,
            "data": {"domain": "example.com", "pixel_id": 123, "deleted": True},
            "message": "Success",
        }
    }


def test_seed_list_domains_answers_the_documented_shape_ordered_by_id(app, gql, pixel_123):
    domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "example.com"})
    domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "another-example.com"})
    answer = domains(gql, app, {"pixel_id": 123, "action": "list"})["domains"]
    assert answer["code"] == 200
    assert answer["message"] == "Success"
    listed = answer["data"]["domains"]
    assert [entry["domain"] for entry in listed] == ["example.com", "another-example.com"]
    assert [set(entry) for entry in listed] == [{"id", "pixel_id", "domain", "created_at", "updated_at"}] * 2
    assert listed[0]["id"] < listed[1]["id"]
    assert all(isinstance(entry["id"], int) and entry["id"] > 0 for entry in listed)
    assert all(entry["pixel_id"] == 123 for entry in listed)
    assert all(
        TIMESTAMP.match(entry["created_at"]) and TIMESTAMP.match(entry["updated_at"]) for entry in listed
    )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            {"pixel_id": 123, "action": "add", "domain": "example.com"},
            {"code": 409, "data": {}, "message": "Domain example.com already exists for this pixel"},
            id="add-twice-409",
        ),
        pytest.param(
            {"pixel_id": 123, "action": "remove", "domain": "missing.example.com"},
            {"code": 404, "data": {}, "message": "Domain missing.example.com not found for this pixel"},
            id="remove-absent-404",
        ),
        pytest.param(
            {"pixel_id": 123, "action": "add", "domain": "not a domain"},
            {"code": 400, "data": {}, "message": "Invalid domain format"},
            id="invalid-format-400",
        ),
        pytest.param(
            {"pixel_id": 123, "action": "add", "domain": "127.0.0.1"},
            {"code": 400, "data": {}, "message": "Invalid domain format"},
            id="ip-address-400",
        ),
        pytest.param(
            {"pixel_id": 123, "action": "add", "domain": "x" * 100_000 + ".com"},
            {"code": 400, "data": {}, "message": "Invalid domain format"},
            id="oversized-400",
        ),
        pytest.param(
            {"pixel_id": 123, "action": "add"},
            {"code": 400, "data": {}, "message": "Domain is required for action 'add'"},
            id="missing-domain-400",
        ),
        pytest.param(
            {"pixel_id": 123, "action": "remove", "domain": "  "},
            {"code": 400, "data": {}, "message": "Invalid domain format"},  # PRODUCT.md: empty is invalid
            id="blank-domain-400",
        ),
        pytest.param(
            {"pixel_id": 123, "action": "purge"},
            {
                "code": 400,
                "data": {},
                "message": "Invalid action 'purge'. Allowed actions: add, remove, list",
            },
            id="unknown-action-400",
        ),
        pytest.param(
            {"pixel_id": 999, "action": "list"},
            {"code": 404, "data": {}, "message": "Pixel 999 not found"},
            id="unknown-pixel-404",
        ),
    ],
)
def test_domains_errors_answer_the_documented_codes_and_messages(app, gql, pixel_123, event, expected):
    domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "example.com"})
    assert domains(gql, app, event) == {"domains": expected}


def test_error_answers_change_nothing(app, gql, pixel_123):
    # Given one domain
    domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "example.com"})
    before = domains(gql, app, {"pixel_id": 123, "action": "list"})
    # When bad requests arrive
    for event in (
        {"pixel_id": 123, "action": "add", "domain": "example.com"},
        {"pixel_id": 123, "action": "add", "domain": "*.example.com"},
        {"pixel_id": 123, "action": "remove", "domain": "other.example.com"},
    ):
        assert domains(gql, app, event)["domains"]["code"] != 200
    # Then the list is unchanged
    assert domains(gql, app, {"pixel_id": 123, "action": "list"}) == before


def test_added_domain_is_cleaned_to_its_host_name(app, gql, pixel_123):
    answer = domains(
        gql, app, {"pixel_id": 123, "action": "add", "domain": " https://WWW.Example.com/path?x=1 "}
    )
    assert answer["domains"]["data"] == {"domain": "www.example.com", "pixel_id": 123}
    # The cleaned name is the one that is stored, so the uncleaned spelling finds it again.
    removed = domains(
        gql, app, {"pixel_id": 123, "action": "remove", "domain": "http://www.EXAMPLE.com:8080/"}
    )
    assert removed["domains"]["code"] == 200


def test_unicode_domain_is_stored_as_punycode(app, gql, pixel_123):
    answer = domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "bücher.de"})
    assert answer["domains"]["data"]["domain"] == "xn--bcher-kva.de"


def test_domain_ids_are_unique_across_pixels_and_never_reused(app, gql, pixel_123):
    # Given a second pixel
    gql(PIXELS, {"event": {"action": "create", "pixel_id": 456}}, app.basic_header)
    # When domains are added, removed and added again on both
    domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "a.example.com"})
    domains(gql, app, {"pixel_id": 456, "action": "add", "domain": "a.example.com"})
    first = domains(gql, app, {"pixel_id": 123, "action": "list"})["domains"]["data"]["domains"][0]["id"]
    domains(gql, app, {"pixel_id": 123, "action": "remove", "domain": "a.example.com"})
    domains(gql, app, {"pixel_id": 123, "action": "add", "domain": "a.example.com"})
    # Then every id differs from every earlier one
    again = domains(gql, app, {"pixel_id": 123, "action": "list"})["domains"]["data"]["domains"][0]["id"]
    other = domains(gql, app, {"pixel_id": 456, "action": "list"})["domains"]["data"]["domains"][0]["id"]
    assert len({first, again, other}) == 3
    assert again > first


@pytest.mark.parametrize("pixel_id", [18904456377094531, "18904456377094531"], ids=["number", "digit-string"])
def test_meta_sized_pixel_ids_work_as_numbers_and_digit_strings(app, gql, pixel_id):
    # Above 2^53-1 an id is answered as its digit string, which JavaScript reads exactly.
    created = gql(PIXELS, {"event": {"action": "create", "pixel_id": pixel_id}}, app.basic_header)
    assert created.data["pixels"]["data"]["pixel_id"] == "18904456377094531"
    answer = domains(gql, app, {"pixel_id": pixel_id, "action": "add", "domain": "example.com"})
    assert answer["domains"]["data"] == {"domain": "example.com", "pixel_id": "18904456377094531"}
