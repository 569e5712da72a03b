"""Read the SAM template and turn its resources into boto3 create_* arguments for local emulators."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

# Short-form tag -> long-form key. Everything but Ref and Condition is an Fn:: function.
_INTRINSICS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "GetAtt",
            "Sub",
            "Join",
            "If",
            "Equals",
            "Select",
            "Split",
            "FindInMap",
            "GetAZs",
            "ImportValue",
            "Base64",
            "Cidr",
            "Not",
            "And",
            "Or",
        )
    },
}


class _TemplateLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """SafeLoader that also understands CloudFormation's short-form tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if tag_suffix not in _INTRINSICS:
        raise yaml.constructor.ConstructorError(None, None, f"unknown tag !{tag_suffix}", node.start_mark)
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # "!GetAtt Resource.Attr.Sub" names attribute "Attr.Sub" of "Resource".
        value = value.split(".", 1)
    return {_INTRINSICS[tag_suffix]: value}


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template, short-form tags become long-form dicts."""
    with path.open(encoding="utf-8") as stream:
        template = yaml.load(stream, Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(template, dict):
        raise ValueError(f"{path} is not a template (top level is not a mapping)")
    return template


def resources_of_type(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    """Resources of one CloudFormation type, by logical id, in template order."""
    resources: dict[str, dict[str, Any]] = template.get("Resources", {})
    return {logical_id: res for logical_id, res in resources.items() if res.get("Type") == type_name}


def _properties(template: dict[str, Any], logical_id: str, type_name: str) -> dict[str, Any]:
    resource = template.get("Resources", {}).get(logical_id)
    if resource is None or resource.get("Type") != type_name:
        raise KeyError(f"template has no {type_name} named {logical_id!r}")
    properties: dict[str, Any] = resource.get("Properties", {})
    return properties


def _index(index: dict[str, Any]) -> dict[str, Any]:
    # Only the shape of the index; throughput/contributor insights mean nothing locally.
    return {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}


def table_create_kwargs(template: dict[str, Any], logical_id: str, table_name: str) -> dict[str, Any]:
    """boto3 ``create_table`` kwargs for an ``AWS::DynamoDB::Table`` resource."""
    props = _properties(template, logical_id, "AWS::DynamoDB::Table")
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        # Capacity means nothing locally; on-demand also keeps GSIs free of ProvisionedThroughput.
        "BillingMode": "PAY_PER_REQUEST",
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = [_index(i) for i in props["GlobalSecondaryIndexes"]]
    if props.get("LocalSecondaryIndexes"):
        kwargs["LocalSecondaryIndexes"] = [_index(i) for i in props["LocalSecondaryIndexes"]]
    if props.get("StreamSpecification"):
        # CloudFormation enables the stream by giving a view type; the API wants both.
        kwargs["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"],
        }
    return kwargs


def table_ttl_attribute(template: dict[str, Any], logical_id: str) -> str | None:
    """The TTL attribute of a table, or None when TTL is not enabled."""
    spec = _properties(template, logical_id, "AWS::DynamoDB::Table").get("TimeToLiveSpecification")
    if not spec or not spec.get("Enabled"):
        return None
    attribute: str = spec["AttributeName"]
    return attribute


# CloudFormation property -> SQS attribute, for the plain values (the API wants them as strings).
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "DelaySeconds",
    "MaximumMessageSize",
    "FifoQueue",
    "ContentBasedDeduplication",
)


def _attribute_string(logical_id: str, name: str, value: Any) -> str:
    if isinstance(value, dict):
        raise ValueError(f"{logical_id}.{name}: intrinsic functions are not supported locally: {value}")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def redrive_target(template: dict[str, Any], logical_id: str) -> str | None:
    """Logical id of the dead-letter queue a queue's RedrivePolicy points at (``!GetAtt X.Arn``)."""
    policy = _properties(template, logical_id, "AWS::SQS::Queue").get("RedrivePolicy")
    if not policy:
        return None
    target = policy["deadLetterTargetArn"]
    if isinstance(target, dict) and "Fn::GetAtt" in target and target["Fn::GetAtt"][1] == "Arn":
        target_id: str = target["Fn::GetAtt"][0]
        return target_id
    raise ValueError(f"{logical_id}.RedrivePolicy.deadLetterTargetArn must be !GetAtt <Queue>.Arn: {target}")


def queue_create_kwargs(
    template: dict[str, Any], logical_id: str, queue_name: str, resolve_arn: Callable[[str], str]
) -> dict[str, Any]:
    """boto3 ``create_queue`` kwargs for an ``AWS::SQS::Queue`` resource.

    ``resolve_arn`` maps the logical id of the dead-letter queue to its (already created) ARN.
    KMS/SSE settings are dropped: encryption at rest is not meaningful in an emulator.
    """
    props = _properties(template, logical_id, "AWS::SQS::Queue")
    attributes = {
        name: _attribute_string(logical_id, name, props[name]) for name in _QUEUE_ATTRIBUTES if name in props
    }
    dead_letter_queue = redrive_target(template, logical_id)
    if dead_letter_queue is not None:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": resolve_arn(dead_letter_queue),
                "maxReceiveCount": int(props["RedrivePolicy"]["maxReceiveCount"]),
            }
        )
    if attributes.get("FifoQueue") == "true" and not queue_name.endswith(".fifo"):
        queue_name += ".fifo"  # SQS rejects FIFO queues whose name lacks the suffix
    return {"QueueName": queue_name, "Attributes": attributes}


@dataclass(frozen=True)
class SqsTrigger:
    """An SQS event source of a function in the template, with what its local emulation needs."""

    function_id: str
    code_uri: str
    handler: str
    timeout_seconds: int
    memory_mb: int
    queue_id: str
    batch_size: int
    batching_window_seconds: int


def sqs_triggers(template: dict[str, Any]) -> list[SqsTrigger]:
    function_globals = template.get("Globals", {}).get("Function", {})
    triggers = []
    for function_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
        properties = resource.get("Properties", {})
        for event in properties.get("Events", {}).values():
            if event.get("Type") != "SQS":
                continue
            queue = event["Properties"]["Queue"]
            if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
                raise ValueError(
                    f"{function_id}: only `!GetAtt Queue.Arn` SQS sources can be emulated locally"
                )
            triggers.append(
                SqsTrigger(
                    function_id=function_id,
                    code_uri=properties["CodeUri"],
                    handler=properties["Handler"],
                    timeout_seconds=int(properties.get("Timeout", function_globals.get("Timeout", 3))),
                    memory_mb=int(properties.get("MemorySize", function_globals.get("MemorySize", 128))),
                    queue_id=queue["Fn::GetAtt"][0],
                    batch_size=int(event["Properties"].get("BatchSize", 10)),
                    batching_window_seconds=int(event["Properties"].get("MaximumBatchingWindowInSeconds", 0)),
                )
            )
    return triggers
