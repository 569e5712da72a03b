"""Request limits: depth, cost, aliases, tokens and body size, each rejecting before any resolver runs.

Requests go through the ASGI app as Lambda runs it (Mangum, API Gateway HTTP API events); a spy on
every resolver of the schema records what ran.
"""

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLObjectType, default_field_resolver, get_introspection_query, parse, validate

from graphql_api import documents as documents_module
from graphql_api import limits
from graphql_api import server as server_module
from graphql_api.server import schema
from pixel_core.config import Settings, load_settings, settings
from tests.support.api_events import http_api_event, response_body
from tests.support.documents import (
    CAPI_PUBLISH,
    DELETE,
    DOMAIN_FILTER,
    EVENT_FILTER,
    EVENTS_STATUS,
    PIXEL,
    PIXELS,
    SEED_PAGEVIEW,
    SEED_QUERY,
    SETUP,
    SETUP_VARIABLES,
    STATS,
    TENANT_QUERIES,
    TRACK,
    graphql_body,
)
from tests.support.lambda_app import LambdaApp, sample_tenant_app

REPO_ROOT = Path(__file__).resolve().parents[2]
# The limits as deployed by default (tests/conftest.py sets no MAX_* variable).
DEFAULTS = settings._replace(stage="dev")

FILTER_UPDATE = (
    "mutation Filter($tenantId: ID!, $input: UpdateEventFilterInput!) { tenantMutations(tenantId: $tenantId) "
    "{ updateEventFilter(input: $input) { updatedFilter { id } } } }"
)


def filter_input(pixels: int) -> dict[str, Any]:
    return {
        "eventName": "AddToCart",
        "pixelIds": [str(n) for n in range(1, pixels + 1)],
        "filterState": "DROP",
    }


def lambda_app(app_settings: Settings, lambda_context: Any) -> Any:
    """Posts GraphQL to an app built from `app_settings`, as Lambda would; returns (status, body)."""
    return LambdaApp(app_settings, lambda_context).post


@pytest.fixture
def post(lambda_context):
    """The default limits (the module-level settings, in development)."""
    return lambda_app(DEFAULTS, lambda_context)


@pytest.fixture
def resolver_calls(monkeypatch) -> list[str]:
    """Every field resolution of the schema, recorded (resolvers run as before)."""
    calls: list[str] = []
    for graphql_type in schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for field in graphql_type.fields.values():
            original = field.resolve or default_field_resolver

            def spy(source, info, _original=original, **arguments):
                calls.append(f"{info.parent_type.name}.{info.field_name}")
                return _original(source, info, **arguments)

            monkeypatch.setattr(field, "resolve", spy)
    return calls


def only_error(status: int, body: dict[str, Any]) -> dict[str, Any]:
    assert status == 400, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == 400
    return error


def test_limits_are_read_once_from_the_environment_with_safe_defaults():
    assert (
        DEFAULTS.max_query_depth,
        DEFAULTS.max_query_cost,
        DEFAULTS.max_aliases,
        DEFAULTS.max_query_tokens,
        DEFAULTS.max_body_bytes,
    ) == (10, 500, 20, 2000, 65536)
    configured = load_settings(
        {
            "MAX_QUERY_DEPTH": "6",
            "MAX_QUERY_COST": "250",
            "MAX_ALIASES": "5",
            "MAX_QUERY_TOKENS": "800",
            "MAX_BODY_BYTES": "16384",
        }
    )
    assert (
        configured.max_query_depth,
        configured.max_query_cost,
        configured.max_aliases,
        configured.max_query_tokens,
        configured.max_body_bytes,
    ) == (6, 250, 5, 800, 16384)


def test_the_resolver_spy_records_a_request_within_the_limits(post, resolver_calls):
    # The spy the other tests rely on sees resolvers when they run.
    status, body = post("{ version }")
    assert (status, body) == (200, {"data": {"version": "2026-11"}})
    assert resolver_calls == ["Query.version"]


# Depth


def test_a_query_deeper_than_the_limit_is_rejected_before_any_resolver_runs(lambda_context, resolver_calls):
    post = lambda_app(DEFAULTS._replace(max_query_depth=4), lambda_context)
    error = only_error(*post(SETUP, SETUP_VARIABLES))
    assert (
        error["message"] == "Operation 'AddNewPixelModalMutation' is nested 5 levels deep; the maximum is 4."
    )
    assert resolver_calls == []


@pytest.mark.parametrize(
    "query",
    [
        'mutation Deep { tenantMutations(tenantId: "t") { ...Signals } } '
        "fragment Signals on TenantMutations { signalMutations { ...Status } } "
        'fragment Status on SignalMutations { updateSignalConfigEventsStatus(id: "1", input: {status: 1}) '
        "{ connectionStatus { id } } }",
        'mutation Deep { tenantMutations(tenantId: "t") { ... on TenantMutations { signalMutations { ... { '
        'updateSignalConfigEventsStatus(id: "1", input: {status: 1}) { connectionStatus { id } } } } } } }',
    ],
    ids=["named-fragments", "inline-fragments"],
)
def test_depth_counts_through_fragments_and_inline_fragments(lambda_context, resolver_calls, query):
    post = lambda_app(DEFAULTS._replace(max_query_depth=4), lambda_context)
    error = only_error(*post(query))
    assert error["message"] == "Operation 'Deep' is nested 5 levels deep; the maximum is 4."
    assert resolver_calls == []


def test_a_query_exactly_at_the_depth_limit_reaches_the_resolvers(lambda_context, resolver_calls):
    post = lambda_app(DEFAULTS._replace(max_query_depth=5), lambda_context)
    _status, body = post(SETUP, SETUP_VARIABLES)
    # No credentials: the first resolver answers 401, which shows the limits let it through.
    assert [error["extensions"]["code"] for error in body["errors"]] == [401]
    assert resolver_calls == ["Mutation.tenantMutations"]


def test_fragment_cycles_get_the_specifications_error_and_do_not_hang_the_limits(post, resolver_calls):
    query = (
        'query Cycle { tenantQueries(tenantId: "t") { ...A } } '
        "fragment A on TenantQueries { account { signalConfigs { id } } ...B } "
        "fragment B on TenantQueries { eventFilters { id } ...A }"
    )
    status, body = post(query)
    assert status == 400
    assert any("Cannot spread fragment 'A' within itself" in error["message"] for error in body["errors"])
    assert resolver_calls == []


# Cost


def test_the_documented_samples_cost_far_less_than_the_default_limit():
    samples = [
        (SETUP, SETUP_VARIABLES),
        (TENANT_QUERIES, {"tenantId": "IaoreXfj"}),
        (EVENTS_STATUS, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 1}}),
        (CAPI_PUBLISH, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 0}}),
        (DELETE, {"id": PIXEL, "tenantId": "IaoreXfj"}),
        (EVENT_FILTER, {"tenantId": "IaoreXfj", "input": filter_input(1)}),
        (DOMAIN_FILTER, {"tenantId": "IaoreXfj", "input": {"domain": "example.com", "filterState": "DROP"}}),
        (
            SEED_QUERY,
            {"auth": {"appId": "a", "appSecret": "b"}, "event": {"pixel_id": 123, "action": "list"}},
        ),
        (SEED_PAGEVIEW, {"event": {"pixelId": 123, "domain": "example.com"}}),
    ]
    costs = [cost_of(query, variables) for query, variables in samples]
    assert max(costs) <= DEFAULTS.max_query_cost // 10, costs


def cost_of(query: str, variables: dict[str, Any] | None = None) -> int:
    """The cost the cost rule computes (with a maximum of 0, it reports every cost)."""
    (error,) = validate(schema, parse(query), [limits.request_cost_rule(0, variables, None)])
    cost = error.extensions["cost"]["requestedQueryCost"]  # type: ignore[index]
    return int(cost)


def test_a_filter_update_costs_three_per_pixel_it_names_whether_literal_or_variable():
    literal_ids = ", ".join(f'"{n}"' for n in range(1, 101))
    literal = (
        'mutation { tenantMutations(tenantId: "t") { updateEventFilter(input: '
        f'{{eventName: "AddToCart", pixelIds: [{literal_ids}], filterState: DROP}}) {{ updatedFilter {{ id }} }} }} }}'
    )
    from_variables = cost_of(FILTER_UPDATE, {"tenantId": "t", "input": filter_input(100)})
    # tenantMutations 2 + updateEventFilter 3 x 100 pixels + updatedFilter 1 + id 1
    assert from_variables == 304
    assert cost_of(literal) == from_variables
    assert cost_of(FILTER_UPDATE, {"tenantId": "t", "input": filter_input(1)}) == 7


@pytest.mark.parametrize(
    "query",
    [
        "mutation Filter($tenantId: ID!, $input: UpdateEventFilterInput!) { tenantMutations(tenantId: $tenantId) "
        "{ ...Update } } fragment Update on TenantMutations { updateEventFilter(input: $input) { ...Result } } "
        "fragment Result on UpdateEventFilterResult { updatedFilter { id } }",
        "mutation Filter($tenantId: ID!, $input: UpdateEventFilterInput!) { tenantMutations(tenantId: $tenantId) "
        "{ ... on TenantMutations { updateEventFilter(input: $input) { ... { updatedFilter { id } } } } } }",
    ],
    ids=["named-fragments", "inline-fragments"],
)
def test_fragments_and_inline_fragments_cost_what_the_same_fields_cost_written_out(query):
    variables = {"tenantId": "t", "input": filter_input(100)}
    assert cost_of(query, variables) == cost_of(FILTER_UPDATE, variables) == 304


def test_a_fragment_spread_under_two_aliases_costs_twice():
    query = (
        "mutation Filter($input: UpdateEventFilterInput!) { "
        'a: tenantMutations(tenantId: "a") { ...Update } b: tenantMutations(tenantId: "b") { ...Update } } '
        "fragment Update on TenantMutations { updateEventFilter(input: $input) { updatedFilter { id } } }"
    )
    assert cost_of(query, {"input": filter_input(100)}) == 2 * 304


def test_only_the_operation_named_in_the_request_is_costed():
    query = FILTER_UPDATE + " query Version { version }"
    variables = {"tenantId": "t", "input": filter_input(100)}
    (error,) = validate(schema, parse(query), [limits.request_cost_rule(0, variables, "Filter")])
    assert error.extensions["cost"]["requestedQueryCost"] == 304  # type: ignore[index]
    (error,) = validate(schema, parse(query), [limits.request_cost_rule(0, variables, "Version")])
    assert error.extensions["cost"]["requestedQueryCost"] == 1  # type: ignore[index]


def test_over_the_cost_limit_in_the_document_itself_is_rejected_before_any_resolver_runs(
    post, resolver_calls
):
    literal_ids = ", ".join(f'"{n}"' for n in range(1, 201))
    query = (
        'mutation { tenantMutations(tenantId: "t") { updateEventFilter(input: '
        f'{{eventName: "AddToCart", pixelIds: [{literal_ids}], filterState: DROP}}) {{ updatedFilter {{ id }} }} }} }}'
    )
    error = only_error(*post(query))
    assert error["message"] == "The query exceeds the maximum cost of 500. Actual cost is 604"
    assert error["extensions"]["cost"] == {"requestedQueryCost": 604, "maximumAvailable": 500}
    assert resolver_calls == []


def test_over_the_cost_limit_through_variables_is_rejected_before_any_resolver_runs(post, resolver_calls):
    error = only_error(*post(FILTER_UPDATE, {"tenantId": "t", "input": filter_input(200)}))
    assert error["message"] == "The query exceeds the maximum cost of 500. Actual cost is 604"
    assert resolver_calls == []


@pytest.mark.parametrize(
    "query",
    [
        "mutation Filter($input: UpdateEventFilterInput!) { "
        'a: tenantMutations(tenantId: "a") { ...Update } b: tenantMutations(tenantId: "b") { ...Update } } '
        "fragment Update on TenantMutations { updateEventFilter(input: $input) { updatedFilter { id } } }",
        "mutation Filter($input: UpdateEventFilterInput!) { "
        'a: tenantMutations(tenantId: "a") { ... on TenantMutations { updateEventFilter(input: $input) { updatedFilter { id } } } } '
        'b: tenantMutations(tenantId: "b") { ... { updateEventFilter(input: $input) { updatedFilter { id } } } } }',
    ],
    ids=["named-fragment", "inline-fragments"],
)
def test_over_the_cost_limit_through_fragments_is_rejected_before_any_resolver_runs(
    post, resolver_calls, query
):
    # One 100-pixel update is within the limit; the same twice over is not.
    error = only_error(*post(query, {"input": filter_input(100)}))
    assert error["message"] == "The query exceeds the maximum cost of 500. Actual cost is 608"
    assert resolver_calls == []


def test_the_largest_filter_update_the_domain_allows_is_within_the_cost_limit(post, resolver_calls):
    _status, body = post(FILTER_UPDATE, {"tenantId": "t", "input": filter_input(100)})
    assert [error["extensions"]["code"] for error in body["errors"]] == [401]  # reached the resolver
    assert resolver_calls == ["Mutation.tenantMutations"]


def test_invalid_variables_keep_graphql_cores_own_errors_and_run_no_resolver(post, resolver_calls):
    status, body = post(FILTER_UPDATE, {"tenantId": "t", "input": {**filter_input(200), "filterState": 7}})
    assert status == 400
    messages = [error["message"] for error in body["errors"]]
    assert messages == [
        "Variable '$input' has invalid value at .filterState: Enum 'EventFilterState' cannot represent non-string value: 7."
    ]
    assert resolver_calls == []


def test_the_cost_is_checked_per_request_without_poisoning_or_growing_the_validation_cache(
    lambda_context, resolver_calls, monkeypatch
):
    # Given an app whose document cache the test can see, and graphql-core's validation counted
    caches: list[documents_module.DocumentCache] = []

    class SeenDocumentCache(documents_module.DocumentCache):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            caches.append(self)

    monkeypatch.setattr(server_module, "DocumentCache", SeenDocumentCache)
    post = lambda_app(DEFAULTS, lambda_context)
    (cache,) = caches
    full_validations: list[int] = []

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        full_validations.append(1)
        return validate(*args, **kwargs)

    monkeypatch.setattr(documents_module, "validate", counting_validate)

    # When the same document comes five times with variables over and within the cost limit
    answers = [
        post(FILTER_UPDATE, {"tenantId": "t", "input": filter_input(pixels)})[1]
        for pixels in (200, 100, 200, 1, 150)
    ]

    # Then the verdict follows the variables every time (not poisoned by the first)...
    over = ["The query exceeds" in json.dumps(answer) for answer in answers]
    assert over == [True, False, True, False, False]
    assert resolver_calls == ["Mutation.tenantMutations"] * 3
    # ...while the document's own (cached) validation ran once for all five requests
    assert len(full_validations) == 1
    # And the cache holds that one document, with one verdict (for its static rules): no entry per request
    entries = list(cache._documents.values())
    assert [entry.document.loc.source.body for entry in entries if entry.document.loc] == [FILTER_UPDATE]
    assert [len(entry.errors) for entry in entries] == [1]


# Aliases


def test_a_thousand_aliases_are_rejected_before_any_resolver_runs(lambda_context, resolver_calls):
    query = "{ " + " ".join(f"a{n}: version" for n in range(1000)) + " }"
    # Tokens raised, so that it is the alias rule that answers (by default the token limit does).
    post = lambda_app(DEFAULTS._replace(max_query_tokens=10_000), lambda_context)
    error = only_error(*post(query))
    assert error["message"] == "The document has 1000 aliases; the maximum is 20."
    assert error["locations"] == [
        {"line": 1, "column": 3 + len(" ".join(f"a{n}: version" for n in range(20))) + 1}
    ]
    default_status, default_body = lambda_app(DEFAULTS, lambda_context)(query)
    assert default_status == 400
    assert "Document contains more than 2000 tokens" in default_body["errors"][0]["message"]
    assert resolver_calls == []


def test_aliases_inside_fragments_count_too(post, resolver_calls):
    fragment = "fragment Versions on Query { " + " ".join(f"f{n}: version" for n in range(15)) + " }"
    over = "{ ...Versions " + " ".join(f"o{n}: version" for n in range(6)) + " } " + fragment
    at_limit = "{ ...Versions " + " ".join(f"o{n}: version" for n in range(5)) + " } " + fragment
    error = only_error(*post(over))
    assert error["message"] == "The document has 21 aliases; the maximum is 20."
    assert resolver_calls == []
    status, body = post(at_limit)
    assert status == 200
    assert len(body["data"]) == 20


# Tokens


def test_a_hundred_thousand_tokens_are_rejected_by_the_parser_before_any_resolver_runs(
    lambda_context, resolver_calls
):
    query = "{ " + "version " * 99_998 + "}"
    # Body limit raised, so that it is the token limit that answers (by default the body limit does).
    post = lambda_app(DEFAULTS._replace(max_body_bytes=2 * 1024 * 1024), lambda_context)
    error = only_error(*post(query))
    assert error["message"] == "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    assert resolver_calls == []


def test_a_document_over_the_token_limit_but_within_the_body_limit_is_rejected(post, resolver_calls):
    query = "{ " + "version " * 5000 + "}"
    assert len(query) < DEFAULTS.max_body_bytes
    error = only_error(*post(query))
    assert error["message"] == "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    assert resolver_calls == []


# Body size, through the real Lambda handler


def padded_body(size: int) -> str:
    """A valid `{ version }` request of exactly `size` bytes (JSON allows trailing whitespace)."""
    body = graphql_body("{ version }")
    return body + " " * (size - len(body))


TOO_LARGE = {
    "errors": [
        {"message": "Request body is larger than the maximum of 65536 bytes.", "extensions": {"code": 413}}
    ]
}


def test_a_body_over_the_limit_is_a_413_through_the_handler_before_any_resolver_runs(
    handler, lambda_context, resolver_calls
):
    response = handler(http_api_event(padded_body(64 * 1024 + 1)), lambda_context)
    assert response["statusCode"] == 413
    assert response["headers"]["content-type"] == "application/json"
    assert response_body(response) == TOO_LARGE
    assert resolver_calls == []


def test_a_body_exactly_at_the_limit_is_answered(handler, lambda_context, resolver_calls):
    response = handler(http_api_event(padded_body(64 * 1024)), lambda_context)
    assert response["statusCode"] == 200
    assert response_body(response) == {"data": {"version": "2026-11"}}
    assert resolver_calls == ["Query.version"]


@pytest.mark.parametrize(
    "event",
    [
        http_api_event(padded_body(70_000), headers={"content-length": "100"}),
        http_api_event(base64.b64encode(padded_body(70_000).encode()).decode(), base64_encoded=True),
        http_api_event(graphql_body("{ version }"), headers={"content-length": str(10 * 1024 * 1024)}),
    ],
    ids=["understated-content-length", "base64-encoded", "declared-too-large"],
)
def test_the_body_limit_checks_the_declared_length_and_the_bytes_actually_received(
    handler, lambda_context, resolver_calls, event
):
    response = handler(event, lambda_context)
    assert response["statusCode"] == 413
    assert response_body(response) == TOO_LARGE
    assert resolver_calls == []


# Normal requests


@pytest.fixture
def dev_app(moto_table):
    """The CAPIG document's sample tenant and an app bound to it, in moto."""
    return sample_tenant_app()


def test_every_documented_request_passes_the_default_limits_end_to_end(post, dev_app):
    credentials, basic = dev_app
    tenant = "IaoreXfj"
    seed_auth = {"appId": credentials.app_id, "appSecret": credentials.app_secret}
    pageview = SEED_PAGEVIEW.replace("APP", credentials.app_id).replace("SECRET", credentials.app_secret)
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        (SETUP, SETUP_VARIABLES, basic),
        (EVENTS_STATUS, {"id": PIXEL, "tenantId": tenant, "input": {"status": 1}}, basic),
        (CAPI_PUBLISH, {"id": PIXEL, "tenantId": tenant, "input": {"status": 1}}, basic),
        (EVENT_FILTER, {"tenantId": tenant, "input": {**filter_input(1), "pixelIds": [PIXEL]}}, basic),
        (
            DOMAIN_FILTER,
            {"tenantId": tenant, "input": {"domain": "example.com", "filterState": "ALLOW"}},
            basic,
        ),
        (TENANT_QUERIES, {"tenantId": tenant}, basic),
        (PIXELS, {"event": {"action": "create", "pixel_id": 123}}, basic),
        (
            SEED_QUERY,
            {"auth": seed_auth, "event": {"pixel_id": 123, "action": "add", "domain": "example.com"}},
            {},
        ),
        (SEED_QUERY, {"auth": seed_auth, "event": {"pixel_id": 123, "action": "list"}}, {}),
        (pageview, {"event": {"email": "john_smith@gmail.com", "pixelId": 123, "domain": "example.com"}}, {}),
        (TRACK, {"event": {"pixelId": PIXEL, "eventName": "Purchase", "url": "https://example.com/"}}, basic),
        (STATS, {"event": {"pixel_id": 123, "from": "2026-11-01", "to": "2026-11-30"}}, basic),
        (
            SEED_QUERY,
            {"auth": seed_auth, "event": {"pixel_id": 123, "action": "remove", "domain": "example.com"}},
            {},
        ),
        (DELETE, {"id": PIXEL, "tenantId": tenant}, basic),
    ]
    for query, variables, headers in requests:
        status, body = post(query, variables, headers)
        assert status == 200, body
        assert "errors" not in body, body
        envelopes = [value for value in body["data"].values() if isinstance(value, dict) and "code" in value]
        assert all(envelope["code"] == 200 for envelope in envelopes), body


def test_graphiqls_introspection_query_passes_the_default_limits_in_development(post):
    # It nests `ofType` far deeper than 10 levels: introspection fields are not depth-counted.
    status, body = post(get_introspection_query(descriptions=True, input_value_deprecation=True))
    assert status == 200, body
    assert body["data"]["__schema"]["queryType"] == {"name": "Query", "kind": "OBJECT"}
