"""What browsers reach: the snippet (`GET /px.js`) and its collection (`POST /px/{pixelId}`).

Both are meant for any web page, so both answer with `Access-Control-Allow-Origin: *`; neither
reads a credential. Collection takes `text/plain` JSON (what `navigator.sendBeacon` sends without
a preflight) and answers 204 whether or not the pixel exists or took the events; only a malformed
body gets a 400, which says what is wrong and nothing about the pixel.
"""

import functools
import hashlib
from pathlib import Path

from starlette.types import Receive, Scope, Send

from graphql_api import limits
from graphql_api.http import Header, header, send_json
from pixel_core.browser_events import (
    MAX_BROWSER_BODY_BYTES,
    BrowserRequest,
    InvalidBrowserRequest,
    collect,
)
from pixel_core.intake import Client
from pixel_core.observability import logger

SNIPPET_FILE = Path(__file__).parent / "px.js"  # a link to web/px.js, resolved by the build
# A day fresh, then a week served stale while it revalidates with the ETag: a new snippet
# reaches every page within a day without a version in its URL (the one tag never changes).
SNIPPET_CACHE_CONTROL = b"public, max-age=86400, stale-while-revalidate=604800"
_ANY_ORIGIN: Header = (b"access-control-allow-origin", b"*")


@functools.cache
def snippet() -> tuple[bytes, bytes]:
    """The snippet's bytes and their ETag, read once per container (on its first request)."""
    body = SNIPPET_FILE.read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'.encode()


async def serve_snippet(scope: Scope, send: Send) -> None:
    body, etag = snippet()
    headers = [
        (b"content-type", b"text/javascript; charset=utf-8"),
        (b"cache-control", SNIPPET_CACHE_CONTROL),
        (b"etag", etag),
        _ANY_ORIGIN,
    ]
    if etag.decode() in (header(scope, b"if-none-match") or "").replace(" ", "").split(","):
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD" else b""})


async def handle_collection(scope: Scope, receive: Receive, send: Send, pixel_id: int) -> None:
    body = await limits.read_body(scope, receive, MAX_BROWSER_BODY_BYTES)
    if body is None:
        await _error(send, 413, f"The body is larger than the maximum of {MAX_BROWSER_BODY_BYTES} bytes.")
        return
    client = scope.get("client")
    request = BrowserRequest(
        pixel_id=pixel_id,
        body=body,
        origin=header(scope, b"origin"),
        referer=header(scope, b"referer"),
        client=Client(ip=client[0] if client else None, user_agent=header(scope, b"user-agent")),
    )
    try:
        outcome = collect(request)
    except InvalidBrowserRequest as error:
        await _error(send, 400, str(error))
        return
    except Exception:
        # Not a 204: events the gateway could not queue were not taken (a fetch() caller may retry).
        logger.exception("Browser events failed", extra={"pixel_id": pixel_id})
        await _error(send, 503, "The events could not be taken; retry later.")
        return
    logger.info("Browser events", extra={"pixel_id": pixel_id, "outcome": outcome})
    await send({"type": "http.response.start", "status": 204, "headers": [_ANY_ORIGIN]})
    await send({"type": "http.response.body", "body": b""})


async def _error(send: Send, status: int, message: str) -> None:
    await send_json(send, status, {"error": {"message": message, "code": status}}, (_ANY_ORIGIN,))
