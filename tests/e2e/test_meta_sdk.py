"""Meta's own Python SDK (facebook-business), unchanged but for its Graph base URL, sends server events
to `make dev`'s stack with a pixel's access key; they are counted once and reach the local Meta with
the SDK's hashes and event ids."""

import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.user_data import UserData
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from tests.support.dev_stack import DevStack
from tests.support.documents import PIXEL, SETUP, SETUP_VARIABLES

ACCESS_KEY = """query K($tenantId: ID!) { tenantQueries(tenantId: $tenantId) {
  account { signalConfigs { connectionStatus { totalEventsReceived accessKey } } } } }"""
DEADLINE_SECONDS = 60  # a bound on the wait, not a target


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    running = DevStack(tmp_path_factory.mktemp("sdk") / "dynamodb")
    running.start()
    try:
        assert "errors" not in running.graphql(SETUP, SETUP_VARIABLES, path="/capig/graphql/", basic=True)
        yield running
    finally:
        running.stop()


@pytest.fixture
def graph_at_the_gateway(stack: DevStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # The only change an SDK user makes: the Graph base URL (a class attribute the SDK reads).
    monkeypatch.setattr(FacebookSession, "GRAPH", f"http://127.0.0.1:{stack.port}")


def connection_status(stack: DevStack) -> dict[str, Any]:
    answer = stack.graphql(ACCESS_KEY, {"tenantId": "IaoreXfj"}, path="/capig/graphql/", basic=True)
    (config,) = answer["data"]["tenantQueries"]["account"]["signalConfigs"]
    return dict(config["connectionStatus"])


def sdk_events(count: int) -> list[Event]:
    now = int(time.time())
    return [
        Event(
            event_name="Purchase",
            event_time=now,
            event_id=f"sdk-order-{n}",
            action_source=ActionSource.WEBSITE,
            event_source_url=f"https://shop.example.com/checkout/{n}",
            user_data=UserData(
                emails=[f"Buyer{n}@Example.com"],
                phones=["+1 (650) 555-1212"],
                first_name="Jöhn",
                last_name="Smith",
                city="Menlo Park",
                state="CA",
                zip_code="94025",
                country_code="US",
                external_id=f"customer-{n}",
                client_ip_address="203.0.113.9",
                client_user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)",
                fbp="fb.1.1596403881668.1116446470",
                fbc="fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
            ),
            custom_data=CustomData(currency="eur", value=42.5 + n),
        )
        for n in range(count)
    ]


def received_by_meta(stack: DevStack, at_least: int) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{stack.env['META_PORT']}/__received"
    started = time.monotonic()
    while time.monotonic() - started < DEADLINE_SECONDS:
        with urllib.request.urlopen(url, timeout=5) as answer:  # loopback
            events: list[dict[str, Any]] = json.loads(answer.read())["events"]
        if len(events) >= at_least:
            time.sleep(1)  # anything sent twice would arrive now
            with urllib.request.urlopen(url, timeout=5) as answer:
                return list(json.loads(answer.read())["events"])
        time.sleep(0.25)
    raise AssertionError(f"the local Meta got {len(events)} of {at_least} events")


@pytest.mark.dynamodb_local
def test_events_sent_with_metas_sdk_are_counted_once_and_reach_meta_with_the_sdks_hashes(
    stack: DevStack, graph_at_the_gateway: None
) -> None:
    # Given the pixel's access key as its tenant reads it, used as the SDK's access token
    key = connection_status(stack)["accessKey"]
    assert key
    FacebookAdsApi.init(access_token=key)
    events = sdk_events(3)
    # When the SDK builds and sends them, as it would to Meta
    response = EventRequest(pixel_id=PIXEL, events=events).execute()
    # Then the gateway answered as Meta does
    assert response.events_received == 3
    assert response.fbtrace_id
    # And the local Meta got each once, with the hashes the SDK computed and the event ids kept
    expected = {event.event_id: event.normalize() for event in events}
    sent = {event["event_id"]: event for event in received_by_meta(stack, 3)}
    assert set(sent) == set(expected)
    for event_id, event in sent.items():
        sdk = expected[event_id]["user_data"]
        for key_name in ("em", "ph", "fn", "ln", "ct", "st", "zp", "country"):
            assert event["user_data"][key_name] == (
                sdk[key_name] if isinstance(sdk[key_name], list) else [sdk[key_name]]
            ), key_name
        # The SDK sends external_id in clear; the gateway hashes it, as Meta recommends (and the issue asks)
        (external_id,) = sdk["external_id"] if isinstance(sdk["external_id"], list) else [sdk["external_id"]]
        assert event["user_data"]["external_id"] == [hashlib.sha256(external_id.encode()).hexdigest()]
        for key_name in ("fbp", "fbc", "client_ip_address", "client_user_agent"):
            assert event["user_data"][key_name] == sdk[key_name], key_name
        assert event["custom_data"] == expected[event_id]["custom_data"]
        assert event["event_source_url"] == expected[event_id]["event_source_url"]
    # And counted exactly once
    assert connection_status(stack)["totalEventsReceived"] == 3.0


@pytest.mark.dynamodb_local
def test_the_sdk_gets_metas_errors_for_a_wrong_key_and_an_old_event(
    stack: DevStack, graph_at_the_gateway: None
) -> None:
    FacebookAdsApi.init(access_token="not-the-key")
    with pytest.raises(FacebookRequestError) as refused:
        EventRequest(pixel_id=PIXEL, events=sdk_events(1)).execute()
    assert (refused.value.api_error_code(), refused.value.api_error_type()) == (190, "OAuthException")
    FacebookAdsApi.init(access_token=connection_status(stack)["accessKey"])
    old = sdk_events(1)
    old[0].event_time = int(time.time()) - 8 * 86_400
    with pytest.raises(FacebookRequestError) as too_old:
        EventRequest(pixel_id=PIXEL, events=old).execute()
    assert (too_old.value.api_error_code(), too_old.value.api_error_subcode()) == (100, 2804003)
