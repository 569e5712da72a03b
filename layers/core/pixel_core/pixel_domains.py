"""The domains attached to a pixel (HeroPixel domains API, and `domains` in the CAPIG API)."""

from pynamodb.exceptions import DeleteError, TransactWriteError

from pixel_core.auth import Principal
from pixel_core.clock import utc_now
from pixel_core.domain_names import InvalidDomainError, clean_domain
from pixel_core.errors import BadRequest, Conflict, NotFound, PixelNotFound
from pixel_core.models import (
    DOMAIN_PREFIX,
    DomainItem,
    PixelItem,
    find,
    is_condition_failure,
    next_sequence_value,
    pixel_partition,
    transaction,
)
from pixel_core.pixels import pixel_for


def cleaned(raw_domain: str | None) -> str:
    try:
        return clean_domain(raw_domain)  # type: ignore[arg-type]  # non-str is rejected inside
    except InvalidDomainError:
        raise BadRequest("Invalid domain format") from None


def add_domain(principal: Principal, pixel_id: int, raw_domain: str | None) -> DomainItem:
    pixel = pixel_for(principal, pixel_id)
    domain = cleaned(raw_domain)
    key = DomainItem.key(pixel_id, domain)
    # Checked first so that a duplicate does not use up an id.
    if find(DomainItem, key) is not None:
        raise _already_exists(domain)
    now = utc_now()
    item = DomainItem(
        *key,
        domain_id=next_sequence_value("domain_id"),
        pixel_id=pixel.pixel_id,
        domain=domain,
        created_at=now,
        updated_at=now,
    )
    try:
        # The pixel may be deleted meanwhile: never leave a domain without its pixel.
        with transaction() as tx:
            tx.condition_check(
                PixelItem, *PixelItem.key(pixel_id), condition=PixelItem.tenant_id == pixel.tenant_id
            )
            tx.save(item, condition=DomainItem.pk.does_not_exist())
    except TransactWriteError as error:
        pixel_check, domain_put = error.cancellation_reasons or [None, None]
        if pixel_check is not None and pixel_check.code == "ConditionalCheckFailed":
            raise PixelNotFound(pixel_id) from None
        if domain_put is not None and domain_put.code == "ConditionalCheckFailed":
            raise _already_exists(domain) from None
        raise
    return item


def remove_domain(principal: Principal, pixel_id: int, raw_domain: str | None) -> str:
    pixel_for(principal, pixel_id)
    domain = cleaned(raw_domain)
    try:
        DomainItem(*DomainItem.key(pixel_id, domain)).delete(condition=DomainItem.pk.exists())
    except DeleteError as error:
        if is_condition_failure(error):
            raise NotFound(f"Domain {domain} not found for this pixel") from None
        raise
    return domain


def list_domains(principal: Principal, pixel_id: int) -> list[DomainItem]:
    pixel_for(principal, pixel_id)
    return domains_of(pixel_id)


def domains_of(pixel_id: int) -> list[DomainItem]:
    items = DomainItem.query(pixel_partition(pixel_id), DomainItem.sk.startswith(DOMAIN_PREFIX))
    return sorted(items, key=lambda item: item.domain_id)


def _already_exists(domain: str) -> Conflict:
    return Conflict(f"Domain {domain} already exists for this pixel")
