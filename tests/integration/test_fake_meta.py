"""devtools.fake_meta: a real HTTP server on 127.0.0.1, exercised with urllib like any client would."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.fake_meta import Answer, FakeMeta, ReceivedRequest

PIXEL_ID = "1234567890"
VERSION = "v21.0"
TOKEN = "EAAtest-secret-token-do-not-leak-0123456789"


def event(name: str = "PageView", **extra: Any) -> dict[str, Any]:
    return {"event_name": name, "event_time": 1_700_000_000, "action_source": "website", **extra}


@pytest.fixture
def meta() -> Iterator[FakeMeta]:
    with FakeMeta() as fake:
        yield fake


def post(
    url: str, body: bytes, content_type: str = "application/json", timeout: float = 5.0
) -> tuple[int, dict[str, Any]]:
    """POST and return (status, JSON body), whatever the status."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def post_events(
    meta: FakeMeta,
    events: list[dict[str, Any]],
    *,
    token: str | None = TOKEN,
    timeout: float = 5.0,
    **fields: Any,
) -> tuple[int, dict[str, Any]]:
    query = f"?{urllib.parse.urlencode({'access_token': token})}" if token is not None else ""
    url = f"{meta.base_url}/{VERSION}/{PIXEL_ID}/events{query}"
    return post(url, json.dumps({"data": events, **fields}).encode(), timeout=timeout)


def get_received(meta: FakeMeta) -> tuple[str, dict[str, Any]]:
    with urllib.request.urlopen(f"{meta.base_url}/__received", timeout=5) as response:
        assert response.status == 200
        text: str = response.read().decode()
    return text, json.loads(text)


def test_valid_json_post_is_recorded_with_pixel_version_token_and_events_and_answered_with_events_received(
    meta: FakeMeta,
) -> None:
    events = [event("PageView", event_id="a"), event("Purchase", event_id="b")]
    before = time.time()

    status, body = post_events(meta, events, test_event_code="TEST123")

    assert status == 200
    assert body["events_received"] == 2
    assert body["messages"] == []
    assert isinstance(body["fbtrace_id"], str)
    assert body["fbtrace_id"]
    [received] = meta.requests()
    assert received.pixel_id == PIXEL_ID
    assert received.api_version == VERSION
    assert received.access_token == TOKEN
    assert received.body == {"data": events, "test_event_code": "TEST123"}
    assert received.status == 200
    assert before <= received.received_at <= time.time()
    assert meta.events() == events


def test_form_encoded_post_with_data_as_json_string_and_token_in_the_body_is_accepted(
    meta: FakeMeta,
) -> None:
    events = [event("Lead", event_id="f1")]
    form = urllib.parse.urlencode(
        {"data": json.dumps(events), "access_token": TOKEN, "test_event_code": "TEST9"}
    ).encode()

    status, body = post(
        f"{meta.base_url}/{VERSION}/{PIXEL_ID}/events", form, "application/x-www-form-urlencoded"
    )

    assert (status, body["events_received"]) == (200, 1)
    [received] = meta.requests()
    assert received.access_token == TOKEN
    # The token moves out of the recorded body, so printing a body never shows it.
    assert received.body == {"data": events, "test_event_code": "TEST9"}
    assert meta.events() == events


def test_json_body_carrying_the_access_token_is_accepted_and_the_token_is_not_kept_in_the_body(
    meta: FakeMeta,
) -> None:
    status, _ = post(
        f"{meta.base_url}/{VERSION}/{PIXEL_ID}/events",
        json.dumps({"data": [event()], "access_token": TOKEN}).encode(),
    )

    assert status == 200
    [received] = meta.requests()
    assert received.access_token == TOKEN
    assert "access_token" not in received.body


def test_scripted_answers_are_used_in_order_then_the_default_success_applies_again(meta: FakeMeta) -> None:
    meta.script(Answer.unavailable(), Answer.rate_limited(), Answer.invalid_token())

    answers = [post_events(meta, [event(event_id=str(i))]) for i in range(4)]

    assert [status for status, _ in answers] == [503, 429, 400, 200]
    assert [body["error"]["code"] for _, body in answers[:3]] == [2, 4, 190]
    assert answers[0][1]["error"]["is_transient"] is True
    assert answers[2][1]["error"]["type"] == "OAuthException"
    assert answers[2][1]["error"]["error_subcode"] == 463
    assert answers[2][1]["error"]["message"].startswith("Error validating access token")
    assert all(body["error"]["fbtrace_id"] for _, body in answers[:3])
    assert answers[3][1]["events_received"] == 1
    # Every request is recorded with what it was answered, but only the accepted one's events count.
    assert [r.status for r in meta.requests()] == [503, 429, 400, 200]
    assert meta.events() == [event(event_id="3")]


def test_always_replaces_the_default_and_scripted_answers_still_come_first(meta: FakeMeta) -> None:
    meta.always(Answer.invalid_parameter("Bad pixel"))
    meta.script(Answer(200))

    first, second, third = (post_events(meta, [event()]) for _ in range(3))

    assert first[0] == 200
    assert (second[0], second[1]["error"]["code"], second[1]["error"]["message"]) == (400, 100, "Bad pixel")
    assert third[0] == 400


def test_custom_answer_body_is_sent_as_given_with_an_fbtrace_id_added(meta: FakeMeta) -> None:
    meta.script(Answer(200, {"events_received": 1, "messages": ["dedup"], "fbtrace_id": "fixed"}))
    meta.script(Answer(500))

    assert post_events(meta, [event()]) == (
        200,
        {"events_received": 1, "messages": ["dedup"], "fbtrace_id": "fixed"},
    )
    status, body = post_events(meta, [event()])
    assert status == 500
    assert body["error"]["is_transient"] is True
    assert body["error"]["fbtrace_id"]


class RecordedWaits:
    """The fake's stop event, with each wait a delay made recorded: (seconds, woken by stop()).

    A handler woken takes `linger` seconds more before it records the wait, as a thread of a loaded
    machine may: a stop() that did not wait for its handlers would return before the record."""

    def __init__(self, event: threading.Event, linger: float = 0.0) -> None:
        self._event = event
        self._linger = linger
        self.waits: list[tuple[float | None, bool]] = []
        # Set once a handler is inside a delay: a loaded machine may accept the connection only after
        # a short client timeout, so a test that needs the handler mid-delay waits for this first.
        self.entered = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.entered.set()
        woken = self._event.wait(timeout)
        time.sleep(self._linger)
        self.waits.append((timeout, woken))
        return woken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._event, name)


def test_delayed_answer_makes_a_client_with_a_short_timeout_time_out_while_the_request_is_recorded(
    meta: FakeMeta, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an answer held for an hour: only the client's own timeout can end its wait
    waits = RecordedWaits(meta._stopping)
    monkeypatch.setattr(meta, "_stopping", waits)
    meta.script(Answer(delay_seconds=3600))

    # When a client that waits 0.2 s posts, Then it times out
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)) as raised:
        post_events(meta, [event(event_id="slow")], timeout=0.2)
    if isinstance(raised.value, urllib.error.URLError):
        assert isinstance(raised.value.reason, (TimeoutError, socket.timeout))
    assert waits.entered.wait(timeout=10), "the fake never started the delayed answer"

    # Meta may well have the events even though the client gave up: the retry below duplicates them.
    assert [r.status for r in meta.requests()] == [200]
    assert post_events(meta, [event(event_id="slow")])[0] == 200
    assert meta.events() == [event(event_id="slow"), event(event_id="slow")]


def test_delayed_answer_arrives_after_the_delay_when_the_client_waits_long_enough(
    meta: FakeMeta, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an answer delayed 0.3 s, the delay's wait recorded
    waits = RecordedWaits(meta._stopping)
    monkeypatch.setattr(meta, "_stopping", waits)
    meta.script(Answer(delay_seconds=0.3))

    # When a patient client posts
    status, body = post_events(meta, [event()], timeout=5)

    # Then the answer came once the whole delay had run out (not cut short), and it is the 200
    assert waits.waits == [(0.3, False)]
    assert (status, body["events_received"]) == (200, 1)


def test_stop_does_not_wait_for_a_long_delay_to_run_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a request held for an hour, whose client gave up (the delay's wait recorded)
    meta = FakeMeta().start()
    waits = RecordedWaits(meta._stopping, linger=0.3)
    monkeypatch.setattr(meta, "_stopping", waits)
    try:
        meta.script(Answer(delay_seconds=3600))
        with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
            post_events(meta, [event()], timeout=0.2)
        assert waits.entered.wait(timeout=10), "the fake never started the delayed answer"
    finally:
        # When the fake is stopped (it joins its handler threads before returning, lingering or not)
        meta.stop()

    # Then stop() woke the handler out of its delay instead of waiting the hour out (a stop that
    # did wait would hang here until pytest's timeout)
    assert waits.waits == [(3600, True)]
    with pytest.raises(RuntimeError, match="not running"):
        _ = meta.base_url
    meta.stop()  # twice is fine


def test_more_than_1000_events_are_rejected_with_code_100_and_no_event_is_kept(meta: FakeMeta) -> None:
    status, body = post_events(meta, [event(event_id=str(i)) for i in range(1001)])

    assert status == 400
    assert body["error"]["code"] == 100
    assert "1000" in body["error"]["error_user_msg"]
    assert [r.status for r in meta.requests()] == [400]
    assert meta.events() == []


def test_exactly_1000_events_are_accepted(meta: FakeMeta) -> None:
    status, body = post_events(meta, [event(event_id=str(i)) for i in range(1000)])

    assert (status, body["events_received"]) == (200, 1000)
    assert len(meta.events()) == 1000


@pytest.mark.parametrize(
    ("events", "detail"),
    [
        ([], "non-empty"),
        ([{"event_time": 1_700_000_000, "action_source": "website"}], "event_name"),
        ([{"event_name": "PageView", "action_source": "website"}], "event_time"),
        ([{"event_name": "PageView", "event_time": "1700000000", "action_source": "website"}], "event_time"),
        ([{"event_name": "PageView", "event_time": 1_700_000_000}], "action_source"),
        ([event(), "not an event"], "data[1]"),
    ],
    ids=["empty", "no-event-name", "no-event-time", "string-event-time", "no-action-source", "not-object"],
)
def test_malformed_payload_is_rejected_with_code_100_without_using_up_a_scripted_answer(
    meta: FakeMeta, events: list[Any], detail: str
) -> None:
    meta.script(Answer.unavailable())

    status, body = post_events(meta, events)

    assert (status, body["error"]["code"], body["error"]["type"]) == (400, 100, "OAuthException")
    assert detail in body["error"]["error_user_msg"]
    assert post_events(meta, [event()])[0] == 503  # the script was still there


def test_body_that_is_not_json_or_data_that_is_not_a_list_is_rejected_with_code_100(meta: FakeMeta) -> None:
    url = f"{meta.base_url}/{VERSION}/{PIXEL_ID}/events?access_token={TOKEN}"

    assert post(url, b"{not json")[0] == 400
    assert post(url, b"[1, 2]")[0] == 400
    assert post(url, json.dumps({"data": {"event_name": "x"}}).encode())[0] == 400
    assert [r.status for r in meta.requests()] == [400, 400, 400]


@pytest.mark.parametrize(
    "path",
    [
        f"/{VERSION}/{PIXEL_ID}/nope",
        f"/{VERSION}/not-digits/events",
        f"/21.0/{PIXEL_ID}/events",
        f"/{VERSION}/{PIXEL_ID}/events/extra",
        "/",
    ],
)
def test_post_to_a_path_other_than_version_pixel_events_answers_404_with_a_graph_error(
    meta: FakeMeta, path: str
) -> None:
    status, body = post(
        f"{meta.base_url}{path}?access_token={TOKEN}", json.dumps({"data": [event()]}).encode()
    )

    assert status == 404
    assert body["error"]["type"] == "OAuthException"
    assert body["error"]["fbtrace_id"]
    [received] = meta.requests()
    assert (received.status, received.pixel_id, received.path) == (404, "", path)
    assert meta.events() == []


def test_get_on_an_unknown_path_answers_404(meta: FakeMeta) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{meta.base_url}/{VERSION}/{PIXEL_ID}/events", timeout=5)
    with raised.value as error:
        assert error.code == 404
        assert json.loads(error.read())["error"]["code"] == 2500


def test_missing_access_token_is_rejected_with_400_like_meta_and_is_recorded(meta: FakeMeta) -> None:
    status, body = post_events(meta, [event()], token=None)

    assert status == 400
    assert body["error"]["message"] == "An access token is required to request this resource."
    assert body["error"]["type"] == "OAuthException"
    assert [(r.status, r.access_token) for r in meta.requests()] == [(400, "")]
    assert meta.events() == []


def test_empty_access_token_in_the_query_counts_as_missing(meta: FakeMeta) -> None:
    assert post_events(meta, [event()], token="")[0] == 400


def test_received_endpoint_shows_accepted_events_and_every_request_but_never_the_access_token(
    meta: FakeMeta,
) -> None:
    meta.script(Answer.unavailable())
    post_events(meta, [event(event_id="first-try")])
    post_events(meta, [event(event_id="retry")])
    form = urllib.parse.urlencode({"data": json.dumps([event(event_id="form")]), "access_token": TOKEN})
    post(f"{meta.base_url}/{VERSION}/{PIXEL_ID}/events", form.encode(), "application/x-www-form-urlencoded")

    text, received = get_received(meta)

    assert TOKEN not in text
    assert "access_token" not in text
    assert received["events"] == [event(event_id="retry"), event(event_id="form")]
    assert [r["status"] for r in received["requests"]] == [503, 200, 200]
    first = received["requests"][0]
    assert first["token_present"] is True
    assert first["pixel_id"] == PIXEL_ID
    assert first["api_version"] == VERSION
    assert first["body"]["data"] == [event(event_id="first-try")]
    # A short fingerprint tells tokens apart without revealing them.
    assert len(first["token_sha256_prefix"]) == 8
    assert first["token_sha256_prefix"] not in TOKEN
    assert {r["token_sha256_prefix"] for r in received["requests"]} == {first["token_sha256_prefix"]}


def test_received_request_repr_does_not_show_the_access_token(meta: FakeMeta) -> None:
    post_events(meta, [event()])

    [received] = meta.requests()

    assert TOKEN not in repr(received)
    assert TOKEN not in repr(meta.requests())


def test_server_writes_nothing_to_stdout_or_stderr_so_tokens_never_reach_logs(
    meta: FakeMeta, capfd: pytest.CaptureFixture[str]
) -> None:
    post_events(meta, [event()])
    post_events(meta, [event()], token="")
    post(f"{meta.base_url}/nowhere?access_token={TOKEN}", b"{}")
    get_received(meta)

    out, err = capfd.readouterr()

    assert TOKEN not in out + err
    assert (out, err) == ("", "")


def test_clear_forgets_requests_but_keeps_the_script_and_reset_restores_the_default(meta: FakeMeta) -> None:
    post_events(meta, [event()])
    meta.script(Answer.rate_limited())
    meta.always(Answer.unavailable())

    meta.clear()

    assert meta.requests() == []
    assert meta.events() == []
    assert post_events(meta, [event()])[0] == 429
    meta.reset()
    assert meta.requests() == []
    assert post_events(meta, [event()])[0] == 200


def test_snapshots_are_copies_that_callers_cannot_use_to_change_the_record(meta: FakeMeta) -> None:
    post_events(meta, [event(event_id="original")])

    meta.events()[0]["event_id"] = "changed"
    meta.requests()[0].body["data"].clear()

    assert meta.events() == [event(event_id="original")]


def test_concurrent_posts_are_all_recorded_and_scripted_answers_each_used_exactly_once(
    meta: FakeMeta,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    meta.script(*[Answer.unavailable()] * 5)
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda i: post_events(meta, [event(event_id=str(i))])[0], range(40)))

    assert sorted(statuses) == [200] * 35 + [503] * 5
    assert len(meta.requests()) == 40
    assert sorted(e["event_id"] for e in meta.events()) == sorted(
        r.body["data"][0]["event_id"] for r in meta.requests() if r.status == 200
    )
    assert len(meta.events()) == 35


def test_server_listens_on_loopback_only_and_the_base_url_names_its_port(meta: FakeMeta) -> None:
    host, port = urllib.parse.urlsplit(meta.base_url).hostname, urllib.parse.urlsplit(meta.base_url).port

    assert host == "127.0.0.1"
    assert port
    server = meta._server
    assert server is not None
    assert server.server_address[0] == "127.0.0.1"


def test_start_twice_or_on_a_taken_port_fails_clearly(meta: FakeMeta) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        meta.start()
    port = urllib.parse.urlsplit(meta.base_url).port
    assert port is not None
    with pytest.raises(RuntimeError, match="not free"):
        FakeMeta(port).start()


def test_answer_rejects_impossible_status_negative_delay_and_unserialisable_body() -> None:
    with pytest.raises(ValueError, match="status"):
        Answer(status=42)
    with pytest.raises(ValueError, match="delay"):
        Answer(delay_seconds=-1)
    with pytest.raises(TypeError):
        Answer(body={"when": object()})


def test_received_request_is_a_frozen_value() -> None:
    received = ReceivedRequest(
        pixel_id="1", api_version=VERSION, access_token=TOKEN, body={}, received_at=0.0, status=200
    )

    with pytest.raises(AttributeError):
        received.status = 500  # type: ignore[misc]


def test_refusing_answers_code_100_naming_the_refused_event_and_accepts_requests_without_it(
    meta: FakeMeta,
) -> None:
    # Given a fake that refuses event "bad" wherever it appears
    meta.always(Answer.refusing("bad"))
    # When a request holds it as its third event, and another request does not hold it
    refused_status, refused = post_events(
        meta, [event(event_id="a"), event(event_id="b"), event(event_id="bad")]
    )
    accepted_status, accepted = post_events(meta, [event(event_id="a"), event(event_id="b")])
    # Then the first is Meta's code-100 answer naming data[2], and only the second's events are kept
    assert refused_status == 400
    assert refused["error"]["code"] == 100
    assert refused["error"]["is_transient"] is False
    assert "data[2]" in refused["error"]["error_user_msg"]
    assert (accepted_status, accepted["events_received"]) == (200, 2)
    assert [e["event_id"] for e in meta.events()] == ["a", "b"]
    assert [r.status for r in meta.requests()] == [400, 200]


def test_refusing_without_naming_the_event_gives_no_index_in_the_answer(meta: FakeMeta) -> None:
    meta.always(Answer.refusing("bad", names_event=False))
    status, body = post_events(meta, [event(event_id="a"), event(event_id="bad")])
    assert status == 400
    assert body["error"]["code"] == 100
    assert "data[" not in json.dumps(body)


def test_a_hang_up_closes_the_connection_without_an_answer_and_is_recorded_with_status_0(
    meta: FakeMeta,
) -> None:
    # Given a fake that hangs up on the first request
    meta.script(Answer.hang_up())
    # When a client posts
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        post_events(meta, [event()])
    # Then the request arrived, unanswered, and the next one is answered as usual
    assert [r.status for r in meta.requests()] == [0]
    assert post_events(meta, [event()])[0] == 200


def test_while_in_flight_runs_after_the_request_arrived_and_before_the_answer_and_keeps_its_errors(
    meta: FakeMeta,
) -> None:
    # Given an answer that notes how many requests had arrived when it ran, and one that raises
    seen: list[int] = []

    def broken() -> None:
        raise RuntimeError("in the server thread")

    meta.script(
        Answer(while_in_flight=lambda: seen.append(len(meta.requests()))), Answer(while_in_flight=broken)
    )
    # When two requests are answered
    first = post_events(meta, [event()])[0]
    second = post_events(meta, [event()])[0]
    # Then the first ran with its request recorded, and the error of the second is kept for the test
    assert (first, second) == (200, 200)
    assert seen == [1]
    assert [str(error) for error in meta.in_flight_errors()] == ["in the server thread"]
