"""A local stand-in for Meta's Conversions API endpoint (``POST /{version}/{pixel_id}/events``).

A real HTTP server on 127.0.0.1 (a ``ThreadingHTTPServer`` in a background thread), so clients are
tested with their real HTTP stack: timeouts, status codes and Graph API error bodies included.

    with FakeMeta() as meta:
        meta.script(Answer.unavailable())       # the first request gets a 503, later ones a 200
        send_events(f"{meta.base_url}/v21.0/1234/events", token)
        assert meta.events() == [...]

Answers can also be slow (``delay_seconds``, to provoke client timeouts), hang up without answering
(``Answer.hang_up()``, a connection error), refuse only some events (``Answer.refusing(event_id)``:
a code-100 answer naming the first such event as ``data[N]``, a 200 for requests without one), and
run something while the client waits (``while_in_flight``: a token replaced, a second publisher).

The fake checks routing, the access token's presence and the payload's shape first (as Meta does);
only requests that pass get a scripted or default answer, so a malformed request never uses up a
scripted answer. ``GET /__received`` shows what arrived, for ``make dev`` users with ``curl``; it,
``repr`` and the server's logs never show access tokens.

``python -m devtools.fake_meta --port 8090`` runs it on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from devtools.servers import LocalServer

MAX_EVENTS_PER_REQUEST = 1000  # Meta's limit for one /events request
RECEIVED_PATH = "/__received"
_EVENTS_PATH = re.compile(r"/(?P<version>v\d+\.\d+)/(?P<pixel_id>\d+)/events")
_MAX_BODY_BYTES = 32 * 1024 * 1024  # far above any real batch; stops a runaway client filling memory


@dataclass(frozen=True)
class Answer:
    """What the fake answers one request with. ``body=None`` means Meta's usual body for ``status``."""

    status: int = 200
    body: dict[str, Any] | None = None
    delay_seconds: float = 0.0  # sleep before answering (to provoke client timeouts)
    # Close the connection without answering: the client sees a connection error.
    hangs_up: bool = False
    # Requests holding one of these events are refused (Meta's code 100); others get this answer.
    refused_event_ids: frozenset[str] = frozenset()
    names_refused_event: bool = True  # the refusal names the event as data[N], as Meta can
    # Called in the server's thread once the request arrived, before answering (and any delay).
    while_in_flight: Callable[[], object] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {self.status}")
        if self.delay_seconds < 0:
            raise ValueError(f"delay_seconds must not be negative, not {self.delay_seconds}")
        if self.body is not None:
            json.dumps(self.body)  # fail here, not later in the server thread where nobody sees it

    @staticmethod
    def invalid_token() -> Answer:
        return Answer(
            400,
            _graph_error(
                "Error validating access token: Session has expired on Monday, 01-Jan-24 00:00:00 PST. "
                "The current time is Tuesday, 02-Jan-24 00:00:00 PST.",
                code=190,
                error_subcode=463,
            ),
        )

    @staticmethod
    def unavailable() -> Answer:
        return Answer(503, _graph_error("Service temporarily unavailable", code=2, is_transient=True))

    @staticmethod
    def rate_limited() -> Answer:
        return Answer(429, _graph_error("Application request limit reached", code=4, is_transient=True))

    @staticmethod
    def invalid_parameter(message: str = "Invalid parameter") -> Answer:
        return Answer(400, _graph_error(message, code=100))

    @staticmethod
    def hang_up() -> Answer:
        return Answer(hangs_up=True)

    @staticmethod
    def refusing(*event_ids: str, names_event: bool = True) -> Answer:
        """Refuses requests holding any of `event_ids` with Meta's code-100 answer; accepts the others."""
        return Answer(refused_event_ids=frozenset(event_ids), names_refused_event=names_event)

    def for_request(self, body: dict[str, Any]) -> Answer:
        """The answer to this request: a refusal if it holds a refused event, else this answer."""
        if not self.refused_event_ids:
            return self
        data = body.get("data", [])
        index = next(
            (n for n, event in enumerate(data) if event.get("event_id") in self.refused_event_ids), None
        )
        if index is None:
            return replace(self, refused_event_ids=frozenset())
        where = f"data[{index}]: " if self.names_refused_event else ""
        return replace(
            self,
            status=400,
            body=_graph_error(
                "Invalid parameter",
                code=100,
                error_subcode=2804019,
                is_transient=False,
                error_user_title="Invalid parameter",
                error_user_msg=f"{where}The event is invalid.",
            ),
            refused_event_ids=frozenset(),
        )


@dataclass(frozen=True)
class ReceivedRequest:
    """One POST the fake received. ``body`` never holds the access token (it is moved to ``access_token``)."""

    pixel_id: str  # "" when the path is not an events path
    api_version: str
    access_token: str = field(repr=False)  # kept out of repr: pytest prints reprs of failing asserts
    body: dict[str, Any]
    received_at: float  # time.time() when the request arrived
    status: int  # what the fake answered, 0 for none (with a delay the client may have given up before it)
    path: str = ""  # without the query string, which may carry the token

    def public(self) -> dict[str, Any]:
        """A JSON-ready view without the token: whether one came, and a short fingerprint to tell tokens apart."""
        return {
            "pixel_id": self.pixel_id,
            "api_version": self.api_version,
            "path": self.path,
            "token_present": bool(self.access_token),
            "token_sha256_prefix": token_fingerprint(self.access_token) if self.access_token else None,
            "status": self.status,
            "received_at": self.received_at,
            "body": self.body,
        }


def token_fingerprint(token: str) -> str:
    """8 hex digits of the token's SHA-256: enough to tell tokens apart, far too little to recover one."""
    return hashlib.sha256(token.encode()).hexdigest()[:8]


class FakeMeta(LocalServer):
    """Meta's Conversions API on ``http://127.0.0.1:<port>``; ``port=0`` lets the OS pick a free port."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._requested_port = port
        self._host = host  # what it listens on; base_url stays loopback (0.0.0.0 includes it)
        self._lock = threading.Lock()
        self._script: deque[Answer] = deque()
        self._default = Answer()
        self._requests: list[ReceivedRequest] = []
        self._in_flight_errors: list[Exception] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Set by stop(): wakes handlers sleeping out a delay, so stop() need not wait for them.
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeMeta is not running; call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"FakeMeta is already running on {self.base_url}")
        try:
            server = _Server((self._host, self._requested_port), _Handler)
        except OSError as error:
            raise RuntimeError(f"port {self._requested_port} is not free for FakeMeta: {error}") from error
        server.fake = self
        self._stopping.clear()
        # A short poll interval keeps stop() quick: shutdown() waits for serve_forever to notice.
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-meta-{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Shut the server down, join its thread and its handlers' threads; safe to call twice."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        self._stopping.set()  # wakes every delayed answer
        server.shutdown()
        server.server_close()
        server.join_handlers()
        if thread is not None:
            thread.join()

    def script(self, *answers: Answer) -> None:
        """Queue answers for the next valid requests, one each in order, before the default applies again."""
        with self._lock:
            self._script.extend(answers)

    def always(self, answer: Answer) -> None:
        """Answer every valid request with ``answer`` once the script has run out (initially a 200)."""
        with self._lock:
            self._default = answer

    def requests(self) -> list[ReceivedRequest]:
        """Every POST received so far, rejected ones included, in arrival order (a copy)."""
        with self._lock:
            return copy.deepcopy(self._requests)

    def events(self) -> list[dict[str, Any]]:
        """Every event of every request answered with a 2xx, in order (a copy)."""
        with self._lock:
            return copy.deepcopy(_accepted_events(self._requests))

    def in_flight_errors(self) -> list[Exception]:
        """What the ``while_in_flight`` callables raised (the server thread has no one to tell)."""
        with self._lock:
            return list(self._in_flight_errors)

    def clear(self) -> None:
        """Forget the received requests (the script and the default answer stay)."""
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Forget the received requests and the script, and answer 200 again: as if freshly started."""
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self._default = Answer()

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _received_view(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": [request.public() for request in self._requests],
                "events": _accepted_events(self._requests),
            }


def _accepted_events(requests: list[ReceivedRequest]) -> list[dict[str, Any]]:
    return [
        event for request in requests if 200 <= request.status < 300 for event in request.body.get("data", [])
    ]


def _graph_error(message: str, *, code: int, **extra: Any) -> dict[str, Any]:
    """A Graph API error body; the server adds a fresh fbtrace_id when it answers."""
    return {"error": {"message": message, "type": "OAuthException", "code": code, **extra}}


def _invalid(user_message: str) -> Answer:
    """Meta's answer to a malformed /events payload: code 100, with the detail in error_user_msg."""
    return Answer(
        400,
        _graph_error("Invalid parameter", code=100, is_transient=False, error_user_msg=user_message),
    )


def _check_payload(body: dict[str, Any]) -> str | None:
    """What Meta would reject in the payload, or None. Only the basics: the fake is not a validator."""
    data = body.get("data")
    if not isinstance(data, list) or not data:
        return "The parameter data must be a non-empty array of events."
    if len(data) > MAX_EVENTS_PER_REQUEST:
        return (
            f"You can send at most {MAX_EVENTS_PER_REQUEST} events in one request; this one has {len(data)}."
        )
    for index, event in enumerate(data):
        if not isinstance(event, dict):
            return f"data[{index}] must be an object."
        if not isinstance(event.get("event_name"), str) or not event["event_name"]:
            return f"data[{index}]: the parameter event_name is required."
        event_time = event.get("event_time")
        # bool is an int in Python, not in JSON.
        if not isinstance(event_time, int) or isinstance(event_time, bool):
            return f"data[{index}]: the parameter event_time is required and must be a Unix timestamp in seconds."
        if not isinstance(event.get("action_source"), str) or not event["action_source"]:
            return f"data[{index}]: the parameter action_source is required."
    return None


class _Server(ThreadingHTTPServer):
    fake: FakeMeta
    daemon_threads = True  # a stuck handler never keeps the interpreter alive
    request_queue_size = 128  # the default 5 drops bursts of parallel connects (1 s SYN retry)

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._handlers: list[threading.Thread] = []
        self._handlers_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        # As ThreadingMixIn's, but keeping the threads: server_close() joins only non-daemon ones,
        # so it would return while a handler woken from its delay is still recording its request.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._handlers_lock:
            self._handlers = [alive for alive in self._handlers if alive.is_alive()]
            self._handlers.append(thread)
        thread.start()

    def join_handlers(self) -> None:
        """Waits for every handler; each is bounded by its socket timeout once delays are woken."""
        with self._handlers_lock:
            handlers, self._handlers = self._handlers, []
        for thread in handlers:
            thread.join(timeout=_Handler.timeout * 2)


class _BadBody(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0 closes each connection after its answer, so no idle keep-alive thread delays stop().
    protocol_version = "HTTP/1.0"
    timeout = 10  # a client that stops sending cannot hold a handler (and stop()) for long
    server_version = "FakeMeta/1.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: the request line carries the query string, where access tokens travel.
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == RECEIVED_PATH:
            self._send(200, self.server.fake._received_view())
        else:
            self._send(404, _unknown_path(path))

    def do_POST(self) -> None:
        fake = self.server.fake
        received_at = time.time()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        route = _EVENTS_PATH.fullmatch(url.path)
        body: dict[str, Any] = {}
        body_error: str | None = None
        try:
            body = self._read_body()
        except _BadBody as error:
            body_error = str(error)
        # The token never stays in the recorded body; the query string wins if both carry one, as on Graph.
        body_token = body.pop("access_token", None)
        token = query.get("access_token", [""])[-1] or (body_token if isinstance(body_token, str) else "")

        answer: Answer
        if route is None:
            answer = Answer(404, _unknown_path(url.path))
        elif not token:
            answer = Answer(
                400, _graph_error("An access token is required to request this resource.", code=104)
            )
        elif body_error is not None:
            answer = _invalid(body_error)
        elif (problem := _check_payload(body)) is not None:
            answer = _invalid(problem)
        else:
            answer = fake._next_answer().for_request(body)

        # Recorded on arrival, before any delay: tests can see the request while the client still waits,
        # and a request whose client timed out still counts as delivered, as it may at Meta.
        fake._record(
            ReceivedRequest(
                pixel_id=route["pixel_id"] if route else "",
                api_version=route["version"] if route else "",
                access_token=token,
                body=body,
                received_at=received_at,
                status=0 if answer.hangs_up else answer.status,
                path=url.path,
            )
        )
        if answer.while_in_flight is not None:
            try:
                answer.while_in_flight()
            except Exception as error:  # kept for the test: nobody sees this thread fail
                with fake._lock:
                    fake._in_flight_errors.append(error)
        if answer.delay_seconds:
            fake._stopping.wait(answer.delay_seconds)
        if answer.hangs_up:
            self.close_connection = True
            return  # nothing written: the client's read fails when the socket closes
        self._send(answer.status, _answer_body(answer, body))

    def _read_body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as error:
            raise _BadBody("The Content-Length header is not a number.") from error
        if not 0 <= length <= _MAX_BODY_BYTES:
            raise _BadBody(f"The body must be at most {_MAX_BODY_BYTES} bytes.")
        raw = self.rfile.read(length)
        text = raw.decode("utf-8", errors="replace")
        body: dict[str, Any]
        if self.headers.get_content_type() == "application/x-www-form-urlencoded":
            body = {name: values[-1] for name, values in parse_qs(text, keep_blank_values=True).items()}
        elif not text.strip():
            body = {}
        else:
            # Anything else is read as JSON, whatever its Content-Type says: the fake is lenient there.
            try:
                parsed: Any = json.loads(text)
            except ValueError as error:
                raise _BadBody(f"The body is not valid JSON: {error}") from error
            if not isinstance(parsed, dict):
                raise _BadBody("The JSON body must be an object.")
            body = parsed
        # Meta accepts `data` as a JSON string (the form-encoded way) in either encoding.
        if isinstance(body.get("data"), str):
            try:
                body["data"] = json.loads(body["data"])
            except ValueError as error:
                raise _BadBody(f"The parameter data is not valid JSON: {error}") from error
        return body

    def _send(self, status: int, body: dict[str, Any]) -> None:
        trace_id = _trace_id()
        body = _with_trace_id(body, trace_id)
        payload = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-fb-trace-id", trace_id)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout fired during a delay); nothing left to tell it


def _answer_body(answer: Answer, request_body: dict[str, Any]) -> dict[str, Any]:
    if answer.body is not None:
        return copy.deepcopy(answer.body)
    if 200 <= answer.status < 300:
        data = request_body.get("data")
        return {"events_received": len(data) if isinstance(data, list) else 0, "messages": []}
    return _graph_error("An unknown error has occurred.", code=1, is_transient=answer.status >= 500)


def _unknown_path(path: str) -> dict[str, Any]:
    return _graph_error(f"Unknown path components: {path}", code=2500)


def _trace_id() -> str:
    return secrets.token_urlsafe(8)


def _with_trace_id(body: dict[str, Any], trace_id: str) -> dict[str, Any]:
    """Meta puts an fbtrace_id in every answer; add one where the body has none."""
    error = body.get("error")
    if isinstance(error, dict):
        if "fbtrace_id" not in error:
            return {**body, "error": {**error, "fbtrace_id": trace_id}}
        return body
    if "fbtrace_id" not in body:
        return {**body, "fbtrace_id": trace_id}
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Meta Conversions API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    port: int = parser.parse_args().port
    with FakeMeta(port) as fake:
        print(f"fake Meta Conversions API on {fake.base_url} (received: {fake.base_url}{RECEIVED_PATH})")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it
            threading.Event().wait()


if __name__ == "__main__":
    main()
