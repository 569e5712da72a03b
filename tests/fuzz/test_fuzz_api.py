"""Fuzzing `make dev`'s stack in production mode (STAGE=prod), over HTTP to 127.0.0.1 only.

One campaign per module: the stack starts, gets a pixel with a domain and a Meta connection, then
receives FUZZ_REQUESTS requests (150 by default, so that `make test` stays fast; `make fuzz` sends
1000): queries and mutations generated from schema/*.graphql by hypothesis-graphql, valid ones (most
of them steered onto the dev tenant and its pixels) and ones with a schema violation; near-miss
names; introspection; operations carrying a distinctive e-mail and access token; hostile bodies
(random JSON, wrong types, huge strings, garbage bytes, deep nesting, other content types). Half go
with the dev app's Basic auth, the others with bad or no credentials. The tests check the whole run's
answers, and the server's log once the stack has stopped.

FUZZ_REQUESTS: how many requests. FUZZ_SECONDS: the time budget for sending them (the campaign stops
there, and fails if it sent fewer). FUZZ_SEED: the seed (each run prints its own); `make test` uses a
fixed one, so that its short run is the same every time, and `make fuzz` passes FUZZ_SEED=random,
a new one each run (replay one with FUZZ_SEED=<seed>).
FUZZ_DUMP: a file to write every request and answer to (JSON lines), and the server's log beside it.

What is drawn is in strategies.py (generated, seeded and near-miss operations) and hostile.py (hostile
bodies, content types and credentials, and the fixed corpus); this module runs the campaign and checks it.
"""

import hashlib
import http.client
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.hostile import (
    BAD_CREDENTIALS,
    CONTENT_TYPES,
    HOSTILE_BODIES,
    HOSTILE_CORPUS,
    INVALID_WITH_SECRETS,
)
from tests.fuzz.strategies import (
    ACCESS_TOKEN,
    APP_ID,
    APP_SECRET,
    CONNECTED_PIXEL,
    DEV_APP,
    DOMAINS,
    EMAIL,
    INTROSPECTION,
    PAGEVIEW,
    PATHS,
    PIXELS,
    SEEDED_OPERATIONS,
    SEEDED_PIXEL,
    TENANT,
    generated_operations,
    graphql_body,
    near_misses,
)
from tests.support.dev_stack import DevStack
from tests.support.documents import SETUP, TRACK

REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "150"))
BUDGET_SECONDS = float(os.environ.get("FUZZ_SECONDS", str(120 + REQUESTS // 2)))
_SEED_SETTING = os.environ.get("FUZZ_SEED") or "20261126"
SEED = random.SystemRandom().randrange(2**32) if _SEED_SETTING == "random" else int(_SEED_SETTING)
DUMP = os.environ.get("FUZZ_DUMP")  # a file to write every exchange to, as JSON lines, for triage

pytestmark = [
    pytest.mark.dynamodb_local,
    # Starting and stopping the stack (up to 90 s each), and the campaign's own budget.
    pytest.mark.timeout(BUDGET_SECONDS + 300),
]

# Keys that only introspection puts in `data` (whatever the aliases above them).
INTROSPECTION_KEYS = frozenset(
    {"__schema", "__type", "queryType", "mutationType", "types", "ofType", "inputFields", "enumValues"}
)


# --- the stack --------------------------------------------------------------------------------


class ProductionDevStack(DevStack):
    """`make dev`'s stack with STAGE=prod (introspection and the explorer off) and its own dev app."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.env.update(STAGE="prod", DEV_APP_ID=APP_ID, DEV_APP_SECRET=APP_SECRET)


@dataclass(frozen=True)
class FuzzRequest:
    kind: str
    body: bytes
    authorization: str | None
    content_type: str | None = "application/json"
    path: str = "/graphql"
    category: str = "corpus"  # a key of CATEGORIES for drawn requests; "corpus" for the fixed ones

    def describe(self) -> str:
        who = "dev app" if self.authorization == DEV_APP else repr((self.authorization or "")[:60])
        return f"[{self.kind}] POST {self.path} ({self.content_type}, auth {who}): {self.body[:300]!r}"


@dataclass(frozen=True)
class Exchange:
    request: FuzzRequest
    status: int | None  # None: no HTTP answer at all
    text: str
    error: str | None = None

    def payload(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def describe(self) -> str:
        answer = self.error or f"HTTP {self.status}: {self.text[:300]}"
        return f"{self.request.describe()}\n    -> {answer}"


def send(port: int, request: FuzzRequest) -> Exchange:
    """One request on a connection of its own, to 127.0.0.1 only."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    if request.authorization is not None:
        headers["Authorization"] = request.authorization
    try:
        connection.request("POST", request.path, body=request.body, headers=headers)
        response = connection.getresponse()
        return Exchange(request, response.status, response.read().decode("utf-8", "replace"))
    except (OSError, http.client.HTTPException) as error:
        return Exchange(request, None, "", f"no answer: {type(error).__name__}: {error}")
    finally:
        connection.close()


# --- what is drawn ----------------------------------------------------------------------------


CATEGORIES: dict[str, st.SearchStrategy[tuple[str, bytes]]] = {
    "generated": generated_operations(),
    "seeded": SEEDED_OPERATIONS,
    "near-miss": near_misses(),
    "introspection": st.sampled_from(INTROSPECTION).map(lambda query: ("introspection", graphql_body(query))),
    "hostile": HOSTILE_BODIES,
}
CATEGORY_WEIGHTS = {"generated": 8, "seeded": 4, "near-miss": 2, "introspection": 1, "hostile": 5}


@st.composite
def fuzz_requests(draw: st.DrawFn) -> tuple[FuzzRequest, FuzzRequest]:
    """The same request twice: with the dev app's Basic auth, and with bad or no credentials."""
    # Drawn by category first: st.one_of would weigh each of the many hostile bodies like a category.
    category = draw(
        st.sampled_from([name for name, weight in CATEGORY_WEIGHTS.items() for _ in range(weight)])
    )
    kind, body = draw(CATEGORIES[category])
    content_type = (
        draw(CONTENT_TYPES)
        if kind in {"garbage bytes", "garbage text", "random JSON", "raw document"}
        else "application/json"
    )
    path = draw(st.sampled_from(PATHS))
    credentials, bad = draw(BAD_CREDENTIALS)
    return (
        FuzzRequest(kind, body, DEV_APP, content_type, path, category),
        FuzzRequest(f"{kind}; {credentials}", body, bad, content_type, path, category),
    )


# --- the campaign -----------------------------------------------------------------------------


@dataclass
class Campaign:
    exchanges: list[Exchange]
    log: str  # what the stack printed after its banner (the banner shows the dev secret on purpose)
    started_in_production: bool
    seconds: float

    def matching(self, check: Callable[[Exchange], bool]) -> list[str]:
        return [exchange.describe() for exchange in self.exchanges if check(exchange)]


def report(campaign: Campaign, what: str, failures: list[str]) -> str:
    shown = "\n".join(failures[:8])
    return f"{len(failures)} of {len(campaign.exchanges)} requests {what} (FUZZ_SEED={SEED}):\n{shown}"


def seed_requests() -> list[FuzzRequest]:
    """A pixel with a domain, a Meta connection, e-mails: so that fuzzed operations find data."""
    setup = {
        "tenantId": TENANT,
        "input": {
            "pixelId": CONNECTED_PIXEL,
            "businessId": "2840127409433732",
            "accessToken": ACCESS_TOKEN,
            "apiVersion": "v14.0",
            "externalId": "633612748410ba6e902",
        },
    }
    bodies = [
        ("seed", graphql_body(PIXELS, {"event": {"action": "create", "pixel_id": SEEDED_PIXEL}})),
        (
            "seed",
            graphql_body(
                DOMAINS, {"event": {"pixel_id": SEEDED_PIXEL, "action": "add", "domain": "example.com"}}
            ),
        ),
        ("seed", graphql_body(SETUP, setup)),
        (
            "seed",
            graphql_body(
                PAGEVIEW, {"event": {"pixelId": SEEDED_PIXEL, "domain": "example.com", "email": EMAIL}}
            ),
        ),
        (
            "seed",
            graphql_body(
                TRACK,
                {
                    "event": {
                        "pixelId": CONNECTED_PIXEL,
                        "eventName": "Purchase",
                        "url": "https://example.com/",
                        "email": EMAIL,
                    }
                },
            ),
        ),
    ]
    requests = [FuzzRequest(kind, body, DEV_APP) for kind, body in bodies]
    # Invalid documents that carry the secret, the token and the e-mail inline, as the HeroPixel
    # documents' own examples carry credentials: their errors must not bring them into the log.
    requests += [
        FuzzRequest("invalid document with secrets inline", graphql_body(document), authorization)
        for document in INVALID_WITH_SECRETS
        for authorization in (DEV_APP, None)
    ]
    # Every hostile body of the corpus, with and without credentials.
    requests += [
        FuzzRequest(kind, body, authorization, content_type)
        for kind, body, content_type in HOSTILE_CORPUS
        for authorization in (DEV_APP, None)
    ]
    # Every introspection query, with and without credentials, on two paths.
    requests += [
        FuzzRequest("introspection", graphql_body(query), authorization, path=path)
        for query in INTROSPECTION
        for authorization in (DEV_APP, None)
        for path in PATHS[:2]
    ]
    return requests


def run_fuzzing(port: int, exchanges: list[Exchange]) -> None:
    deadline = time.monotonic() + BUDGET_SECONDS
    for request in seed_requests():
        exchanges.append(send(port, request))

    def fuzz(requests: tuple[FuzzRequest, FuzzRequest]) -> None:
        # Every other request with the dev app's Basic auth: half of them, whatever Hypothesis draws.
        if len(exchanges) < REQUESTS and time.monotonic() < deadline:
            exchanges.append(send(port, requests[len(exchanges) % 2]))

    # Hypothesis may end a run before max_examples (it skips what it has tried); go on until done.
    for round_number in range(10):
        if len(exchanges) >= REQUESTS or time.monotonic() >= deadline:
            break
        run = settings(
            max_examples=REQUESTS - len(exchanges),
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(given(requests=fuzz_requests())(fuzz))
        seed(SEED + round_number)(run)()


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    print(f"fuzzing with FUZZ_SEED={SEED}, FUZZ_REQUESTS={REQUESTS}, FUZZ_SECONDS={BUDGET_SECONDS}")
    stack = ProductionDevStack(tmp_path_factory.mktemp("fuzz") / "dynamodb")
    exchanges: list[Exchange] = []
    started = time.monotonic()
    try:
        stack.start()
        started = time.monotonic()
        run_fuzzing(stack.port, exchanges)
    finally:
        seconds = time.monotonic() - started
        output = stack.stop() if stack.process is not None else ""
    banner, _, logged = output.partition("Ctrl-C stops everything.")
    print(f"{len(exchanges)} requests in {seconds:.1f} s")
    if DUMP:
        dump(Path(DUMP), exchanges, output)
    return Campaign(exchanges, logged, "(stage prod)" in banner, seconds)


def dump(path: Path, exchanges: list[Exchange], log: str) -> None:
    with path.open("w") as file:
        for exchange in exchanges:
            request = exchange.request
            record = {
                "kind": request.kind,
                "path": request.path,
                "content_type": request.content_type,
                "authorization": request.authorization,
                "body": request.body.decode("utf-8", "replace"),
                "status": exchange.status,
                "answer": exchange.text,
                "error": exchange.error,
            }
            file.write(json.dumps(record) + "\n")
    path.with_suffix(".log").write_text(log)


def test_the_campaign_sends_the_configured_number_of_requests_to_a_production_stage_half_with_the_dev_app(
    campaign,
):
    assert campaign.started_in_production
    assert len(campaign.exchanges) >= REQUESTS, (
        f"only {len(campaign.exchanges)} of {REQUESTS} requests within FUZZ_SECONDS={BUDGET_SECONDS}"
    )
    with_dev_app = sum(exchange.request.authorization == DEV_APP for exchange in campaign.exchanges)
    assert 0.35 < with_dev_app / len(campaign.exchanges) < 0.65
    # The drawn operations meant to get through (generated from the schema, or seeded), sent with
    # the dev app, got past authentication and validation into the resolvers. About a third do
    # (30-38% over six seeds); the rest carry schema violations or ids of no pixel.
    aimed = [
        exchange
        for exchange in campaign.exchanges
        if exchange.request.category in {"generated", "seeded"} and exchange.request.authorization == DEV_APP
    ]
    reached = [exchange for exchange in aimed if reached_a_resolver(exchange)]
    assert len(reached) >= max(5, len(aimed) // 6), (
        f"only {len(reached)} of {len(aimed)} operations reached a resolver (FUZZ_SEED={SEED})"
    )


def reached_a_resolver(exchange: Exchange) -> bool:
    """Answered by a resolver of an authenticated operation: a HeroPixel envelope or a CAPIG error
    other than 401, or data beyond the `version` field."""
    payload = exchange.payload()
    if not isinstance(payload, dict):
        return False
    data, errors = payload.get("data"), payload.get("errors") or []
    envelopes = [node for node in walk(data) if isinstance(node, dict) and isinstance(node.get("code"), int)]
    resolver_errors = [error for error in errors if isinstance(error, dict) and error.get("path")]
    codes = [node["code"] for node in envelopes] + [
        e.get("extensions", {}).get("code") for e in resolver_errors
    ]
    answered = (
        isinstance(data, dict)
        and not errors
        and any(v is not None for k, v in data.items() if k != "version")
    )
    return answered or any(code != 401 for code in codes)


def test_no_fuzzed_request_is_answered_with_a_5xx_or_left_without_an_answer(campaign):
    failures = campaign.matching(lambda e: e.status is None or e.status >= 500)
    assert not failures, report(campaign, "got a 5xx or no answer", failures)


def test_no_fuzzed_request_meets_an_internal_error_in_the_body_either(campaign):
    def internal_error(exchange: Exchange) -> bool:
        return "Internal server error" in exchange.text or any(
            isinstance(node, dict) and node.get("code") == 500 for node in walk(exchange.payload())
        )

    failures = campaign.matching(internal_error)
    assert not failures, report(campaign, "were answered with an internal error (code 500)", failures)


def test_no_answer_carries_a_stack_trace(campaign):
    failures = campaign.matching(lambda e: "Traceback" in e.text or 'File "' in e.text)
    assert not failures, report(campaign, "show a stack trace", failures)


def test_no_answer_carries_introspection_data_in_production(campaign):
    def introspected(exchange: Exchange) -> bool:
        payload = exchange.payload()
        data = payload.get("data") if isinstance(payload, dict) else None
        return any(isinstance(node, dict) and INTROSPECTION_KEYS & set(node) for node in walk(data))

    failures = campaign.matching(introspected)
    assert not failures, report(campaign, "returned introspection data", failures)
    refused = [e for e in campaign.exchanges if e.request.kind.startswith("introspection")]
    assert len(refused) >= len(INTROSPECTION) * 4
    assert all(e.status == 400 or (e.payload() or {}).get("errors") for e in refused)


def test_no_answer_suggests_names_of_the_schema_with_did_you_mean(campaign):
    failures = campaign.matching(lambda e: "did you mean" in e.text.lower())
    assert not failures, report(campaign, 'suggest names ("Did you mean")', failures)


def test_the_server_log_holds_no_app_secret_access_token_or_e_mail(campaign):
    email_md5 = hashlib.md5(EMAIL.encode()).hexdigest()  # noqa: S324  # the visitor identity the API uses
    email_sha256 = hashlib.sha256(EMAIL.encode()).hexdigest()
    assert campaign.log.strip()
    # graphql-core wraps the document lines it quotes at 80 characters ("\n  | " goes on a line).
    log = campaign.log + "\n" + campaign.log.replace("\n  | ", "")
    found = {
        name: secret
        for name, secret in {
            "the dev app's secret": APP_SECRET,
            "its Basic auth header": DEV_APP.split()[1],
            "the access token": ACCESS_TOKEN,
            "the e-mail": EMAIL,
            "the e-mail, upper case": EMAIL.upper(),
            "the e-mail's MD5": email_md5,
            "the e-mail's SHA-256": email_sha256,
        }.items()
        if secret in log
    }
    lines = [line[:300] for line in log.splitlines() if any(s in line for s in found.values())]
    assert not found, f"the server log shows {', '.join(found)} (FUZZ_SEED={SEED}):\n" + "\n".join(lines[:5])


def walk(value: Any) -> Iterator[Any]:
    """Every dict and list inside a JSON value, the value itself first."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            yield node
            stack.extend(node)
