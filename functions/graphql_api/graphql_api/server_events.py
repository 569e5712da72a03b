"""The HTTP face of server events (pixel_core.server_events), at the two paths Meta's senders know.

- `POST /capi/{pixelId}/events`: the Conversions API Gateway's own, the key as `accessKey` in the
  body or as `Authorization: Bearer <key>`.
- `POST /{apiVersion}/{pixelId}/events`: the Graph API's, the key as `access_token` (in the body or
  the query string, where Meta's SDKs put it), so an SDK needs only its base URL changed.

Bodies as the Graph API takes them: JSON, or form-encoded (what the SDKs send, `data` then a string
holding the JSON array). Answers and errors in Meta's shape. The key is never logged: the access
line names the path only, never the query string or the body.
"""

import json
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from graphql_api import limits
from graphql_api.http import header, send_json
from pixel_core.observability import logger
from pixel_core.server_events import MetaApiError, ServerRequest, accept, invalid_parameter, trace_id

_BEARER = re.compile(r"Bearer\s+(\S+)", re.IGNORECASE)
# Meta's answer when something failed on its side: code 2, transient, to be retried.
_UNEXPECTED = MetaApiError(
    500, 2, "An unexpected error has occurred. Please retry your request later.", transient=True
)


async def handle(scope: Scope, receive: Receive, send: Send, pixel_id: int, max_body_bytes: int) -> None:
    trace = trace_id()
    body = await limits.read_body(scope, receive, max_body_bytes)
    try:
        if body is None:
            raise MetaApiError(
                413, 100, f"Request body is larger than the maximum of {max_body_bytes} bytes."
            )
        request = _request(scope, body, pixel_id)
        received = accept(request)
    except MetaApiError as error:
        await send_json(send, error.status, error.body(trace))
        return
    except Exception:
        logger.exception("Server events failed", extra={"pixel_id": pixel_id, "fbtrace_id": trace})
        await send_json(send, _UNEXPECTED.status, _UNEXPECTED.body(trace))
        return
    await send_json(send, 200, {"events_received": received, "messages": [], "fbtrace_id": trace})


def _request(scope: Scope, body: bytes, pixel_id: int) -> ServerRequest:
    query = _single_values(parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    params = {**query, **_body_params(body, content_type)}
    bearer = _BEARER.fullmatch((header(scope, b"authorization") or "").strip())
    key = params.get("accessKey") or params.get("access_token") or (bearer.group(1) if bearer else None)
    return ServerRequest(
        pixel_id=pixel_id,
        access_key=key if isinstance(key, str) else None,
        data=params.get("data"),
        test_event_code=params.get("test_event_code"),
    )


def _body_params(body: bytes, content_type: str) -> dict[str, Any]:
    if not body.strip():
        return {}
    if content_type == "application/x-www-form-urlencoded":
        try:
            return _single_values(parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
        except (UnicodeDecodeError, ValueError):
            raise invalid_parameter("The request body is not valid form data.") from None
    try:
        params = json.loads(body, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid_parameter("The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise invalid_parameter("The request body must be a JSON object.")
    return params


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity would reach Meta, which refuses them


def _single_values(parsed: dict[str, list[str]]) -> dict[str, str]:
    return {name: values[-1] for name, values in parsed.items()}
