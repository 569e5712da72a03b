"""The ASGI app: GraphQL at /graphql and /capig/graphql/, server events in Meta's format
(graphql_api/server_events.py), the browser snippet and its collection (graphql_api/browser.py),
a readiness check at /health.

Built once per container from the settings read at cold start (`graphql_app`, `asgi_app`); tests
build others from other settings with `create_graphql_app` and `create_asgi_app`. Mangum serves it
in Lambda; `make dev` serves the same app with uvicorn.
"""

import logging
import re
from collections.abc import Coroutine
from typing import Any, Protocol
from urllib.parse import urlsplit

from ariadne import (
    SchemaBindable,
    convert_camel_case_to_snake,
    convert_schema_names,
    repair_schema_default_enum_values,
    validate_schema_default_enum_values,
)
from ariadne.asgi import GraphQL
from ariadne.explorer import ExplorerGraphiQL, ExplorerHttp405
from graphql import GraphQLError, GraphQLSchema, assert_valid_schema, build_ast_schema
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api import limits, routes, sdl
from graphql_api.documents import DocumentCache
from graphql_api.http import header, send_json
from graphql_api.resolvers import bindables
from graphql_api.resolvers.errors import format_error
from pixel_core.config import Settings, settings
from pixel_core.health import readiness


class AsgiHandler(Protocol):
    """An ASGI app as Mangum types it: a coroutine function (named parameters included)."""

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]: ...


GRAPHQL_PATHS = frozenset({"/graphql", "/graphql/", "/capig/graphql", "/capig/graphql/"})


def python_name(graphql_name: str, _schema: GraphQLSchema, _path: tuple[str, ...]) -> str:
    """camelCase to snake_case, leaving names without capitals alone (Ariadne's own turns `md5` into `md_5`)."""
    return convert_camel_case_to_snake(graphql_name) if graphql_name != graphql_name.lower() else graphql_name


def executable_schema(type_defs: str, bindables: list[SchemaBindable]) -> GraphQLSchema:
    """Ariadne's make_executable_schema, step for step, but for the SDL checks: the schema files do
    not change between cold starts, so tests/unit/test_executable_schema.py runs graphql-core's SDL
    validation on them once, and proves this schema the same as Ariadne's, instead of every cold
    start running it (a third of the schema's build). The built schema is still validated whole.
    The SDL is parsed by the build (graphql_api/sdl.py)."""
    schema = build_ast_schema(sdl.document(type_defs), assume_valid_sdl=True)
    for bindable in bindables:
        bindable.bind_to_schema(schema)
    convert_schema_names(schema, python_name)
    validate_schema_default_enum_values(schema)
    assert_valid_schema(schema)
    repair_schema_default_enum_values(schema)
    return schema


TYPE_DEFS = sdl.read_type_defs()
schema = executable_schema(TYPE_DEFS, bindables)


def request_context(request: Request, _data: Any) -> dict[str, Any]:
    return {
        "request": request,
        "authorization": request.headers.get("authorization"),
        "client_ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent"),
    }


# graphql-core's suggestions: " Did you mean 'a', 'b', or 'c'?" (names never contain "?"), at the
# end of a message or before what follows it ("... Did you mean 'pixelIds'? Found: {...}").
SUGGESTION = re.compile(r" Did you mean [^?]*\?")


def without_suggestions(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    """The project's formatter, minus suggestions.

    Validation hides them itself (`hide_suggestions`); this catches the ones execution adds when
    it coerces variables (an enum value, an input field), which Ariadne gives no option for.
    """
    formatted = format_error(error, debug)
    formatted["message"] = SUGGESTION.sub("", formatted["message"])
    return formatted


SILENT_LOGGER = "pixel-gateway.ariadne"
logging.getLogger(SILENT_LOGGER).disabled = True


def create_graphql_app(settings: Settings) -> GraphQL:
    """The GraphQL app for `settings`: production turns off introspection, the explorer and suggestions."""
    production = settings.is_production
    documents = DocumentCache(max_tokens=settings.max_query_tokens, hide_suggestions=production)
    static_rules = (limits.depth_limit(settings.max_query_depth), limits.alias_limit(settings.max_aliases))
    return GraphQL(
        schema,
        context_value=request_context,
        query_parser=documents.parse,
        query_validator=documents.validate,
        validation_rules=limits.validation_rules(static_rules, settings.max_query_cost),
        debug=False,
        # Ariadne would log every GraphQL error with its document excerpt and input values, which
        # can carry an inline appSecret or e-mail: client errors are answered, not logged, and the
        # unexpected ones are logged by format_error without the request's values.
        logger=SILENT_LOGGER,
        error_formatter=without_suggestions if production else format_error,
        introspection=not production,
        explorer=ExplorerHttp405() if production else ExplorerGraphiQL(),
    )


def _request_error(message: str, code: int) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code}}]}


BROWSER_REFUSED = (
    "GraphQL is not callable from web pages: its credentials act on the whole tenant. Count pageviews "
    "with the pixel snippet (/px.js), or have an operator allow this origin (BrowserGraphqlOrigins)."
)


def from_a_foreign_page(scope: Scope, allowed_origins: frozenset[str]) -> bool:
    """Whether a web page of another origin sent this request, and that origin may not call GraphQL.

    Browsers name the page's origin in `Origin` on every cross-origin POST (and servers send none).
    Refusing here, not only in CORS, matters: a `text/plain` POST needs no preflight, so CORS would
    let it run and only hide the answer. The gateway's own pages (the GraphiQL explorer) are the
    same origin as the request's Host and may.
    """
    origin = header(scope, b"origin")
    if origin is None:
        return False
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed_origins or origin in allowed_origins:
        return False
    host = (header(scope, b"host") or "").strip().lower()
    return not host or urlsplit(origin).netloc != host


def create_asgi_app(settings: Settings, graphql_app: ASGIApp | None = None) -> AsgiHandler:
    """The routes, around `graphql_app` (built from `settings` when not given)."""
    graphql = graphql_app or create_graphql_app(settings)
    max_body_bytes = settings.max_body_bytes

    async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
        # A few routes do not justify a web framework's import cost on every cold start.
        path = scope.get("path", "")
        if scope["type"] == "http" and path in GRAPHQL_PATHS:
            if from_a_foreign_page(scope, settings.browser_graphql_origins):
                await send_json(send, 403, _request_error(BROWSER_REFUSED, 403))
                return
            # Read (within the limit) before anything parses it: an oversized body costs nothing more.
            body = await limits.read_body(scope, receive, max_body_bytes)
            if body is None:
                await send_json(send, 413, limits.too_large(max_body_bytes))
                return
            if (header(scope, b"content-type") or "").strip().lower().startswith("multipart/"):
                # No uploads here; Ariadne would hand it to a form parser that is not installed.
                await send_json(send, 415, _request_error("Use Content-Type: application/json", 415))
                return
            try:
                await graphql(scope, limits.replay(body, receive), send)
            except RecursionError:
                # JSON nested thousands deep exhausts the parser's recursion before anything runs.
                await send_json(send, 400, _request_error("Request body is nested too deeply", 400))
        elif scope["type"] == "http" and path == "/health":
            checks = readiness()
            healthy = all(state == "ok" for state in checks.values())
            await send_json(
                send,
                200 if healthy else 503,
                {"status": "ok" if healthy else "unavailable", "checks": checks},
            )
        elif (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and (pixel_id := routes.server_events_pixel(path)) is not None
        ):
            from graphql_api import server_events  # noqa: PLC0415  # on its route's first request (routes.py)

            await server_events.handle(scope, receive, send, pixel_id, settings.max_server_events_body_bytes)
        elif (
            scope["type"] == "http" and path == routes.SNIPPET_PATH and scope.get("method") in ("GET", "HEAD")
        ):
            from graphql_api import browser  # noqa: PLC0415  # on its route's first request (routes.py)

            await browser.serve_snippet(scope, send)
        elif (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and (pixel_id := routes.collection_pixel(path)) is not None
        ):
            from graphql_api import browser  # noqa: PLC0415  # on its route's first request (routes.py)

            await browser.handle_collection(scope, receive, send, pixel_id)
        elif scope["type"] == "http":
            await send_json(send, 404, {"message": "Not Found"})

    return asgi_app


graphql_app = create_graphql_app(settings)
asgi_app = create_asgi_app(settings, graphql_app)
