"""The domains attached to a pixel (HeroPixel domains API, and `domains` in the CAPIG API)."""

from pynamodb.exceptions import TransactWriteError

from pixel_core.auth import Principal
from pixel_core.clock import utc_now
from pixel_core.domain_names import InvalidDomainError, clean_domain
from pixel_core.errors import BadRequest, Conflict, NotFound, PixelNotFound
from pixel_core.models import (
    DOMAIN_PREFIX,
    DomainItem,
    PixelItem,
    Transaction,
    find,
    next_sequence_value,
    pixel_partition,
    transaction,
)
from pixel_core.pixels import forget_recent_pixels, pixel_for


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
        # One transaction: the domain item, and the pixel's own copy of its domain set. The pixel
        # may have been deleted meanwhile: never leave a domain without its pixel.
        with transaction() as tx:
            tx.update(
                PixelItem(*PixelItem.key(pixel_id)),
                actions=[PixelItem.domains.add({domain})],
                condition=PixelItem.tenant_id == pixel.tenant_id,
                tag=PixelItem,
            )
            tx.save(item, condition=DomainItem.pk.does_not_exist(), tag=DomainItem)
    except TransactWriteError as error:
        explained = _explained(tx, error, pixel_id, domain, missing_domain=False)
        if explained is error:
            raise  # not a failed condition (throttling, ...): keep the whole cause for the log
        raise explained from None
    forget_recent_pixels()
    return item


def remove_domain(principal: Principal, pixel_id: int, raw_domain: str | None) -> str:
    pixel = pixel_for(principal, pixel_id)
    domain = cleaned(raw_domain)
    try:
        with transaction() as tx:
            tx.update(
                PixelItem(*PixelItem.key(pixel_id)),
                actions=[PixelItem.domains.delete({domain})],
                condition=PixelItem.tenant_id == pixel.tenant_id,
                tag=PixelItem,
            )
            tx.delete(
                DomainItem(*DomainItem.key(pixel_id, domain)),
                condition=DomainItem.pk.exists(),
                tag=DomainItem,
            )
    except TransactWriteError as error:
        explained = _explained(tx, error, pixel_id, domain, missing_domain=True)
        if explained is error:
            raise
        raise explained from None
    forget_recent_pixels()
    return domain


def _explained(
    tx: Transaction, error: TransactWriteError, pixel_id: int, domain: str, *, missing_domain: bool
) -> Exception:
    """Which condition cancelled the transaction: the pixel's (gone, or another tenant's) or the domain's."""
    failed = {tag for tag, code in tx.reasons(error) if code == "ConditionalCheckFailed"}
    if PixelItem in failed:
        return PixelNotFound(pixel_id)
    if DomainItem in failed:
        return (
            NotFound(f"Domain {domain} not found for this pixel")
            if missing_domain
            else _already_exists(domain)
        )
    return error


def list_domains(principal: Principal, pixel_id: int) -> list[DomainItem]:
    pixel_for(principal, pixel_id)
    return domains_of(pixel_id)


def domains_of(pixel_id: int) -> list[DomainItem]:
    items = DomainItem.query(pixel_partition(pixel_id), DomainItem.sk.startswith(DOMAIN_PREFIX))
    return sorted(items, key=lambda item: item.domain_id)


def _already_exists(domain: str) -> Conflict:
    return Conflict(f"Domain {domain} already exists for this pixel")
