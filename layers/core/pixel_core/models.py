"""PynamoDB models of the single table.

Keys are type-prefixed strings. A pixel's partition (`PIXEL#<id>`) holds the pixel and everything
that dies with it (domains, later its filters and counters), so reading or deleting a pixel is one
Query. `gsi1` lists a tenant's pixels, and their totals (so that one Query reads both).

| item      | pk              | sk               | gsi1pk          | gsi1sk          |
|-----------|-----------------|------------------|-----------------|-----------------|
| tenant    | TENANT#<id>     | TENANT           |                 |                 |
| app       | APP#<app id>    | APP              |                 |                 |
| pixel     | PIXEL#<id>      | PIXEL            | TENANT#<tenant> | PIXEL#<padded>  |
| totals    | PIXEL#<id>      | TOTALS           | TENANT#<tenant> | TOTALS#<padded> |
| domain    | PIXEL#<id>      | DOMAIN#<domain>  |                 |                 |
| sequence  | SEQUENCE#<name> | SEQUENCE         |                 |                 |
| deletion  | PIXEL#<id>      | DELETING         |                 |                 |

Counters, written only by the aggregator, live in the pixel's partition too:

| item                  | sk                              |
|-----------------------|---------------------------------|
| totals                | TOTALS                          |
| day                   | DAY#<yyyy-mm-dd>                |
| day and domain        | DAY#<yyyy-mm-dd>#D#<domain>     |
| visitor on a day      | DV#<yyyy-mm-dd>#<md5>           |
| visitor               | VISITOR#<md5>                   |
| event marker (TTL)    | EVENT#<event id>, DROPPED#<id>  |
| published marker (TTL)| PUBLISHED#<event id>            |

and, written by the API's browser collection, `RATE#<minute>` (TTL): a pixel's browser events
in that minute, for its rate limit.
"""

import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import (
    BooleanAttribute,
    DiscriminatorAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.constants import (
    TRANSACT_CONDITION_CHECK,
    TRANSACT_DELETE,
    TRANSACT_ITEMS,
    TRANSACT_PUT,
    TRANSACT_UPDATE,
    TRANSACT_WRITE_ITEMS,
)
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from pixel_core.config import settings
from pixel_core.domain_names import is_same_or_subdomain
from pixel_core.pixel_ids import pixel_sort_key
from pixel_core.user_data import MATCH_KEYS

if TYPE_CHECKING:
    from pixel_core.events import PixelEvent


class TenantPixelsIndex(GlobalSecondaryIndex["TableItem"]):  # type: ignore[no-untyped-call]
    class Meta:
        index_name = "gsi1"
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


def string_map() -> Any:
    """A map of plain strings whose keys are data (filter names), updated one key at a time."""
    return MapAttribute(default=dict)  # type: ignore[no-untyped-call]


class TableItem(Model):
    class Meta:
        table_name = settings.table_name
        region = settings.region
        host = settings.dynamodb_endpoint_url
        connect_timeout_seconds = 2
        read_timeout_seconds = 5
        max_retry_attempts = 3

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    item_type = DiscriminatorAttribute()
    # The index lives on the base model so that every item type shares one connection (below).
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    tenant_pixels = TenantPixelsIndex()


class TenantItem(TableItem, discriminator="tenant"):
    tenant_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    # The tenant's global filters: event name -> PUBLISH | DROP, domain -> ALLOW | DROP.
    event_filters = string_map()
    domain_filters = string_map()

    @staticmethod
    def key(tenant_id: str) -> tuple[str, str]:
        return f"TENANT#{tenant_id}", "TENANT"


class AppItem(TableItem, discriminator="app"):
    app_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    # Only a SHA-256 digest of the secret is ever stored.
    secret_sha256 = UnicodeAttribute()
    tenant_ids = UnicodeSetAttribute()
    created_at = UTCDateTimeAttribute()

    @staticmethod
    def key(app_id: str) -> tuple[str, str]:
        return f"APP#{app_id}", "APP"


class PixelItem(TableItem, discriminator="pixel"):
    # A digit string: DynamoDB numbers would do, but strings keep 64-bit ids exact everywhere.
    pixel_id = UnicodeAttribute()
    tenant_id = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    # The attached domains again, kept in the same transactions as the domain items, so that
    # intake learns everything it needs about a pixel from one GetItem (filters too).
    domains = UnicodeSetAttribute(default=set)
    event_filters = string_map()
    domain_filters = string_map()
    # Status (CAPIG): receiving = `eventBridgeActive`, publishing = `publishingEnabled`.
    receiving_enabled = BooleanAttribute(default=True)
    publishing_enabled = BooleanAttribute(default=True)
    bot_filtering = BooleanAttribute(default=True)  # drop bots' events (updateSignalConfigBotFiltering)
    # The Meta connection, set by setupPixelSignalConfig. The token only ever KMS-encrypted.
    business_id = UnicodeAttribute(null=True)
    external_id = UnicodeAttribute(null=True)
    api_version = UnicodeAttribute(null=True)
    access_token_ciphertext = UnicodeAttribute(null=True)
    token_rejected = BooleanAttribute(default=False)
    api_error_code = NumberAttribute(null=True)
    test_event_code = UnicodeAttribute(null=True)  # passed to Meta, for its Test Events tool
    # The pixel access key (pixel_core.access_keys): its SHA-256 and its KMS ciphertext, never in clear.
    access_key_sha256 = UnicodeAttribute(null=True)
    access_key_ciphertext = UnicodeAttribute(null=True)
    # New each time the pixel id is set up: its events carry it, so events of a deleted pixel are
    # never counted into, or published with the token of, a pixel later set up under the same id.
    # None on pixels (and events) from before incarnations existed.
    incarnation = UnicodeAttribute(null=True)

    @staticmethod
    def key(pixel_id: int) -> tuple[str, str]:
        return pixel_partition(pixel_id), "PIXEL"

    @classmethod
    def new(cls, pixel_id: int, tenant_id: str, **attributes: Any) -> "PixelItem":
        pk, sk = cls.key(pixel_id)
        return cls(
            pk,
            sk,
            pixel_id=str(pixel_id),
            tenant_id=tenant_id,
            gsi1pk=tenant_partition(tenant_id),
            gsi1sk=f"PIXEL#{pixel_sort_key(pixel_id)}",
            **{"incarnation": secrets.token_hex(8), **attributes},
        )

    def covers(self, host: str) -> bool:
        """Whether `host` (cleaned) is one of the pixel's attached domains or lies under one."""
        return any(is_same_or_subdomain(host, domain) for domain in self.domains or ())

    def owns(self, event: "PixelEvent") -> bool:
        """True when the event was accepted for this very pixel: same owner, same incarnation."""
        return event.tenant_id == self.tenant_id and event.incarnation == self.incarnation

    @property
    def number(self) -> int:
        return int(self.pixel_id)


def same_pixel(pixel: PixelItem) -> Any:
    """Condition: the pixel item is still this pixel (not deleted, nor deleted and set up again)."""
    incarnation = (
        PixelItem.incarnation.does_not_exist()
        if pixel.incarnation is None
        else PixelItem.incarnation == pixel.incarnation
    )
    return (PixelItem.tenant_id == pixel.tenant_id) & incarnation


class PixelDeletionItem(TableItem, discriminator="pixel_deletion"):
    """A pixel being deleted: written when its pixel item is removed, removed last of its partition.

    While it exists the pixel id cannot be set up again, so that what the clean-up has not removed
    yet can never be read as, or mixed into, a new pixel's data (pixel_core/cleanup.py).
    """

    tenant_id = UnicodeAttribute()
    incarnation = UnicodeAttribute(null=True)
    requested_at = UTCDateTimeAttribute()

    @staticmethod
    def key(pixel_id: int) -> tuple[str, str]:
        return pixel_partition(pixel_id), "DELETING"


class DomainItem(TableItem, discriminator="domain"):
    domain_id = NumberAttribute()
    pixel_id = UnicodeAttribute()
    domain = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    @staticmethod
    def key(pixel_id: int, domain: str) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"{DOMAIN_PREFIX}{domain}"


class TotalsItem(TableItem, discriminator="totals"):
    events_received = NumberAttribute(default=0)
    events_dropped = NumberAttribute(default=0)
    last_received_at = NumberAttribute(null=True)  # Unix seconds
    events_published = NumberAttribute(default=0)
    last_published_at = NumberAttribute(null=True)
    events_expired = NumberAttribute(default=0)  # too old for Meta: not sent
    events_rejected = NumberAttribute(default=0)  # refused by Meta for a fault of their own: not retried
    events_bots = NumberAttribute(default=0)  # of events_dropped: a bot's (pixel_core.bots)
    # Of events_dropped: over the pixel's rate of browser events (pixel_core.rate_limits).
    events_rate_limited = NumberAttribute(default=0)

    @staticmethod
    def key(pixel_id: int) -> tuple[str, str]:
        return pixel_partition(pixel_id), "TOTALS"

    @property
    def pixel_number(self) -> int:
        return int(self.pk.removeprefix("PIXEL#"))

    @staticmethod
    def index_key(tenant_id: str, pixel_id: int) -> tuple[str, str]:
        """Its place in `gsi1`, beside its pixel: the aggregator sets it with every update."""
        return tenant_partition(tenant_id), f"TOTALS#{pixel_sort_key(pixel_id)}"


class DayItem(TableItem, discriminator="day"):
    pageviews = NumberAttribute(default=0)
    visitors = NumberAttribute(default=0)

    @staticmethod
    def key(pixel_id: int, day: str) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"{DAY_PREFIX}{day}"


class MatchKeysDayItem(TableItem, discriminator="match_keys_day"):
    """Events received on a day, and how many of them carried each of Meta's match keys.

    One attribute per key (`key_em`, `key_ph`, ...): DynamoDB's ADD works on top-level attributes
    only, and it is what lets one update per pixel and day count a whole batch (pixel_core.counters).
    """

    events = NumberAttribute(default=0)
    for _key in MATCH_KEYS:
        locals()[f"key_{_key}"] = NumberAttribute(default=0)
    del _key

    @staticmethod
    def key(pixel_id: int, day: str) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"{MATCH_KEYS_PREFIX}{day}"

    def carrying(self, match_key: str) -> int:
        return int(getattr(self, f"key_{match_key}") or 0)


class DayDomainItem(TableItem, discriminator="day_domain"):
    domain = UnicodeAttribute()
    pageviews = NumberAttribute(default=0)

    @staticmethod
    def key(pixel_id: int, day: str, domain: str) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"{DAY_PREFIX}{day}#D#{domain}"


class VisitorDayItem(TableItem, discriminator="visitor_day"):
    """Exists once a visitor was seen on a day: makes `visitors` exact per day and over ranges."""

    @staticmethod
    def key(pixel_id: int, day: str, md5: str) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"{VISITOR_DAY_PREFIX}{day}#{md5}"


class VisitorItem(TableItem, discriminator="visitor"):
    """Exists once a visitor was counted: intake answers "User Found" for it. Nothing else is read,
    so nothing else is written (a per-visitor pageview count would cost a write per pageview)."""

    @staticmethod
    def key(pixel_id: int, md5: str) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"VISITOR#{md5}"


# How long after intake an event's message can still arrive: 4 days in its queue, 14 in the
# dead-letter queue, then 4 again after a redrive (a moved message starts a new retention period).
# tests/unit/test_template_resources.py checks this against the queues' retention in template.yaml.
REDELIVERY_WINDOW = timedelta(days=4 + 14 + 4)
# A marker written at or after intake outlives that window; an event that still comes back later
# (a second redrive) can no longer be told apart from a counted one, and is refused as too old.
MARKER_TTL = REDELIVERY_WINDOW + timedelta(days=1)


def too_old_to_deduplicate(received_at: float, now: float) -> bool:
    """True when the event's marker may already be gone: counting it could count it twice."""
    return now - received_at >= MARKER_TTL.total_seconds()


class EventMarkerItem(TableItem, discriminator="event_marker"):
    """Written in the same transaction as an event's counter deltas: its existence means "counted".

    An event id has two: `EVENT#` once it was counted as received, `DROPPED#` once it was counted
    as dropped. A retry of a dropped id that is then accepted is received (and published); a drop
    of an id already received counts nothing.
    """

    expires_at = TTLAttribute()

    @staticmethod
    def key(pixel_id: int, event_id: str, *, dropped: bool = False) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"{'DROPPED' if dropped else 'EVENT'}#{event_id}"


class RateWindowItem(TableItem, discriminator="rate_window"):
    """Browser events a pixel took in one minute (pixel_core.rate_limits), gone an hour later."""

    events = NumberAttribute(default=0)
    expires_at = TTLAttribute()

    @staticmethod
    def key(pixel_id: int, minute: int) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"RATE#{minute}"


class PublishedMarkerItem(TableItem, discriminator="published_marker"):
    """Written with the published counters once Meta accepted (or we expired) an event."""

    expires_at = TTLAttribute()

    @staticmethod
    def key(pixel_id: int, event_id: str) -> tuple[str, str]:
        return pixel_partition(pixel_id), f"PUBLISHED#{event_id}"


def published_event_ids(pixel_id: int, event_ids: Iterable[str]) -> set[str]:
    """The ids among `event_ids` whose publication is settled (published, expired or rejected)."""
    keys = sorted({PublishedMarkerItem.key(pixel_id, event_id) for event_id in event_ids})
    if not keys:
        return set()
    found = PublishedMarkerItem.batch_get(keys, attributes_to_get=["pk", "sk", "item_type"])
    return {item.sk.removeprefix("PUBLISHED#") for item in found}


class SequenceItem(TableItem, discriminator="sequence"):
    value = NumberAttribute(default=0)

    @staticmethod
    def key(name: str) -> tuple[str, str]:
        return f"SEQUENCE#{name}", "SEQUENCE"


DOMAIN_PREFIX = "DOMAIN#"
DAY_PREFIX = "DAY#"
VISITOR_DAY_PREFIX = "DV#"
MATCH_KEYS_PREFIX = "MK#"
ALL_MODELS: tuple[type[TableItem], ...] = (
    TableItem,
    TenantItem,
    AppItem,
    PixelItem,
    PixelDeletionItem,
    DomainItem,
    TotalsItem,
    DayItem,
    DayDomainItem,
    MatchKeysDayItem,
    VisitorDayItem,
    VisitorItem,
    EventMarkerItem,
    PublishedMarkerItem,
    SequenceItem,
)


def pixel_partition(pixel_id: int) -> str:
    return f"PIXEL#{pixel_id}"


def tenant_partition(tenant_id: str) -> str:
    return f"TENANT#{tenant_id}"


def bind_models(*, table_name: str, host: str | None, region: str = settings.region) -> None:
    """Points every model at another table or endpoint (tests, local tools)."""
    TableItem.Meta.table_name = table_name
    TableItem.Meta.host = host
    TableItem.Meta.region = region
    share_one_connection()


def share_one_connection() -> None:
    """One connection, hence one botocore client, for every item type.

    PynamoDB caches a connection per model class, and each costs ~100 ms of client set-up on
    first use; the subclasses inherit the base's instead. Creating it makes no request.
    """
    TableItem._connection = None
    for model in ALL_MODELS[1:]:
        if "_connection" in vars(model):
            delattr(model, "_connection")
    TableItem._get_connection()


def find[ItemT: TableItem](
    model: type[ItemT], key: tuple[str, str], *, consistent: bool = False
) -> ItemT | None:
    try:
        return model.get(*key, consistent_read=consistent)
    except model.DoesNotExist:
        return None


share_one_connection()


def is_condition_failure(error: PynamoDBException) -> bool:
    return error.cause_response_code == "ConditionalCheckFailedException"


def next_sequence_value(name: str) -> int:
    """Atomic counter: values are never handed out twice, so ids are never reused."""
    sequence = SequenceItem(*SequenceItem.key(name))
    sequence.update(actions=[SequenceItem.value.add(1)])
    return int(sequence.value)


class Transaction(TransactWrite):
    """A TransactWrite that sends its items in the order they were added, each with a tag.

    DynamoDB gives one cancellation reason per item, by position, and nothing else that names the
    item. PynamoDB's own TransactWrite regroups items (condition checks, deletes, puts, updates)
    before sending them, so reading reasons back would depend on that private order; here the
    order is ours, and `reasons` refuses to guess when the answer does not fit the request.
    """

    def __init__(self, connection: Any) -> None:
        super().__init__(connection=connection)
        self.items: list[dict[str, Any]] = []
        self.tags: list[Any] = []

    def _add(self, operation: str, kwargs: dict[str, Any], tag: Any) -> None:
        self.items.append({operation: kwargs})
        self.tags.append(tag)

    def condition_check(  # type: ignore[override]
        self, model_cls: type[TableItem], hash_key: str, range_key: str, condition: Any, *, tag: Any = None
    ) -> None:
        kwargs = model_cls.get_operation_kwargs_from_class(hash_key, range_key=range_key, condition=condition)
        self._add(TRANSACT_CONDITION_CHECK, kwargs, tag)

    def delete(self, model: TableItem, condition: Any = None, *, tag: Any = None) -> None:  # type: ignore[override]
        self._add(TRANSACT_DELETE, model.get_delete_kwargs_from_instance(condition=condition), tag)

    def save(self, model: TableItem, condition: Any = None, *, tag: Any = None) -> None:  # type: ignore[override]
        self._add(TRANSACT_PUT, model.get_save_kwargs_from_instance(condition=condition), tag)

    def update(  # type: ignore[override]
        self, model: TableItem, actions: list[Any], condition: Any = None, *, tag: Any = None
    ) -> None:
        kwargs = model.get_update_kwargs_from_instance(actions=actions, condition=condition)
        self._add(TRANSACT_UPDATE, kwargs, tag)

    def _commit(self) -> Any:
        try:
            return self._connection.dispatch(TRANSACT_WRITE_ITEMS, {TRANSACT_ITEMS: self.items})
        except (BotoCoreError, ClientError) as error:
            raise TransactWriteError("Failed to write transaction items", error) from error

    def reasons(self, error: TransactWriteError) -> list[tuple[Any, str]]:
        """(tag, reason code) for each item of the cancelled request; "None" where an item was fine."""
        reasons = error.cancellation_reasons
        if not reasons:
            return []  # not a cancellation (throttled, ...): no item is named
        if len(reasons) != len(self.items):
            raise TransactionMismatch(f"{len(reasons)} cancellation reasons for {len(self.items)} items")
        return [
            (tag, reason.code if reason else "None") for tag, reason in zip(self.tags, reasons, strict=True)
        ]


class TransactionMismatch(RuntimeError):
    """DynamoDB's cancellation reasons do not fit the request: nothing can be concluded from them."""


def transaction() -> Transaction:
    return Transaction(connection=TableItem._get_connection().connection)
