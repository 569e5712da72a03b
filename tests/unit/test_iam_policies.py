"""Least privilege, proven by the calls the code makes: each function's role in template.yaml grants
every AWS call its code made (action, resource, KMS encryption context) and nothing it never made.

moto and DynamoDB Local ignore IAM, so devtools/iam_recorder.py records the calls instead: this
module drives a workload of every operation that touches AWS through the real handlers, and the last
test of the session checks everything the functions' code called in the whole suite.

The SQS event source's own calls (ReceiveMessage, DeleteMessage, GetQueueAttributes) are made by
Lambda's poller with the function's role; SAM grants them for `Type: SQS` events (the managed policy
AWSLambdaSQSQueueExecutionRole). They are recorded as `<Function>/SQSEventSource` and checked against
that implicit grant, scoped to the event's queue; the function's own Policies must not repeat them.
"""

import base64
import dataclasses
import fnmatch
import json
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools import iam_recorder
from devtools.fake_meta import FakeMeta
from devtools.iam_recorder import ACCOUNT, Call, event_source_of
from devtools.template import REPO_ROOT, resources_of_type

REGION = "us-east-1"
# SAM's policy templates this template uses, as SAM defines them (samtranslator's
# policy_templates.json; test_the_sam_policy_templates_are_sams_own compares them).
SAM_POLICY_TEMPLATES: dict[str, dict[str, Any]] = {
    "SQSSendMessagePolicy": {
        "Statement": [
            {
                "Action": ["sqs:SendMessage*"],
                "Effect": "Allow",
                "Resource": {
                    "Fn::Sub": [
                        "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queueName}",
                        {"queueName": {"Ref": "QueueName"}},
                    ]
                },
            }
        ]
    },
    "SQSPollerPolicy": {
        "Statement": [
            {
                "Action": [
                    "sqs:ChangeMessageVisibility",
                    "sqs:ChangeMessageVisibilityBatch",
                    "sqs:DeleteMessage",
                    "sqs:DeleteMessageBatch",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ],
                "Effect": "Allow",
                "Resource": {
                    "Fn::Sub": [
                        "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${queueName}",
                        {"queueName": {"Ref": "QueueName"}},
                    ]
                },
            }
        ]
    },
}
# What SAM adds to the role of a function with a `Type: SQS` event (AWSLambdaSQSQueueExecutionRole).
SQS_EVENT_SOURCE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")


# -- the template's grants ------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One statement of a role: actions on resources (ARNs in which names are logical ids)."""

    role: str
    where: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Mapping[str, Any]]
    implicit: bool = False  # added by SAM, not in Policies

    def allows(self, call: Call, action: str | None = None, resource: str | None = None) -> bool:
        actions = (action,) if action else self.actions
        resources = (resource,) if resource else self.resources
        return (
            any(fnmatch.fnmatchcase(call.action.lower(), a.lower()) for a in actions)
            and any(fnmatch.fnmatchcase(call.resource, r) for r in resources)
            and conditions_hold(self.condition, call)
        )


def logical_arn(template: dict[str, Any], logical_id: str) -> str:
    kind = template["Resources"][logical_id]["Type"]
    prefix = {
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/",
        "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/",
    }[kind]
    return prefix + logical_id


def evaluate(template: dict[str, Any], value: Any, variables: Mapping[str, str] | None = None) -> str:
    """A policy's intrinsic as a string; resources are named by their logical ids."""
    variables = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::StackName": "*",
        **(variables or {}),
    }
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and argument in variables:
            return variables[argument]
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            if attribute == "Arn":
                return logical_arn(template, logical_id)
            if attribute == "QueueName":
                return str(logical_id)
        if function == "Fn::Sub":
            text, extra = (argument, {}) if isinstance(argument, str) else argument
            names = {**variables, **{k: evaluate(template, v, variables) for k, v in extra.items()}}

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in names:
                    return names[name]
                return evaluate(template, {"Fn::GetAtt": name.split(".", 1)}, variables)

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
    raise ValueError(f"cannot evaluate {value!r} in a policy")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(
    template: dict[str, Any], role: str, where: str, document: Any, variables: Mapping[str, str]
) -> Iterator[Grant]:
    for number, statement in enumerate(_as_list(document["Statement"])):
        unsupported = set(statement) - {"Effect", "Action", "Resource", "Condition", "Sid"}
        if statement.get("Effect") != "Allow" or unsupported:
            raise ValueError(f"{role} {where}: only Allow statements with Action and Resource are checked")
        yield Grant(
            role,
            f"{where}.Statement[{number}]",
            tuple(_as_list(statement["Action"])),
            tuple(evaluate(template, resource, variables) for resource in _as_list(statement["Resource"])),
            statement.get("Condition", {}),
        )


def role_grants(template: dict[str, Any]) -> dict[str, list[Grant]]:
    """Every function's Policies, SAM policy templates expanded, and the SQS event source's grant."""
    grants: dict[str, list[Grant]] = {}
    for function_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        properties = resource["Properties"]
        role = grants.setdefault(function_id, [])
        for number, policy in enumerate(_as_list(properties.get("Policies", []))):
            where = f"Policies[{number}]"
            if not isinstance(policy, dict):
                raise ValueError(
                    f"{function_id} {where}: managed policies are not checked; write a statement"
                )
            if "Statement" in policy:
                role.extend(_statements(template, function_id, where, policy, {}))
                continue
            ((name, parameters),) = policy.items()
            if name not in SAM_POLICY_TEMPLATES:
                raise ValueError(
                    f"{function_id} {where}: add SAM's definition of {name} to SAM_POLICY_TEMPLATES"
                )
            variables = {key: evaluate(template, value) for key, value in parameters.items()}
            role.extend(
                _statements(template, function_id, f"{where}.{name}", SAM_POLICY_TEMPLATES[name], variables)
            )
        for event_name, event in properties.get("Events", {}).items():
            if event.get("Type") == "SQS":
                queue = evaluate(template, event["Properties"]["Queue"])
                grants.setdefault(event_source_of(function_id), []).append(
                    Grant(
                        function_id,
                        f"Events.{event_name} (SAM)",
                        SQS_EVENT_SOURCE_ACTIONS,
                        (queue,),
                        {},
                        True,
                    )
                )
    return grants


# -- conditions -------------------------------------------------------------------------------------


def _condition_values(call: Call, key: str) -> list[str] | None:
    context = dict(call.encryption_context)
    if key == "kms:EncryptionContextKeys":
        return sorted(context) or None
    if key.startswith("kms:EncryptionContext:"):
        value = context.get(key.removeprefix("kms:EncryptionContext:"))
        return None if value is None else [value]
    raise ValueError(f"condition key {key} is not supported by this check")


def conditions_hold(condition: Mapping[str, Mapping[str, Any]], call: Call) -> bool:
    """IAM's evaluation of the condition operators this template uses (others raise)."""
    for operator, tests in condition.items():
        for key, expected in tests.items():
            values = _condition_values(call, key)
            allowed = {str(v) for v in _as_list(expected)}
            if operator == "Null":
                holds = (values is None) == (str(expected).lower() == "true")
            elif operator == "ForAllValues:StringEquals":
                holds = all(v in allowed for v in values or [])
            elif operator == "ForAnyValue:StringEquals":
                holds = any(v in allowed for v in values or [])
            elif operator == "StringEquals":
                holds = values is not None and len(values) == 1 and values[0] in allowed
            else:
                raise ValueError(f"condition operator {operator} is not supported by this check")
            if not holds:
                return False
    return True


# -- recorded calls, in the template's names --------------------------------------------------------


def logical_call(template: dict[str, Any], call: Call) -> Call:
    """The call with its resource named by the template's logical id.

    Local names follow devtools/provision.py: a queue is `<prefix>-<LogicalId>`, the main table is
    named freely (`pixel-gateway-test-3`), other tables `<prefix>-<LogicalId>`; a KMS alias is the
    template's AliasName with any stack name, and stands for its TargetKeyId (IAM authorizes the key).
    """
    resource = call.resource
    if match := re.fullmatch(r"arn:aws:dynamodb:([^:]+):([^:]+):table/([^/]+)(/index/.+)?", resource):
        region, account, name, index = match.groups()
        tables = list(resources_of_type(template, "AWS::DynamoDB::Table"))
        logical_id = next((t for t in tables if name.endswith(f"-{t}")), "PixelTable")
        resource = f"arn:aws:dynamodb:{region}:{account}:table/{logical_id}{index or ''}"
    elif match := re.fullmatch(r"arn:aws:sqs:([^:]+):([^:]+):(.+)", resource):
        region, account, name = match.groups()
        queues = sorted(resources_of_type(template, "AWS::SQS::Queue"), key=len, reverse=True)
        logical_id = next((q for q in queues if name.endswith(f"-{q}")), name)
        resource = f"arn:aws:sqs:{region}:{account}:{logical_id}"
    elif match := re.fullmatch(r"arn:aws:kms:([^:]+):([^:]+):(alias/.+)", resource):
        region, account, alias = match.groups()
        for properties in (r["Properties"] for r in resources_of_type(template, "AWS::KMS::Alias").values()):
            if fnmatch.fnmatchcase(alias, evaluate(template, properties["AliasName"])):
                resource = f"arn:aws:kms:{region}:{account}:key/{properties['TargetKeyId']['Ref']}"
    return dataclasses.replace(call, resource=resource)


def ungranted(template: dict[str, Any], calls: Iterable[Call]) -> list[str]:
    """Calls no statement of the caller's role allows."""
    grants = role_grants(template)
    missing = []
    for call in sorted(calls):
        named = logical_call(template, call)
        role = call.function.removesuffix("/SQSEventSource")
        statements = grants.get(role, []) + (grants.get(call.function, []) if role != call.function else [])
        if not any(grant.allows(named) for grant in statements):
            missing.append(f"{named} is not granted")
    return missing


def unused(template: dict[str, Any], calls: Iterable[Call]) -> list[str]:
    """Each (action, resource) of each Policies statement that no call of that function's code used."""
    named = [logical_call(template, call) for call in calls]
    idle = []
    for role, grants in role_grants(template).items():
        own = [call for call in named if call.function == role]
        for grant in (g for g in grants if not g.implicit):
            for action in grant.actions:
                for resource in grant.resources:
                    if not any(grant.allows(call, action, resource) for call in own):
                        idle.append(f"{role} {grant.where}: {action} on {resource} is never called")
    return idle


def unconditioned_kms_grants(template: dict[str, Any]) -> list[str]:
    return [
        f"{grant.role} {grant.where}: kms actions without a kms:EncryptionContextKeys condition"
        for grants in role_grants(template).values()
        for grant in grants
        if any(a.lower().startswith("kms:") for a in grant.actions)
        and not any("kms:EncryptionContextKeys" in tests for tests in grant.condition.values())
    ]


# -- the workload: every operation that touches AWS, through the real handlers ----------------------

PIXEL = 18904456377094531
PIXELS = "mutation P($event: ApiPixelsEventInput!) { pixels(event: $event) { code data message } }"
DOMAINS = "mutation D($event: ApiDomainsEventInput!) { domains(event: $event) { code data message } }"
PAGEVIEW = "mutation V($event: PageviewEventInput!) { pageview(event: $event) { code message } }"
TRACK = "mutation T($event: TrackEventInput!) { track(event: $event) { code data message } }"
STATS = "query S($event: ApiStatsEventInput!) { stats(event: $event) { code data message } }"
SIGNAL = """mutation M($tenantId: ID!, $input: PixelConnectionCreationInput!) { tenantMutations(tenantId: $tenantId) {
  signalMutations { setupPixelSignalConfig(input: $input) { id connectionStatus { totalEventsReceived } } } } }"""
EVENTS_STATUS = """mutation M($tenantId: ID!, $id: ID!, $input: SignalConfigStatusInput!) { tenantMutations(tenantId: $tenantId) {
  signalMutations { updateSignalConfigEventsStatus(id: $id, input: $input) { success connectionStatus { active } } } } }"""
CAPI_PUBLISH = """mutation M($tenantId: ID!, $id: ID!, $input: SignalConfigStatusInput!) { tenantMutations(tenantId: $tenantId) {
  signalMutations { updateSignalConfigCapiPublish(id: $id, input: $input) { success connectionStatus { active } } } } }"""
EVENT_FILTER = """mutation M($tenantId: ID!, $input: UpdateEventFilterInput!) { tenantMutations(tenantId: $tenantId) {
  updateEventFilter(input: $input) { updatedFilters { id } } } }"""
DOMAIN_FILTER = """mutation M($tenantId: ID!, $input: UpdateDomainFilterInput!) { tenantMutations(tenantId: $tenantId) {
  updateDomainFilter(input: $input) { updatedFilters { id } } } }"""
TENANT_QUERIES = """query Q($tenantId: ID!) { tenantQueries(tenantId: $tenantId) {
  account { signalConfigs { id connectionStatus { totalEventsReceived totalEventsPublished accessKey } } }
  eventFilters { id } domainFilters { id } } }"""
ROTATE_KEY = """mutation M($tenantId: ID!, $id: ID!) { tenantMutations(tenantId: $tenantId) {
  signalMutations { rotatePixelAccessKey(id: $id) { success connectionStatus { accessKey } } } } }"""
DELETE_DATA_SOURCE = """mutation M($tenantId: ID!, $id: ID!) { tenantMutations(tenantId: $tenantId) {
  signalMutations { deleteDataSource(id: $id) } } }"""


def api_event(
    path: str, authorization: str | None = None, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An HTTP API (payload 2.0) event, shaped like events/*.json."""
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "health.json").read_text())
    method = "GET" if body is None else "POST"
    event.update(routeKey=f"{method} {path}", rawPath=path, isBase64Encoded=False)
    event["requestContext"].update(routeKey=f"{method} {path}")
    event["requestContext"]["http"].update(method=method, path=path)
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-type"] = "application/json"
    if authorization:
        event["headers"]["authorization"] = authorization
    return event


def run_workload(
    handler: Any, lambda_context: Any, aggregator: Any, publisher: Any, cleanup: Any, meta: FakeMeta
) -> None:
    from pixel_core import auth

    # Set-up is the operator's (bin/pixel-admin), not a function's: not recorded.
    auth.create_tenant("iamtenant")
    credentials = auth.create_app({"iamtenant"})
    basic = "Basic " + base64.b64encode(f"{credentials.app_id}:{credentials.app_secret}".encode()).decode()

    def graphql(document: str, variables: dict[str, Any], path: str = "/graphql") -> Any:
        response = handler(
            api_event(path, basic, {"query": document, "variables": variables}), lambda_context
        )
        assert response["statusCode"] == 200, response
        answer = json.loads(response["body"])
        assert not answer.get("errors"), answer
        return answer["data"]

    def heropixel(document: str, **event: Any) -> Any:
        (answer,) = graphql(document, {"event": event}).values()
        assert answer["code"] == 200, answer
        return answer["data"]

    def capig(document: str, **variables: Any) -> Any:
        return graphql(document, {"tenantId": "iamtenant", **variables}, "/capig/graphql/")

    health = handler(api_event("/health"), lambda_context)
    assert health["statusCode"] == 200, health
    heropixel(PIXELS, action="create", pixel_id=123, name="Shop")
    heropixel(PIXELS, action="get", pixel_id=123)
    heropixel(PIXELS, action="list")
    heropixel(DOMAINS, action="add", pixel_id=123, domain="example.com")
    heropixel(DOMAINS, action="list", pixel_id=123)
    heropixel(DOMAINS, action="add", pixel_id=123, domain="shop.example.com")
    heropixel(DOMAINS, action="remove", pixel_id=123, domain="shop.example.com")
    graphql(PAGEVIEW, {"event": {"pixelId": 123, "domain": "example.com", "email": "a@x.com"}})
    connection = {
        "pixelId": str(PIXEL),
        "businessId": "2840127409433732",
        "accessToken": "EAAB-iam-token",
        "externalId": "633612748410ba6e902",
        "apiVersion": "v21.0",
    }
    capig(SIGNAL, input=connection)
    capig(EVENTS_STATUS, id=str(PIXEL), input={"status": 1})
    capig(CAPI_PUBLISH, id=str(PIXEL), input={"status": 1})
    capig(EVENT_FILTER, input={"eventName": "Lead", "pixelIds": [str(PIXEL)], "filterState": "DROP"})
    capig(EVENT_FILTER, input={"eventName": "Search", "pixelIds": None, "filterState": "DROP"})
    capig(DOMAIN_FILTER, input={"domain": "blocked.example", "pixelIds": None, "filterState": "DROP"})
    event = {"pixelId": str(PIXEL), "eventName": "Purchase", "url": "https://shop.example.com/checkout"}
    assert graphql(TRACK, {"event": event})["track"]["code"] == 200
    assert aggregator() >= 2
    assert publisher() >= 1
    assert len(meta.events()) == 1
    # An event of a pixel whose token Meta rejected is held: put back on the publish queue, delayed
    reject_the_token()
    assert graphql(TRACK, {"event": {**event, "eventId": "held-1"}})["track"]["code"] == 200
    assert (aggregator(), publisher(), len(meta.events())) == (1, 1, 1)
    heropixel(STATS, pixel_id=123, **{"from": "2020-01-01", "to": "2020-03-01"})
    accounts = capig(TENANT_QUERIES)["tenantQueries"]["account"]["signalConfigs"]
    assert sorted(config["connectionStatus"]["totalEventsPublished"] for config in accounts) == [0.0, 1.0]
    # Server events in Meta's format, with the pixel's access key (read back, then rotated)
    rotated = capig(ROTATE_KEY, id=str(PIXEL))["tenantMutations"]["signalMutations"]["rotatePixelAccessKey"]
    server_event = {
        "event_name": "Purchase",
        "event_time": int(time.time()),
        "action_source": "website",
        "event_source_url": "https://shop.example.com/checkout",
        "user_data": {"em": ["a@x.com"], "client_user_agent": "Mozilla/5.0"},
    }
    body = {"data": [server_event], "accessKey": rotated["connectionStatus"]["accessKey"]}
    answer = handler(api_event(f"/capi/{PIXEL}/events", None, body), lambda_context)
    assert json.loads(answer["body"])["events_received"] == 1, answer
    assert capig(DELETE_DATA_SOURCE, id=str(PIXEL))["tenantMutations"]["signalMutations"]["deleteDataSource"]
    heropixel(PIXELS, action="delete", pixel_id=123)
    run_cleanup_out_of_time_once(cleanup)


def reject_the_token() -> None:
    """As Meta's code 190 does (set-up, not a function's call)."""
    from pixel_core.models import PixelItem

    PixelItem(*PixelItem.key(PIXEL)).update(actions=[PixelItem.token_rejected.set(True)])


def run_cleanup_out_of_time_once(cleanup: Any) -> None:
    """The clean-up of the deleted pixels, its first invocation out of time so that it queues itself again."""
    cleanup_app = sys.modules["PixelCleanupFunction_app"]
    real_clean_up = cleanup_app.clean_up
    requests: list[Any] = []

    def out_of_time_once(request: Any, *, time_left: Any) -> Any:
        requests.append(request)
        return real_clean_up(request, time_left=(lambda: False) if len(requests) == 1 else time_left)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cleanup_app, "clean_up", out_of_time_once)
        assert cleanup() == 3


def test_every_call_of_every_operation_is_granted_and_every_grant_is_called(
    template, moto_table, handler, lambda_context, aggregator, publisher, cleanup, meta
):
    # Given every operation that touches AWS: GET /health, each GraphQL operation of both APIs,
    # the aggregator and the publisher, through their handlers
    with iam_recorder.recording() as recorded:
        run_workload(handler, lambda_context, aggregator, publisher, cleanup, meta)
    # Then each function and event source made calls, every one of them granted by its role
    callers = {call.function for call in recorded.calls}
    assert set(role_grants(template)) <= callers, sorted(callers)
    assert ungranted(template, recorded.calls) == []
    # And no role grants an action (on a resource) its function's code never called
    assert unused(template, recorded.calls) == []
    assert unconditioned_kms_grants(template) == []


def test_the_sam_policy_templates_are_sams_own():
    # Given SAM's own policy templates (from .venv-sam, which `scripts/bootstrap test` installs)
    found = sorted(
        Path(REPO_ROOT, ".venv-sam").glob(
            "lib/python*/site-packages/samtranslator/policy_templates_data/policy_templates.json"
        )
    )
    assert found, ".venv-sam has no samtranslator: run scripts/bootstrap test"
    sams = json.loads(found[-1].read_text())["Templates"]
    # Then the expansions used here are SAM's
    for name, definition in SAM_POLICY_TEMPLATES.items():
        assert sams[name]["Definition"] == definition, name


def call(function: str, action: str, resource: str, **context: str) -> Call:
    return Call(function, action, resource, tuple(sorted(context.items())))


TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/pixel-gateway-test-7"
KEY_ALIAS = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/pixel-gateway-test/access-tokens"


def test_the_check_names_a_missing_action_a_missing_index_grant_and_a_wrong_encryption_context(template):
    # Given calls the GraphQL role must not be allowed
    calls = [
        call("GraphQLFunction", "dynamodb:Scan", TABLE),
        call("GraphQLFunction", "dynamodb:Query", f"{TABLE}/index/other"),
        call("GraphQLFunction", "kms:Encrypt", KEY_ALIAS, tenant_id="t", pixel_id="1", other="x"),
        call("GraphQLFunction", "kms:Encrypt", KEY_ALIAS),
        call("CapiPublisherFunction", "dynamodb:DeleteItem", TABLE),
    ]
    # Then each is reported as not granted
    assert len(ungranted(template, calls)) == len(calls)
    # And granted ones are not
    assert (
        ungranted(template, [call("GraphQLFunction", "kms:Encrypt", KEY_ALIAS, tenant_id="t", pixel_id="1")])
        == []
    )


def test_transactions_are_authorized_per_item_action_and_batches_as_their_single_action():
    # Given one TransactWriteItems call and one SendMessageBatch call
    items = [
        {"Put": {"TableName": "t"}},
        {"ConditionCheck": {"TableName": "t"}},
        {"Update": {"TableName": "u"}},
    ]
    transaction = iam_recorder.iam_requests(
        "dynamodb", "TransactWriteItems", {"TransactItems": items}, REGION
    )
    batch = iam_recorder.iam_requests(
        "sqs", "SendMessageBatch", {"QueueUrl": "http://127.0.0.1:1/123456789012/q"}, REGION
    )
    # Then IAM sees the item actions and the single-message action
    assert [action for action, _, _ in transaction] == [
        "dynamodb:PutItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
    ]
    assert batch == [("sqs:SendMessage", f"arn:aws:sqs:{REGION}:123456789012:q", ())]


def test_a_grant_no_code_uses_is_reported(template):
    # Given only the aggregator's event source polling, and none of the functions' own calls
    calls = [
        call(
            event_source_of("CounterAggregatorFunction"),
            "sqs:ReceiveMessage",
            f"arn:aws:sqs:{REGION}:{ACCOUNT}:x-EventsQueue",
        )
    ]
    # Then the poll is granted (by SAM) and every Policies grant is reported as never called
    assert ungranted(template, calls) == []
    idle = unused(template, calls)
    assert any(line.startswith("CounterAggregatorFunction Policies[0].SQSSendMessagePolicy") for line in idle)
    assert not any("ReceiveMessage" in line for line in idle)


def test_recorded_calls_come_back_unchanged_from_the_file_a_test_worker_writes(tmp_path):
    # Given calls as pytest-xdist workers record them, a KMS call with its encryption context among them
    written = iam_recorder.Recorder()
    written.calls = {
        Call("GraphQLFunction", "kms:Encrypt", "arn:aws:kms:us-east-1:123456789012:key/k", (("pixel", "1"),)),
        Call("CapiPublisherFunction", "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q"),
    }
    # When one process saves them and another loads them (make test's second step)
    written.save(tmp_path / "gw0.json")
    read = iam_recorder.Recorder()
    read.load(tmp_path / "gw0.json")
    # Then the same calls are checked
    assert read.calls == written.calls


def test_every_call_the_functions_made_in_this_session_is_granted(template, iam_session_calls):
    # Given what every test of this session ran of the functions' code (this test runs last; under
    # pytest-xdist, make test runs it alone afterwards with every worker's calls: --iam-calls-in)
    calls = set(iam_session_calls.calls)
    # Then the session called something, and every call is granted by the caller's role
    assert calls
    assert ungranted(template, calls) == []
    assert unused(template, calls) == []


test_every_call_the_functions_made_in_this_session_is_granted.run_last = True  # type: ignore[attr-defined]
