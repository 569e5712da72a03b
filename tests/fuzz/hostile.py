"""Hostile inputs: bodies, content types and credentials meant to break the server rather than to use
it, and the fixed corpus of those that once did."""

import base64
import json

from hypothesis import strategies as st

from tests.fuzz.strategies import (
    ACCESS_TOKEN,
    APP_ID,
    APP_SECRET,
    CONNECTED_PIXEL,
    EMAIL,
    INTROSPECTION,
    JSON_VALUES,
    PAGEVIEW,
    PIXELS,
    SEEDED_PIXEL,
    STATS,
    TENANT,
    basic,
    graphql_body,
)
from tests.support.documents import SETUP, TRACK


def nested(depth: int, opening: str, closing: str, inner: str = "") -> str:
    return opening * depth + inner + closing * depth


def nested_custom_data(depth: int) -> bytes:
    custom_data = nested(depth, '{"a": ', "}", "1")
    event = f'{{"pixelId": "{CONNECTED_PIXEL}", "eventName": "Purchase", "domain": "example.com", "customData": {custom_data}}}'
    return f'{{"query": {json.dumps(TRACK)}, "variables": {{"event": {event}}}}}'.encode()


HUGE = st.sampled_from([10_000, 100_000, 1_000_000])
DEPTHS = st.sampled_from([64, 1_000, 20_000])
HOSTILE_BODIES: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    JSON_VALUES.map(lambda value: ("random JSON", json.dumps(value).encode())),
    JSON_VALUES.map(lambda value: ("query of the wrong type", json.dumps({"query": value}).encode())),
    st.tuples(st.sampled_from([PIXELS, PAGEVIEW, SETUP, STATS]), JSON_VALUES | st.text()).map(
        lambda q: ("variables of the wrong type", json.dumps({"query": q[0], "variables": q[1]}).encode())
    ),
    JSON_VALUES.map(
        lambda value: (
            "operationName of the wrong type",
            json.dumps({"query": "{ version }", "operationName": value}).encode(),
        )
    ),
    st.binary(max_size=3000).map(lambda garbage: ("garbage bytes", garbage)),
    st.text(max_size=3000).map(lambda garbage: ("garbage text", garbage.encode("utf-8", "surrogatepass"))),
    st.tuples(st.sampled_from([PIXELS, PAGEVIEW, SETUP, TRACK]), st.integers(1, 200)).map(
        lambda cut: ("truncated JSON", graphql_body(cut[0], {"event": {"pixelId": 1}})[: cut[1]])
    ),
    HUGE.map(lambda n: ("huge query", json.dumps({"query": "{ version " + "x" * n + " }"}).encode())),
    HUGE.map(lambda n: ("huge string literal", graphql_body(f'{{ version(x: "{"y" * n}") }}'))),
    HUGE.map(
        lambda n: (
            "huge variables",
            graphql_body(PAGEVIEW, {"event": {"pixelId": SEEDED_PIXEL, "domain": "a" * n, "email": EMAIL}}),
        )
    ),
    HUGE.map(lambda n: ("huge variable names", graphql_body("{ version }", {"v" * n: 1}))),
    DEPTHS.map(lambda d: ("deeply nested selections", graphql_body(nested(d, "{ a ", "}")))),
    DEPTHS.map(
        lambda d: (
            "deeply nested lists in a document",
            graphql_body(f"{{ version(x: {nested(d, '[', ']')}) }}"),
        )
    ),
    DEPTHS.map(
        lambda d: (
            "deeply nested JSON",
            ('{"query": "{ version }", "variables": {"v": ' + nested(d, "[", "]") + "}}").encode(),
        )
    ),
    DEPTHS.map(lambda d: ("deeply nested customData", nested_custom_data(d))),
    st.sampled_from([100, 2_000, 20_000]).map(
        lambda n: ("many aliases", graphql_body("{ " + " ".join(f"a{i}: version" for i in range(n)) + " }"))
    ),
    st.sampled_from([10, 100]).map(
        lambda n: (
            "many aliases of a resolver",
            graphql_body(
                "{ "
                + " ".join(
                    f'a{i}: tenantQueries(tenantId: "{TENANT}") {{ account {{ signalConfigs {{ id }} }} }}'
                    for i in range(n)
                )
                + " }"
            ),
        )
    ),
    st.sampled_from([2, 50]).map(
        lambda n: ("batched operations", json.dumps([{"query": "{ version }"}] * n).encode())
    ),
    st.sampled_from([*INTROSPECTION, "{ version }", PIXELS]).map(
        lambda query: ("raw document", query.encode())
    ),
    st.sampled_from(
        [
            ("lone surrogate in variables", b'{"query": "{ version }", "variables": {"v": "\\ud800"}}'),
            (
                "lone surrogate in a domain",
                b'{"query": "mutation V($e: PageviewEventInput!) { pageview(event: $e) { code } }", '
                b'"variables": {"e": {"pixelId": 123, "domain": "\\udfff.example.com"}}}',
            ),
            ("lone surrogate in the query", b'{"query": "{ version(x: \\"\\ud800\\") }"}'),
            ("NUL in the query", b'{"query": "{ version \\u0000 }"}'),
            ("duplicate keys", b'{"query": "{ version }", "query": "{ __schema { types { name } } }"}'),
            ("empty body", b""),
            ("empty object", b"{}"),
            ("null query", b'{"query": null}'),
            ("two operations, no name", b'{"query": "query A { version } query B { version }"}'),
            ("unknown operation name", b'{"query": "query A { version }", "operationName": "B"}'),
            ("subscription", b'{"query": "subscription { version }"}'),
            ("undefined variable", b'{"query": "query Q { stats(event: $e) { code } }"}'),
            ("invalid UTF-8", b'{"query": "{ version }", "variables": {"v": "\xff\xfe"}}'),
        ]
    ),
)
CONTENT_TYPES = (
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/graphql",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "application/octet-stream",
        ]
    )
    | st.none()
)
BAD_CREDENTIALS = st.one_of(
    st.sampled_from(
        [
            ("no credentials", None),
            ("wrong secret", basic(APP_ID, APP_SECRET + "x")),
            ("unknown app", basic("nobody", APP_SECRET)),
            ("empty secret", basic(APP_ID, "")),
            ("bearer", "Bearer " + APP_SECRET),
            ("not base64", "Basic !!!"),
            ("oversized", "Basic " + "A" * 20_000),
        ]
    ),
    st.binary(max_size=64).map(
        lambda raw: ("Basic of random bytes", "Basic " + base64.b64encode(raw).decode())
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(
        lambda text: ("random header", text)
    ),
)


INVALID_WITH_SECRETS = (
    f'mutation {{ pageview(auth: {{ appId: "{APP_ID}", appSecret: "{APP_SECRET}" }}, '
    f'event: {{ pixelId: {SEEDED_PIXEL}, domain: "example.com", email: "{EMAIL}", emial: "x" }}) {{ code }} }}',
    f'mutation {{ tenantMutations(tenantId: "{TENANT}") {{ signalMutations {{ setupPixelSignalConfig(input: '
    f'{{ pixelId: "{CONNECTED_PIXEL}", accessToken: "{ACCESS_TOKEN}", externalId: "e" }}) {{ id }} }} }} }}',
    f'mutation {{ track(event: {{ pixelId: "{CONNECTED_PIXEL}", eventName: "Purchase", email: "{EMAIL}", '
    f'eventTime: "yesterday" }}) {{ code }} }}',
)
# Hostile bodies sent in every run, however short: each was once answered with a 5xx, an internal
# error or no answer at all.
HOSTILE_CORPUS: list[tuple[str, bytes, str | None]] = [
    ("multipart/form-data", graphql_body("{ version }"), "multipart/form-data; boundary=xyz"),
    (
        "invalid UTF-8 as JSON",
        b'{"query": "{ version }", "variables": {"v": "\xff\xfe"}}',
        "application/json",
    ),
    ("invalid UTF-8 as text", b"\xc0", "text/plain"),
    (
        "JSON nested 20000 deep",
        ('{"query": "{ version }", "variables": {"v": ' + nested(20_000, "[", "]") + "}}").encode(),
        "application/json",
    ),
    ("customData nested 1000 deep", nested_custom_data(1_000), "application/json"),
    ("selections nested 3000 deep", graphql_body(nested(3_000, "{ a ", "}")), "application/json"),
    (
        "list literal nested 10000 deep",
        graphql_body(f"{{ version(x: {nested(10_000, '[', ']')}) }}"),
        "application/json",
    ),
    (
        "3000 aliases",
        graphql_body("{ " + " ".join(f"a{i}: version" for i in range(3_000)) + " }"),
        "application/json",
    ),
    ("lone surrogate", b'{"query": "{ version(x: \\"\\ud800\\") }"}', "application/json"),
    ("batch", json.dumps([{"query": "{ version }"}] * 3).encode(), "application/json"),
    ("empty body", b"", None),
]
