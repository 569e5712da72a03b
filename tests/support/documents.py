"""GraphQL documents that several test modules send, and the JSON body a request carries them in.

One copy of each: the reference's samples are copied unchanged, and a test that needs a variant
writes its own beside the test.
"""

import json
from typing import Any

# The CAPIG reference's sample mutations, unchanged.
SETUP = """mutation AddNewPixelModalMutation(
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
}"""
DELETE = """mutation DeleteDataSourceModalMutation(
 $id: ID!
 $tenantId: ID!
) {
 tenantMutations(tenantId: $tenantId) {
   signalMutations {
     deleteDataSource(id: $id)
   }
 }
}"""
EVENTS_STATUS = """mutation updateSignalConfigStatusMutation(
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
}"""
CAPI_PUBLISH = """mutation updateSignalConfigCapiPublishMutation(
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
}"""
EVENT_FILTER = """mutation EventFilterStatusMutation($tenantId: ID!, $input: UpdateEventFilterInput!) {
tenantMutations(tenantId: $tenantId) {
  updateEventFilter(input: $input) {
    updatedFilter {
      eventName
      pixelId
      filterState
    }
  }
}
}"""
DOMAIN_FILTER = """mutation useComitDomainFilterChangeMutation($tenantId: ID!, $input: UpdateDomainFilterInput!) {
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
}"""
TENANT_QUERIES = """query Account($tenantId: ID!) { tenantQueries(tenantId: $tenantId) {
  account { signalConfigs { id domains connectionId connectionStatus { id accessTokenAvailable active connected
    eventBridgeActive publishingEnabled apiErrorCode pixelID lastReceived totalEventsReceived totalEventsPublished lastPublished } } }
  eventFilters { id eventName pixelId filterState }
  domainFilters { id domain pixelId filterState } } }"""
TRACK = "mutation T($event: TrackEventInput!) { track(event: $event) { code data message } }"
PIXEL = "18904456377094531"
# The Meta access token of the `connected` fixture's pixel.
META_TOKEN = "EAAB-test-access-token-0123456789"
SETUP_VARIABLES: dict[str, Any] = {
    "tenantId": "IaoreXfj",
    "input": {
        "pixelId": PIXEL,
        "businessId": "2840127409433732",
        "accessToken": "<accessToken>",
        "apiVersion": "v14.0",
        "externalId": "633612748410ba6e902",
    },
}

# Copied unchanged from the HeroPixel domains document: the app's credentials inline, as `auth`.
SEED_QUERY = (
    "mutation Domains($auth: AuthRequestInput!, $event: ApiDomainsEventInput!) "
    "{ domains(auth: $auth, event: $event) { code data message } }"
)
# The pageview document's request, with real values in place of its empty placeholders.
SEED_PAGEVIEW = (
    'mutation HeroPixel($event: PageviewEventInput!) { pageview(auth: { appId: "APP", appSecret: "SECRET" }, '
    "event: $event) { message code data } }"
)
PAGEVIEW = (
    "mutation PV($auth: AuthRequestInput!, $event: PageviewEventInput!) "
    "{ pageview(auth: $auth, event: $event) { code data message } }"
)
# HeroPixel operations for a request with Basic auth (no `auth` argument).
PIXELS = "mutation Pixels($event: ApiPixelsEventInput!) { pixels(event: $event) { code data message } }"
DOMAINS = "mutation Domains($event: ApiDomainsEventInput!) { domains(event: $event) { code data message } }"
STATS = "query Stats($event: ApiStatsEventInput!) { stats(event: $event) { code data message } }"


def graphql_body(query: str, variables: dict[str, Any] | None = None) -> str:
    """The JSON body of a GraphQL POST."""
    return json.dumps({"query": query, "variables": variables})
