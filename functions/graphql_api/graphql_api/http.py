"""The little HTTP the ASGI routes share: reading a header, answering JSON."""

import json
from typing import Any

from starlette.types import Scope, Send

Header = tuple[bytes, bytes]


def header(scope: Scope, name: bytes) -> str | None:
    """The request header `name` (lowercase bytes), or None when it was not sent."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def send_json(send: Send, status: int, body: dict[str, Any], headers: tuple[Header, ...] = ()) -> None:
    payload = json.dumps(body).encode()
    sent = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": sent})
    await send({"type": "http.response.body", "body": payload})
