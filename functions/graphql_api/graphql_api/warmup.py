"""SnapStart: what every first request needs, made once before Lambda snapshots the initialised
container (`prime`), and what must not be shared renewed in each copy restored from it (`renew`).

Without SnapStart none of this runs: a cold start's init and its first request are paid back to
back, by the same caller, at the same price, so priming at init would only move the cost from the
request to init (docs/operations.md, "Cold start and SnapStart"). With SnapStart, init runs once
per published version and every restored copy starts from its end.

`prime` makes nothing that is unique to one copy: no botocore client (hence no HTTP connection
pool) and no credentials, only the immutable data botocore reads to make a client (service models,
endpoint rule sets, the endpoints and partitions data) held by the one botocore session every
client is made from (pixel_core.aws). The clients of a restored copy are made by its first request,
from that warm session, with credentials resolved in that copy (SnapStart gives them through the
container credentials endpoint, not environment variables frozen in the snapshot).
"""

import gc
import importlib
import random
from typing import Any

from ariadne.graphql import parse_query, validate_query

from graphql_api import routes
from graphql_api.server import graphql_app
from pixel_core import aws, bots, queues, tokens

# What botocore reads to make a client of each of the services (pixel_core.aws.SERVICES).
CLIENT_MODEL_TYPES = ("service-2", "endpoint-rule-set-1")
SESSION_DATA = ("endpoints", "partitions", "sdk-default-configuration")

# The seed operations as the published documents give them, character for character: the document
# cache is keyed by the query text, so what clients copy from the documents is answered from it.
# HeroPixel's pageview carries the caller's credentials inline, so each site's text is its own:
# priming the documented one still warms the parser and the validation rules for them.
SEED_DOCUMENTS = (
    # HeroPixel (heropixel-pageview-api.md, heropixel-domains-api.md)
    'mutation HeroPixel($event: PageviewEventInput!) { pageview(auth: { appId: "", appSecret: "" }, '
    "event: $event) { message code data } }",
    "mutation Domains($auth: AuthRequestInput!, $event: ApiDomainsEventInput!) "
    "{ domains(auth: $auth, event: $event) { code data message } }",
    # Meta's CAPIG control plane (capig-multi-account-control-plane-api.md), unchanged
    """mutation AddNewPixelModalMutation(
   $tenantId: ID!
   $input: PixelConnectionCreationInput!
) {
   tenantMutations(tenantId: $tenantId) {
          signalMutations {
              setupPixelSignalConfig(input: $input) {
              id
              domains
              connectionId
              connectionStatus {
                  id
                  accessTokenAvailable
                  active
                  eventBridgeActive
                  publishingEnabled
                  apiErrorCode
                  pixelID
                  pixelName
                  lastPublished
                  totalEventsPublished
                  lastReceived
                  totalEventsReceived
                  }
              }
          }
   }
}""",
    """mutation DeleteDataSourceModalMutation(
 $id: ID!
 $tenantId: ID!
) {
 tenantMutations(tenantId: $tenantId) {
   signalMutations {
     deleteDataSource(id: $id)
   }
 }
}""",
    """mutation updateSignalConfigStatusMutation(
   $id: ID!, $tenantId: ID!, $input: SignalConfigStatusInput!) {
 tenantMutations(tenantId: $tenantId) {
   signalMutations {
     updateSignalConfigEventsStatus(id: $id, input: $input) {
       success
       connectionStatus {
         id
         connected
         active
         eventBridgeActive
         publishingEnabled
       }
     }
   }
 }
}""",
    """mutation updateSignalConfigCapiPublishMutation(
$id: ID!, $tenantId: ID!, $input: SignalConfigStatusInput!) {
 tenantMutations(tenantId: $tenantId) {
   signalMutations {
     updateSignalConfigCapiPublish(id: $id, input: $input) {
       success
       connectionStatus {
         id
         active
         eventBridgeActive
         publishingEnabled
       }
     }
   }
 }
}""",
    """mutation EventFilterStatusMutation($tenantId: ID!, $input: UpdateEventFilterInput!) {
tenantMutations(tenantId: $tenantId) {
  updateEventFilter(input: $input) {
    updatedFilter {
      eventName
      pixelId
      filterState
    }
  }
}
}""",
    """mutation useComitDomainFilterChangeMutation($tenantId: ID!, $input: UpdateDomainFilterInput!) {
 tenantMutations(tenantId: $tenantId) {
   updateDomainFilter(input: $input) {
     updatedFilter {
       id
       domain
       pixelId
       filterState
     }
   }
 }
}""",
)
# A browser's user agent: judging it compiles CrawlerDetect's patterns, as a visitor's first event would.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)
SNAPSHOT_HOOKS_MODULE = "snapshot_restore_py"  # part of Lambda's Python 3.12+ runtimes; absent locally


def prime() -> None:
    """Before the snapshot: everything a first request would otherwise read or build."""
    for module in routes.HANDLER_MODULES:
        importlib.import_module(module)
    _prime_botocore()
    _prime_documents()
    bots.is_bot(BROWSER_USER_AGENT)
    # What priming made lives as long as the copy: out of the collector's passes, as init's is (app.py).
    gc.freeze()


def renew() -> None:
    """After a restore: what every copy restored from the same snapshot would otherwise share."""
    # The stdlib's generator (botocore's retry jitter uses it) would draw the same numbers in every
    # copy. `secrets` and uuid4, which make ids and keys here, read os.urandom and need nothing.
    random.seed()
    # No botocore client, hence no connection and no credentials, is made before the snapshot:
    # `prime` reads data only, and PynamoDB makes its client on first use. Were an SQS or KMS client
    # ever made at init, it is dropped here, its connection pool and credentials with it.
    queues.sqs_client.cache_clear()
    tokens.kms_client.cache_clear()


def register_snapshot_hooks() -> bool:
    """Registers `prime` and `renew` with SnapStart's runtime hooks; False where the runtime has none
    (local runs, tests, `sam local`). Lambda runs them only for versions published with SnapStart."""
    try:
        hooks: Any = importlib.import_module(SNAPSHOT_HOOKS_MODULE)
    except ImportError:
        return False
    hooks.register_before_snapshot(prime)
    hooks.register_after_restore(renew)
    return True


def _prime_botocore() -> None:
    loader = aws.session().get_component("data_loader")
    for name in SESSION_DATA:
        loader.load_data(name)
    for service in aws.SERVICES:
        for model_type in CLIENT_MODEL_TYPES:
            loader.load_service_model(service, model_type)


def _prime_documents() -> None:
    """Parses and validates each seed document exactly as Ariadne does for a request, through the
    app's own parser, rules and validator, so that the cached verdict is the one requests look up."""
    handler = graphql_app.http_handler
    schema = handler.schema
    assert schema is not None, "Ariadne configures the handler with the app's schema"
    for query in SEED_DOCUMENTS:
        data = {"query": query, "variables": None, "operationName": None}
        document = parse_query(None, handler.query_parser, data)
        rules = handler.validation_rules
        validate_query(
            schema,
            document,
            rules(None, document, data) if callable(rules) else rules,
            enable_introspection=handler.introspection,
            query_validator=handler.query_validator,
        )
