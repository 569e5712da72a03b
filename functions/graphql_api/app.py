"""Lambda entry point of the GraphQL API: wires observability and hands the event to Mangum."""

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from mangum import Mangum

from graphql_api.server import asgi_app
from pixel_core.observability import logger

mangum = Mangum(asgi_app, lifespan="off")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return mangum(event, context)  # type: ignore[arg-type]  # Powertools' and Mangum's context types differ only on paper
