"""Create the template's tables and queues in local emulators (DynamoDB Local, moto)."""

from __future__ import annotations

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


def default_name(prefix: str, logical_id: str) -> str:
    return prefix if logical_id == _MAIN_TABLE else f"{prefix}-{logical_id}"


def provision(
    template: dict[str, Any],
    *,
    dynamodb_endpoint: str,
    sqs_endpoint: str | None,
    table_names: dict[str, str] | None = None,
    queue_prefix: str = "pixel-gateway-local",
) -> ProvisionedResources:
    """Create every DynamoDB table and SQS queue of ``template``; what already exists is left alone.

    ``sqs_endpoint=None`` skips the queues (for callers that only need the tables).
    Credentials come from the environment; callers set fake ones.
    """
    session = boto3.session.Session(region_name=REGION)
    result = ProvisionedResources()
    dynamodb = session.client("dynamodb", endpoint_url=dynamodb_endpoint)
    for logical_id in resources_of_type(template, "AWS::DynamoDB::Table"):
        name = (table_names or {}).get(logical_id) or default_name(queue_prefix, logical_id)
        _ensure_table(dynamodb, template, logical_id, name)
        result.table_names[logical_id] = name
    if sqs_endpoint is not None:
        sqs = session.client("sqs", endpoint_url=sqs_endpoint)
        for logical_id in _queues_in_creation_order(template):
            kwargs = queue_create_kwargs(
                template, logical_id, default_name(queue_prefix, logical_id), result.queue_arns.__getitem__
            )
            url = _ensure_queue(sqs, kwargs)
            result.queue_urls[logical_id] = url
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            result.queue_arns[logical_id] = attributes["QueueArn"]
    return result


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
