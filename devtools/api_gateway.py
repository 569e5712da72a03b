"""API Gateway (HTTP API, payload format 2.0) in front of the template's functions, locally.

Each request becomes the event API Gateway would send, and is handed to the function's real
Lambda handler in a thread of its own, as concurrent Lambda invocations would be: `make dev`
exercises the same code path as AWS (Mangum, Powertools), like `sam local start-api` without Docker.

CORS is the template's `CorsConfiguration` of the HttpApi, applied as API Gateway applies it: a
preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered 204 by the gateway
itself, on any path, without invoking a function; other responses to a request from an allowed
origin get Access-Control-Allow-Origin, and CORS headers set by the function are dropped. A
parameter the configuration refers to (`!Ref CorsAllowOrigins`) takes its value from the
environment variable of the same name in upper snake case (CORS_ALLOW_ORIGINS, comma-separated),
else from its default. Stage throttling is not emulated.
"""

import asyncio
import base64
import logging
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import urlsplit

from devtools.functions import load_handler
from devtools.sqs_event_source import Handler, LambdaContext
from devtools.template import resources_of_type

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_TEXT_TYPES = ("application/json", "application/graphql", "text/", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class CorsConfiguration:
    """An HTTP API's CORS configuration (SAM's `CorsConfiguration`), with parameters resolved."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allowed_origin(self, origin: str | None) -> str | None:
        """What Access-Control-Allow-Origin says to this origin; None: it is not allowed."""
        if not origin:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None

    def _origin_headers(self, origin: str) -> dict[str, str]:
        headers = {"access-control-allow-origin": origin}
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        if "*" not in self.allow_origins:
            headers["vary"] = "Origin"  # the answer depends on the Origin: caches must key on it
        return headers

    def preflight_headers(self, origin: str | None, requested_method: str) -> dict[str, str]:
        """The headers of the gateway's 204 to a preflight; none when the origin or method is refused."""
        allowed = self.allowed_origin(origin)
        methods = {method.upper() for method in self.allow_methods}
        if allowed is None or not ("*" in methods or requested_method.upper() in methods):
            return {}
        headers = self._origin_headers(allowed)
        headers["access-control-allow-methods"] = ",".join(self.allow_methods)
        if self.allow_headers:
            headers["access-control-allow-headers"] = ",".join(self.allow_headers)
        if self.max_age is not None:
            headers["access-control-max-age"] = str(self.max_age)
        return headers

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """Headers the gateway adds to a function's response to a request from ``origin``."""
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return {}
        headers = self._origin_headers(allowed)
        if self.expose_headers:
            headers["access-control-expose-headers"] = ",".join(self.expose_headers)
        return headers


def parameter_value(template: dict[str, Any], name: str, environ: Mapping[str, str]) -> Any:
    """A template parameter's local value: env var NAME_IN_UPPER_SNAKE_CASE if set and not empty,
    else its default. A CommaDelimitedList becomes a list of stripped strings."""
    parameter = template.get("Parameters", {}).get(name)
    if parameter is None:
        raise ValueError(f"!Ref {name}: not a parameter of the template")
    variable = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()
    value = environ.get(variable) or parameter.get("Default")
    if value is None:
        raise ValueError(f"parameter {name} has no default: set {variable}")
    if parameter.get("Type") == "CommaDelimitedList":
        return [item.strip() for item in str(value).split(",") if item.strip()]
    return value


def _resolved(value: Any, template: dict[str, Any], environ: Mapping[str, str]) -> Any:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameter_value(template, value["Ref"], environ)
    if isinstance(value, dict) and any(key.startswith("Fn::") for key in value):
        raise ValueError(f"only !Ref <Parameter> is supported in a local CorsConfiguration: {value}")
    if isinstance(value, dict):
        return {key: _resolved(item, template, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, template, environ) for item in value]
    return value


def _strings(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(str(item) for item in items if item is not None)


def cors_configuration(
    template: dict[str, Any], api_id: str | None, environ: Mapping[str, str] | None = None
) -> CorsConfiguration | None:
    """The CORS configuration of an `AWS::Serverless::HttpApi` (None: the implicit API), from its
    properties over `Globals.HttpApi`; None when it has none."""
    environ = os.environ if environ is None else environ
    properties = dict(template.get("Globals", {}).get("HttpApi", {}))
    if api_id is not None:
        properties.update(
            resources_of_type(template, "AWS::Serverless::HttpApi")[api_id].get("Properties", {})
        )
    config = _resolved(properties.get("CorsConfiguration"), template, environ)
    if not config:
        return None
    if config is True:
        return CorsConfiguration(allow_origins=("*",))  # SAM's shorthand: any origin, nothing else
    max_age = config.get("MaxAge")
    return CorsConfiguration(
        allow_origins=_strings(config.get("AllowOrigins", [])),
        allow_methods=_strings(config.get("AllowMethods", [])),
        allow_headers=_strings(config.get("AllowHeaders", [])),
        expose_headers=_strings(config.get("ExposeHeaders", [])),
        max_age=None if max_age is None else int(max_age),
        allow_credentials=config.get("AllowCredentials") in (True, "true"),
    )


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function_id: str
    handler: Handler
    timeout_seconds: float
    cors: CorsConfiguration | None = None  # the CORS configuration of the route's API


def _api_id(event: Mapping[str, Any]) -> str | None:
    api = event.get("ApiId")
    if api is None:
        return None
    if isinstance(api, dict) and set(api) == {"Ref"}:
        return cast(str, api["Ref"])
    raise ValueError(f"ApiId must be !Ref <HttpApi> to be emulated locally: {api}")


def routes_of(template: dict[str, Any], environ: Mapping[str, str] | None = None) -> list[Route]:
    """Every `HttpApi` event of every function, with the function's handler loaded and its API's CORS."""
    routes: list[Route] = []
    function_globals = template.get("Globals", {}).get("Function", {})
    for function_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        properties = resource["Properties"]
        events = [
            e["Properties"] for e in properties.get("Events", {}).values() if e.get("Type") == "HttpApi"
        ]
        if not events:
            continue
        handler = load_handler(
            properties["CodeUri"], properties["Handler"], module_alias=f"{function_id}_app"
        )
        timeout = float(properties.get("Timeout", function_globals.get("Timeout", 3)))
        routes.extend(
            Route(
                e["Method"].upper(),
                e["Path"],
                function_id,
                handler,
                timeout,
                cors_configuration(template, _api_id(e), environ),
            )
            for e in events
        )
    return routes


def _is_utf8(body: bytes) -> bool:
    # API Gateway base64-encodes what is not valid text, whatever the declared content type.
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


def http_api_event(
    method: str, target: str, headers: Mapping[str, str], body: bytes, source_ip: str, route: str
) -> dict[str, Any]:
    url = urlsplit(target)
    lowered = {name.lower(): value for name, value in headers.items()}
    content_type = lowered.get("content-type", "")
    is_text = not body or (content_type.startswith(_TEXT_TYPES) and _is_utf8(body))
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": route,
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "routeKey": route,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": body.decode() if is_text else base64.b64encode(body).decode(),
        "isBase64Encoded": not is_text,
    }


class LocalHttpApi(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default of 5 resets connections under a burst of browsers

    def __init__(self, port: int, routes: list[Route]) -> None:
        self.routes = {(route.method, route.path): route for route in routes}
        configurations = {route.cors for route in routes}
        if len(configurations) > 1:
            raise ValueError("routes of HTTP APIs with different CORS configurations: serve one API each")
        # CORS is the API's, so the gateway answers preflights on any path, routed or not.
        self.cors = configurations.pop() if configurations else None
        super().__init__(("127.0.0.1", port), _RequestHandler)

    def route_for(self, method: str, path: str) -> Route | None:
        return self.routes.get((method, path))


def with_cors(headers: Mapping[str, str], cors_headers: Mapping[str, str]) -> dict[str, str]:
    """A function's response headers as the gateway sends them: its own CORS headers dropped (API
    Gateway ignores them when the API has a CORS configuration), the gateway's added, Vary merged."""
    merged = {
        name: value for name, value in headers.items() if not name.lower().startswith("access-control-")
    }
    for name, value in cors_headers.items():
        existing = next((key for key in merged if key.lower() == name), None)
        if existing is None:
            merged[name] = value
        elif value.lower() not in {token.strip().lower() for token in merged[existing].split(",")}:
            merged[existing] = f"{merged[existing]}, {value}"  # only Vary can be there already
    return merged


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalHttpApi
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._invoke()

    def do_POST(self) -> None:
        self._invoke()

    def do_OPTIONS(self) -> None:
        requested_method = self.headers.get("access-control-request-method")
        cors = self.server.cors
        if cors is None or not self.headers.get("origin") or not requested_method:
            self._invoke()  # not a preflight: routed like any request (no OPTIONS route: 404)
            return
        self._discard_body()
        self._answer(
            HTTPStatus.NO_CONTENT, cors.preflight_headers(self.headers.get("origin"), requested_method), b""
        )

    def _discard_body(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)

    def _invoke(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {}, b'{"message":"Request Entity Too Large"}')
            return
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        route = self.server.route_for(self.command, path)
        if route is None:
            self._answer(
                HTTPStatus.NOT_FOUND, {"content-type": "application/json"}, b'{"message":"Not Found"}'
            )
            return
        event = http_api_event(
            self.command,
            self.path,
            dict(self.headers.items()),
            body,
            self.client_address[0],
            f"{route.method} {route.path}",
        )
        context = LambdaContext.for_invocation(route.function_id, timeout_seconds=route.timeout_seconds)
        # Lambda runs a handler on its main thread, where an event loop can be had (Mangum needs one).
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        cors_headers = route.cors.response_headers(self.headers.get("origin")) if route.cors else {}
        try:
            response = route.handler(event, context) or {}
        except Exception:
            logger.exception("%s failed", route.function_id)
            self._answer(
                HTTPStatus.INTERNAL_SERVER_ERROR, cors_headers, b'{"message":"Internal Server Error"}'
            )
            return
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        payload = response.get("body") or ""
        raw = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        headers = response.get("headers") or {}
        if route.cors is not None:
            headers = with_cors(headers, cors_headers)
        self._answer(int(response.get("statusCode", 200)), headers, raw)

    def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, value)
        if status != HTTPStatus.NO_CONTENT:  # a 204 carries no Content-Length (RFC 9110, 8.6)
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        logger.info("%s %s", self.address_string(), format % args)
