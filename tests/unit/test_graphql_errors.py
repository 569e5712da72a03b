"""Malformed documents and wrongly typed variables: clear GraphQL errors, never a stack trace."""

import pytest

from tests.support.documents import SEED_QUERY

AUTH = {"appId": "a", "appSecret": "b"}


def assert_clear_error(result, expected_fragment):
    assert result.data is None or result.data == {"domains": None}
    assert result.errors
    formatted = [error.formatted for error in result.errors]
    assert any(expected_fragment in error["message"] for error in formatted), formatted
    text = repr(formatted)
    assert "Traceback" not in text
    assert "stacktrace" not in text
    assert "exception" not in text


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("mutation { domains(", "Syntax Error"),
        ("{ nope }", "Cannot query field 'nope'"),
        ("mutation { domains { code } }", "of type 'ApiDomainsEventInput!' is required"),
    ],
    ids=["syntax", "unknown-field", "missing-argument"],
)
def test_malformed_documents_get_clear_errors(gql, moto_table, document, fragment):
    assert_clear_error(gql(document), fragment)


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"pixel_id": "abc", "action": "list"}, "Pixel id must be a non-negative integer"),
        ({"pixel_id": -1, "action": "list"}, "Pixel id must be between 0 and 2^64-1"),
        ({"pixel_id": 2**64, "action": "list"}, "Pixel id must be between 0 and 2^64-1"),
        ({"pixel_id": 1.5, "action": "list"}, "Pixel id must be a non-negative integer"),
        ({"pixel_id": True, "action": "list"}, "Pixel id must be a non-negative integer"),
        ({"pixel_id": "1" * 10_000, "action": "list"}, "Pixel id must be a non-negative integer"),
        ({"pixel_id": 1, "action": 5}, "String cannot represent a non string value"),
        ({"pixel_id": 1}, "to include required field 'action'"),
        ({"action": "list"}, "to include required field 'pixel_id'"),
        ({"pixel_id": 1, "action": "list", "extra": 1}, "not to include unknown field 'extra'"),
    ],
    ids=[
        "letters",
        "negative",
        "over-64-bit",
        "float",
        "boolean",
        "oversized",
        "action-int",
        "no-action",
        "no-pixel",
        "extra-field",
    ],
)
def test_wrongly_typed_variables_get_clear_errors(gql, moto_table, event, fragment):
    assert_clear_error(gql(SEED_QUERY, {"auth": AUTH, "event": event}), fragment)


def test_pixel_id_literal_in_the_document_is_parsed_too(gql, moto_table):
    result = gql(
        'mutation { domains(auth: {appId: "a", appSecret: "b"}, event: {pixel_id: "12x", action: "list"}) { code } }'
    )
    assert_clear_error(result, "Pixel id must be")
