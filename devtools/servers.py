"""What the local stand-ins (DynamoDB Local, moto, the fake Meta) share: start() and stop() as a
with-statement, and stopping a child process."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self


class LocalServer:
    """`with Server(...) as server:` starts it and always stops it; stop() is safe to call twice."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Terminates a child process, killing it if it has not exited within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
