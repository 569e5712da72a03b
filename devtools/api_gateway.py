"""API Gateway (HTTP API, payload format 2.0) in front of the template's functions, locally.

Each request becomes the event API Gateway would send, and is handed to the function's real
Lambda handler in a thread of its own, as concurrent Lambda invocations would be: `make dev`
exercises the same code path as AWS (Mangum, Powertools), like `sam local start-api` without Docker.

CORS is the template's `CorsConfiguration` of the HttpApi, applied as API Gateway applies it: a
preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered 204 by the gateway
itself, on any path, without invoking a function; other responses to a request from an allowed
origin get Access-Control-Allow-Origin, and CORS headers set by the function are dropped. A
parameter the configuration refers to (`!Ref BrowserGraphqlOrigins`, also through `!If` on a
condition) takes its value from the environment variable of the same name in upper snake case
(BROWSER_GRAPHQL_ORIGINS, comma-separated),
else from its default. Stage throttling is not emulated.

Bodies are read as API Gateway reads them: a Content-Length or a chunked body of at most 10 MB
(its payload limit). A larger one is refused with a 413 before it is read (or as soon as a chunked
body passes the limit); the connection is then closed gracefully: the answer is sent, then what the
client still sends is read and discarded (bounded), so the client reads the 413 instead of seeing
its connection reset while it sends. `stop_serving()` stops accepting connections, answers 503 to
requests arriving on open connections and waits for the requests in flight.
"""

import asyncio
import base64
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
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
# After a refusal, what the client still sends is read and discarded, up to these bounds, so that it
# reads the answer instead of a connection reset (a close with unread data sends a TCP RST).
LINGER_MAX_BYTES = 64 * 1024 * 1024
LINGER_SECONDS = 10.0
LINGER_IDLE_SECONDS = 1.0
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;[^\r\n]*)?\r?\n")
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
    if value == {"Ref": "AWS::NoValue"}:
        return None
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameter_value(template, value["Ref"], environ)
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        chosen = when_true if condition_value(template, condition, environ) else when_false
        return _resolved(chosen, template, environ)
    if isinstance(value, dict) and any(key.startswith("Fn::") for key in value):
        raise ValueError(f"only !Ref <Parameter> and !If are supported in a local CorsConfiguration: {value}")
    if isinstance(value, dict):
        return {key: _resolved(item, template, environ) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, template, environ) for item in value]
    return value


def condition_value(template: dict[str, Any], name: str, environ: Mapping[str, str]) -> bool:
    """A template condition, with parameters as `parameter_value` gives them locally."""
    return bool(_evaluated(template.get("Conditions", {})[name], template, environ))


def _evaluated(expression: Any, template: dict[str, Any], environ: Mapping[str, str]) -> Any:
    # The condition functions this template uses; anything else fails loudly rather than guess.
    if isinstance(expression, str):
        return expression
    if isinstance(expression, list):
        return [_evaluated(item, template, environ) for item in expression]
    if isinstance(expression, dict) and len(expression) == 1:
        ((function, argument),) = expression.items()
        if function == "Ref":
            return parameter_value(template, argument, environ)
        if function == "Condition":
            return condition_value(template, argument, environ)
        if function == "Fn::Not":
            return not _evaluated(argument[0], template, environ)
        if function == "Fn::Equals":
            left, right = (_evaluated(item, template, environ) for item in argument)
            return str(left) == str(right)
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(item) for item in _evaluated(items, template, environ))
    raise ValueError(f"not supported in a local template condition: {expression}")


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
        self._requests = threading.Condition()  # guards _in_flight and _stopping
        self._in_flight = 0
        self._stopping = False
        super().__init__(("127.0.0.1", port), _RequestHandler)

    def route_for(self, method: str, path: str) -> Route | None:
        """The route of ``method`` and ``path``: an exact one, else one whose ``{name}`` segments each
        match a non-empty segment, literal segments winning over variables from the left (HTTP API's
        choice of the most specific route; ``{proxy+}`` is not used by the template)."""
        exact = self.routes.get((method, path))
        if exact is not None:
            return exact
        segments = path.split("/")
        matching = [
            route
            for (route_method, _), route in self.routes.items()
            if route_method == method and _matches(route.path.split("/"), segments)
        ]
        return max(
            matching,
            key=lambda route: [not part.startswith("{") for part in route.path.split("/")],
            default=None,
        )

    @contextmanager
    def request(self) -> Iterator[bool]:
        """Around the handling of one request: yields False once stop_serving() has begun (the
        request is then refused), else True, and stop_serving() waits for it to finish."""
        with self._requests:
            if self._stopping:
                accepted = False
            else:
                accepted = True
                self._in_flight += 1
        try:
            yield accepted
        finally:
            if accepted:
                with self._requests:
                    self._in_flight -= 1
                    self._requests.notify_all()

    def stop_serving(self, timeout: float) -> int:
        """Stop accepting connections and requests, then wait up to ``timeout`` seconds for those in
        flight. Call it from another thread than serve_forever()'s. Returns how many still run."""
        with self._requests:
            self._stopping = True
        self.shutdown()
        self.server_close()
        deadline = time.monotonic() + timeout
        with self._requests:
            while self._in_flight and (remaining := deadline - time.monotonic()) > 0:
                self._requests.wait(remaining)
            return self._in_flight

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client gone mid-answer is the client's business: one line, not socketserver's traceback.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.info("%s: connection lost: %s", client_address[0], error)
        else:
            logger.exception("request from %s failed", client_address[0])


def _matches(template: list[str], segments: list[str]) -> bool:
    return len(template) == len(segments) and all(
        part == segment or (part.startswith("{") and part.endswith("}") and segment != "")
        for part, segment in zip(template, segments, strict=True)
    )


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
        self._handle(self._invoke)

    def do_POST(self) -> None:
        self._handle(self._invoke)

    def do_PUT(self) -> None:
        self._handle(self._invoke)  # not routed: a 404, as API Gateway answers

    def do_PATCH(self) -> None:
        self._handle(self._invoke)

    def do_DELETE(self) -> None:
        self._handle(self._invoke)

    def do_OPTIONS(self) -> None:
        self._handle(self._options)

    # Set once a function answered: its handler logs the request's one access line itself
    # (functions/graphql_api/app.py, as in CloudWatch), so this server's line would repeat it.
    _function_logged = False

    def _handle(self, answer: Any) -> None:
        self._function_logged = False
        with self.server.request() as accepted:
            if not accepted:
                # Stopping: a request on a connection kept alive is refused, and the connection closed.
                length = self._declared_length()
                no_body = length is None and "transfer-encoding" not in self.headers
                unread = 0 if no_body else (length if length is not None and length >= 0 else None)
                self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, b'{"message":"Service Unavailable"}', unread)
                return
            body = self._read_body()
            if body is not None:
                answer(body)

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it (it waits for the 100 Continue).
        length = self._declared_length()
        if length is not None and length > MAX_BODY_BYTES:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b'{"message":"Request Entity Too Large"}')
            return False
        return super().handle_expect_100()

    # -- the request body ---------------------------------------------------------------------------

    def _declared_length(self) -> int | None:
        """The Content-Length header's value; None without one, -1 when it is not a valid length."""
        values = {value.strip() for value in self.headers.get_all("content-length", [])}
        if not values:
            return None
        if len(values) > 1 or not all(value.isdigit() and value.isascii() for value in values):
            return -1
        return int(values.pop())

    def _read_body(self) -> bytes | None:
        """The whole body, at most MAX_BODY_BYTES; None when the request was refused (answered, and
        the connection closing). A request with neither Content-Length nor chunked has no body."""
        transfer_encoding = self.headers.get("transfer-encoding")
        length = self._declared_length()
        if transfer_encoding is not None:
            if length is not None or transfer_encoding.strip().lower() != "chunked":
                # Both headers (request smuggling) or an encoding other than chunked alone.
                self._refuse(HTTPStatus.BAD_REQUEST, b'{"message":"Bad Request"}')
                return None
            return self._read_chunked()
        if length is None:
            return b""
        if length < 0:
            self._refuse(HTTPStatus.BAD_REQUEST, b'{"message":"Bad Request"}')
            return None
        if length > MAX_BODY_BYTES:
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b'{"message":"Request Entity Too Large"}', length
            )
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True  # the client closed before sending its whole body
            return None
        return body

    def _read_chunked(self) -> bytes | None:
        body = bytearray()
        while True:
            size_line = _CHUNK_SIZE_LINE.fullmatch(self.rfile.readline(1024))
            if size_line is None:
                self._refuse(HTTPStatus.BAD_REQUEST, b'{"message":"Bad Request"}')
                return None
            size = int(size_line.group(1), 16)
            if size == 0:
                break
            if len(body) + size > MAX_BODY_BYTES:
                self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b'{"message":"Request Entity Too Large"}')
                return None
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                self._refuse(HTTPStatus.BAD_REQUEST, b'{"message":"Bad Request"}')
                return None
            body += chunk
        for _ in range(100):  # trailer fields, ignored as API Gateway ignores them, up to the empty line
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                break
        # The function sees the body as a buffering gateway forwards it: whole, with its length.
        del self.headers["transfer-encoding"]
        self.headers["content-length"] = str(len(body))
        return bytes(body)

    def _refuse(self, status: HTTPStatus, body: bytes, unread: int | None = None) -> None:
        """Answer ``status`` and close the connection gracefully: the answer and a FIN first, then
        what the client still sends (``unread`` bytes, or until it stops) is read and discarded."""
        self.close_connection = True
        self._answer(status, {"content-type": "application/json"}, body)
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_IDLE_SECONDS)
            remaining = min(LINGER_MAX_BYTES, LINGER_MAX_BYTES if unread is None else unread)
            deadline = time.monotonic() + LINGER_SECONDS
            while remaining > 0 and time.monotonic() < deadline:
                discarded = self.rfile.read1(min(remaining, 64 * 1024))
                if not discarded:
                    break  # the client closed its side
                remaining -= len(discarded)
        except OSError:
            pass  # the client went away or went quiet: nothing more to wait for

    # -- answering ----------------------------------------------------------------------------------

    def _options(self, body: bytes) -> None:
        requested_method = self.headers.get("access-control-request-method")
        cors = self.server.cors
        if cors is None or not self.headers.get("origin") or not requested_method:
            self._invoke(body)  # not a preflight: routed like any request (no OPTIONS route: 404)
            return
        self._answer(
            HTTPStatus.NO_CONTENT, cors.preflight_headers(self.headers.get("origin"), requested_method), b""
        )

    def _invoke(self, body: bytes) -> None:
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
            self._function_logged = True
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
        if self.close_connection:
            self.send_header("connection", "close")
        if status != HTTPStatus.NO_CONTENT:  # a 204 carries no Content-Length (RFC 9110, 8.6)
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        if not self._function_logged:
            logger.info("%s %s", self.address_string(), format % args)
