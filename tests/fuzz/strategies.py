"""What the fuzz campaign draws and aims at: operations generated from schema/*.graphql (steered
onto the dev tenant and its pixels), the seeded operations carrying a distinctive e-mail and access
token, and near-misses of the schema's names."""

import base64
import json
from collections.abc import Callable
from typing import Any

import graphql
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from tests.support.dev_stack import REPO_ROOT
from tests.support.documents import SETUP, TENANT_QUERIES, TRACK

# Distinctive values, to be looked for in the server's log.
APP_ID = "fuzz-dev-app"
APP_SECRET = "fuzz-dev-secret-5d0c1e9b7a"
ACCESS_TOKEN = "EAAFuzzAccessToken7c41d2e8b9a0f3"
EMAIL = "fuzz.visitor.93c5d1@example.org"
TENANT = "IaoreXfj"  # make dev's tenant
SEEDED_PIXEL = 123
CONNECTED_PIXEL = "18904456377094531"
PATHS = ("/graphql", "/capig/graphql/", "/capig/graphql")

SCHEMA = graphql.build_schema(
    "\n".join(path.read_text() for path in sorted((REPO_ROOT / "schema").glob("*.graphql")))
)

# The HeroPixel operations as the campaign sends them, with Basic auth.
PIXELS = "mutation P($event: ApiPixelsEventInput!) { pixels(event: $event) { code data message } }"
DOMAINS = "mutation D($event: ApiDomainsEventInput!) { domains(event: $event) { code data message } }"
PAGEVIEW = "mutation V($event: PageviewEventInput!) { pageview(event: $event) { code data message } }"
STATS = "query S($event: ApiStatsEventInput!) { stats(event: $event) { code data message } }"
INTROSPECTION = (
    graphql.get_introspection_query(),
    "{ __schema { types { name } } }",
    "query { __schema { queryType { name } mutationType { name } } }",
    '{ __type(name: "Mutation") { name fields { name args { name } } } }',
    '{ t: __type(name: "PixelConnectionCreationInput") { inputFields { name } } }',
    "{ version s: __schema { types { name kind } } }",
    "query { ...F } fragment F on Query { __schema { directives { name } } }",
    "mutation { __typename } query Q { __schema { types { name } } }",
)


def basic(app_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{app_id}:{secret}".encode()).decode()


DEV_APP = basic(APP_ID, APP_SECRET)  # the dev app's Authorization header


def graphql_body(query: str, variables: Any = None) -> bytes:
    return json.dumps({"query": query, "variables": variables}).encode()


JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def loose[T](strategy: st.SearchStrategy[T]) -> st.SearchStrategy[Any]:
    """Mostly the expected kind of value (so that many requests reach the resolvers), now and then
    anything at all."""
    return st.one_of(*[strategy] * 7, JSON_VALUES)


def value_node_of(value: Any) -> graphql.ValueNode:
    if isinstance(value, dict):
        return nodes.Object(
            [
                graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=value_node_of(v))
                for k, v in value.items()
            ]
        )
    if isinstance(value, list):
        return nodes.List([value_node_of(v) for v in value])
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    return nodes.String(value)


NAMES = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,10}\Z")
JSON_LITERALS = st.recursive(
    st.integers(-(2**31), 2**31 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(NAMES, children, max_size=4),
    max_leaves=10,
).map(value_node_of)
KNOWN_PIXELS = st.sampled_from([str(SEEDED_PIXEL), CONNECTED_PIXEL])
PIXEL_ID_LITERALS = st.one_of(
    KNOWN_PIXELS.map(nodes.String),
    KNOWN_PIXELS.map(lambda pixel: nodes.Int(int(pixel))),
    st.integers(0, 2**64 + 10).map(nodes.Int),
    st.from_regex(r"\A[0-9]{1,22}\Z").map(nodes.String),
)
CUSTOM_SCALARS = {"PixelId": PIXEL_ID_LITERALS, "JSON": JSON_LITERALS}


def as_document(document: graphql.DocumentNode) -> graphql.DocumentNode:
    return document


GENERATED = st.one_of(
    queries(SCHEMA, custom_scalars=CUSTOM_SCALARS, print_ast=as_document),
    mutations(SCHEMA, custom_scalars=CUSTOM_SCALARS, print_ast=as_document),
    queries(SCHEMA, custom_scalars=CUSTOM_SCALARS, print_ast=as_document, mode=Mode.NEGATIVE),
    mutations(SCHEMA, custom_scalars=CUSTOM_SCALARS, print_ast=as_document, mode=Mode.NEGATIVE),
)


class Steer(graphql.Visitor):
    """Points a generated document at the dev tenant and a known pixel, and carries the e-mail and
    token to be looked for in the log; drops inline `auth`, so that the request's Basic auth counts."""

    def __init__(self, pixel: str) -> None:
        super().__init__()
        self.pixel = pixel

    def enter_argument(self, node: graphql.ArgumentNode, *_args: Any) -> Any:
        replacements = {"tenantId": TENANT, "id": self.pixel}
        if node.name.value == "auth":
            return graphql.REMOVE
        if node.name.value in replacements:
            return graphql.ArgumentNode(name=node.name, value=nodes.String(replacements[node.name.value]))
        return None

    def enter_object_field(self, node: graphql.ObjectFieldNode, *_args: Any) -> Any:
        replacements = {
            "email": EMAIL,
            "accessToken": ACCESS_TOKEN,
            "pixelId": self.pixel,
            "pixel_id": self.pixel,
        }
        if node.name.value in replacements:
            return graphql.ObjectFieldNode(name=node.name, value=nodes.String(replacements[node.name.value]))
        return None


@st.composite
def generated_operations(draw: st.DrawFn) -> tuple[str, bytes]:
    document = draw(GENERATED)
    if draw(st.integers(0, 3)):  # mostly: random tenant ids and pixel ids rarely get past a 401 or 404
        document = graphql.visit(document, Steer(draw(KNOWN_PIXELS)))
        return "generated, steered", json.dumps({"query": graphql.print_ast(document)}).encode()
    return "generated", json.dumps({"query": graphql.print_ast(document)}).encode()


DOMAIN_VALUES = st.sampled_from(
    ["example.com", "shop.example.com", "https://www.example.com/p?q=1"]
) | st.text(max_size=60)
PIXEL_VALUES = st.one_of(
    KNOWN_PIXELS,
    KNOWN_PIXELS,
    KNOWN_PIXELS.map(int),
    KNOWN_PIXELS.map(int),
    st.integers(-5, 2**65),
    st.text(max_size=25),
)
SEEDED_OPERATIONS = st.one_of(
    st.builds(
        lambda event: ("pageview with the e-mail", graphql_body(PAGEVIEW, {"event": event})),
        st.fixed_dictionaries(
            {"email": st.just(EMAIL), "pixelId": loose(PIXEL_VALUES), "domain": loose(DOMAIN_VALUES)},
            optional={"md5": loose(st.text(max_size=40))},
        ),
    ),
    st.builds(
        lambda event: ("track with the e-mail", graphql_body(TRACK, {"event": event})),
        st.fixed_dictionaries(
            {
                "email": st.sampled_from([EMAIL, f"  {EMAIL.upper()} ", f"not-an-email {EMAIL}"]),
                "pixelId": loose(PIXEL_VALUES),
                "eventName": loose(
                    st.sampled_from(["PageView", "Purchase", "AddToCart"]) | st.text(max_size=40)
                ),
            },
            optional={
                "url": loose(st.sampled_from(["https://example.com/a", "javascript:alert(1)"]) | st.text()),
                "domain": loose(DOMAIN_VALUES),
                "eventId": loose(st.text(max_size=40)),
                "eventTime": loose(st.integers()),
                "customData": loose(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4)),
            },
        ),
    ),
    st.builds(
        lambda variables: ("setup with the access token", graphql_body(SETUP, variables)),
        st.fixed_dictionaries(
            {
                "tenantId": loose(st.sampled_from([TENANT, "someone-else"])),
                "input": st.fixed_dictionaries(
                    {
                        "pixelId": loose(PIXEL_VALUES.map(str)),
                        "businessId": loose(st.sampled_from(["2840127409433732"]) | st.text(max_size=30)),
                        "accessToken": st.sampled_from(
                            [
                                ACCESS_TOKEN,
                                f"  {ACCESS_TOKEN}  ",
                                ACCESS_TOKEN + "x" * 5000,
                                f"{ACCESS_TOKEN}\x00",
                            ]
                        ),
                        "externalId": loose(st.sampled_from(["633612748410ba6e902"]) | st.text(max_size=30)),
                    },
                    optional={
                        "apiVersion": loose(st.sampled_from(["v14.0", "14", "v999.99"])),
                        "name": st.text(),
                    },
                ),
            }
        ),
    ),
    st.builds(
        lambda event: ("pixels", graphql_body(PIXELS, {"event": event})),
        st.fixed_dictionaries(
            {"action": loose(st.sampled_from(["create", "get", "list"]))},
            optional={
                "pixel_id": loose(PIXEL_VALUES),
                "name": st.text(),
                "tenant_id": loose(st.just(TENANT)),
            },
        ),
    ),
    st.builds(
        lambda event: ("domains", graphql_body(DOMAINS, {"event": event})),
        st.fixed_dictionaries(
            {"pixel_id": loose(PIXEL_VALUES), "action": loose(st.sampled_from(["add", "remove", "list"]))},
            optional={"domain": loose(DOMAIN_VALUES)},
        ),
    ),
    st.builds(
        lambda event: ("stats", graphql_body(STATS, {"event": event})),
        st.fixed_dictionaries(
            {
                "pixel_id": loose(PIXEL_VALUES),
                "from": loose(st.dates().map(str) | st.text(max_size=12)),
                "to": loose(st.dates().map(str) | st.text(max_size=12)),
            }
        ),
    ),
    st.builds(
        lambda tenant: ("tenantQueries", graphql_body(TENANT_QUERIES, {"tenantId": tenant})),
        loose(st.sampled_from([TENANT, "someone-else"])),
    ),
)


def schema_names() -> dict[str, list[str]]:
    types = SCHEMA.type_map.values()
    return {
        "query field": sorted(SCHEMA.query_type.fields) if SCHEMA.query_type else [],
        "mutation field": sorted(SCHEMA.mutation_type.fields) if SCHEMA.mutation_type else [],
        "input type": sorted(t.name for t in types if isinstance(t, graphql.GraphQLInputObjectType)),
        "object field": sorted(
            {name for t in types if isinstance(t, graphql.GraphQLObjectType) for name in t.fields}
            - {"__schema", "__type"}
        ),
        "input field": sorted(
            {name for t in types if isinstance(t, graphql.GraphQLInputObjectType) for name in t.fields}
        ),
        "enum value": sorted(
            {
                value
                for t in types
                if isinstance(t, graphql.GraphQLEnumType) and not t.name.startswith("__")
                for value in t.values
            }
        ),
    }


NAMES_BY_KIND = schema_names()
# Where a near-miss of each kind of name goes: each document is invalid only by that name.
NEAR_MISS_TEMPLATES: dict[str, Callable[[str], str]] = {
    "query field": lambda name: f"{{ {name} }}",
    "mutation field": lambda name: f'mutation {{ {name}(event: {{action: "list"}}) {{ code }} }}',
    "input type": lambda name: f"query Q($e: {name}!) {{ stats(event: $e) {{ code }} }}",
    "object field": lambda name: f'{{ tenantQueries(tenantId: "{TENANT}") {{ account {{ {name} }} }} }}',
    "input field": lambda name: f'mutation {{ pixels(event: {{ action: "list", {name}: "1" }}) {{ code }} }}',
    "enum value": lambda name: (
        f'mutation {{ tenantMutations(tenantId: "{TENANT}") {{ updateDomainFilter(input: '
        f'{{domain: "example.com", filterState: {name}}}) {{ updatedFilter {{ id }} }} }} }}'
    ),
}


@st.composite
def near_misses(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real name of the schema, one typo away: what graphql-core answers with "Did you mean"."""
    kind = draw(st.sampled_from(sorted(NEAR_MISS_TEMPLATES)))
    name = draw(st.sampled_from(NAMES_BY_KIND[kind]))
    at = draw(st.integers(1, len(name) - 1)) if len(name) > 1 else 0
    edit = draw(st.sampled_from(["drop", "double", "swap", "case"]))
    typo = {
        "drop": name[:at] + name[at + 1 :],
        "double": name[:at] + name[at] * 2 + name[at + 1 :],
        "swap": name[: at - 1] + name[at] + name[at - 1] + name[at + 1 :] if at else name + "s",
        "case": name[:at] + name[at].swapcase() + name[at + 1 :],
    }[edit]
    if typo == name or not typo:
        typo = name + "x"
    return f"near-miss {kind}", graphql_body(NEAR_MISS_TEMPLATES[kind](typo))
