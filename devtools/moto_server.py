"""moto's server, the local SQS and KMS: in a thread of this process, or as a child process."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import IO, Self

from moto.server import ThreadedMotoServer

from devtools.servers import LocalServer, start_in_background, stop_process


class MotoServer(LocalServer):
    """moto on 127.0.0.1. ``port=0`` lets the OS pick a free port (read it from ``endpoint_url``).

    All moto servers and ``mock_aws`` blocks of one process share moto's in-memory backends.
    """

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self._server: ThreadedMotoServer | None = None
        self._port: int | None = None

    @property
    def endpoint_url(self) -> str:
        if self._port is None:
            raise RuntimeError("MotoServer is not running; call start() first")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"MotoServer is already running on {self.endpoint_url}")
        if self._requested_port:
            # ThreadedMotoServer.start() waits forever if its thread cannot bind, so fail early instead.
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself does
                try:
                    probe.bind(("127.0.0.1", self._requested_port))
                except OSError as error:
                    raise RuntimeError(
                        f"port {self._requested_port} is not free for moto: {error}"
                    ) from error
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self._requested_port, verbose=False)
        server.start()
        self._server = server
        self._port = server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        """Shut the server down and join its thread; safe to call twice."""
        server, self._server, self._port = self._server, None, None
        if server is not None:
            server.stop()


class MotoServerProcess(LocalServer):
    """moto's server as a child process: its work stays off this process's GIL (`make dev` runs
    the API and the functions in this process, and moto's request handling would compete with them)."""

    def __init__(self, port: int, *, startup_timeout: float = 30.0, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host  # what it listens on; endpoint_url stays loopback (0.0.0.0 includes it)
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        command = [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]
        # moto logs every request: its log is read only to explain a failed start.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  # closed by stop()
        self._process = start_in_background(command, self._log)
        try:
            self._wait_until_ready(self._process)
        except BaseException:  # a Ctrl-C while it starts too: a with-block does not stop what failed to start
            self.stop()
            raise
        return self

    def _wait_until_ready(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"moto's server exited at start (port {self.port} taken?): {self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):  # noqa: S310  # loopback
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(
            f"moto's server did not answer on {self.endpoint_url} within {self._startup_timeout} s"
        )

    def _log_tail(self, characters: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-characters:]

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        stop_process(process, timeout)
        log, self._log = self._log, None
        if log is not None:
            log.close()
