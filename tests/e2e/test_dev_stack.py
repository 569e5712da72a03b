"""`make dev`'s stack, run as a user runs it: a real process, real HTTP, stopped with SIGTERM and
started again on the same data."""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devtools.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED_DOMAINS = (
    "mutation Domains($auth: AuthRequestInput!, $event: ApiDomainsEventInput!) "
    "{ domains(auth: $auth, event: $event) { code data message } }"
)
PIXELS = "mutation P($event: ApiPixelsEventInput!) { pixels(event: $event) { code data message } }"
DEV_AUTH = {"appId": "e2e-app", "appSecret": "e2e-secret"}


class DevStack:
    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "DYNAMODB_LOCAL_PORT": str(free_port()),
            "MOTO_PORT": str(free_port()),
            "DEV_DATA_DIR": str(data_dir),
            "DEV_APP_ID": DEV_AUTH["appId"],
            "DEV_APP_SECRET": DEV_AUTH["appSecret"],
        }
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.dev"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stdout.read() if self.process.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise AssertionError("make dev's stack did not become healthy within 90 s")

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=30)
        return output

    def graphql(
        self, query: str, variables: dict[str, Any], *, path: str = "/graphql", basic: bool = False
    ) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        if basic:
            token = base64.b64encode(f"{DEV_AUTH['appId']}:{DEV_AUTH['appSecret']}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
            return json.loads(answer.read())


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
            SEED_DOMAINS,
            {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "add", "domain": "example.com"}},
        )
        stack.graphql(
            SEED_DOMAINS,
            {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "add", "domain": "another-example.com"}},
        )
        duplicate = stack.graphql(
            SEED_DOMAINS,
            {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "add", "domain": "example.com"}},
            path="/capig/graphql/",
        )
        remove = stack.graphql(
            SEED_DOMAINS,
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
        listed = stack.graphql(SEED_DOMAINS, {"auth": DEV_AUTH, "event": {"pixel_id": 123, "action": "list"}})
    finally:
        stack.stop()
    # Then the domains are still there
    assert [entry["domain"] for entry in listed["data"]["domains"]["data"]["domains"]] == ["example.com"]
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", f"processes left running: {leftovers.stdout}"
