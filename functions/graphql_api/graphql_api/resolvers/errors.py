"""How GraphQL errors leave the API: always with `extensions.code`, never with internals.

Request-level errors (syntax, validation, variable types) are 400; errors the resolvers raise on
purpose carry their own code; anything else is a 500 with a generic message, logged in full.
"""

from typing import Any

from graphql import GraphQLError

from pixel_core.observability import logger

GENERIC_MESSAGE = "Internal server error"


def format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    if "code" not in extensions:
        unexpected = error.path is not None and not isinstance(error.original_error, GraphQLError | None)
        if unexpected:
            logger.error("Unexpected error", exc_info=error.original_error, extra={"path": error.path})
            formatted["message"] = GENERIC_MESSAGE
        extensions["code"] = 500 if unexpected else 400
    formatted["extensions"] = extensions
    return formatted
