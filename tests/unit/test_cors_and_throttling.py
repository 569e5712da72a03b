"""CORS and stage throttling of the HTTP API: what template.yaml declares, and how `make dev`'s local
API Gateway (devtools/api_gateway.py) applies the same CORS configuration to browser requests."""

import dataclasses
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from devtools.api_gateway import LocalHttpApi, Route, routes_of, with_cors
from devtools.net import free_port
from devtools.template import load_template
from pixel_core import auth
from pixel_core.clock import utc_now
from pixel_core.models import PixelItem
from tests.support.documents import PAGEVIEW

SHOP = "https://shop.example"
WWW_SHOP = "https://www.shop.example"
STRANGER = "https://evil.example"


@pytest.fixture(scope="module")
def http_api() -> dict[str, Any]:
    return load_template()["Resources"]["HttpApi"]


def test_http_api_lets_browsers_call_the_data_plane_with_origins_from_the_cors_allow_origins_parameter(
    http_api,
):
    # Given the template as deployed
    template = load_template()
    # When its HttpApi's CORS configuration and the parameter it refers to are read
    cors = http_api["Properties"]["CorsConfiguration"]
    parameter = template["Parameters"]["CorsAllowOrigins"]
    # Then the origins come from a comma-delimited parameter that allows any page by default
    assert cors["AllowOrigins"] == {"Ref": "CorsAllowOrigins"}
    assert parameter["Type"] == "CommaDelimitedList"
    assert parameter["Default"] == "*"
    # And a browser may POST JSON with Basic auth (preflighted), and cache the preflight a while
    assert {"POST", "OPTIONS"} <= set(cors["AllowMethods"])
    assert {"content-type", "authorization"} <= {header.lower() for header in cors["AllowHeaders"]}
    assert 60 <= cors["MaxAge"] <= 86_400
    # And no credentials: "*" origins and credentials cannot be combined (SAM and browsers refuse it)
    assert cors["AllowCredentials"] is False


def test_every_route_of_the_http_api_uses_a_method_the_cors_configuration_allows(http_api):
    # Given the methods CORS allows
    allowed = set(http_api["Properties"]["CorsConfiguration"]["AllowMethods"])
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


def test_local_routes_carry_the_templates_cors_configuration_with_the_parameter_default(
    monkeypatch, moto_table
):
    # Given no CORS_ALLOW_ORIGINS in the environment
    monkeypatch.delenv("CORS_ALLOW_ORIGINS", raising=False)
    # When the routes are read from the template
    routes = routes_of(load_template())
    # Then every route has the API's configuration, "*" resolved from the parameter's default
    (cors,) = {route.cors for route in routes}
    assert cors is not None
    assert cors.allow_origins == ("*",)
    assert cors.allow_methods == ("GET", "POST", "OPTIONS")
    assert cors.allow_headers == ("content-type", "authorization")
    assert (cors.max_age, cors.allow_credentials) == (600, False)


@dataclasses.dataclass
class Invocations:
    count: int = 0


@contextmanager
def local_api(routes: list[Route]) -> Iterator[tuple[int, Invocations]]:
    """The local API Gateway on a free port, serving in a background thread; counts invocations."""
    invocations = Invocations()

    def counted(route: Route) -> Route:
        def handler(event: Any, context: Any) -> Any:
            invocations.count += 1
            return route.handler(event, context)

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


def post_pageview(port: int, credentials: Any, origin: str) -> tuple[int, http.client.HTTPMessage, bytes]:
    body = json.dumps(
        {
            "query": PAGEVIEW,
            "variables": {
                "auth": {"appId": credentials.app_id, "appSecret": credentials.app_secret},
                "event": {"pixelId": 123, "domain": "shop.example"},
            },
        }
    ).encode()
    return request(port, "POST", "/graphql", {"Origin": origin, "Content-Type": "application/json"}, body)


def test_local_api_answers_a_preflight_itself_and_adds_the_cors_header_to_a_browsers_pageview(
    monkeypatch, shop_pixel, queued_messages
):
    # Given the local API Gateway serving the template's routes with the default origins ("*")
    monkeypatch.delenv("CORS_ALLOW_ORIGINS", raising=False)
    with local_api(routes_of(load_template())) as (port, invocations):
        # When a page of another origin preflights a JSON POST, then sends the pageview
        preflight_status, preflight_headers = preflight(port, SHOP)
        invocations_after_preflight = invocations.count
        status, headers, body = post_pageview(port, shop_pixel, SHOP)
    # Then the gateway answered the preflight itself: 204, the configured CORS headers, no invocation
    assert preflight_status == 204
    assert preflight_headers["Access-Control-Allow-Origin"] == "*"
    assert preflight_headers["Access-Control-Allow-Methods"] == "GET,POST,OPTIONS"
    assert preflight_headers["Access-Control-Allow-Headers"] == "content-type,authorization"
    assert preflight_headers["Access-Control-Max-Age"] == "600"
    assert preflight_headers["Access-Control-Allow-Credentials"] is None
    assert invocations_after_preflight == 0
    # And the pageview reached the function, was accepted, and its answer may be read by the page
    assert status == 200
    assert json.loads(body) == {"data": {"pageview": {"code": 200, "data": {}, "message": "Success"}}}
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Vary"] is None  # any origin gets the same answer
    assert invocations.count == 1
    assert len(queued_messages()) == 1


def test_local_api_with_an_origin_list_from_the_environment_allows_those_origins_only(
    monkeypatch, shop_pixel, queued_messages
):
    # Given CORS_ALLOW_ORIGINS naming two origins of the shop
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", f"{SHOP}, {WWW_SHOP}")
    with local_api(routes_of(load_template())) as (port, _invocations):
        # When the shop and a stranger each preflight and then post a pageview
        shop_preflight = preflight(port, WWW_SHOP)
        stranger_preflight = preflight(port, STRANGER)
        shop_status, shop_headers, _ = post_pageview(port, shop_pixel, WWW_SHOP)
        stranger_status, stranger_headers, stranger_body = post_pageview(port, shop_pixel, STRANGER)
    # Then the shop's origin is echoed back, with Vary: Origin for caches
    assert shop_preflight[0] == 204
    assert shop_preflight[1]["Access-Control-Allow-Origin"] == WWW_SHOP
    assert shop_preflight[1]["Vary"] == "Origin"
    assert shop_status == 200
    assert shop_headers["Access-Control-Allow-Origin"] == WWW_SHOP
    assert shop_headers["Vary"] == "Origin"
    # And the stranger gets no CORS header at all, so its browser withholds the answer from the page
    assert stranger_preflight[0] == 204
    assert not [name for name in stranger_preflight[1] if name.lower().startswith("access-control-")]
    assert stranger_status == 200  # API Gateway does not block: the browser does
    assert json.loads(stranger_body)["data"]["pageview"]["code"] == 200
    assert not [name for name in stranger_headers if name.lower().startswith("access-control-")]
    assert len(queued_messages()) == 2


def test_local_api_answers_preflights_on_any_path_but_routes_a_plain_options_request_like_api_gateway(
    monkeypatch, moto_table
):
    # Given the local API Gateway with the template's CORS configuration
    monkeypatch.delenv("CORS_ALLOW_ORIGINS", raising=False)
    with local_api(routes_of(load_template())) as (port, invocations):
        # When a preflight names a path without a route, and an OPTIONS request is not a preflight
        unrouted_status, unrouted_headers = preflight(port, SHOP, path="/no-such-route")
        plain_status, plain_headers, _ = request(port, "OPTIONS", "/graphql", {"Origin": SHOP})
    # Then CORS is the API's: the preflight is answered; the plain OPTIONS finds no route (404)
    assert unrouted_status == 204
    assert unrouted_headers["Access-Control-Allow-Origin"] == "*"
    assert plain_status == 404
    assert plain_headers["Access-Control-Allow-Origin"] is None
    assert invocations.count == 0


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
