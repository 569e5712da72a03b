"""The GraphQL function's HTTP answers that are not GraphQL's own: readiness, unsupported bodies,
and how a body is read (through the real Lambda handler, and as uvicorn hands it over under make dev)."""

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

from graphql_api.server import asgi_app
from pixel_core import queues
from pixel_core.models import PixelItem, find
from tests.support.api_events import graphql_post, http_api_event, response_body
from tests.support.documents import PIXELS, graphql_body
from tests.support.faults import max_attempts, unreachable

CREATE_77 = {"event": {"action": "create", "pixel_id": 77}}


def health(handler: Any, lambda_context: Any) -> dict[str, Any]:
    return handler(http_api_event(None, method="GET", path="/health"), lambda_context)


def test_health_is_503_naming_the_events_queue_when_sqs_cannot_be_reached_and_200_once_it_can(
    handler, lambda_context, moto_table, inject, json_logs
):
    # Given the function's SQS client unable to reach SQS (injected at botocore's before-send)
    client = queues.sqs_client()
    fault = inject(client, "GetQueueAttributes", unreachable)

    # When readiness is asked
    down = health(handler, lambda_context)

    # Then it is 503, naming the queue (the table answers), after botocore's retries
    assert down["statusCode"] == 503
    assert response_body(down) == {
        "status": "unavailable",
        "checks": {"database": "ok", "events_queue": "unavailable"},
    }
    assert fault.attempts == ["GetQueueAttributes"] * max_attempts(client)
    # And the failed check is logged once, with its name
    failures = [r for r in json_logs() if r["message"] == "Readiness check failed"]
    assert [r["check"] for r in failures] == ["events_queue"]

    # When SQS is reachable again, Then readiness is back
    fault.lift()
    up = health(handler, lambda_context)
    assert (up["statusCode"], response_body(up)["status"]) == (200, "ok")


def test_a_multipart_body_is_answered_415_and_runs_nothing(handler, lambda_context, app):
    # Given a mutation that would create pixel 77, sent as a multipart upload
    event = http_api_event(
        graphql_body(PIXELS, CREATE_77),
        headers={"content-type": "multipart/form-data; boundary=xyz", "authorization": app.basic_header},
    )

    # When the handler answers it
    response = handler(event, lambda_context)

    # Then it is a 415 that says what to send, and no pixel was created
    assert response["statusCode"] == 415
    assert response_body(response) == {
        "errors": [{"message": "Use Content-Type: application/json", "extensions": {"code": 415}}]
    }
    assert find(PixelItem, PixelItem.key(77)) is None
    # (the same request as JSON does create it: the refusal above was the content type's)
    json_event = graphql_post(PIXELS, CREATE_77, authorization=app.basic_header)
    assert response_body(handler(json_event, lambda_context))["data"]["pixels"]["code"] == 200


def test_json_nested_thousands_deep_within_the_size_limit_is_a_clear_400_not_a_crash(
    handler, lambda_context, moto_table
):
    # Given a body of 60 KB (under the 64 KB limit) whose variables nest 30,000 lists deep
    depth = 30_000
    body = '{"query": "{ version }", "variables": {"x": ' + "[" * depth + "]" * depth + "}}"

    # When the handler answers it
    response = handler(http_api_event(body), lambda_context)

    # Then it is a 400 that says why, without a traceback
    assert response["statusCode"] == 400
    assert response_body(response) == {
        "errors": [{"message": "Request body is nested too deeply", "extensions": {"code": 400}}]
    }


def test_an_unreadable_content_length_leaves_the_bytes_received_to_decide(
    handler, lambda_context, moto_table
):
    # Given a request whose content-length header is not a number, with a small body
    event = http_api_event(graphql_body("{ version }"), headers={"content-length": "lots"})

    # When the handler answers it, Then the body is read and answered as usual
    response = handler(event, lambda_context)
    assert (response["statusCode"], response_body(response)) == (200, {"data": {"version": "2026-11"}})


# --- the ASGI app as uvicorn drives it (make dev): bodies in chunks, clients that go away ---------


def call_asgi(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Runs the app over one POST /graphql whose `receive` hands out `messages` in turn, then tells
    of a disconnect; returns the status and body answered."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 3000),
    }
    pending = list(messages)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asgi_app(scope, receive, send))
    (start,) = [m for m in sent if m["type"] == "http.response.start"]
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_body_received_in_chunks_is_read_whole(moto_table):
    # Given a query whose body arrives in three chunks, without a content-length (chunked encoding)
    body = graphql_body("{ version }").encode()
    chunks = [body[:5], body[5:12], body[12:]]
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks[:-1]]
    messages.append({"type": "http.request", "body": chunks[-1], "more_body": False})

    # When the app answers it, Then it answers the whole query
    status, answer = call_asgi(messages, headers=[])
    assert (status, json.loads(answer)) == (200, {"data": {"version": "2026-11"}})


def test_chunks_that_pass_the_size_limit_without_a_content_length_are_refused_413(moto_table):
    # Given a body of 40 KB chunks, more than the 64 KB limit in all, with no content-length
    chunk = {"type": "http.request", "body": b" " * 40_000, "more_body": True}

    # When the app reads it, Then it refuses it as soon as the limit is passed
    status, answer = call_asgi([chunk, chunk, chunk], headers=[])
    assert status == 413
    assert json.loads(answer)["errors"][0]["extensions"] == {"code": 413}


def test_a_client_that_goes_away_before_sending_a_body_gets_a_400_not_a_crash(moto_table):
    # Given a client whose connection closes before any body arrived
    status, answer = call_asgi([], headers=[])

    # Then the app answers the empty body as Ariadne does any body that is not JSON: a 400
    assert (status, answer) == (400, b"Request body is not a valid JSON")
