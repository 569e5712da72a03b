"""HeroPixel API: `domains` (as documented) and `pixels` (same envelope, beyond the documents)."""

from collections.abc import Callable, Mapping
from typing import Any

from ariadne import MutationType, QueryType

from graphql_api.resolvers.envelope import Answer, envelope_resolver
from pixel_core import intake, pixel_domains, pixels, stats
from pixel_core.auth import Principal
from pixel_core.clock import iso_millis
from pixel_core.errors import BadRequest
from pixel_core.models import DomainItem, PixelItem

mutation = MutationType()
query = QueryType()

type Event = dict[str, Any]
type Context = dict[str, Any]


def dispatch(
    event: Event, actions: Mapping[str, Callable[[Principal, Event], Answer]]
) -> Callable[..., Answer]:
    action = str(event.get("action", ""))
    if action not in actions:
        raise BadRequest(f"Invalid action '{action[:40]}'. Allowed actions: {', '.join(actions)}")
    return actions[action]


def required_domain(event: Event) -> str:
    domain = event.get("domain")
    if domain is None:  # missing; an empty or blank string is there, and invalid (PRODUCT.md)
        raise BadRequest(f"Domain is required for action '{event['action']}'")
    return str(domain)


def domain_data(item: DomainItem) -> dict[str, Any]:
    return {
        "id": int(item.domain_id),
        "pixel_id": int(item.pixel_id),
        "domain": item.domain,
        "created_at": iso_millis(item.created_at),
        "updated_at": iso_millis(item.updated_at),
    }


def add_domain(principal: Principal, event: Event) -> Answer:
    item = pixel_domains.add_domain(principal, event["pixel_id"], required_domain(event))
    return Answer({"domain": item.domain, "pixel_id": event["pixel_id"]})


def remove_domain(principal: Principal, event: Event) -> Answer:
    domain = pixel_domains.remove_domain(principal, event["pixel_id"], required_domain(event))
    return Answer({"domain": domain, "pixel_id": event["pixel_id"], "deleted": True})


def list_domains(principal: Principal, event: Event) -> Answer:
    items = pixel_domains.list_domains(principal, event["pixel_id"])
    return Answer({"domains": [domain_data(item) for item in items]})


DOMAIN_ACTIONS = {"add": add_domain, "remove": remove_domain, "list": list_domains}


@mutation.field("domains")
@envelope_resolver
def resolve_domains(principal: Principal, event: Event, _context: Context) -> Answer:
    return dispatch(event, DOMAIN_ACTIONS)(principal, event)


def pixel_data(pixel: PixelItem) -> dict[str, Any]:
    return {
        "pixel_id": pixel.number,
        "name": pixel.name,
        "tenant_id": pixel.tenant_id,
        "created_at": iso_millis(pixel.created_at),
    }


def required_pixel_id(event: Event) -> int:
    if event.get("pixel_id") is None:
        raise BadRequest(f"pixel_id is required for action '{event['action']}'")
    return int(event["pixel_id"])


def create_pixel(principal: Principal, event: Event) -> Answer:
    pixel = pixels.create_pixel(
        principal, tenant_id=event.get("tenant_id"), pixel_id=event.get("pixel_id"), name=event.get("name")
    )
    return Answer(pixel_data(pixel))


def get_pixel(principal: Principal, event: Event) -> Answer:
    pixel_id = required_pixel_id(event)
    pixel = pixels.pixel_for(principal, pixel_id)
    totals = stats.pixel_totals(pixel_id)
    return Answer(
        {
            **pixel_data(pixel),
            "domains": [item.domain for item in pixel_domains.domains_of(pixel_id)],
            "events_received": int(totals.events_received) if totals else 0,
            "events_dropped": int(totals.events_dropped) if totals else 0,
            "last_received_at": stats.last_received_iso(totals),
        }
    )


def list_pixels(principal: Principal, event: Event) -> Answer:
    found = pixels.list_pixels(principal, event.get("tenant_id"))
    return Answer({"pixels": [pixel_data(pixel) for pixel in found]})


def delete_pixel(principal: Principal, event: Event) -> Answer:
    pixel_id = required_pixel_id(event)
    pixels.delete_pixel(principal, pixel_id)
    return Answer({"pixel_id": pixel_id, "deleted": True})


PIXEL_ACTIONS = {"create": create_pixel, "get": get_pixel, "list": list_pixels, "delete": delete_pixel}


@mutation.field("pixels")
@envelope_resolver
def resolve_pixels(principal: Principal, event: Event, _context: Context) -> Answer:
    return dispatch(event, PIXEL_ACTIONS)(principal, event)


@mutation.field("pageview")
@envelope_resolver
def resolve_pageview(principal: Principal, event: Event, context: Context) -> Answer:
    result = intake.accept_pageview(
        principal,
        pixel_id=event["pixel_id"],
        domain=event.get("domain"),
        email=event.get("email"),
        md5=event.get("md5"),
        client=intake.Client(ip=context.get("client_ip"), user_agent=context.get("user_agent")),
    )
    return Answer({}, result.message)


@mutation.field("track")
@envelope_resolver
def resolve_track(principal: Principal, event: Event, context: Context) -> Answer:
    request = intake.TrackRequest(
        pixel_id=event["pixel_id"],
        event_name=event["event_name"],
        domain=event.get("domain"),
        url=event.get("url"),
        email=event.get("email"),
        md5=event.get("md5"),
        event_id=event.get("event_id"),
        event_time=event.get("event_time"),
        custom_data=event.get("custom_data"),
        user_data=event.get("user_data"),
    )
    client = intake.Client(ip=context.get("client_ip"), user_agent=context.get("user_agent"))
    result = intake.accept_event(principal, request, client)
    return Answer({"event_id": result.event.event_id}, result.message)


@query.field("stats")
@envelope_resolver
def resolve_stats(principal: Principal, event: Event, _context: Context) -> Answer:
    days = stats.DayRange.parse(event.get("from"), event.get("to"))
    return Answer(stats.pixel_stats(principal, event["pixel_id"], days))
