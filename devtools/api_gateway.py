"""API Gateway (HTTP API, payload format 2.0) in front of the template's functions, locally.

Each request becomes the event API Gateway would send, and is handed to the function's real
Lambda handler in a thread of its own, as concurrent Lambda invocations would be: `make dev`
exercises the same code path as AWS (Mangum, Powertools), like `sam local start-api` without Docker.
"""

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from devtools.functions import load_handler
from devtools.sqs_event_source import Handler, LambdaContext
from devtools.template import resources_of_type

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_TEXT_TYPES = ("application/json", "application/graphql", "text/", "application/x-www-form-urlencoded")


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function_id: str
    handler: Handler
    timeout_seconds: float


def routes_of(template: dict[str, Any]) -> list[Route]:
    """Every `HttpApi` event of every function, with the function's handler loaded."""
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
        routes.extend(Route(e["Method"].upper(), e["Path"], function_id, handler, timeout) for e in events)
    return routes


def http_api_event(
    method: str, target: str, headers: Mapping[str, str], body: bytes, source_ip: str, route: str
) -> dict[str, Any]:
    url = urlsplit(target)
    lowered = {name.lower(): value for name, value in headers.items()}
    content_type = lowered.get("content-type", "")
    is_text = not body or content_type.startswith(_TEXT_TYPES)
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
        super().__init__(("127.0.0.1", port), _RequestHandler)

    def route_for(self, method: str, path: str) -> Route | None:
        return self.routes.get((method, path))


class _RequestHandler(BaseHTTPRequestHandler):
    server: LocalHttpApi
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._invoke()

    def do_POST(self) -> None:
        self._invoke()

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
        context = LambdaContext(
            function_name=route.function_id,
            memory_limit_in_mb="512",
            invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{route.function_id}",
            aws_request_id=str(uuid.uuid4()),
            deadline=time.monotonic() + route.timeout_seconds,
        )
        # Lambda runs a handler on its main thread, where an event loop can be had (Mangum needs one).
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            response = route.handler(event, context) or {}
        except Exception:
            logger.exception("%s failed", route.function_id)
            self._answer(HTTPStatus.INTERNAL_SERVER_ERROR, {}, b'{"message":"Internal Server Error"}')
            return
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        payload = response.get("body") or ""
        raw = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode()
        self._answer(int(response.get("statusCode", 200)), response.get("headers") or {}, raw)

    def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in {"content-length", "connection"}:
                self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        logger.info("%s %s", self.address_string(), format % args)
