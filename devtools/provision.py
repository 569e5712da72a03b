"""Create the template's tables, queues and KMS keys in local emulators (DynamoDB Local, moto)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

import boto3
from botocore.exceptions import ClientError

from devtools.template import (
    queue_create_kwargs,
    redrive_target,
    resources_of_type,
    table_create_kwargs,
    table_ttl_attribute,
)

REGION = "us-east-1"
# The application's local default TABLE_NAME is the bare prefix.
_MAIN_TABLE = "PixelTable"


@dataclass(frozen=True)
class ProvisionedResources:
    table_names: dict[str, str] = field(default_factory=dict)  # logical id -> table name
    queue_urls: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    queue_arns: dict[str, str] = field(default_factory=dict)  # logical id -> queue ARN
    kms_aliases: dict[str, str] = field(default_factory=dict)  # logical id -> alias name ("alias/...")


def default_name(prefix: str, logical_id: str) -> str:
    return prefix if logical_id == _MAIN_TABLE else f"{prefix}-{logical_id}"


def provision(
    template: dict[str, Any],
    *,
    dynamodb_endpoint: str,
    sqs_endpoint: str | None,
    table_names: dict[str, str] | None = None,
    queue_prefix: str = "pixel-gateway-local",
    kms_endpoint: str | None = None,
) -> ProvisionedResources:
    """Create every DynamoDB table and SQS queue of ``template``; what already exists is left alone.

    ``sqs_endpoint=None`` skips the queues (for callers that only need the tables).
    With ``kms_endpoint``, every ``AWS::KMS::Key`` and ``AWS::KMS::Alias`` is created too. Alias names
    are resolved with ``queue_prefix`` standing for ``${AWS::StackName}`` (so
    ``!Sub alias/${AWS::StackName}/access-tokens`` becomes ``alias/<queue_prefix>/access-tokens``). A key
    is found again through its aliases, so provisioning twice reuses it; every key therefore needs an
    alias (``TargetKeyId: !Ref <Key>``). Key policies are not applied: the emulator ignores them.
    Credentials come from the environment when a client is first made; callers set fake ones.
    """
    result = ProvisionedResources()
    dynamodb = _client("dynamodb", dynamodb_endpoint)
    for logical_id in resources_of_type(template, "AWS::DynamoDB::Table"):
        name = (table_names or {}).get(logical_id) or default_name(queue_prefix, logical_id)
        _ensure_table(dynamodb, template, logical_id, name)
        result.table_names[logical_id] = name
    if sqs_endpoint is not None:
        sqs = _client("sqs", sqs_endpoint)
        for logical_id in _queues_in_creation_order(template):
            kwargs = queue_create_kwargs(
                template, logical_id, default_name(queue_prefix, logical_id), result.queue_arns.__getitem__
            )
            url = _ensure_queue(sqs, kwargs)
            result.queue_urls[logical_id] = url
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            result.queue_arns[logical_id] = attributes["QueueArn"]
    if kms_endpoint is not None:
        kms = _client("kms", kms_endpoint)
        result.kms_aliases.update(_ensure_kms_keys(kms, template, stack_name=queue_prefix))
    return result


@functools.cache
def _client(service: str, endpoint_url: str) -> Any:
    """One client per service and endpoint in a process.

    The tests provision before each test, and a client from a new boto3 session loads its service
    model again (about 40 ms each, half of provisioning's time). moto intercepts clients made before
    its mock starts, so a cached client serves every test's mock.
    """
    return _SESSION.client(service, endpoint_url=endpoint_url)


_SESSION = boto3.session.Session(region_name=REGION)


def _ensure_table(dynamodb: Any, template: dict[str, Any], logical_id: str, name: str) -> None:
    try:
        dynamodb.create_table(**table_create_kwargs(template, logical_id, name))
    except ClientError as error:
        # Already there (earlier run, persisted db): keep it and its data as they are.
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    # Emulators create tables ACTIVE at once, so a short delay keeps this fast.
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ttl_attribute = table_ttl_attribute(template, logical_id)
    if ttl_attribute is not None:
        _enable_ttl(dynamodb, name, ttl_attribute)


def _enable_ttl(dynamodb: Any, table_name: str, attribute: str) -> None:
    try:
        description = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if description.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            return  # enabling twice is a ValidationException
        dynamodb.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )
    except ClientError as error:
        # An emulator without the TTL API: nothing expires locally, which the app must tolerate anyway.
        if error.response["Error"]["Code"] not in ("UnknownOperationException", "NotImplementedError"):
            raise


def _queues_in_creation_order(template: dict[str, Any]) -> list[str]:
    """Queue logical ids with every dead-letter queue before the queues that redrive to it."""
    queues = resources_of_type(template, "AWS::SQS::Queue")
    graph: dict[str, set[str]] = {}
    for logical_id in queues:
        target = redrive_target(template, logical_id)
        if target is not None and target not in queues:
            raise ValueError(f"{logical_id} redrives to {target!r}, which is not an AWS::SQS::Queue")
        graph[logical_id] = {target} if target is not None else set()
    return list(TopologicalSorter(graph).static_order())


def _ensure_queue(sqs: Any, kwargs: dict[str, Any]) -> str:
    try:
        url: str = sqs.get_queue_url(QueueName=kwargs["QueueName"])["QueueUrl"]
        return url  # already there: leave it as it is
    except ClientError as error:
        if error.response["Error"]["Code"] not in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            raise
    created: str = sqs.create_queue(**kwargs)["QueueUrl"]
    return created


def _with_stack_name(value: Any, stack_name: str) -> str | None:
    """A plain string, or ``!Sub`` with no variable but ``${AWS::StackName}``, resolved; else None."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        value = value["Fn::Sub"].replace("${AWS::StackName}", stack_name)
    if not isinstance(value, str) or "${" in value:
        return None
    return value


def _alias_name(logical_id: str, value: Any, stack_name: str) -> str:
    name = _with_stack_name(value, stack_name)
    if name is None:
        raise ValueError(
            f"{logical_id}.AliasName: only a string or !Sub with ${{AWS::StackName}} can be resolved locally"
        )
    return name


def _alias_target(logical_id: str, value: Any) -> str:
    """Logical id of the key an alias points at (``!Ref Key``, ``!GetAtt Key.Arn`` or ``.KeyId``)."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    if (
        isinstance(value, dict)
        and set(value) == {"Fn::GetAtt"}
        and value["Fn::GetAtt"][1] in ("Arn", "KeyId")
    ):
        return str(value["Fn::GetAtt"][0])
    raise ValueError(f"{logical_id}.TargetKeyId must be !Ref <Key> or !GetAtt <Key>.Arn: {value}")


def _ensure_kms_keys(kms: Any, template: dict[str, Any], stack_name: str) -> dict[str, str]:
    """Each key of the template, found through one of its aliases or else created; each alias set."""
    keys = resources_of_type(template, "AWS::KMS::Key")
    aliases_of: dict[str, dict[str, str]] = {key_id: {} for key_id in keys}  # key -> alias id -> name
    for alias_id, alias in resources_of_type(template, "AWS::KMS::Alias").items():
        properties = alias.get("Properties", {})
        target = _alias_target(alias_id, properties.get("TargetKeyId"))
        if target not in keys:
            raise ValueError(f"{alias_id} points at {target!r}, which is not an AWS::KMS::Key")
        aliases_of[target][alias_id] = _alias_name(alias_id, properties.get("AliasName"), stack_name)
    result: dict[str, str] = {}
    for key_logical_id, key in keys.items():
        aliases = aliases_of[key_logical_id]
        if not aliases:
            raise ValueError(
                f"{key_logical_id}: a key without an AWS::KMS::Alias cannot be found again locally"
            )
        current = {name: _key_of_alias(kms, name) for name in aliases.values()}
        existing = [key_id for key_id in current.values() if key_id is not None]
        key_id = existing[0] if existing else _create_key(kms, key, stack_name)
        for name, target_key in current.items():
            if target_key is None:
                kms.create_alias(AliasName=name, TargetKeyId=key_id)
            elif target_key != key_id:
                kms.update_alias(AliasName=name, TargetKeyId=key_id)
        result.update(aliases)
    return result


def _key_of_alias(kms: Any, alias_name: str) -> str | None:
    try:
        key_id: str = kms.describe_key(KeyId=alias_name)["KeyMetadata"]["KeyId"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NotFoundException":
            raise
        return None
    return key_id


def _create_key(kms: Any, key: dict[str, Any], stack_name: str) -> str:
    properties = key.get("Properties", {})
    kwargs = {
        name: properties[name] for name in ("KeyUsage", "KeySpec") if isinstance(properties.get(name), str)
    }
    description = _with_stack_name(properties.get("Description"), stack_name)
    if description is not None:
        kwargs["Description"] = description
    key_id: str = kms.create_key(**kwargs)["KeyMetadata"]["KeyId"]
    if properties.get("EnableKeyRotation") is True:
        kms.enable_key_rotation(KeyId=key_id)
    return key_id
