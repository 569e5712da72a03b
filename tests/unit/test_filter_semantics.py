"""Filters and domains mean what docs/api.md and docs/decisions.md say, on moto and DynamoDB Local."""

import pytest

from pixel_core import auth, models, signal_configs
from pixel_core.auth import Principal
from pixel_core.errors import BadRequest, Conflict
from pixel_core.filters import (
    MAX_FILTERS_PER_ITEM,
    MAX_PIXELS_PER_UPDATE,
    set_domain_filter,
    set_event_filter,
)
from pixel_core.intake import Client, TrackRequest, accept_event
from pixel_core.models import PixelItem, TenantItem
from pixel_core.pixel_domains import add_domain, cleaned
from pixel_core.pixels import forget_recent_pixels
from pixel_core.signal_configs import Connection, setup_pixel
from tests.support.faults import Script, aws_json_error, dynamodb_client

CONDITION_FAILED = aws_json_error(
    400, "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException", "application/x-amz-json-1.0"
)
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
            signal_configs.set_status(TENANT, PIXEL, 0, which="receiving")
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


def accepted(**fields):
    """The event intake queued (dropped or not), for what the filters decided."""
    forget_recent_pixels()
    request = TrackRequest(pixel_id=PIXEL, event_name=fields.pop("event_name", "Purchase"), **fields)
    return accept_event(PRINCIPAL, request, Client()).event


def test_the_pixels_own_event_filter_wins_over_the_tenants_either_way(pixel):
    # Given the tenant DROPping Lead and PUBLISHing Purchase everywhere
    set_event_filter(TENANT, "Lead", None, "DROP")
    set_event_filter(TENANT, "Purchase", None, "PUBLISH")
    assert (
        accepted(event_name="Lead", domain="shop.a.com").unpublishable
        == "event Lead is dropped by an event filter"
    )
    # When the pixel itself says the opposite for both
    set_event_filter(TENANT, "Lead", [str(PIXEL)], "PUBLISH")
    set_event_filter(TENANT, "Purchase", [str(PIXEL)], "DROP")
    # Then the pixel's filters decide
    assert accepted(event_name="Lead", domain="shop.a.com").unpublishable is None
    assert accepted(event_name="Purchase", domain="shop.a.com").unpublishable == (
        "event Purchase is dropped by an event filter"
    )


def test_the_most_specific_domain_filter_of_a_level_wins_and_a_pixels_drop_beats_a_tenants_allow(pixel):
    # Given the tenant DROPping a.com, which covers the attached shop.a.com
    set_domain_filter(TENANT, "a.com", None, "DROP")
    assert accepted(domain="shop.a.com").dropped == "domain shop.a.com is blocked by a domain filter"
    # When it ALLOWs shop.a.com itself, Then the longer (more specific) name wins, for it and below
    set_domain_filter(TENANT, "shop.a.com", None, "ALLOW")
    assert accepted(domain="shop.a.com").dropped is None
    assert accepted(domain="www.shop.a.com").dropped is None
    # When the pixel DROPs shop.a.com, Then the pixel's filter wins over the tenant's more specific ALLOW
    set_domain_filter(TENANT, "shop.a.com", [str(PIXEL)], "DROP")
    assert accepted(domain="www.shop.a.com").dropped == "domain www.shop.a.com is blocked by a domain filter"


def test_a_pixel_holds_at_most_500_filters_of_a_kind_but_one_at_the_cap_can_still_change(pixel):
    # Given a pixel with 500 event filters (written at once, as the updates would leave them)
    full = {f"Event{n}": "DROP" for n in range(MAX_FILTERS_PER_ITEM)}
    PixelItem(*PixelItem.key(PIXEL)).update(actions=[PixelItem.event_filters.set(full)])
    # When a 501st is set, Then it is refused and nothing changes
    with pytest.raises(BadRequest, match=r"^At most 500 event filters per pixel or account$"):
        set_event_filter(TENANT, "OneTooMany", [str(PIXEL)], "DROP")
    assert PixelItem.get(*PixelItem.key(PIXEL)).event_filters.as_dict() == full
    # And one it has can still be changed
    set_event_filter(TENANT, "Event7", [str(PIXEL)], "PUBLISH")
    assert PixelItem.get(*PixelItem.key(PIXEL)).event_filters.as_dict() == {**full, "Event7": "PUBLISH"}


@pytest.mark.parametrize(
    ("pixel_ids", "message"),
    [
        ([], "pixelIds: give 1-100 pixel ids, or null for the global filter"),
        ([str(n) for n in range(1, MAX_PIXELS_PER_UPDATE + 2)], "pixelIds: give 1-100 pixel ids"),
        (["12x"], "pixelIds: "),
    ],
    ids=["none", "101", "not-a-pixel-id"],
)
def test_a_filter_update_names_1_to_100_valid_pixel_ids_or_none(pixel, pixel_ids, message):
    with pytest.raises(BadRequest, match=message):
        set_domain_filter(TENANT, "x.com", pixel_ids, "DROP")
    assert PixelItem.get(*PixelItem.key(PIXEL)).domain_filters.as_dict() == {}


def test_a_pixel_named_twice_in_one_update_gets_one_filter(pixel):
    assert [f.pixel_id for f in set_event_filter(TENANT, "Lead", [str(PIXEL), str(PIXEL)], "DROP")] == [PIXEL]


def test_states_that_do_not_fit_the_kind_of_filter_are_refused(pixel):
    with pytest.raises(BadRequest, match="Invalid filter state 'ALLOW'"):
        set_event_filter(TENANT, "Lead", None, "ALLOW")
    with pytest.raises(BadRequest, match="Invalid filter state 'PUBLISH'"):
        set_domain_filter(TENANT, "x.com", None, "PUBLISH")
    tenant = TenantItem.get(*TenantItem.key(TENANT))
    assert (tenant.event_filters.as_dict(), tenant.domain_filters.as_dict()) == ({}, {})


def test_a_filter_map_changed_by_another_writer_is_read_again_and_written_and_a_persistent_race_is_a_409(
    pixel, inject
):
    # Given DynamoDB refusing the first map write as changed meanwhile (its condition failed)
    fault = inject(dynamodb_client(), "UpdateItem", Script([CONDITION_FAILED]))
    # When a filter is set, Then it was read again and written on the second attempt
    set_event_filter(TENANT, "Lead", [str(PIXEL)], "DROP")
    assert fault.attempts == ["UpdateItem", "UpdateItem"]
    assert PixelItem.get(*PixelItem.key(PIXEL)).event_filters.as_dict() == {"Lead": "DROP"}
    # Given every write refused so, When a filter is set, Then it gives up with a 409 after 5 attempts
    fault.lift()
    always = inject(dynamodb_client(), "UpdateItem", CONDITION_FAILED)
    with pytest.raises(Conflict, match="The filters changed while this update was applied; try again"):
        set_event_filter(TENANT, "Purchase", [str(PIXEL)], "DROP")
    assert always.attempts == ["UpdateItem"] * 5
    always.lift()
    assert PixelItem.get(*PixelItem.key(PIXEL)).event_filters.as_dict() == {"Lead": "DROP"}
