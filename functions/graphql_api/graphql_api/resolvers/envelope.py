"""The HeroPixel `{code, data, message}` envelope and request authentication.

Domain errors become in-band answers with HTTP 200 and `data: {}`, as the HeroPixel documents
show; anything unexpected is logged and answered 500 without internals.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from graphql import GraphQLResolveInfo

from pixel_core.auth import Principal, authenticate, basic_credentials
from pixel_core.errors import GatewayError, Unauthorized
from pixel_core.observability import count, logger

type Envelope = dict[str, Any]


class Answer(NamedTuple):
    """What a HeroPixel operation succeeded with: the envelope's data and message (its code is 200)."""

    data: dict[str, Any]
    message: str = "Success"


# (caller, the `event` argument, the request context)
type Operation = Callable[[Principal, dict[str, Any], dict[str, Any]], Answer]


def principal_of(info: GraphQLResolveInfo[Any], auth: dict[str, str] | None) -> Principal:
    """The `auth` argument when it names an app, else HTTP Basic auth."""
    if auth and auth.get("app_id"):
        return authenticate(auth.get("app_id"), auth.get("app_secret"))
    credentials = basic_credentials(info.context.get("authorization"))
    if credentials is None:
        raise Unauthorized()
    return authenticate(*credentials)


def envelope_resolver(operation: Operation) -> Callable[..., Envelope]:
    @functools.wraps(operation)
    def resolve(
        _root: Any, info: GraphQLResolveInfo[Any], event: dict[str, Any], auth: dict[str, str] | None = None
    ) -> Envelope:
        try:
            answer = operation(principal_of(info, auth), event, info.context)
        except GatewayError as error:
            if error.code >= 500:
                count(f"{info.field_name}Errors")
            return {"code": error.code, "data": {}, "message": error.message}
        except Exception:
            logger.exception("Unexpected error", extra={"operation": info.field_name})
            count(f"{info.field_name}Errors")
            return {"code": 500, "data": {}, "message": "Internal server error"}
        return {"code": 200, "data": answer.data, "message": answer.message}

    return resolve
