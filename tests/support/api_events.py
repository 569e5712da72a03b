"""API Gateway events for the functions' handlers, as the HTTP API (payload 2.0) sends them, and the
handler's answer decoded."""

import base64
import itertools
import json
from typing import Any

from tests.support.documents import graphql_body

_request_numbers = itertools.count(1)


def http_api_event(
    body: str | None,
    *,
    method: str = "POST",
    path: str = "/graphql",
    headers: dict[str, str] | None = None,
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An event as events/*.json have them, with a request id of its own (the logs' correlation id)
    and the body's real length unless `headers` declares another."""
    all_headers = {
        "content-type": "application/json",
        "host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    }
    if body is not None:
        raw = base64.b64decode(body) if base64_encoded else body.encode()
        all_headers["content-length"] = str(len(raw))
    all_headers.update(headers or {})
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "Mozilla/5.0 (pytest)",
            },
            "requestId": f"test-req-{next(_request_numbers)}",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "25/Nov/2026:21:00:00 +0000",
            "timeEpoch": 1795640400000,
        },
        "isBase64Encoded": base64_encoded,
    }
    if body is not None:
        event["body"] = body
    return event


def graphql_post(
    query: str, variables: dict[str, Any], *, path: str = "/graphql", authorization: str | None = None
) -> dict[str, Any]:
    """A JSON POST of a GraphQL document."""
    headers = {"authorization": authorization} if authorization is not None else {}
    return http_api_event(graphql_body(query, variables), path=path, headers=headers)


def response_body(response: dict[str, Any]) -> Any:
    """The JSON a handler answered, base64-encoded or not."""
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)
