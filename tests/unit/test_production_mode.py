"""Production (`STAGE=prod`) against development: introspection, the explorer, suggestions, internals.

Both apps are built in this one process with `create_asgi_app` and driven as Lambda drives them:
Mangum and API Gateway HTTP API events.
"""

import json
from typing import Any

import pytest
from graphql import get_introspection_query

from graphql_api.server import schema
from pixel_core import pixel_domains, signal_configs
from pixel_core.config import settings
from tests.support.documents import SEED_QUERY, SETUP, SETUP_VARIABLES
from tests.support.lambda_app import LambdaApp, sample_tenant_app

PRODUCTION = settings._replace(stage="prod")
DEVELOPMENT = settings._replace(stage="dev")
SECRET_DETAIL = "database on fire at 10.0.0.7"


@pytest.fixture
def prod(lambda_context) -> LambdaApp:
    return LambdaApp(PRODUCTION, lambda_context)


@pytest.fixture
def dev(lambda_context) -> LambdaApp:
    return LambdaApp(DEVELOPMENT, lambda_context)


@pytest.fixture
def credentials(moto_table):
    """The CAPIG document's sample tenant and an app bound to it (moto), with its Basic auth header."""
    return sample_tenant_app()


def assert_no_internals(body: Any) -> None:
    text = json.dumps(body)
    assert SECRET_DETAIL not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    for error in body.get("errors") or []:
        assert set(error["extensions"]) == {"code"}, error


# Introspection


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("{ __schema { types { name } } }", "__schema"),
        ('{ __type(name: "Query") { fields { name } } }', "__type"),
        (get_introspection_query(descriptions=True), "__schema"),
    ],
    ids=["schema", "type", "graphiql-query"],
)
def test_introspection_is_refused_in_production(prod, query, field):
    status, body = prod.post(query)
    assert status == 400
    assert "data" not in body
    (error,) = body["errors"]
    assert error["message"] == f"Cannot query '{field}': introspection is disabled."
    assert error["extensions"] == {"code": 400}


def test_introspection_works_in_development(dev):
    status, body = dev.post(get_introspection_query(descriptions=True))
    assert status == 200
    type_names = {graphql_type["name"] for graphql_type in body["data"]["__schema"]["types"]}
    assert {"Query", "Mutation", "TenantQueries", "PixelConnectionCreationInput"} <= type_names


# The explorer


@pytest.mark.parametrize("path", ["/graphql", "/capig/graphql/"])
def test_get_on_the_graphql_paths_is_405_in_production(prod, path):
    response = prod.get(path)
    assert response["statusCode"] == 405
    assert "graphiql" not in response["body"].lower()


def test_get_on_graphql_serves_the_explorer_in_development(dev):
    response = dev.get("/graphql")
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/html")
    assert "graphiql" in response["body"].lower()


# Suggestions

FILTER = (
    "mutation F($tenantId: ID!, $input: UpdateEventFilterInput!) { tenantMutations(tenantId: $tenantId) "
    "{ updateEventFilter(input: $input) { updatedFilter { id } } } }"
)
MISSPELT = [
    pytest.param("{ verison }", None, "Cannot query field 'verison' on type 'Query'.", id="field"),
    pytest.param(
        'query { tenantQueries(tenantID: "t") { eventFilters { id } } }',
        None,
        "Unknown argument 'tenantID' on field 'Query.tenantQueries'.",
        id="argument",
    ),
    pytest.param(
        'mutation F($input: UpdateEventFiltrInput!) { tenantMutations(tenantId: "t") { updateEventFilter(input: $input) { updatedFilter { id } } } }',
        None,
        "Unknown type 'UpdateEventFiltrInput'.",
        id="type",
    ),
    pytest.param(
        'mutation { tenantMutations(tenantId: "t") { updateEventFilter(input: {eventName: "A", filterState: DORP}) '
        "{ updatedFilter { id } } } }",
        None,
        "Value 'DORP' does not exist in 'EventFilterState' enum.",
        id="enum-literal",
    ),
    pytest.param(
        FILTER,
        {"tenantId": "t", "input": {"eventName": "A", "filterState": "DORP"}},
        "Variable '$input' has invalid value at .filterState: Value 'DORP' does not exist in 'EventFilterState' enum.",
        id="enum-in-variables",
    ),
    pytest.param(
        FILTER,
        {"tenantId": "t", "input": {"eventName": "A", "pixelIdz": ["1"], "filterState": "DROP"}},
        "Expected value of type 'UpdateEventFilterInput' not to include unknown field 'pixelIdz'.",
        id="input-field-in-variables",
    ),
]


@pytest.mark.parametrize(("query", "variables", "message"), MISSPELT)
def test_production_errors_name_the_mistake_without_did_you_mean_suggestions(prod, query, variables, message):
    status, body = prod.post(query, variables)
    assert status == 400
    messages = [error["message"] for error in body["errors"]]
    assert any(message in text for text in messages), messages
    assert not any("Did you mean" in text for text in messages), messages
    assert all(error["extensions"] == {"code": 400} for error in body["errors"])


@pytest.mark.parametrize(("query", "variables", "message"), MISSPELT)
def test_development_errors_keep_their_suggestions(dev, query, variables, message):
    status, body = dev.post(query, variables)
    assert status == 400
    messages = [error["message"] for error in body["errors"]]
    assert any(message in text and "Did you mean" in text for text in messages), messages


# Unexpected failures


def test_a_resolver_failing_unexpectedly_is_a_generic_500_without_a_trace_in_production(prod, monkeypatch):
    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRET_DETAIL)

    query_type = schema.query_type
    assert query_type is not None
    monkeypatch.setattr(query_type.fields["version"], "resolve", explode)
    # (Ariadne answers HTTP 400 when `data` is null, as it is here: `version` is non-null.)
    _status, body = prod.post("{ version }")
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": 500}
    assert error["path"] == ["version"]
    assert_no_internals(body)


def test_a_capig_domain_function_failing_is_a_generic_500_error_in_production(prod, credentials, monkeypatch):
    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRET_DETAIL)

    monkeypatch.setattr(signal_configs, "setup_pixel", explode)
    _app, basic = credentials
    status, body = prod.post(SETUP, SETUP_VARIABLES, basic)
    assert status == 200
    (error,) = body["errors"]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": 500}
    assert_no_internals(body)


def test_a_heropixel_domain_function_failing_is_a_generic_500_envelope_in_production(
    prod, credentials, monkeypatch
):
    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRET_DETAIL)

    monkeypatch.setattr(pixel_domains, "list_domains", explode)
    app, _basic = credentials
    variables = {
        "auth": {"appId": app.app_id, "appSecret": app.app_secret},
        "event": {"pixel_id": 1, "action": "list"},
    }
    status, body = prod.post(SEED_QUERY, variables)
    assert status == 200
    assert body == {"data": {"domains": {"code": 500, "data": {}, "message": "Internal server error"}}}
    assert_no_internals(body)


def test_the_production_document_cache_validates_without_suggestions_itself():
    # Validation leaves them out at the source; the formatter only catches what execution adds.
    from graphql_api.documents import DocumentCache

    for hide, expected in [(True, "Cannot query field 'verison' on type 'Query'."), (False, "Did you mean")]:
        cache = DocumentCache(hide_suggestions=hide)
        document = cache.parse(None, {"query": "{ verison }"})
        (error,) = cache.validate(schema, document)
        assert expected in error.message
        assert hide is ("Did you mean" not in error.message)
