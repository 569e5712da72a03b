"""The GraphQL API built from given settings and called as Lambda calls it: Mangum, with API Gateway
HTTP API events; for tests that compare configurations within one process."""

import base64
from typing import Any

from mangum import Mangum

from graphql_api.server import create_asgi_app
from pixel_core import auth
from pixel_core.config import Settings
from tests.support.api_events import http_api_event, response_body
from tests.support.documents import graphql_body


class LambdaApp:
    """One app, with its own settings."""

    def __init__(self, app_settings: Settings, lambda_context: Any) -> None:
        self.handler = Mangum(create_asgi_app(app_settings), lifespan="off")
        self.lambda_context = lambda_context

    def post(
        self, query: str, variables: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """Posts GraphQL; returns the status and the decoded body."""
        response = self.handler(
            http_api_event(graphql_body(query, variables), headers=headers), self.lambda_context
        )
        return response["statusCode"], response_body(response)

    def get(self, path: str) -> dict[str, Any]:
        response: dict[str, Any] = self.handler(
            http_api_event(None, method="GET", path=path), self.lambda_context
        )
        return response


def sample_tenant_app() -> tuple[auth.NewCredentials, dict[str, str]]:
    """The CAPIG samples' tenant and an app bound to it (in the table the models are bound to), with
    its Basic auth header."""
    auth.create_tenant("IaoreXfj")
    created = auth.create_app({"IaoreXfj"})
    token = base64.b64encode(f"{created.app_id}:{created.app_secret}".encode()).decode()
    return created, {"authorization": f"Basic {token}"}
