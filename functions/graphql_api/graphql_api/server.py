"""The ASGI app: GraphQL at /graphql and /capig/graphql/, a readiness check at /health.

Built once per container. Mangum serves it in Lambda; `make dev` serves the same app with uvicorn.
"""

import json
from pathlib import Path
from typing import Any

from ariadne import convert_camel_case_to_snake, load_schema_from_path, make_executable_schema
from ariadne.asgi import GraphQL
from ariadne.explorer import ExplorerGraphiQL, ExplorerHttp405
from graphql import GraphQLSchema
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from graphql_api.documents import DocumentCache
from graphql_api.resolvers import bindables
from graphql_api.resolvers.errors import format_error
from pixel_core.config import settings
from pixel_core.health import readiness

SCHEMA_DIR = Path(__file__).parent / "schema"
GRAPHQL_PATHS = frozenset({"/graphql", "/graphql/", "/capig/graphql", "/capig/graphql/"})


def python_name(graphql_name: str, _schema: GraphQLSchema, _path: tuple[str, ...]) -> str:
    """camelCase to snake_case, leaving names without capitals alone (Ariadne's own turns `md5` into `md_5`)."""
    return convert_camel_case_to_snake(graphql_name) if graphql_name != graphql_name.lower() else graphql_name


schema = make_executable_schema(load_schema_from_path(SCHEMA_DIR), *bindables, convert_names_case=python_name)


def request_context(request: Request, _data: Any) -> dict[str, Any]:
    return {
        "request": request,
        "authorization": request.headers.get("authorization"),
        "client_ip": request.client.host if request.client else None,
        "user_agent": request.headers.get("user-agent"),
    }


documents = DocumentCache()

graphql_app = GraphQL(
    schema,
    context_value=request_context,
    query_parser=documents.parse,
    query_validator=documents.validate,
    debug=False,
    error_formatter=format_error,
    introspection=not settings.is_production,
    explorer=ExplorerHttp405() if settings.is_production else ExplorerGraphiQL(),
)


async def send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    # Three routes do not justify a web framework's import cost on every cold start.
    path = scope.get("path", "")
    if scope["type"] == "http" and path in GRAPHQL_PATHS:
        await graphql_app(scope, receive, send)
    elif scope["type"] == "http" and path == "/health":
        checks = readiness()
        healthy = all(state == "ok" for state in checks.values())
        await send_json(
            send, 200 if healthy else 503, {"status": "ok" if healthy else "unavailable", "checks": checks}
        )
    elif scope["type"] == "http":
        await send_json(send, 404, {"message": "Not Found"})
