"""Answers a JavaScript client reads exactly: integers up to 2^53-1 are JSON numbers, larger ones
digit strings, on every path an id leaves the API by; the documents' small ids stay numbers.

The rule is `graphql_api.scalars.exact_number`; `read_as_javascript` reads an answer the way
`JSON.parse` does (every number a double), so "exact" means: JavaScript reads the same values.
"""

import json
from typing import Any

import pytest

from graphql_api.scalars import MAX_SAFE_INTEGER, exact_json, exact_number
from tests.support.documents import PIXELS, SEED_QUERY, STATS, TRACK

BIG = 18904456377094531  # the CAPIG reference's pixel id: JavaScript reads it as ...532
SETUP = """mutation Setup($tenantId: ID!, $input: PixelConnectionCreationInput!) {
  tenantMutations(tenantId: $tenantId) { signalMutations { setupPixelSignalConfig(input: $input) {
    id domains connectionId connectionStatus { id accessTokenAvailable active connected accessKey
      eventBridgeActive publishingEnabled apiErrorCode pixelID pixelName lastPublished
      totalEventsPublished lastReceived totalEventsReceived } } } } }"""
STATUS = """mutation Status($id: ID!, $tenantId: ID!, $input: SignalConfigStatusInput!) {
  tenantMutations(tenantId: $tenantId) { signalMutations {
    updateSignalConfigEventsStatus(id: $id, input: $input) { success connectionStatus { id pixelID apiErrorCode } }
    updateSignalConfigCapiPublish(id: $id, input: $input) { success connectionStatus { id pixelID lastPublished } }
  } } }"""
FILTERS = """mutation Filters($tenantId: ID!, $event: UpdateEventFilterInput!, $domain: UpdateDomainFilterInput!) {
  tenantMutations(tenantId: $tenantId) {
    updateEventFilter(input: $event) { updatedFilter { id pixelId } updatedFilters { id pixelId } }
    updateDomainFilter(input: $domain) { updatedFilter { id pixelId } updatedFilters { id pixelId } } } }"""
READS = """query Reads($tenantId: ID!) { tenantQueries(tenantId: $tenantId) {
  account { signalConfigs { id connectionId connectionStatus { id pixelID apiErrorCode lastReceived
    totalEventsReceived lastPublished totalEventsPublished } } }
  eventFilters { id pixelId } domainFilters { id pixelId } } }"""


def read_as_javascript(answer: Any) -> Any:
    """The answer as a browser's `JSON.parse` sees it: every number is a double."""
    return json.loads(json.dumps(answer), parse_int=float)


def assert_js_safe(answer: Any) -> None:
    """Every number in the answer is one JavaScript reads exactly, and reading it changes nothing."""

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            assert abs(value) <= MAX_SAFE_INTEGER, value

    walk(answer)
    assert read_as_javascript(answer) == answer


def envelope(result: Any, field: str) -> dict[str, Any]:
    assert result.errors is None, result.errors
    answer: dict[str, Any] = result.data[field]
    assert answer["code"] == 200, answer
    assert_js_safe(answer)
    return answer


# The rule


@pytest.mark.parametrize(
    ("value", "answered"),
    [
        (0, 0),
        (123, 123),
        (2**53 - 1, 2**53 - 1),
        (-(2**53 - 1), -(2**53 - 1)),
        (2**53, "9007199254740992"),
        (BIG, "18904456377094531"),
        (2**64 - 1, "18446744073709551615"),
        (-(2**53), "-9007199254740992"),
    ],
)
def test_integers_are_numbers_up_to_2_to_the_53_minus_1_and_digit_strings_above(value, answered):
    assert exact_number(value) == answered
    assert type(exact_number(value)) is type(answered)


def test_the_rule_applies_to_every_integer_of_a_json_value_and_leaves_the_rest_alone():
    value = {"pixel_id": BIG, "ok": True, "n": 1.5, "list": [BIG, 7, None, "x", {"id": 2**60}], "t": (2**53,)}
    assert exact_json(value) == {
        "pixel_id": str(BIG),
        "ok": True,
        "n": 1.5,
        "list": [str(BIG), 7, None, "x", {"id": str(2**60)}],
        "t": [str(2**53)],
    }


def test_the_rule_is_javascripts_own_bound():
    # Given the first integer past the bound, JavaScript (a double) cannot tell it from its neighbour
    assert float(2**53) == float(2**53 + 1)
    assert float(2**53 - 1) != float(2**53 - 2)
    assert float(BIG) != BIG  # what the old answers lost
    assert read_as_javascript({"pixel_id": exact_number(BIG)}) == {"pixel_id": "18904456377094531"}


# HeroPixel envelopes


def test_every_heropixel_answer_gives_a_big_pixel_id_as_its_digit_string(app, gql):
    basic = app.basic_header
    # Given a Meta-sized pixel, sent as a number once and as a digit string once
    created = envelope(gql(PIXELS, {"event": {"action": "create", "pixel_id": BIG}}, basic), "pixels")
    assert created["data"]["pixel_id"] == str(BIG)
    event = {"pixel_id": str(BIG), "action": "add", "domain": "example.com"}
    added = envelope(gql(SEED_QUERY, {"auth": app.auth, "event": event}), "domains")
    assert added["data"] == {"domain": "example.com", "pixel_id": str(BIG)}
    listed = envelope(
        gql(SEED_QUERY, {"auth": app.auth, "event": {"pixel_id": BIG, "action": "list"}}), "domains"
    )
    (domain,) = listed["data"]["domains"]
    assert domain["pixel_id"] == str(BIG)
    assert type(domain["id"]) is int  # a small domain id stays a number
    got = envelope(gql(PIXELS, {"event": {"action": "get", "pixel_id": BIG}}, basic), "pixels")
    assert got["data"]["pixel_id"] == str(BIG)
    assert (got["data"]["events_received"], got["data"]["events_dropped"]) == (0, 0)
    everyone = envelope(gql(PIXELS, {"event": {"action": "list"}}, basic), "pixels")
    assert [pixel["pixel_id"] for pixel in everyone["data"]["pixels"]] == [str(BIG)]
    stats = envelope(
        gql(STATS, {"event": {"pixel_id": BIG, "from": "2026-11-01", "to": "2026-11-30"}}, basic), "stats"
    )
    assert stats["data"]["pixel_id"] == str(BIG)
    tracked = envelope(
        gql(TRACK, {"event": {"pixelId": BIG, "eventName": "Lead", "domain": "example.com"}}, basic), "track"
    )
    assert isinstance(tracked["data"]["event_id"], str)
    remove: dict[str, Any] = {"pixel_id": BIG, "action": "remove", "domain": "example.com"}
    removed = envelope(gql(SEED_QUERY, {"auth": app.auth, "event": remove}), "domains")
    assert removed["data"] == {"domain": "example.com", "pixel_id": str(BIG), "deleted": True}
    deleted = envelope(gql(PIXELS, {"event": {"action": "delete", "pixel_id": BIG}}, basic), "pixels")
    assert deleted["data"] == {"pixel_id": str(BIG), "deleted": True}


def test_small_pixel_ids_stay_json_numbers_as_in_the_documents(app, gql):
    basic = app.basic_header
    created = envelope(gql(PIXELS, {"event": {"action": "create", "pixel_id": 123}}, basic), "pixels")
    assert type(created["data"]["pixel_id"]) is int
    # The domains document's requests and answers, to the letter (types included)
    event = {"pixel_id": 123, "action": "add", "domain": "example.com"}
    added = envelope(gql(SEED_QUERY, {"auth": app.auth, "event": event}), "domains")
    assert added == {"code": 200, "data": {"domain": "example.com", "pixel_id": 123}, "message": "Success"}
    assert type(added["data"]["pixel_id"]) is int
    listed = envelope(
        gql(SEED_QUERY, {"auth": app.auth, "event": {"pixel_id": 123, "action": "list"}}), "domains"
    )
    assert [(type(d["id"]), d["pixel_id"]) for d in listed["data"]["domains"]] == [(int, 123)]
    event = {"pixel_id": 123, "action": "remove", "domain": "example.com"}
    removed = envelope(gql(SEED_QUERY, {"auth": app.auth, "event": event}), "domains")
    assert removed == {
        "code": 200,
        "data": {"domain": "example.com", "pixel_id": 123, "deleted": True},
        "message": "Success",
    }
    stats = envelope(
        gql(STATS, {"event": {"pixel_id": 123, "from": "2026-11-01", "to": "2026-11-01"}}, basic), "stats"
    )
    assert type(stats["data"]["pixel_id"]) is int


@pytest.mark.parametrize(("pixel_id", "answered"), [(2**53 - 1, 2**53 - 1), (2**53, str(2**53))])
def test_the_bound_itself_is_a_number_and_the_next_id_a_string(app, gql, pixel_id, answered):
    created = envelope(
        gql(PIXELS, {"event": {"action": "create", "pixel_id": pixel_id}}, app.basic_header), "pixels"
    )
    assert created["data"]["pixel_id"] == answered
    assert type(created["data"]["pixel_id"]) is type(answered)


# CAPIG: the reference gives ids as strings; its numbers are small codes and counters


def test_capig_answers_give_big_ids_as_strings_and_only_javascript_safe_numbers(app, gql):
    basic, tenant = app.basic_header, app.tenant_id
    setup_input = {
        "pixelId": str(BIG),
        "businessId": "2840127409433732",
        "accessToken": "EAAB-token",
        "apiVersion": "v14.0",
        "externalId": "633612748410ba6e902",
    }
    answers = [
        gql(SETUP, {"tenantId": tenant, "input": setup_input}, basic),
        gql(STATUS, {"id": str(BIG), "tenantId": tenant, "input": {"status": 1}}, basic),
        gql(
            FILTERS,
            {
                "tenantId": tenant,
                "event": {"eventName": "AddToCart", "pixelIds": [str(BIG)], "filterState": "PUBLISH"},
                "domain": {"domain": "example.com", "pixelIds": [str(BIG)], "filterState": "ALLOW"},
            },
            basic,
        ),
        gql(READS, {"tenantId": tenant}, basic),
    ]
    for answer in answers:
        assert answer.errors is None, answer.errors
        assert_js_safe(answer.data)
    config = answers[0].data["tenantMutations"]["signalMutations"]["setupPixelSignalConfig"]
    assert (config["connectionId"], config["connectionStatus"]["pixelID"]) == (str(BIG), str(BIG))
    written = answers[2].data["tenantMutations"]
    assert written["updateEventFilter"]["updatedFilter"]["pixelId"] == str(BIG)
    assert written["updateDomainFilter"]["updatedFilters"] == [
        {"id": f"DomainFilter:example.com:{BIG}", "pixelId": str(BIG)}
    ]
    reads = answers[3].data["tenantQueries"]
    assert reads["account"]["signalConfigs"][0]["connectionStatus"]["pixelID"] == str(BIG)
    assert [item["pixelId"] for item in reads["eventFilters"] + reads["domainFilters"]] == [
        str(BIG),
        str(BIG),
    ]
