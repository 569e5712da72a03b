"""moto's server in a thread of this process: the local SQS and KMS."""

from __future__ import annotations

import socket
from types import TracebackType
from typing import Self

from moto.server import ThreadedMotoServer


class MotoServer:
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
