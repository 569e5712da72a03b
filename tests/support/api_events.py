"""API Gateway events for the functions' handlers, as the HTTP API (payload 2.0) sends them."""

import itertools
import json
from typing import Any

_request_numbers = itertools.count(1)


def graphql_post(
    query: str, variables: dict[str, Any], *, path: str = "/graphql", authorization: str | None = None
) -> dict[str, Any]:
    """A JSON POST of a GraphQL document, with a request id of its own (the logs' correlation id)."""
    request_id = f"test-req-{next(_request_numbers)}"
    headers = {"content-type": "application/json", "host": "abc.execute-api.us-east-1.amazonaws.com"}
    if authorization is not None:
        headers["authorization"] = authorization
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "Mozilla/5.0 (pytest)",
            },
            "requestId": request_id,
            "routeKey": f"POST {path}",
            "stage": "$default",
            "time": "25/Nov/2026:21:00:00 +0000",
            "timeEpoch": 1795640400000,
        },
        "body": json.dumps({"query": query, "variables": variables}),
        "isBase64Encoded": False,
    }
