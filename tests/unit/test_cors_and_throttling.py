"""CORS and stage throttling of the HTTP API: what template.yaml declares, how `make dev`'s local
API Gateway (devtools/api_gateway.py) applies the same CORS configuration to browser requests, and
the function's own refusal of GraphQL from web pages no operator allowed."""

import dataclasses
import http.client
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mangum import Mangum

from devtools.api_gateway import LocalHttpApi, Route, condition_value, routes_of, with_cors
from devtools.net import free_port
from devtools.template import load_template
from graphql_api.server import create_asgi_app, from_a_foreign_page
from pixel_core import auth
from pixel_core.clock import utc_now
from pixel_core.config import load_settings
from pixel_core.models import PixelItem
from tests.support.documents import PAGEVIEW

SHOP = "https://shop.example"
WWW_SHOP = "https://www.shop.example"
STRANGER = "https://evil.example"


@pytest.fixture(scope="module")
def http_api() -> dict[str, Any]:
    return load_template()["Resources"]["HttpApi"]


def cors_when_allowed(http_api: dict[str, Any]) -> dict[str, Any]:
    """The CORS configuration the HttpApi has when an operator lets pages call GraphQL."""
    condition, when_allowed, otherwise = http_api["Properties"]["CorsConfiguration"]["Fn::If"]
    assert (condition, otherwise) == ("BrowsersMayCallGraphql", {"Ref": "AWS::NoValue"})
    return dict(when_allowed)


def test_http_api_has_cors_only_when_an_operator_names_origins_that_may_call_graphql(http_api):
    # Given the template as deployed
    template = load_template()
    parameter = template["Parameters"]["BrowserGraphqlOrigins"]
    # When its HttpApi's CORS configuration is read, by default and with origins named
    cors = cors_when_allowed(http_api)
    by_default = condition_value(template, "BrowsersMayCallGraphql", {})
    with_origins = condition_value(template, "BrowsersMayCallGraphql", {"BROWSER_GRAPHQL_ORIGINS": SHOP})
    # Then no page may by default (no CORS at all), and the named origins may when given
    assert (parameter["Type"], parameter["Default"]) == ("CommaDelimitedList", "")
    assert (by_default, with_origins) == (False, True)
    assert cors["AllowOrigins"] == {"Ref": "BrowserGraphqlOrigins"}
    # And the function refuses other pages' GraphQL itself, from the same parameter
    variables = template["Resources"]["GraphQLFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["BROWSER_GRAPHQL_ORIGINS"] == {"Fn::Join": [",", {"Ref": "BrowserGraphqlOrigins"}]}
    # And an allowed page may POST JSON with Basic auth (preflighted), and cache the preflight a while
    assert {"POST", "OPTIONS"} <= set(cors["AllowMethods"])
    assert {"content-type", "authorization"} <= {header.lower() for header in cors["AllowHeaders"]}
    assert 60 <= cors["MaxAge"] <= 86_400
    # And no credentials: "*" origins and credentials cannot be combined (SAM and browsers refuse it)
    assert cors["AllowCredentials"] is False


def test_every_route_of_the_http_api_uses_a_method_the_cors_configuration_allows(http_api):
    # Given the methods CORS allows when it is on
    allowed = set(cors_when_allowed(http_api)["AllowMethods"])
    # When the HttpApi events of every function are listed
    routes = [
        event["Properties"]
        for resource in load_template()["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    ]
    # Then there are routes, all on this API, and a browser may call each of them
    assert routes
    assert all(route["ApiId"] == {"Ref": "HttpApi"} for route in routes)
    assert {route["Method"] for route in routes} <= allowed


def test_default_stage_throttles_every_route_with_burst_and_rate_limits_from_parameters(http_api):
    # Given the template's parameters
    parameters = load_template()["Parameters"]
    # When the HttpApi's default route settings are read
    settings = http_api["Properties"]["DefaultRouteSettings"]
    # Then burst and rate come from Number parameters with sane defaults (burst covers a second's rate)
    assert settings == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
    }
    burst, rate = parameters["ApiThrottlingBurstLimit"], parameters["ApiThrottlingRateLimit"]
    assert burst["Type"] == rate["Type"] == "Number"
    assert (burst["Default"], rate["Default"]) == (500, 200)
    assert burst["MinValue"] == rate["MinValue"] == 0


def test_local_routes_have_no_cors_by_default_and_the_templates_configuration_with_origins_named(
    monkeypatch, moto_table
):
    # Given no BROWSER_GRAPHQL_ORIGINS in the environment, then two origins
    monkeypatch.delenv("BROWSER_GRAPHQL_ORIGINS", raising=False)
    by_default = {route.cors for route in routes_of(load_template())}
    monkeypatch.setenv("BROWSER_GRAPHQL_ORIGINS", f"{SHOP}, {WWW_SHOP}")
    # When the routes are read from the template
    (cors,) = {route.cors for route in routes_of(load_template())}
    # Then no route has CORS by default, and with origins every route has the API's configuration
    assert by_default == {None}
    assert cors is not None
    assert cors.allow_origins == (SHOP, WWW_SHOP)
    assert cors.allow_methods == ("GET", "POST", "OPTIONS")
    assert cors.allow_headers == ("content-type", "authorization")
    assert (cors.max_age, cors.allow_credentials) == (600, False)


@dataclasses.dataclass
class Invocations:
    count: int = 0


@contextmanager
def local_api(routes: list[Route], origins: str = "") -> Iterator[tuple[int, Invocations]]:
    """The local API Gateway on a free port, serving in a background thread; counts invocations.
    Its function's settings let `origins` call GraphQL (as BROWSER_GRAPHQL_ORIGINS would)."""
    invocations = Invocations()
    app_settings = load_settings({**os.environ, "BROWSER_GRAPHQL_ORIGINS": origins})
    function = Mangum(create_asgi_app(app_settings), lifespan="off")

    def counted(route: Route) -> Route:
        def handler(event: Any, context: Any) -> Any:
            invocations.count += 1
            return function(event, context)

        return dataclasses.replace(route, handler=handler)

    api = LocalHttpApi(free_port(), [counted(route) for route in routes])
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        yield api.server_address[1], invocations
    finally:
        api.shutdown()
        api.server_close()
        thread.join(timeout=10)


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def preflight(port: int, origin: str, path: str = "/graphql") -> tuple[int, http.client.HTTPMessage]:
    status, headers, _ = request(
        port,
        "OPTIONS",
        path,
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    return status, headers


@pytest.fixture
def shop_pixel(moto_table):
    """An app of tenant IaoreXfj and its pixel 123."""
    auth.create_tenant("IaoreXfj")
    credentials = auth.create_app({"IaoreXfj"})
    PixelItem.new(123, "IaoreXfj", created_at=utc_now()).save()
    return credentials


def post_pageview(
    port: int, credentials: Any, origin: str | None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    body = json.dumps(
        {
            "query": PAGEVIEW,
            "variables": {
                "auth": {"appId": credentials.app_id, "appSecret": credentials.app_secret},
                "event": {"pixelId": 123, "domain": "shop.example"},
            },
        }
    ).encode()
    headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
    return request(port, "POST", "/graphql", headers, body)


def test_by_default_a_web_page_can_neither_preflight_nor_run_graphql_but_servers_still_can(
    monkeypatch, shop_pixel, queued_messages
):
    # Given the local API Gateway serving the template's routes with its defaults (no origins)
    monkeypatch.delenv("BROWSER_GRAPHQL_ORIGINS", raising=False)
    with local_api(routes_of(load_template())) as (port, _invocations):
        # When a page preflights a JSON POST, then posts the pageview anyway (as a text/plain
        # POST could, with no preflight), and a server posts the same pageview with no Origin
        preflight_status, preflight_headers = preflight(port, SHOP)
        page_status, page_headers, page_body = post_pageview(port, shop_pixel, SHOP)
        server_status, _, server_body = post_pageview(port, shop_pixel, None)
    # Then the preflight finds no route, so the browser sends nothing more
    assert preflight_status == 404
    assert preflight_headers["Access-Control-Allow-Origin"] is None
    # And the page's request was refused by the function, not run: nothing queued
    assert page_status == 403
    assert "snippet" in json.loads(page_body)["errors"][0]["message"]
    assert page_headers["Access-Control-Allow-Origin"] is None
    # And the server's went through as before
    assert server_status == 200
    assert json.loads(server_body)["data"]["pageview"]["code"] == 200
    assert len(queued_messages()) == 1


def test_with_origins_named_the_gateway_answers_their_preflight_and_their_pages_may_call_graphql(
    monkeypatch, shop_pixel, queued_messages
):
    # Given an operator who named two origins of the shop (the template parameter, locally its
    # environment variable, which the function reads too)
    origins = f"{SHOP}, {WWW_SHOP}"
    monkeypatch.setenv("BROWSER_GRAPHQL_ORIGINS", origins)
    with local_api(routes_of(load_template()), origins) as (port, invocations):
        # When the shop and a stranger each preflight and then post a pageview
        shop_preflight = preflight(port, WWW_SHOP)
        stranger_preflight = preflight(port, STRANGER)
        invocations_after_preflights = invocations.count
        shop_status, shop_headers, shop_body = post_pageview(port, shop_pixel, WWW_SHOP)
        stranger_status, stranger_headers, _ = post_pageview(port, shop_pixel, STRANGER)
    # Then the gateway answered the preflights itself (no invocation), echoing the shop's origin
    assert invocations_after_preflights == 0
    assert shop_preflight[0] == 204
    assert shop_preflight[1]["Access-Control-Allow-Origin"] == WWW_SHOP
    assert shop_preflight[1]["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    assert shop_preflight[1]["Access-Control-Allow-Headers"] == "content-type,authorization"
    assert shop_preflight[1]["Access-Control-Max-Age"] == "600"
    assert shop_preflight[1]["Vary"] == "Origin"
    # And the shop's pageview ran and its answer may be read by the page
    assert shop_status == 200
    assert json.loads(shop_body) == {"data": {"pageview": {"code": 200, "data": {}, "message": "Success"}}}
    assert shop_headers["Access-Control-Allow-Origin"] == WWW_SHOP
    # And the stranger gets no CORS header, and its pageview is refused by the function as well
    assert stranger_preflight[0] == 204
    assert not [name for name in stranger_preflight[1] if name.lower().startswith("access-control-")]
    assert stranger_status == 403
    assert not [name for name in stranger_headers if name.lower().startswith("access-control-")]
    assert len(queued_messages()) == 1


def test_with_origins_named_preflights_are_answered_on_any_path_and_a_plain_options_is_routed(
    monkeypatch, moto_table
):
    # Given the local API Gateway with CORS on
    monkeypatch.setenv("BROWSER_GRAPHQL_ORIGINS", SHOP)
    with local_api(routes_of(load_template()), SHOP) as (port, invocations):
        # When a preflight names a path without a route, and an OPTIONS request is not a preflight
        unrouted_status, unrouted_headers = preflight(port, SHOP, path="/no-such-route")
        plain_status, plain_headers, _ = request(port, "OPTIONS", "/graphql", {"Origin": SHOP})
    # Then CORS is the API's: the preflight is answered; the plain OPTIONS finds no route (404)
    assert unrouted_status == 204
    assert unrouted_headers["Access-Control-Allow-Origin"] == SHOP
    assert plain_status == 404
    assert plain_headers["Access-Control-Allow-Origin"] is None
    assert invocations.count == 0


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "refused"),
    [
        (None, "api.example", frozenset(), False),  # a server: browsers always name the page
        ("https://api.example", "api.example", frozenset(), False),  # the gateway's own page
        ("https://shop.example", "api.example", frozenset(), True),
        ("https://shop.example/", "api.example", frozenset({SHOP}), False),
        ("HTTPS://SHOP.EXAMPLE", "api.example", frozenset({SHOP}), False),
        ("https://evil.example", "api.example", frozenset({SHOP}), True),
        ("https://evil.example", "api.example", frozenset({"*"}), False),
        ("null", "api.example", frozenset(), True),  # a sandboxed frame or a file
        ("https://api.example.evil.example", "api.example", frozenset(), True),
        ("https://shop.example", None, frozenset(), True),
    ],
)
def test_graphql_is_refused_to_pages_of_other_origins_unless_allowed(origin, host, allowed, refused):
    headers = [
        (name.encode(), value.encode()) for name, value in (("origin", origin), ("host", host)) if value
    ]
    assert from_a_foreign_page({"headers": headers}, allowed) is refused


def test_cors_headers_set_by_the_function_are_replaced_by_the_gateways_and_vary_is_merged():
    # Given a function answer with its own CORS header and a Vary header
    function_headers = {
        "content-type": "application/json",
        "Access-Control-Allow-Origin": "https://anything.example",
        "vary": "Accept-Encoding",
    }
    # When the gateway adds its CORS headers for an allowed origin of a list
    sent = with_cors(function_headers, {"access-control-allow-origin": SHOP, "vary": "Origin"})
    # Then only the gateway's CORS header goes out, and Vary names both
    assert sent == {
        "content-type": "application/json",
        "access-control-allow-origin": SHOP,
        "vary": "Accept-Encoding, Origin",
    }
