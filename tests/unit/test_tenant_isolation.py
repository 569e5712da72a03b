"""Tenant isolation as a property: whatever an app does, it never reads or changes another tenant's data.

Each example builds a fresh little world (tenants, apps bound to one or several of them, pixels with
domains, filters and Meta connections), then lets random apps run a random sequence of HeroPixel
and CAPIG operations on random pixels and tenants through the executable schema. A reference model
says what every answer must be; after each operation, a read of the whole table checks that no tenant
the operation had no right to touch has changed, no event was queued for one, and no answer carries
another tenant's data (its ids, domains or filter names) beyond what the request itself named.
"""

import base64
import itertools
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from graphql_api.resolvers.errors import format_error
from pixel_core import auth, intake, queues
from pixel_core.auth import forget_verified_apps
from pixel_core.clock import utc_now
from pixel_core.models import AppItem, DomainItem, PixelItem, TableItem, TenantItem
from pixel_core.pixels import forget_recent_pixels
from tests.support.documents import (
    CAPI_PUBLISH,
    DELETE,
    DOMAIN_FILTER,
    EVENT_FILTER,
    EVENTS_STATUS,
    SETUP,
    TENANT_QUERIES,
    TRACK,
)

TABLE = "pixel-gateway-test"
EMAIL = "isolation.visitor@example.org"
DAY_RANGE = {"from": "2026-11-01", "to": "2026-11-30"}
DOMAINS = (
    "mutation D($auth: AuthRequestInput, $event: ApiDomainsEventInput!) "
    "{ domains(auth: $auth, event: $event) { code data message } }"
)
PIXELS = (
    "mutation P($auth: AuthRequestInput, $event: ApiPixelsEventInput!) "
    "{ pixels(auth: $auth, event: $event) { code data message } }"
)
PAGEVIEW = (
    "mutation V($auth: AuthRequestInput, $event: PageviewEventInput!) "
    "{ pageview(auth: $auth, event: $event) { code data message } }"
)
STATS = (
    "query S($auth: AuthRequestInput, $event: ApiStatsEventInput!) "
    "{ stats(auth: $auth, event: $event) { code data message } }"
)
# Every execution of an example gets ids of its own: Hypothesis replays examples while shrinking.
_worlds = itertools.count(1)

type Answer = dict[str, Any]
type Snapshot = dict[str, dict[tuple[str, str], Any]]


@dataclass(frozen=True)
class IsolationApp:
    app_id: str
    app_secret: str
    tenants: frozenset[str]

    @property
    def header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.app_id}:{self.app_secret}".encode()).decode()


@dataclass
class World:
    """The reference model: what the table should hold, as far as isolation is concerned."""

    number: int
    tenants: list[str]
    apps: list[IsolationApp]
    owner: dict[int, str | None]  # pixel id -> its tenant; None once deleted (or never created)
    former_owner: dict[int, str]
    # Deleted pixels whose clean-up has not run (these tests never run it): their ids stay taken.
    deleting: set[int]
    domains: dict[int, set[str]]
    # tenant -> {(kind, subject, pixel id or None for global): state}
    filters: dict[str, dict[tuple[str, str, int | None], str]]
    domain_pool: list[str]
    event_names: list[str]
    fresh_pixel_ids: Iterator[int] = field(default_factory=lambda: iter(()))

    def pixels_of(self, tenant: str) -> list[int]:
        return sorted(p for p, t in self.owner.items() if t == tenant)

    def markers_of(self, tenants: set[str]) -> set[str]:
        """Strings that identify the data of these tenants: ids, domains, filter subjects."""
        markers = set(tenants)
        for pixel, tenant in self.owner.items():
            if tenant in tenants:
                markers.add(str(pixel))
                markers.update(self.domains[pixel])
        for tenant in tenants:
            markers.update(subject for _kind, subject, _pixel in self.filters[tenant])
        return markers


def world_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """The shape of a world: how many tenants, which app is bound to which, what each pixel has."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        tenants = draw(st.integers(2, 3))
        bindings = draw(
            st.lists(
                st.sets(st.integers(0, tenants - 1), min_size=1, max_size=tenants), min_size=1, max_size=3
            )
        )
        pixels = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "tenant": st.integers(0, tenants - 1),
                        "domain": st.none() | st.integers(0, 3),
                        "event_filter": st.none() | st.integers(0, 2),
                        "domain_filter": st.none() | st.integers(0, 3),
                        "connected": st.booleans(),
                    }
                ),
                min_size=1,
                max_size=4,
            )
        )
        global_filters = draw(st.lists(st.tuples(st.integers(0, tenants - 1), st.integers(0, 2)), max_size=2))
        return {"tenants": tenants, "bindings": bindings, "pixels": pixels, "global_filters": global_filters}

    return build()


def build_world(shape: dict[str, Any]) -> World:
    """Writes the world in one or two BatchWriteItem calls: items as the API itself would store them."""
    number = next(_worlds)
    uid = f"{number:06d}"
    tenants = [f"ten{uid}x{k}" for k in range(shape["tenants"])]
    apps = [
        IsolationApp(f"app{uid}x{k}", secrets.token_urlsafe(16), frozenset(tenants[t] for t in bound))
        for k, bound in enumerate(shape["bindings"])
    ]
    base = 10**15 + number * 100
    world = World(
        number=number,
        tenants=tenants,
        apps=apps,
        owner={},
        former_owner={},
        deleting=set(),
        domains={},
        filters={tenant: {} for tenant in tenants},
        domain_pool=[f"d{k}-{uid}.example" for k in range(4)],
        event_names=[f"Ev{uid}x{k}" for k in range(3)],
        fresh_pixel_ids=iter(range(base + 50, base + 100)),
    )
    now = utc_now()
    items: list[TableItem] = []
    global_filters: dict[str, dict[str, str]] = {tenant: {} for tenant in tenants}
    for tenant_index, name_index in shape["global_filters"]:
        tenant, name = tenants[tenant_index], world.event_names[name_index]
        global_filters[tenant][name] = "PUBLISH"
        world.filters[tenant][("event", name, None)] = "PUBLISH"
    for tenant in tenants:
        items.append(
            TenantItem(
                *TenantItem.key(tenant),
                tenant_id=tenant,
                created_at=now,
                event_filters=global_filters[tenant],
                domain_filters={},
            )
        )
    for app in apps:
        items.append(
            AppItem(
                *AppItem.key(app.app_id),
                app_id=app.app_id,
                secret_sha256=auth.secret_digest(app.app_secret),
                tenant_ids=set(app.tenants),
                created_at=now,
            )
        )
    for k, spec in enumerate(shape["pixels"]):
        pixel_id, tenant = base + k, tenants[spec["tenant"]]
        world.owner[pixel_id], world.former_owner[pixel_id], world.domains[pixel_id] = tenant, tenant, set()
        event_filters, domain_filters = {}, {}
        if spec["domain"] is not None:
            domain = world.domain_pool[spec["domain"]]
            world.domains[pixel_id].add(domain)
            items.append(
                DomainItem(
                    *DomainItem.key(pixel_id, domain),
                    domain_id=base + k,
                    pixel_id=str(pixel_id),
                    domain=domain,
                    created_at=now,
                    updated_at=now,
                )
            )
        if spec["event_filter"] is not None:
            name = world.event_names[spec["event_filter"]]
            event_filters[name] = "DROP"
            world.filters[tenant][("event", name, pixel_id)] = "DROP"
        if spec["domain_filter"] is not None:
            domain = world.domain_pool[spec["domain_filter"]]
            domain_filters[domain] = "ALLOW"
            world.filters[tenant][("domain", domain, pixel_id)] = "ALLOW"
        # A stand-in ciphertext: none of these operations decrypts the token.
        connection = (
            {"business_id": "b1", "external_id": "e1", "access_token_ciphertext": "not-a-real-ciphertext"}
            if spec["connected"]
            else {}
        )
        items.append(
            PixelItem.new(
                pixel_id,
                tenant,
                created_at=now,
                domains=set(world.domains[pixel_id]),
                event_filters=event_filters,
                domain_filters=domain_filters,
                **connection,
            )
        )
    with TableItem.batch_write() as batch:
        for item in items:
            batch.save(item)
    return world


def stored_items() -> list[dict[str, Any]]:
    """Every item of the table, read from moto's memory: a Scan through moto costs ~3 ms per item."""
    table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(TABLE)
    return [item.to_json()["Attributes"] for item in table.all_items()]


def snapshot(world: World) -> Snapshot:
    """Every item of the table, by the tenant whose data it is (apps and id sequences aside)."""
    items = stored_items()
    pixel_owner = {
        item["pk"]["S"]: item["tenant_id"]["S"]
        for item in items
        if item.get("item_type", {}).get("S") == "pixel"
    }
    by_tenant: Snapshot = {}
    for item in items:
        pk, sk = item["pk"]["S"], item["sk"]["S"]
        if pk.startswith(("APP#", "SEQUENCE#")):
            continue
        if pk.startswith("TENANT#"):
            bucket = pk.removeprefix("TENANT#")
        elif pk.startswith("PIXEL#"):
            former = world.former_owner.get(int(pk.removeprefix("PIXEL#")), "<nobody>")
            bucket = pixel_owner.get(pk, former)
        else:
            bucket = "<other>"
        by_tenant.setdefault(bucket, {})[(pk, sk)] = item
    return by_tenant


def clear_table(client: Any) -> None:
    """Each example starts from an empty table (id sequences aside), so that scans stay small."""
    keys = [
        {"pk": item["pk"], "sk": item["sk"]}
        for item in stored_items()
        if not item["pk"]["S"].startswith("SEQUENCE#")
    ]
    for start in range(0, len(keys), 25):
        chunk = keys[start : start + 25]
        client.batch_write_item(RequestItems={TABLE: [{"DeleteRequest": {"Key": key}} for key in chunk]})


@dataclass
class Call:
    """One operation as sent, and what the model expects of it."""

    description: str
    query: str
    variables: dict[str, Any]
    header: str | None
    # The tenants whose data this operation may change; every other tenant's must stay as it was.
    may_change: set[str]


def envelope(result: Any, name: str) -> Answer:
    assert result.errors is None, result.errors
    return dict(result.data[name])


def graphql_errors(result: Any) -> list[tuple[int, str]]:
    return [(format_error(error)["extensions"]["code"], error.message) for error in result.errors or []]


def not_found(pixel: int) -> Answer:
    return {"code": 404, "data": {}, "message": f"Pixel {pixel} not found"}


UNAUTHORIZED_ACCOUNT = [(401, "Not authorized for this account")]


class Runner:
    """Sends the operations through the executable schema and checks each against the model."""

    def __init__(self, world: World, gql: Any, sent_events: list[Any]) -> None:
        self.world = world
        self.gql = gql
        self.sent_events = sent_events
        self.before = snapshot(world)

    def auth_of(self, app: IsolationApp, inline: bool) -> tuple[dict[str, Any], str | None]:
        if inline:
            return {"auth": {"appId": app.app_id, "appSecret": app.app_secret}}, None
        return {}, app.header

    def execute(self, app: IsolationApp, call: Call) -> Any:
        events_before = len(self.sent_events)
        result = self.gql(call.query, call.variables, call.header)
        answer_text = json.dumps({"data": result.data, "errors": [e.message for e in result.errors or []]})
        request_text = call.query + json.dumps(call.variables)
        # No answer carries data of a tenant the app is not bound to (beyond what the request named).
        foreign = set(self.world.tenants) - app.tenants
        visible = self.world.markers_of(set(app.tenants))
        for marker in self.world.markers_of(foreign) - visible:
            assert marker not in answer_text or marker in request_text, (
                f"{call.description}: the answer shows {marker!r} of another tenant: {answer_text}"
            )
        # No tenant outside the operation's reach changed.
        after = snapshot(self.world)
        for bucket in set(self.before) | set(after):
            if bucket not in call.may_change:
                assert self.before.get(bucket) == after.get(bucket), (
                    f"{call.description} by an app of {sorted(app.tenants)} changed the data of {bucket}"
                )
        self.before = after
        new_events = self.sent_events[events_before:]
        assert all(event.tenant_id in call.may_change for event in new_events), (
            f"{call.description}: queued an event for another tenant"
        )
        return result

    # HeroPixel -------------------------------------------------------------------------------

    def domains(self, app: IsolationApp, inline: bool, pixel: int, action: str, domain: str) -> None:
        auth_vars, header = self.auth_of(app, inline)
        event: dict[str, Any] = {"pixel_id": pixel, "action": action}
        if action != "list":
            event["domain"] = domain
        owner = self.world.owner.get(pixel)
        visible = owner is not None and owner in app.tenants
        call = Call(
            f"domains {action} {domain} on pixel {pixel}",
            DOMAINS,
            {**auth_vars, "event": event},
            header,
            {owner} if visible and owner else set(),
        )
        answer = envelope(self.execute(app, call), "domains")
        if not visible:
            assert answer == not_found(pixel), call.description
            return
        attached = self.world.domains[pixel]
        if action == "list":
            assert answer["code"] == 200
            assert sorted(d["domain"] for d in answer["data"]["domains"]) == sorted(attached)
        elif action == "add" and domain in attached:
            assert answer["code"] == 409, answer
        elif action == "add":
            assert answer == {
                "code": 200,
                "data": {"domain": domain, "pixel_id": pixel},
                "message": "Success",
            }
            attached.add(domain)
        elif domain in attached:
            assert answer["code"] == 200, answer
            attached.discard(domain)
        else:
            assert answer == {"code": 404, "data": {}, "message": f"Domain {domain} not found for this pixel"}

    def pixels_get_or_delete(self, app: IsolationApp, inline: bool, pixel: int, action: str) -> None:
        auth_vars, header = self.auth_of(app, inline)
        owner = self.world.owner.get(pixel)
        visible = owner is not None and owner in app.tenants
        may_change = {owner} if visible and owner and action == "delete" else set()
        call = Call(
            f"pixels {action} {pixel}",
            PIXELS,
            {**auth_vars, "event": {"action": action, "pixel_id": pixel}},
            header,
            may_change,
        )
        answer = envelope(self.execute(app, call), "pixels")
        if not visible:
            assert answer == not_found(pixel), call.description
            return
        assert answer["code"] == 200, answer
        if action == "get":
            assert answer["data"]["tenant_id"] == owner
            assert sorted(answer["data"]["domains"]) == sorted(self.world.domains[pixel])
        else:
            self.forget_pixel(pixel)

    def pixels_list(self, app: IsolationApp, inline: bool, tenant: str | None) -> None:
        auth_vars, header = self.auth_of(app, inline)
        event: dict[str, Any] = {"action": "list"}
        if tenant is not None:
            event["tenant_id"] = tenant
        call = Call(f"pixels list {tenant}", PIXELS, {**auth_vars, "event": event}, header, set())
        answer = envelope(self.execute(app, call), "pixels")
        if tenant is not None and tenant not in app.tenants:
            assert answer == {"code": 404, "data": {}, "message": f"Tenant {tenant} not found"}
            return
        tenants = {tenant} if tenant is not None else app.tenants
        expected = sorted(p for p, t in self.world.owner.items() if t in tenants)
        assert [p["pixel_id"] for p in answer["data"]["pixels"]] == expected

    def pixels_create(self, app: IsolationApp, inline: bool, tenant: str | None, pixel: int) -> None:
        auth_vars, header = self.auth_of(app, inline)
        event: dict[str, Any] = {"action": "create", "pixel_id": pixel}
        if tenant is not None:
            event["tenant_id"] = tenant
        target = tenant if tenant is not None else next(iter(app.tenants))
        bound = (tenant is None and len(app.tenants) == 1) or tenant in app.tenants
        call = Call(
            f"pixels create {pixel} for {tenant}",
            PIXELS,
            {**auth_vars, "event": event},
            header,
            {target} if bound else set(),
        )
        answer = envelope(self.execute(app, call), "pixels")
        if tenant is None and len(app.tenants) > 1:
            assert answer["code"] == 400, answer
        elif not bound:
            assert answer == {"code": 404, "data": {}, "message": f"Tenant {tenant} not found"}
        elif pixel in self.world.deleting:
            message = f"Pixel {pixel} is being deleted; it can be set up again once that is done"
            assert answer == {"code": 409, "data": {}, "message": message}
        elif self.world.owner.get(pixel) is not None:
            # Pixel ids are global: an existing id is refused whoever owns it (its existence shows).
            assert answer == {"code": 409, "data": {}, "message": f"Pixel {pixel} already exists"}
        else:
            assert answer["code"] == 200, answer
            assert answer["data"]["tenant_id"] == target
            self.adopt_pixel(pixel, target)

    def intake(
        self, app: IsolationApp, inline: bool, pixel: int, domain: str, event_name: str | None
    ) -> None:
        auth_vars, header = self.auth_of(app, inline)
        owner = self.world.owner.get(pixel)
        visible = owner is not None and owner in app.tenants
        if event_name is None:
            query, name, what = PAGEVIEW, "pageview", "pageview"
            event: dict[str, Any] = {"pixelId": pixel, "domain": domain, "email": EMAIL}
        else:
            query, name, what = TRACK, "track", f"track {event_name}"
            event = {"pixelId": str(pixel), "eventName": event_name, "domain": domain, "email": EMAIL}
            if inline:  # TRACK (the CAPIG tests' document) takes Basic auth only
                auth_vars, header = {}, app.header
        call = Call(
            f"{what} on pixel {pixel} from {domain}",
            query,
            {**auth_vars, "event": event},
            header,
            {owner} if visible and owner else set(),
        )
        events_before = len(self.sent_events)
        answer = envelope(self.execute(app, call), name)
        if not visible:
            assert answer == not_found(pixel), call.description
            assert len(self.sent_events) == events_before
            return
        assert answer["code"] == 200, answer
        assert [event.tenant_id for event in self.sent_events[events_before:]] == [owner]

    def stats(self, app: IsolationApp, inline: bool, pixel: int) -> None:
        auth_vars, header = self.auth_of(app, inline)
        owner = self.world.owner.get(pixel)
        visible = owner is not None and owner in app.tenants
        call = Call(
            f"stats of pixel {pixel}",
            STATS,
            {**auth_vars, "event": {"pixel_id": pixel, **DAY_RANGE}},
            header,
            set(),
        )
        answer = envelope(self.execute(app, call), "stats")
        if not visible:
            assert answer == not_found(pixel), call.description
            return
        assert answer["code"] == 200, answer
        assert answer["data"]["pixel_id"] == pixel

    # CAPIG -----------------------------------------------------------------------------------

    def capig(
        self, app: IsolationApp, description: str, query: str, variables: dict[str, Any], tenant: str
    ) -> Any:
        bound = tenant in app.tenants
        result = self.execute(
            app, Call(description, query, variables, app.header, {tenant} if bound else set())
        )
        if not bound:
            assert graphql_errors(result) == UNAUTHORIZED_ACCOUNT, description
            assert result.data in ({"tenantMutations": None}, {"tenantQueries": None}), result.data
            return None
        return result

    def setup(self, app: IsolationApp, tenant: str, pixel: int) -> None:
        variables = {
            "tenantId": tenant,
            "input": {"pixelId": str(pixel), "businessId": "b2", "accessToken": "t1k", "externalId": "e2"},
        }
        result = self.capig(app, f"setupPixelSignalConfig {pixel} in {tenant}", SETUP, variables, tenant)
        if result is None:
            return
        owner = self.world.owner.get(pixel)
        if owner is not None and owner != tenant:
            message = f"Invalid input: pixel {pixel} cannot be set up for this account"
            assert graphql_errors(result) == [(400, message)]
            return
        if owner is None and pixel in self.world.deleting:
            message = f"Pixel {pixel} is being deleted; it can be set up again once that is done"
            assert graphql_errors(result) == [(409, message)]
            return
        assert result.errors is None, result.errors
        config = result.data["tenantMutations"]["signalMutations"]["setupPixelSignalConfig"]
        assert config["id"] == f"SignalConfig:{pixel}"
        if owner is None:
            self.adopt_pixel(pixel, tenant)

    def status(self, app: IsolationApp, tenant: str, pixel: int, receiving: bool, on: bool) -> None:
        query = EVENTS_STATUS if receiving else CAPI_PUBLISH
        variables = {"id": str(pixel), "tenantId": tenant, "input": {"status": int(on)}}
        what = "receiving" if receiving else "publishing"
        result = self.capig(app, f"{what} {int(on)} for pixel {pixel} in {tenant}", query, variables, tenant)
        if result is None:
            return
        if self.world.owner.get(pixel) != tenant:
            assert graphql_errors(result) == [(404, f"Pixel {pixel} not found")]
            return
        assert result.errors is None, result.errors

    def delete_source(self, app: IsolationApp, tenant: str, pixel: int) -> None:
        variables = {"id": str(pixel), "tenantId": tenant}
        result = self.capig(app, f"deleteDataSource {pixel} in {tenant}", DELETE, variables, tenant)
        if result is None:
            return
        if self.world.owner.get(pixel) != tenant:
            assert graphql_errors(result) == [(404, f"Pixel {pixel} not found")]
            return
        assert result.data == {"tenantMutations": {"signalMutations": {"deleteDataSource": True}}}
        self.forget_pixel(pixel)

    def set_filter(
        self, app: IsolationApp, tenant: str, kind: str, subject: str, pixels: list[int] | None, state: str
    ) -> None:
        query, subject_field = (EVENT_FILTER, "eventName") if kind == "event" else (DOMAIN_FILTER, "domain")
        pixel_ids = [str(p) for p in pixels] if pixels is not None else None
        variables = {
            "tenantId": tenant,
            "input": {subject_field: subject, "pixelIds": pixel_ids, "filterState": state},
        }
        result = self.capig(
            app, f"{kind} filter {subject} on {pixel_ids} in {tenant}", query, variables, tenant
        )
        if result is None:
            return
        foreign = [p for p in dict.fromkeys(pixels or []) if self.world.owner.get(p) != tenant]
        if foreign:
            assert graphql_errors(result) == [(404, f"Pixel {foreign[0]} not found")]
            return
        assert result.errors is None, result.errors
        for pixel in pixels if pixels is not None else [None]:
            self.world.filters[tenant][(kind, subject, pixel)] = state

    def tenant_queries(self, app: IsolationApp, tenant: str) -> None:
        result = self.capig(app, f"tenantQueries {tenant}", TENANT_QUERIES, {"tenantId": tenant}, tenant)
        if result is None:
            return
        assert result.errors is None, result.errors
        read = result.data["tenantQueries"]
        configs = read["account"]["signalConfigs"]
        assert [int(c["connectionStatus"]["pixelID"]) for c in configs] == self.world.pixels_of(tenant)
        for config in configs:
            assert sorted(config["domains"]) == sorted(
                self.world.domains[int(config["connectionStatus"]["pixelID"])]
            )
        expected = {
            f"{'EventFilter' if kind == 'event' else 'DomainFilter'}:{subject}:{pixel if pixel is not None else 'global'}"
            for kind, subject, pixel in self.world.filters[tenant]
        }
        assert {f["id"] for f in read["eventFilters"] + read["domainFilters"]} == expected

    # Model bookkeeping -----------------------------------------------------------------------

    def adopt_pixel(self, pixel: int, tenant: str) -> None:
        self.world.owner[pixel] = tenant
        self.world.former_owner[pixel] = tenant
        self.world.domains[pixel] = set()

    def forget_pixel(self, pixel: int) -> None:
        tenant = self.world.owner[pixel]
        assert tenant is not None
        self.world.owner[pixel] = None
        self.world.deleting.add(pixel)
        self.world.domains[pixel] = set()
        self.world.filters[tenant] = {
            key: state for key, state in self.world.filters[tenant].items() if key[2] != pixel
        }


OPERATIONS = (
    "domains",
    "pixels_get_or_delete",
    "pixels_list",
    "pixels_create",
    "pageview",
    "track",
    "stats",
    "setup",
    "status",
    "delete_source",
    "set_filter",
    "tenant_queries",
)


def run_operation(runner: Runner, data: st.DataObject) -> None:
    world = runner.world
    app = data.draw(st.sampled_from(world.apps), label="app")
    kind = data.draw(st.sampled_from(OPERATIONS), label="operation")
    known = sorted(world.owner)
    pixel = data.draw(st.sampled_from(known) | st.just(next(world.fresh_pixel_ids)), label="pixel")
    tenant = data.draw(st.sampled_from(world.tenants), label="tenant")
    inline = data.draw(st.booleans(), label="inline auth")
    domain = data.draw(st.sampled_from(world.domain_pool), label="domain")
    event_name = data.draw(st.sampled_from(world.event_names), label="event name")
    match kind:
        case "domains":
            action = data.draw(st.sampled_from(["add", "remove", "list"]), label="action")
            runner.domains(app, inline, pixel, action, domain)
        case "pixels_get_or_delete":
            action = data.draw(st.sampled_from(["get", "delete"]), label="action")
            runner.pixels_get_or_delete(app, inline, pixel, action)
        case "pixels_list":
            runner.pixels_list(app, inline, data.draw(st.none() | st.just(tenant), label="tenant_id"))
        case "pixels_create":
            runner.pixels_create(
                app, inline, data.draw(st.none() | st.just(tenant), label="tenant_id"), pixel
            )
        case "pageview":
            runner.intake(app, inline, pixel, domain, None)
        case "track":
            runner.intake(app, inline, pixel, domain, event_name)
        case "stats":
            runner.stats(app, inline, pixel)
        case "setup":
            runner.setup(app, tenant, pixel)
        case "status":
            runner.status(app, tenant, pixel, data.draw(st.booleans()), data.draw(st.booleans()))
        case "delete_source":
            runner.delete_source(app, tenant, pixel)
        case "set_filter":
            filter_kind = data.draw(st.sampled_from(["event", "domain"]), label="filter kind")
            states = ["PUBLISH", "DROP"] if filter_kind == "event" else ["ALLOW", "DROP"]
            pixels = data.draw(st.none() | st.lists(st.sampled_from(known), min_size=1, max_size=2))
            if pixels is not None and data.draw(st.booleans(), label="target pixel first"):
                pixels = [pixel, *pixels]
            subject = event_name if filter_kind == "event" else domain
            runner.set_filter(app, tenant, filter_kind, subject, pixels, data.draw(st.sampled_from(states)))
        case "tenant_queries":
            runner.tenant_queries(app, tenant)
        case _:
            raise AssertionError(kind)


@pytest.fixture
def sent_events(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every event the intake puts on the events queue (still sent to moto's queue as well)."""
    sent: list[Any] = []
    real_enqueue = queues.enqueue

    def recording_enqueue(event: Any, queue_url: str | None = None) -> None:
        sent.append(event)
        real_enqueue(event, queue_url)

    monkeypatch.setattr(intake, "enqueue", recording_enqueue)
    return sent


@pytest.fixture
def dynamodb(moto_table: str) -> Any:
    return boto3.client("dynamodb", region_name="us-east-1")


@pytest.mark.slow
@settings(
    max_examples=500,
    report_multiple_bugs=False,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(shape=world_strategy(), data=st.data())
def test_no_sequence_of_operations_lets_an_app_read_or_change_data_of_a_tenant_it_is_not_bound_to(
    dynamodb, gql, sent_events, shape, data
):
    forget_verified_apps()
    forget_recent_pixels()
    sent_events.clear()
    clear_table(dynamodb)
    world = build_world(shape)
    runner = Runner(world, gql, sent_events)
    for _ in range(data.draw(st.integers(1, 4), label="operations")):
        run_operation(runner, data)
