"""`make dev`'s stack, run as a user runs it: a real process, real HTTP, stopped with SIGTERM and
started again on the same data."""

import base64
import contextlib
import http.client
import json
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from devtools.api_gateway import MAX_BODY_BYTES, LocalHttpApi, Route
from devtools.net import free_port
from tests.support.dev_stack import DEV_AUTH, DevStack
from tests.support.documents import (
    CAPI_PUBLISH,
    DELETE,
    DOMAIN_FILTER,
    EVENT_FILTER,
    EVENTS_STATUS,
    PIXEL,
    SEED_QUERY,
    SETUP,
    SETUP_VARIABLES,
    STATS,
    TENANT_QUERIES,
    TRACK,
)

PIXELS = "mutation P($event: ApiPixelsEventInput!) { pixels(event: $event) { code data message } }"


@pytest.mark.dynamodb_local
def test_dev_stack_serves_the_seed_requests_and_keeps_domains_across_a_restart(tmp_path):
    stack = DevStack(tmp_path / "dynamodb")
    stack.start()
    try:
        # Given pixel 123, created with the dev app's Basic auth
        created = stack.graphql(PIXELS, {"event": {"action": "create", "pixel_id": 123}}, basic=True)
        assert created["data"]["pixels"]["code"] == 200
        # When the seed's add, add, remove and list requests are sent over HTTP
        add = stack.graphql(
            SEED_QUERY,
            {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "add", "domain": "example.com"}},
        )
        stack.graphql(
            SEED_QUERY,
            {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "add", "domain": "another-example.com"}},
        )
        duplicate = stack.graphql(
            SEED_QUERY,
            {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "add", "domain": "example.com"}},
            path="/capig/graphql/",
        )
        remove = stack.graphql(
            SEED_QUERY,
            {
                "auth": DEV_AUTH,
                "event": {"pixel_id": 123, "action": "remove", "domain": "another-example.com"},
            },
        )
        # Then they answer as documented
        assert add == {
            "data": {
                "domains": {
                    "code": 200,
                    "data": {"domain": "example.com", "pixel_id": 123},
                    "message": "Success",
                }
            }
        }
        assert duplicate["data"]["domains"] == {
            "code": 409,
            "data": {},
            "message": "Domain example.com already exists for this pixel",
        }
        assert remove["data"]["domains"]["data"] == {
            "domain": "another-example.com",
            "pixel_id": 123,
            "deleted": True,
        }
        # And pageviews accepted just before the stop (to be drained, not lost)
        for _ in range(5):
            pageview = "mutation PV($event: PageviewEventInput!) { pageview(event: $event) { code } }"
            accepted = stack.graphql(
                pageview, {"event": {"pixelId": 123, "domain": "example.com"}}, basic=True
            )
            assert accepted["data"]["pageview"]["code"] == 200
    finally:
        output = stack.stop()
    assert "Pixel Gateway stopped." in output
    # The banner prints the dev secret on purpose; nothing logged after it may carry it.
    _banner, _, logged = output.partition("Ctrl-C stops everything.")
    assert logged
    assert DEV_AUTH["appSecret"] not in logged

    # When the stack starts again on the same data directory
    stack.start()
    try:
        listed = stack.graphql(SEED_QUERY, {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "list"}})
        pixel = stack.graphql(PIXELS, {"event": {"action": "get", "pixel_id": 123}}, basic=True)
    finally:
        stack.stop()
    # Then the domains are still there, and the pageviews were counted before the first stop
    assert [entry["domain"] for entry in listed["data"]["domains"]["data"]["domains"]] == ["example.com"]
    assert pixel["data"]["pixels"]["data"]["events_received"] == 5
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", f"processes left running: {leftovers.stdout}"


# Bounds a wait for the pipeline; the delays themselves are printed (pytest -s, or the -rA report).
DEADLINE_SECONDS = 60
PAGEVIEW = "mutation HeroPixel($event: PageviewEventInput!) { pageview(event: $event) { message code data } }"


@pytest.mark.dynamodb_local
def test_the_stack_starts_quietly_and_writes_one_line_per_request(tmp_path):
    # Given a stack that has started
    stack = DevStack(tmp_path / "dynamodb")
    stack.start()
    try:
        start_up = stack.log_path.read_text()
        # When a GraphQL request, a health check and an unrouted path are sent
        assert stack.graphql("{ __typename }", {}) == {"data": {"__typename": "Query"}}
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/health", timeout=10) as answer:
            assert answer.status == 200
        with pytest.raises(urllib.error.HTTPError) as unrouted:
            urllib.request.urlopen(f"http://127.0.0.1:{stack.port}/nowhere", timeout=10)
        assert unrouted.value.code == 404
        time.sleep(0.5)  # the log is a file the stack writes; let its last line land
        requests = stack.log_path.read_text()[len(start_up) :].splitlines()
    finally:
        stack.stop()
    # Then the start-up printed no library chatter (credentials found, PynamoDB's settings file)
    assert "Pixel Gateway is running" in start_up
    assert not [line for line in start_up.splitlines() if " botocore." in line or " pynamodb." in line]
    # And each request wrote one line: the function's access line, or the gateway's when no function ran
    handled = [json.loads(line) for line in requests if line.startswith("{")]
    assert [(line["message"], line["path"], line["status"]) for line in handled] == [
        ("Request handled", "/graphql", 200),
        ("Request handled", "/health", 200),
    ]
    others = [line for line in requests if not line.startswith("{")]
    assert len(others) == 1, requests
    assert '"GET /nowhere HTTP/1.1" 404' in others[0]


@pytest.mark.dynamodb_local
def test_500_concurrent_pageviews_appear_exactly_in_stats_and_totals_and_the_delay_is_printed(tmp_path):
    stack = DevStack(tmp_path / "dynamodb")
    stack.start()
    try:
        # Given a pixel with an attached domain
        stack.graphql(PIXELS, {"event": {"action": "create", "pixel_id": 321}}, basic=True)
        add = "mutation D($event: ApiDomainsEventInput!) { domains(event: $event) { code } }"
        stack.graphql(add, {"event": {"pixel_id": 321, "action": "add", "domain": "example.com"}}, basic=True)
        # When 500 pageviews arrive concurrently: identified and anonymous, over three hosts
        hosts = ["example.com", "shop.example.com", "www.example.com"]
        events = [
            {
                "pixelId": 321,
                "domain": hosts[n % 3],
                **({"email": f"visitor{n % 40}@example.org"} if n % 5 < 2 else {}),
            }
            for n in range(500)
        ]
        # The days they were sent on, taken before the first and after the last: no race with midnight
        first_day = datetime.now(UTC).date().isoformat()
        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(
                pool.map(lambda event: stack.graphql(PAGEVIEW, {"event": event}, basic=True), events)
            )
        last_day = datetime.now(UTC).date().isoformat()
        sent_at = time.monotonic()
        assert all(answer["data"]["pageview"]["code"] == 200 for answer in answers)
        # Then stats and totals show exactly them. How long that takes is measured and printed
        # (the issue asks for 10 s; idle runs here take 2-4 s), not asserted: a loaded machine may
        # be slower, and speed is measured, not asserted in tests. The deadline only bounds the wait.
        expected_domains = [
            {"domain": host, "pageviews": sum(1 for e in events if e["domain"] == host)} for host in hosts
        ]
        expected_domains.sort(key=lambda d: (-int(str(d["pageviews"])), str(d["domain"])))
        stats: dict[str, Any] = {}
        while time.monotonic() - sent_at < DEADLINE_SECONDS:
            stats = stack.graphql(
                STATS, {"event": {"pixel_id": 321, "from": first_day, "to": last_day}}, basic=True
            )
            if stats["data"]["stats"]["data"]["totals"]["pageviews"] >= 500:
                print(f"500 pageviews counted {time.monotonic() - sent_at:.1f} s after the last was sent")
                break
            time.sleep(0.25)
        data = stats["data"]["stats"]["data"]
        visitors = len({event["email"] for event in events if "email" in event})
        assert data["totals"] == {"pageviews": 500, "visitors": visitors}
        if first_day == last_day:
            assert data["days"] == [
                {"date": first_day, "pageviews": 500, "visitors": visitors, "domains": expected_domains}
            ]
        else:  # sent across midnight: the two days hold them all between them
            assert {day["date"] for day in data["days"]} <= {first_day, last_day}
            per_host: Counter[str] = Counter()
            for day in data["days"]:
                per_host.update({d["domain"]: d["pageviews"] for d in day["domains"]})
            assert per_host == {d["domain"]: d["pageviews"] for d in expected_domains}
        pixel = stack.graphql(PIXELS, {"event": {"action": "get", "pixel_id": 321}}, basic=True)["data"][
            "pixels"
        ]["data"]
        assert (pixel["events_received"], pixel["events_dropped"]) == (500, 0)
    finally:
        stack.stop()


@pytest.mark.dynamodb_local
def test_capig_sample_requests_sent_unchanged_to_the_dev_stack_answer_the_sample_responses(tmp_path):
    stack = DevStack(tmp_path / "dynamodb")
    stack.start()
    try:
        # When the reference's samples are sent unchanged, with the dev app's Basic auth
        def send(query: str, variables: dict[str, Any]) -> dict[str, Any]:
            return stack.graphql(query, variables, path="/capig/graphql/", basic=True)

        setup = send(SETUP, SETUP_VARIABLES)
        receiving = send(EVENTS_STATUS, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 1}})
        event_filter = send(
            EVENT_FILTER,
            {
                "tenantId": "IaoreXfj",
                "input": {"eventName": "AddToCart", "pixelIds": [PIXEL], "filterState": "PUBLISH"},
            },
        )
        domain_filter = send(
            DOMAIN_FILTER,
            {"tenantId": "IaoreXfj", "input": {"domain": "example.com", "filterState": "DROP"}},
        )
        for n in range(20):
            tracked = stack.graphql(
                TRACK,
                {
                    "event": {
                        "pixelId": PIXEL,
                        "eventName": "AddToCart",
                        "url": f"https://shop.test/{n}",
                    }
                },
                basic=True,
            )
            assert tracked["data"]["track"]["code"] == 200
        publishing = send(CAPI_PUBLISH, {"id": PIXEL, "tenantId": "IaoreXfj", "input": {"status": 0}})
        deadline = time.monotonic() + 15
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            listed = send(TENANT_QUERIES, {"tenantId": "IaoreXfj"})
            status = listed["data"]["tenantQueries"]["account"]["signalConfigs"][0]["connectionStatus"]
            if status["totalEventsReceived"] >= 20:
                break
            time.sleep(0.25)
        deleted = send(DELETE, {"id": PIXEL, "tenantId": "IaoreXfj"})
    finally:
        stack.stop()
    # Then each answers with the sample response's shape and values
    assert "errors" not in setup
    assert (
        setup["data"]["tenantMutations"]["signalMutations"]["setupPixelSignalConfig"]["connectionStatus"][
            "totalEventsReceived"
        ]
        == 0.0
    )
    assert (
        receiving["data"]["tenantMutations"]["signalMutations"]["updateSignalConfigEventsStatus"]["success"]
        is True
    )
    assert event_filter["data"]["tenantMutations"]["updateEventFilter"]["updatedFilter"] == {
        "eventName": "AddToCart",
        "pixelId": PIXEL,
        "filterState": "PUBLISH",
    }
    assert (
        domain_filter["data"]["tenantMutations"]["updateDomainFilter"]["updatedFilter"]["id"]
        == "DomainFilter:example.com:global"
    )
    assert publishing["data"]["tenantMutations"]["signalMutations"]["updateSignalConfigCapiPublish"][
        "connectionStatus"
    ] == {
        "id": f"ConnectionStatus:{PIXEL}",
        "active": False,
        "eventBridgeActive": True,
        "publishingEnabled": False,
    }
    assert status["totalEventsReceived"] == 20.0
    assert time.time() - 120 < status["lastReceived"] <= time.time()
    assert deleted == {"data": {"tenantMutations": {"signalMutations": {"deleteDataSource": True}}}}


@pytest.mark.dynamodb_local
def test_fifty_tracked_events_reach_the_local_meta_once_each_and_the_delay_is_printed(tmp_path):
    stack = DevStack(tmp_path / "dynamodb")
    stack.start()
    received: dict[str, Any] = {}
    try:
        # Given a pixel set up with the reference's sample request
        setup = stack.graphql(SETUP, SETUP_VARIABLES, path="/capig/graphql/", basic=True)
        assert "errors" not in setup
        # When 50 events are tracked, with an e-mail
        ids = set()
        for n in range(50):
            event = {
                "pixelId": PIXEL,
                "eventName": "Purchase",
                "url": f"https://shop.test/{n}",
                "email": "John_Smith@Gmail.com ",
            }
            ids.add(stack.graphql(TRACK, {"event": event}, basic=True)["data"]["track"]["data"]["event_id"])
        sent_at = time.monotonic()
        # Then the local Meta has each of them exactly once, in Meta's format (the delay is printed,
        # as above: the issue asks for 15 s)
        meta_url = f"http://127.0.0.1:{stack.env['META_PORT']}/__received"
        while time.monotonic() - sent_at < DEADLINE_SECONDS:
            with urllib.request.urlopen(meta_url, timeout=5) as answer:
                received = json.loads(answer.read())
            if len(received["events"]) >= 50:
                print(
                    f"50 events at the local Meta {time.monotonic() - sent_at:.1f} s after the last was sent"
                )
                break
            time.sleep(0.25)
        time.sleep(1)  # anything sent twice would arrive now
        with urllib.request.urlopen(meta_url, timeout=5) as answer:
            received = json.loads(answer.read())
        listed = stack.graphql(TENANT_QUERIES, {"tenantId": "IaoreXfj"}, path="/capig/graphql/", basic=True)
    finally:
        stack.stop()
    events = received["events"]
    assert sorted(event["event_id"] for event in events) == sorted(ids)
    assert all(event["user_data"]["em"] == [samples_em()] for event in events)
    assert all(event["action_source"] == "website" and event["event_name"] == "Purchase" for event in events)
    assert all(request["token_present"] and request["pixel_id"] == PIXEL for request in received["requests"])
    status = listed["data"]["tenantQueries"]["account"]["signalConfigs"][0]["connectionStatus"]
    assert status["totalEventsPublished"] == 50.0


def samples_em() -> str:
    return "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"  # Meta's example for john_smith@gmail.com


@pytest.mark.dynamodb_local
def test_ctrl_c_drains_every_accepted_pageview_into_stats_before_the_services_stop(tmp_path):
    data_dir = tmp_path / "dynamodb"
    stack = DevStack(data_dir)
    stack.start()
    try:
        # Given a pixel with an attached domain
        stack.graphql(PIXELS, {"event": {"action": "create", "pixel_id": 654}}, basic=True)
        add = "mutation D($event: ApiDomainsEventInput!) { domains(event: $event) { code } }"
        stack.graphql(add, {"event": {"pixel_id": 654, "action": "add", "domain": "example.com"}}, basic=True)
        # And 100 pageviews accepted (one after the other: this is about the stop, not concurrency)
        event = {"pixelId": 654, "domain": "example.com"}
        first_day = datetime.now(UTC).date().isoformat()  # the days they were sent on: no race with midnight
        answers = [stack.graphql(PAGEVIEW, {"event": event}, basic=True) for _ in range(100)]
        last_day = datetime.now(UTC).date().isoformat()
        assert [answer["data"]["pageview"]["code"] for answer in answers] == [200] * 100
    finally:
        # When Ctrl-C is pressed in the terminal, right after the last 200: SIGINT to the whole group
        output = stack.interrupt()
    # Then the stack says what it does, step by step, without a traceback
    assert "Traceback" not in output, output
    steps = [
        "SIGINT: stopping",
        "Stopped the API.",
        "Draining the queues",
        "Drained the queues",
        "Stopped moto (SQS, KMS).",
        "Stopped DynamoDB Local.",
        "Pixel Gateway stopped.",
    ]
    positions = [output.find(step) for step in steps]
    assert -1 not in positions, output[output.find("SIGINT") :]
    assert positions == sorted(positions), output[output.find("SIGINT") :]
    assert stack.process is not None
    assert stack.process.returncode == 0

    # When it starts again on the same data directory
    stack.start()
    try:
        stats = stack.graphql(
            STATS, {"event": {"pixel_id": 654, "from": first_day, "to": last_day}}, basic=True
        )
        pixel = stack.graphql(PIXELS, {"event": {"action": "get", "pixel_id": 654}}, basic=True)
    finally:
        output = stack.interrupt()
    # Then every accepted pageview was counted before the first stop (nothing is left to count now)
    assert stats["data"]["stats"]["data"]["totals"]["pageviews"] == 100
    assert pixel["data"]["pixels"]["data"]["events_received"] == 100
    assert "Traceback" not in output, output
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", f"processes left running: {leftovers.stdout}"


# The local API Gateway's body limit, served on its own (a stand-in function, no stack).


@contextlib.contextmanager
def echo_api() -> Iterator[tuple[LocalHttpApi, list[int]]]:
    """A local API Gateway with one route, POST /echo, whose function answers the body's length."""
    invoked: list[int] = []

    def echo(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        body = event["body"] or ""
        length = len(base64.b64decode(body)) if event["isBase64Encoded"] else len(body.encode())
        invoked.append(length)
        return {"statusCode": 200, "body": json.dumps({"length": length})}

    api = LocalHttpApi(free_port(), [Route("POST", "/echo", "EchoFunction", echo, 3.0)])
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, invoked
    finally:
        api.stop_serving(timeout=5)
        thread.join(5)


def connection(api: LocalHttpApi) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", api.server_address[1], timeout=30)


def test_a_body_over_10_mb_sent_whole_before_reading_is_answered_413_and_the_connection_closed_cleanly():
    with echo_api() as (api, invoked):
        # Given a client that sends its whole body before it reads the answer (as http.client does)
        client = connection(api)
        # When the body is one byte over API Gateway's 10 MB
        client.request(
            "POST", "/echo", body=b"a" * (MAX_BODY_BYTES + 1), headers={"Content-Type": "text/plain"}
        )
        answer = client.getresponse()
        # Then it reads a 413 (no connection reset while it sent), and the server closes the connection
        assert (answer.status, json.loads(answer.read())) == (413, {"message": "Request Entity Too Large"})
        assert answer.getheader("connection") == "close"
        assert client.sock is None or client.sock.recv(1) == b""
        client.close()
        # And the function was never invoked, while a body of exactly 10 MB still is
        client = connection(api)
        client.request("POST", "/echo", body=b"a" * MAX_BODY_BYTES, headers={"Content-Type": "text/plain"})
        assert json.loads(client.getresponse().read()) == {"length": MAX_BODY_BYTES}
        client.close()
        assert invoked == [MAX_BODY_BYTES]


def test_an_oversized_body_announced_with_expect_100_continue_is_refused_before_it_is_sent():
    with echo_api() as (api, invoked):
        with socket.create_connection(("127.0.0.1", api.server_address[1]), timeout=30) as client:
            # When a client announces 11 MB and waits for 100 Continue before sending them
            client.sendall(
                b"POST /echo HTTP/1.1\r\nHost: local\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 11534336\r\nExpect: 100-continue\r\n\r\n"
            )
            # Then the answer is a final 413 instead, and the connection ends there
            answer = read_until_closed(client)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"100 Continue" not in answer
        assert invoked == []


def test_a_chunked_body_is_read_whole_and_one_over_10_mb_is_refused_413_without_a_reset():
    with echo_api() as (api, invoked):
        # Given a chunked body of 3 chunks, then one of 11 chunks of 1 MB (no Content-Length)
        small = [b"x" * 1000, b"y" * 24, b"z"]
        big = [b"a" * 1024 * 1024 for _ in range(11)]
        client = connection(api)
        client.request(
            "POST", "/echo", body=iter(small), headers={"Content-Type": "text/plain"}, encode_chunked=True
        )
        # Then the function gets the small one whole
        assert json.loads(client.getresponse().read()) == {"length": 1025}
        # And the big one, sent on the same kept-alive connection, is refused once past the limit
        client.request(
            "POST", "/echo", body=iter(big), headers={"Content-Type": "text/plain"}, encode_chunked=True
        )
        answer = client.getresponse()
        assert (answer.status, answer.getheader("connection")) == (413, "close")
        answer.read()
        client.close()
        assert invoked == [1025]


def test_malformed_lengths_are_bad_requests_and_a_stopping_gateway_refuses_requests_on_open_connections():
    with echo_api() as (api, invoked):
        for framing in (
            b"Content-Length: -5\r\n",
            b"Content-Length: 5\r\nContent-Length: 6\r\n",
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            b"Transfer-Encoding: gzip\r\n",
        ):
            with socket.create_connection(("127.0.0.1", api.server_address[1]), timeout=30) as raw:
                raw.sendall(b"POST /echo HTTP/1.1\r\nHost: local\r\n" + framing + b"\r\nhello")
                assert read_until_closed(raw).startswith(b"HTTP/1.1 400 "), framing
        # Given a kept-alive connection that was already served
        client = connection(api)
        client.request("POST", "/echo", body=b"hi", headers={"Content-Type": "text/plain"})
        assert client.getresponse().read() == b'{"length": 2}'
        # When the gateway stops, a request on that connection is refused with a 503 (and it closes)
        assert api.stop_serving(timeout=5) == 0
        client.request("POST", "/echo", body=b"late", headers={"Content-Type": "text/plain"})
        answer = client.getresponse()
        assert (answer.status, answer.getheader("connection")) == (503, "close")
        answer.read()
        client.close()
        assert invoked == [2]


def read_until_closed(client: socket.socket) -> bytes:
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received
