"""Configuration, read once from the environment at cold start.

Every other module imports `settings` from here instead of reading os.environ itself.
"""

import os
from collections.abc import Mapping
from typing import NamedTuple

PRODUCTION_STAGE = "prod"


class Settings(NamedTuple):
    stage: str
    region: str
    table_name: str
    # Set only locally (DynamoDB Local, moto server); in AWS the SDK's default endpoints apply.
    dynamodb_endpoint_url: str | None
    events_queue_url: str
    publish_queue_url: str
    # Requests to clean up a deleted pixel's partition (pixel_core/cleanup.py).
    cleanup_queue_url: str
    # Meta's Graph API; tests and `make dev` point it at a local fake.
    graph_api_base_url: str
    graph_api_version: str
    # How long a container trusts what it read of an app credential or a pixel. A revoked secret,
    # a deleted pixel or a changed domain list takes effect within this many seconds everywhere.
    auth_cache_seconds: float
    pixel_cache_seconds: float
    # KMS key (id, ARN or alias) that encrypts the access tokens of Meta pixel connections.
    token_key_id: str
    # Limits on one GraphQL request, all checked before any resolver runs (graphql_api/limits.py).
    # The defaults leave every documented request far below them (the deepest field is 5 levels,
    # the largest sample costs 38, a 100-pixel filter update 307) while bounding the work and the
    # DynamoDB calls one request can cause.
    max_query_depth: int = 10
    max_query_cost: int = 500
    max_aliases: int = 20
    max_query_tokens: int = 2000
    max_body_bytes: int = 64 * 1024
    # A server-events request may carry Meta's 1,000 events (of up to ~4 KB each with every key):
    # the same 413 before parsing, at a size made for them, below Lambda's 6 MB payload limit.
    max_server_events_body_bytes: int = 4 * 1024 * 1024
    # Browser collection (pixel_core.browser_events): a pixel's browser events a minute, over which
    # they are dropped as rate limited (0: no limit).
    browser_events_per_pixel_per_minute: int = 6_000
    # Origins whose web pages may call GraphQL itself ("*": any); none by default, since every
    # GraphQL credential is an admin one (docs/api.md, "Browsers").
    browser_graphql_origins: frozenset[str] = frozenset()

    @property
    def is_production(self) -> bool:
        return self.stage == PRODUCTION_STAGE


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    return Settings(
        stage=environ.get("STAGE", "dev"),
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        table_name=environ.get("TABLE_NAME", "pixel-gateway"),
        dynamodb_endpoint_url=environ.get("DYNAMODB_ENDPOINT_URL") or None,
        events_queue_url=environ.get("EVENTS_QUEUE_URL", ""),
        publish_queue_url=environ.get("PUBLISH_QUEUE_URL", ""),
        cleanup_queue_url=environ.get("CLEANUP_QUEUE_URL", ""),
        graph_api_base_url=environ.get("GRAPH_API_BASE_URL", "https://graph.facebook.com").rstrip("/"),
        graph_api_version=environ.get("GRAPH_API_VERSION", "v21.0"),
        auth_cache_seconds=float(environ.get("AUTH_CACHE_SECONDS", "60")),
        pixel_cache_seconds=float(environ.get("PIXEL_CACHE_SECONDS", "10")),
        token_key_id=environ.get("TOKEN_KMS_KEY_ID", ""),
        max_query_depth=int(environ.get("MAX_QUERY_DEPTH", "10")),
        max_query_cost=int(environ.get("MAX_QUERY_COST", "500")),
        max_aliases=int(environ.get("MAX_ALIASES", "20")),
        max_query_tokens=int(environ.get("MAX_QUERY_TOKENS", "2000")),
        max_body_bytes=int(environ.get("MAX_BODY_BYTES", str(64 * 1024))),
        max_server_events_body_bytes=int(environ.get("MAX_SERVER_EVENTS_BODY_BYTES", str(4 * 1024 * 1024))),
        browser_events_per_pixel_per_minute=int(environ.get("BROWSER_EVENTS_PER_PIXEL_PER_MINUTE", "6000")),
        browser_graphql_origins=frozenset(
            origin.strip().rstrip("/").lower()
            for origin in environ.get("BROWSER_GRAPHQL_ORIGINS", "").split(",")
            if origin.strip()
        ),
    )


settings = load_settings()
