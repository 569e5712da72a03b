"""Filters and domains mean what docs/api.md and docs/decisions.md say, on moto and DynamoDB Local."""

import pytest

from pixel_core import auth, models, signal_configs
from pixel_core.auth import Principal
from pixel_core.errors import BadRequest
from pixel_core.filters import set_domain_filter, set_event_filter
from pixel_core.intake import Client, TrackRequest, accept_event
from pixel_core.models import PixelItem, TenantItem
from pixel_core.pixel_domains import add_domain, cleaned
from pixel_core.pixels import forget_recent_pixels
from pixel_core.signal_configs import Connection, setup_pixel

TENANT = "tenant-f"
PIXEL = 4242
PRINCIPAL = Principal(app_id="test", tenant_ids=frozenset({TENANT}))


@pytest.fixture
def pixel(table):
    auth.create_tenant(TENANT)
    setup_pixel(
        TENANT, Connection(PIXEL, "2840127409433732", "EAAB-token", "633612748410ba6e902", "v21.0", None)
    )
    add_domain(PRINCIPAL, PIXEL, "shop.a.com")
    return PIXEL


def track(**fields) -> str | None:
    """What intake decided: None when accepted, else why it dropped the event."""
    forget_recent_pixels()
    request = TrackRequest(pixel_id=PIXEL, event_name=fields.pop("event_name", "Purchase"), **fields)
    return accept_event(PRINCIPAL, request, Client()).event.dropped


def test_a_tenant_wide_allow_does_not_admit_a_domain_the_pixel_does_not_have(pixel):
    set_domain_filter(TENANT, "other.com", None, "ALLOW")
    assert track(domain="other.com") == f"domain other.com is not attached to pixel {PIXEL}"


def test_a_pixel_level_allow_admits_a_domain_the_pixel_does_not_have(pixel):
    set_domain_filter(TENANT, "other.com", [str(PIXEL)], "ALLOW")
    assert track(domain="other.com") is None


def test_a_tenant_wide_allow_still_lifts_nothing_but_it_does_not_drop_an_attached_domain(pixel):
    set_domain_filter(TENANT, "shop.a.com", None, "ALLOW")
    assert track(domain="shop.a.com") is None


def test_the_host_of_the_published_url_passes_the_domain_filters_too(pixel):
    # Given a DROP on blocked.b.com, and a track whose domain is attached but whose url is blocked
    set_domain_filter(TENANT, "blocked.b.com", None, "DROP")
    # Then the event is dropped: its url is what Meta would receive as event_source_url
    assert track(domain="shop.a.com", url="https://blocked.b.com/x") == (
        "domain blocked.b.com is blocked by a domain filter"
    )
    assert track(domain="shop.a.com", url="https://elsewhere.c.com/x") == (
        f"domain elsewhere.c.com is not attached to pixel {PIXEL}"
    )
    assert track(domain="shop.a.com", url="https://www.shop.a.com/checkout") is None


@pytest.mark.parametrize("event_name", ["Lead[0]", "a]b", "x.y", "[", "#1", ":v"])
def test_event_names_with_brackets_or_dots_can_be_filtered(pixel, event_name):
    (updated,) = set_event_filter(TENANT, event_name, [str(PIXEL)], "DROP")
    assert updated.subject == event_name
    stored = PixelItem.get(*PixelItem.key(PIXEL)).event_filters.as_dict()
    assert stored == {event_name: "DROP"}
    set_event_filter(TENANT, event_name, None, "DROP")
    assert TenantItem.get(*TenantItem.key(TENANT)).event_filters.as_dict() == {event_name: "DROP"}


def test_two_filters_in_a_row_keep_each_other(pixel):
    set_event_filter(TENANT, "Lead", [str(PIXEL)], "DROP")
    set_event_filter(TENANT, "Purchase", [str(PIXEL)], "PUBLISH")
    stored = PixelItem.get(*PixelItem.key(PIXEL)).event_filters.as_dict()
    assert stored == {"Lead": "DROP", "Purchase": "PUBLISH"}


def test_renaming_a_tenant_keeps_its_global_filters_and_creation_time(pixel):
    set_domain_filter(TENANT, "blocked.b.com", None, "DROP")
    before = TenantItem.get(*TenantItem.key(TENANT))
    auth.create_tenant(TENANT, "Acme Inc.")
    after = TenantItem.get(*TenantItem.key(TENANT))
    assert after.name == "Acme Inc."
    assert after.domain_filters.as_dict() == {"blocked.b.com": "DROP"}
    assert after.created_at == before.created_at


def test_set_up_again_keeps_a_domain_filter_or_status_change_made_while_it_ran(pixel, monkeypatch):
    # Given changes that land between set-up's read of the pixel and its write
    real_find = models.find
    interleaved: list[bool] = []

    def read_then_others_write(model, key, **kwargs):
        found = real_find(model, key, **kwargs)
        if not interleaved:
            interleaved.append(True)
            add_domain(PRINCIPAL, PIXEL, "late.a.com")
            set_domain_filter(TENANT, "x.com", [str(PIXEL)], "DROP")
            signal_configs.set_status(TENANT, PIXEL, 0, receiving=True)
        return found

    monkeypatch.setattr(signal_configs, "find", read_then_others_write)
    # When the connection is set up again with a new token
    setup_pixel(
        TENANT, Connection(PIXEL, "2840127409433732", "EAAB-new-token", "633612748410ba6e902", "v22.0", None)
    )
    # Then every change made meanwhile is still there, and so is the new connection
    stored = PixelItem.get(*PixelItem.key(PIXEL))
    assert stored.domains == {"shop.a.com", "late.a.com"}
    assert stored.domain_filters.as_dict() == {"x.com": "DROP"}
    assert stored.receiving_enabled is False
    assert stored.api_version == "v22.0"


@pytest.mark.parametrize("blank", ["", " ", "\t \n"])
def test_an_empty_or_blank_domain_is_an_invalid_format_not_a_missing_one(blank):
    from graphql_api.resolvers.heropixel import required_domain

    assert required_domain({"action": "add", "domain": blank}) == blank
    with pytest.raises(BadRequest, match="Domain is required"):
        required_domain({"action": "add", "domain": None})
    with pytest.raises(BadRequest, match="Invalid domain format"):
        cleaned(blank)
