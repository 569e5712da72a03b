"""Lambda entry point of the GraphQL API: wires observability and hands the event to Mangum."""

import gc

# No garbage collection during init, and init's objects kept out of every later one: init makes
# some 55,000 objects that live as long as the container and about 450 that are garbage, yet the
# collector's passes over them were about 7 % of init (docs/operations.md, "Cold start").
gc.disable()

import logging
import time
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from graphql_api import warmup
from graphql_api.server import asgi_app
from pixel_core.observability import logger, metrics

mangum = Mangum(asgi_app, lifespan="off")
# SnapStart only: prime before the snapshot, renew after each restore (graphql_api/warmup.py).
warmup.register_snapshot_hooks()
# The handler writes the request's access line below; Mangum's own ("POST /graphql 200") would repeat it.
logging.getLogger("mangum.http").setLevel(logging.WARNING)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    response: dict[str, Any] = mangum(event, context)  # type: ignore[arg-type]  # the context types differ only on paper
    # One access line per request: path, status and duration; never the body (it may carry secrets).
    logger.info(
        "Request handled",
        extra={
            "path": event.get("rawPath"),
            "status": response.get("statusCode"),
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return response


# Init is done: what it made is frozen out of the collector's passes (else the first collection of
# a request would traverse all of it), and the collector runs for requests as usual.
gc.freeze()
gc.enable()
