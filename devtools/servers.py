"""What the local stand-ins (DynamoDB Local, moto, the fake Meta) share: start() and stop() as a
with-statement, and starting and stopping a child process."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Callable
from types import TracebackType
from typing import IO, Self

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


def terminated_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when its parent dies, None elsewhere.

    Children started in a process group of their own (``process_group=0``, so that a terminal's
    Ctrl-C does not reach them before the parent has drained the queues) no longer die with the
    terminal's group: this keeps them from outliving a parent that was killed outright (SIGKILL).
    """
    if sys.platform != "linux":
        return None
    # Resolved here, in the parent: the child only calls it between fork and exec.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return set_death_signal


def start_in_background(command: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """Starts a local server's process with its output (stdout and stderr) in ``log``.

    A file, not a pipe: nobody reads a server's output while it runs, and a full pipe blocks it.
    Its own process group: Ctrl-C in a terminal signals only the foreground group, so the server
    (and the data or queued events it holds) outlives the API until `make dev` has drained the
    queues; ``terminated_with_parent`` still ends it with a parent that was killed outright.
    """
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,
        preexec_fn=terminated_with_parent(),  # noqa: PLW1509  # one prctl() call, pre-resolved
    )
