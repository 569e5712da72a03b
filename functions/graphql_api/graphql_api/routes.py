"""The paths of the routes besides GraphQL, apart from the modules that handle them.

server.py matches every request's path here, and imports a route's handler module on that route's
first request: a container whose first request is GraphQL (a pageview) does not load the checks of
Meta's server events and of browser collection at init (a few milliseconds of every cold start;
docs/operations.md, "Cold start and SnapStart").
"""

import re

# The modules server.py imports on their route's first request; SnapStart's before-snapshot hook
# (graphql_api/warmup.py) imports them all.
HANDLER_MODULES = ("graphql_api.browser", "graphql_api.server_events")
SNIPPET_PATH = "/px.js"
_COLLECTION_PATH = re.compile(r"/px/(\d{1,20})/?")
# The gateway's own path, and the Graph API's (an SDK changes only its base URL).
_SERVER_EVENTS_PATHS = (
    re.compile(r"/capi/(\d{1,20})/events/?"),
    re.compile(r"/v\d{1,3}\.\d{1,2}/(\d{1,20})/events/?"),
)


def collection_pixel(path: str) -> int | None:
    """The pixel id of a browser collection path (`/px/{pixelId}`), or None for any other path."""
    found = _COLLECTION_PATH.fullmatch(path)
    return int(found.group(1)) if found else None


def server_events_pixel(path: str) -> int | None:
    """The pixel id of a server-events path, or None for any other path."""
    for pattern in _SERVER_EVENTS_PATHS:
        found = pattern.fullmatch(path)
        if found:
            return int(found.group(1))
    return None
