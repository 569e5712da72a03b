"""Conversions API Gateway control plane: tenantMutations / tenantQueries, as Meta documents them."""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

from ariadne import MutationType, ObjectType, QueryType
from graphql import GraphQLError, GraphQLResolveInfo

from graphql_api.resolvers.envelope import principal_of
from pixel_core import filters, signal_configs
from pixel_core.auth import Principal
from pixel_core.errors import GatewayError
from pixel_core.models import PixelItem, TableItem, TenantItem, TotalsItem, find, tenant_partition
from pixel_core.observability import count, logger

mutation = MutationType()
query = QueryType()
tenant_mutations = ObjectType("TenantMutations")
signal_mutations = ObjectType("SignalMutations")
tenant_queries = ObjectType("TenantQueries")
account = ObjectType("Account")


class TenantCall(NamedTuple):
    """What nested CAPIG fields resolve against: who calls, for which tenant; and what the request
    already read of the tenant, so that its fields (signalConfigs, eventFilters, domainFilters) read
    the tenant and its pixels once between them, not once each."""

    principal: Principal
    tenant_id: str
    read: dict[str, Any]


def capig_errors[**P, R](resolver: Callable[P, R]) -> Callable[P, R]:
    """Domain errors become GraphQL errors with `extensions.code`; the unexpected, a logged 500."""

    @functools.wraps(resolver)
    def resolve(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return resolver(*args, **kwargs)
        except GatewayError as error:
            raise GraphQLError(error.message, extensions={"code": error.code}) from None
        except GraphQLError:
            raise
        except Exception:
            logger.exception("Unexpected error", extra={"operation": resolver.__name__})
            count("CapigErrors")
            raise GraphQLError("Internal server error", extensions={"code": 500}) from None

    return resolve


@mutation.field("tenantMutations")
@query.field("tenantQueries")
@capig_errors
def resolve_tenant(_root: Any, info: GraphQLResolveInfo[Any], tenant_id: str) -> TenantCall:
    principal = principal_of(info, None)
    return TenantCall(principal, signal_configs.tenant_scope(principal, tenant_id), read={})


@tenant_mutations.field("signalMutations")
def resolve_signal_mutations(call: TenantCall, _info: GraphQLResolveInfo[Any]) -> TenantCall:
    return call


def _signal_config(pixel: PixelItem) -> dict[str, Any]:
    return signal_configs.signal_config(pixel, signal_configs.totals_of([pixel.number]).get(pixel.number))


@signal_mutations.field("setupPixelSignalConfig")
@capig_errors
def resolve_setup(call: TenantCall, _info: GraphQLResolveInfo[Any], input: dict[str, Any]) -> dict[str, Any]:
    connection = signal_configs.Connection.from_input(input)
    return _signal_config(signal_configs.setup_pixel(call.tenant_id, connection))


@signal_mutations.field("deleteDataSource")
@capig_errors
def resolve_delete(call: TenantCall, _info: GraphQLResolveInfo[Any], id: str) -> bool:
    signal_configs.delete_data_source(call.principal, call.tenant_id, signal_configs.pixel_id_of(id))
    return True


def _status_resolver(which: str) -> Callable[..., dict[str, Any]]:
    @capig_errors
    def resolve(
        call: TenantCall, _info: GraphQLResolveInfo[Any], id: str, input: dict[str, Any]
    ) -> dict[str, Any]:
        pixel_id = signal_configs.pixel_id_of(id)
        pixel = signal_configs.set_status(call.tenant_id, pixel_id, input.get("status"), which=which)
        totals = signal_configs.totals_of([pixel_id]).get(pixel_id)
        return {"success": True, "connection_status": signal_configs.connection_status(pixel, totals)}

    return resolve


signal_mutations.set_field("updateSignalConfigEventsStatus", _status_resolver("receiving"))
signal_mutations.set_field("updateSignalConfigCapiPublish", _status_resolver("publishing"))
signal_mutations.set_field("updateSignalConfigBotFiltering", _status_resolver("bot_filtering"))


@signal_mutations.field("rotatePixelAccessKey")
@capig_errors
def resolve_rotate_access_key(call: TenantCall, _info: GraphQLResolveInfo[Any], id: str) -> dict[str, Any]:
    pixel_id = signal_configs.pixel_id_of(id)
    pixel = signal_configs.rotate_access_key(call.tenant_id, pixel_id)
    totals = signal_configs.totals_of([pixel_id]).get(pixel_id)
    return {"success": True, "connection_status": signal_configs.connection_status(pixel, totals)}


def _filter_data(item: filters.Filter) -> dict[str, Any]:
    subject = "event_name" if item.kind == "event" else "domain"
    pixel_id = str(item.pixel_id) if item.pixel_id is not None else None
    return {"id": item.id, subject: item.subject, "pixel_id": pixel_id, "filter_state": item.state}


def _filter_result(written: list[filters.Filter]) -> dict[str, Any]:
    data = [_filter_data(item) for item in written]
    return {"updated_filter": data[0] if data else None, "updated_filters": data}


@tenant_mutations.field("updateEventFilter")
@capig_errors
def resolve_event_filter(
    call: TenantCall, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
) -> dict[str, Any]:
    written = filters.set_event_filter(
        call.tenant_id, input.get("event_name"), input.get("pixel_ids"), input["filter_state"]
    )
    return _filter_result(written)


@tenant_mutations.field("updateDomainFilter")
@capig_errors
def resolve_domain_filter(
    call: TenantCall, _info: GraphQLResolveInfo[Any], input: dict[str, Any]
) -> dict[str, Any]:
    written = filters.set_domain_filter(
        call.tenant_id, input.get("domain"), input.get("pixel_ids"), input["filter_state"]
    )
    return _filter_result(written)


def _tenant_pixels(call: TenantCall) -> list[PixelItem]:
    """The tenant's pixels, read once per request with the totals the index holds beside them."""
    if "pixels" not in call.read:
        found = list(TableItem.tenant_pixels.query(tenant_partition(call.tenant_id)))
        call.read["pixels"] = [item for item in found if isinstance(item, PixelItem)]
        call.read["totals"] = {item.pixel_number: item for item in found if isinstance(item, TotalsItem)}
    pixels: list[PixelItem] = call.read["pixels"]
    return pixels


@tenant_queries.field("account")
def resolve_account(call: TenantCall, _info: GraphQLResolveInfo[Any]) -> TenantCall:
    return call


@account.field("signalConfigs")
@capig_errors
def resolve_signal_configs(call: TenantCall, _info: GraphQLResolveInfo[Any]) -> list[dict[str, Any]]:
    pixels = _tenant_pixels(call)
    totals: dict[int, TotalsItem] = dict(call.read["totals"])
    # Totals not in the index yet (none counted since it was, or none at all) are read by key.
    totals.update(signal_configs.totals_of([pixel.number for pixel in pixels if pixel.number not in totals]))
    return [signal_configs.signal_config(pixel, totals.get(pixel.number)) for pixel in pixels]


def _tenant_filters(call: TenantCall) -> tuple[list[filters.Filter], list[filters.Filter]]:
    if "filters" not in call.read:
        tenant = find(TenantItem, TenantItem.key(call.tenant_id))
        call.read["filters"] = filters.filters_on(_tenant_pixels(call), tenant)
    on: tuple[list[filters.Filter], list[filters.Filter]] = call.read["filters"]
    return on


@tenant_queries.field("eventFilters")
@capig_errors
def resolve_event_filters(call: TenantCall, _info: GraphQLResolveInfo[Any]) -> list[dict[str, Any]]:
    return [_filter_data(item) for item in _tenant_filters(call)[0]]


@tenant_queries.field("domainFilters")
@capig_errors
def resolve_domain_filters(call: TenantCall, _info: GraphQLResolveInfo[Any]) -> list[dict[str, Any]]:
    return [_filter_data(item) for item in _tenant_filters(call)[1]]


bindables = [mutation, query, tenant_mutations, signal_mutations, tenant_queries, account]
