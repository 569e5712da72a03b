"""SnapStart's runtime hooks (graphql_api/warmup.py), run in process: registered with Lambda's
snapshot_restore_py when the runtime has it (a stand-in here), skipped where it has not; priming
fills what a first request would otherwise read and makes nothing one restored copy must not share;
renewing gives each copy random state and clients of its own.
"""

import json
import random
import subprocess
import sys
import types
from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from ariadne.graphql import validate_query

from graphql_api import warmup
from graphql_api.server import graphql_app
from pixel_core import queues, tokens
from tests.support import documents


class SnapshotRestoreStandIn(types.ModuleType):
    """What Lambda's snapshot_restore_py offers: the two registration functions."""

    def __init__(self) -> None:
        super().__init__(warmup.SNAPSHOT_HOOKS_MODULE)
        self.before: list[Callable[..., Any]] = []
        self.after: list[Callable[..., Any]] = []

    def register_before_snapshot(self, hook: Callable[..., Any], *_args: Any, **_kwargs: Any) -> Any:
        self.before.append(hook)
        return hook

    def register_after_restore(self, hook: Callable[..., Any], *_args: Any, **_kwargs: Any) -> Any:
        self.after.append(hook)
        return hook


@pytest.fixture
def snapshot_restore(monkeypatch: pytest.MonkeyPatch) -> SnapshotRestoreStandIn:
    stand_in = SnapshotRestoreStandIn()
    monkeypatch.setitem(sys.modules, warmup.SNAPSHOT_HOOKS_MODULE, stand_in)
    return stand_in


def test_without_lambdas_snapshot_module_no_hook_is_registered_and_nothing_fails() -> None:
    # Given a runtime without snapshot_restore_py (a local run, the test suite)
    assert warmup.SNAPSHOT_HOOKS_MODULE not in sys.modules

    # When the handler registers its hooks, Then it says none were registered
    assert warmup.register_snapshot_hooks() is False


def test_with_lambdas_snapshot_module_prime_runs_before_the_snapshot_and_renew_after_each_restore(
    snapshot_restore: SnapshotRestoreStandIn,
) -> None:
    # When the handler registers its hooks on a runtime that has the module
    registered = warmup.register_snapshot_hooks()

    # Then priming is registered before the snapshot, renewal after the restore
    assert registered is True
    assert snapshot_restore.before == [warmup.prime]
    assert snapshot_restore.after == [warmup.renew]


def test_the_lambda_handler_registers_the_hooks_when_lambda_loads_it(
    snapshot_restore: SnapshotRestoreStandIn,
) -> None:
    from devtools.functions import load_handler  # loads app.py again, with the stand-in

    # When Lambda imports the handler module
    load_handler("functions/graphql_api", "app.handler", module_alias="test_snapstart_app")

    # Then its init registered the hooks
    assert snapshot_restore.before == [warmup.prime]
    assert snapshot_restore.after == [warmup.renew]


def test_priming_makes_no_client_and_resolves_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given that making a client or resolving credentials would fail
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("made before the snapshot: every restored copy would share it")

    monkeypatch.setattr(botocore.session.Session, "create_client", refuse)
    monkeypatch.setattr(botocore.session.Session, "get_credentials", refuse)

    # When priming runs (twice: Lambda may run init again for a new version), Then it succeeds
    warmup.prime()
    warmup.prime()


def test_priming_reads_what_a_first_client_reads_into_the_one_botocore_session() -> None:
    from pixel_core import aws

    # When priming has run
    warmup.prime()

    # Then the session every client is made from already holds each service's model and rules
    loader = aws.session().get_component("data_loader")
    for service in aws.SERVICES:
        for model_type in warmup.CLIENT_MODEL_TYPES:
            assert loader.load_service_model(service, model_type) is loader.load_service_model(
                service, model_type
            )
    assert "dynamodb" in loader.list_available_services("service-2")


def test_priming_parses_and_validates_the_seed_documents_so_requests_find_them_cached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import graphql_api.documents as cache_module

    # Given primed documents
    warmup.prime()
    handler = graphql_app.http_handler
    assert handler.query_parser is not None
    data = {"query": documents.SETUP, "variables": None, "operationName": None}
    primed = handler.query_parser(None, data)

    # When a request brings a seed document, Then it is neither parsed nor validated again
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("not cached")

    monkeypatch.setattr(cache_module, "parse", refuse)
    monkeypatch.setattr(cache_module, "validate", refuse)
    assert handler.query_parser(None, data) is primed
    rules = handler.validation_rules
    assert callable(rules)
    assert handler.schema is not None
    # As Ariadne validates a request's document; the cost rule, request-scoped, runs every time
    # (and skips here: the variables are missing, so execution would refuse the request).
    errors = validate_query(
        handler.schema,
        primed,
        rules(None, primed, data),
        enable_introspection=handler.introspection,
        query_validator=handler.query_validator,
    )
    assert errors == []


def test_the_primed_documents_are_the_published_ones_character_for_character() -> None:
    # The cache is keyed by the text: a copy that drifted from the documents would prime nothing.
    for published in (
        documents.SETUP,
        documents.DELETE,
        documents.EVENTS_STATUS,
        documents.CAPI_PUBLISH,
        documents.EVENT_FILTER,
        documents.DOMAIN_FILTER,
        documents.SEED_QUERY,
    ):
        assert published in warmup.SEED_DOCUMENTS
    # HeroPixel's pageview as documented, with its placeholder credentials (each site has its own).
    assert documents.SEED_PAGEVIEW.replace('"APP"', '""').replace('"SECRET"', '""') in warmup.SEED_DOCUMENTS


def test_renewing_gives_each_restored_copy_its_own_random_state() -> None:
    # Given the state a snapshot froze, drawn from by one copy
    random.seed(16)
    frozen = random.getstate()
    first_copy = random.random()

    # When another copy restored from the same state renews it
    random.setstate(frozen)
    warmup.renew()

    # Then it does not draw the same numbers
    assert random.random() != first_copy


def test_renewing_drops_clients_made_before_the_snapshot_with_their_pools_and_credentials() -> None:
    # Given SQS and KMS clients made at init
    before = queues.sqs_client(), tokens.kms_client()

    # When a restored copy renews
    warmup.renew()

    # Then its first request makes clients of its own
    assert queues.sqs_client() is not before[0]
    assert tokens.kms_client() is not before[1]


# In a fresh interpreter: what the handler's import loaded of the route modules, then what a first
# request to each route and the before-snapshot hook loaded.
_ROUTE_MODULES_LOADED = r"""
import asyncio, json, sys
import app
from graphql_api import routes, warmup
loaded = lambda: [name for name in routes.HANDLER_MODULES if name in sys.modules]
seen = {"init": loaded()}

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    pass

scope = {"type": "http", "method": "GET", "path": "/px.js", "headers": []}
asyncio.run(app.asgi_app(scope, receive, send))
seen["first /px.js"] = loaded()
warmup.prime()
seen["prime"] = loaded()
print(json.dumps(seen))
"""


def test_a_cold_start_loads_the_browser_and_server_events_handlers_on_their_routes_first_requests_and_priming_loads_them_all() -> (
    None
):
    completed = subprocess.run(
        [sys.executable, "-c", _ROUTE_MODULES_LOADED], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout.splitlines()[-1]) == {
        "init": [],
        "first /px.js": ["graphql_api.browser"],
        "prime": ["graphql_api.browser", "graphql_api.server_events"],
    }


# In a fresh interpreter: the collections that ran during the handler's imports, the collector's
# state after it, a collection of garbage made afterwards, and what priming left frozen.
_COLLECTOR_AROUND_INIT = r"""
import gc, json, sys
collections = []
# Once app.py's imports have begun (it turns the collector off before them).
during_imports = lambda: "aws_lambda_powertools" in sys.modules and "app" in sys.modules
gc.callbacks.append(lambda phase, info: phase == "start" and during_imports() and collections.append(info))
import app
seen = {"collections during init": len(collections), "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}

class Cycle:
    pass

for _ in range(100):
    garbage = Cycle()
    garbage.itself = garbage
del garbage
seen["found by a collection"] = gc.collect()
from graphql_api import warmup
warmup.prime()
seen["frozen after priming"] = gc.get_freeze_count()
print(json.dumps(seen))
"""


def test_init_runs_no_collection_and_leaves_its_objects_frozen_and_the_collector_on_for_requests() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _COLLECTOR_AROUND_INIT], capture_output=True, text=True, check=False
    )

    assert completed.returncode == 0, completed.stderr
    seen = json.loads(completed.stdout.splitlines()[-1])
    # No pass during init (Python would make about 40 over the same imports), the collector on after it
    assert seen["collections during init"] == 0
    assert seen["enabled"] is True
    # Init's objects (some 55,000) are out of later collections, which still find new garbage
    assert seen["frozen"] > 20_000
    assert seen["found by a collection"] >= 100
    # And priming freezes what it made too
    assert seen["frozen after priming"] > seen["frozen"]
