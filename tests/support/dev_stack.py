"""`make dev`'s stack as a subprocess on free ports, for the tests that drive it over HTTP."""

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

from devtools.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_AUTH = {"appId": "e2e-app", "appSecret": "e2e-secret"}


class DevStack:
    """`make dev`'s stack (python -m devtools.dev) on free ports, on its own data, with its own dev app."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        # The test suite's own settings (fake endpoints, table names) are not make dev's.
        inherited = {
            k: v for k, v in os.environ.items() if k not in {"GRAPH_API_BASE_URL", "TABLE_NAME", "STAGE"}
        }
        self.env = {
            **inherited,
            "PORT": str(self.port),
            "DYNAMODB_LOCAL_PORT": str(free_port()),
            "MOTO_PORT": str(free_port()),
            "META_PORT": str(free_port()),
            "DEV_DATA_DIR": str(data_dir),
            "DEV_APP_ID": DEV_AUTH["appId"],
            "DEV_APP_SECRET": DEV_AUTH["appSecret"],
        }
        # As the Makefile exports it, for a run of pytest outside make.
        layers = [REPO_ROOT / "layers" / "core", REPO_ROOT / "functions" / "graphql_api", REPO_ROOT]
        self.env.setdefault("PYTHONPATH", os.pathsep.join(str(path) for path in layers))
        self.process: subprocess.Popen[str] | None = None
        # A file, not a pipe: an unread pipe fills up and blocks the server's logging.
        self.log_path = data_dir.parent / "dev-stack.log"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devtools.dev"],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.log_path.open("a"),
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group, as a terminal gives `make dev`: interrupt() signals the whole
            # group (the stack and its child servers) without signalling this test.
            start_new_session=True,
        )
        self.wait_until_healthy("make dev's stack")

    def wait_until_healthy(self, name: str) -> None:
        """Until GET /health answers 200 (90 s at most); fails with the log if the process ends first."""
        assert self.process is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise AssertionError(f"{name} did not become healthy within 90 s:\n{self.log_path.read_text()}")

    def stop(self) -> str:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=90)
        return self.log_path.read_text()

    def interrupt(self) -> str:
        """Ctrl-C in the terminal: SIGINT to every process of the stack's group at once."""
        assert self.process is not None
        os.killpg(os.getpgid(self.process.pid), signal.SIGINT)
        self.process.wait(timeout=90)
        return self.log_path.read_text()

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
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200
            return json.loads(answer.read())
