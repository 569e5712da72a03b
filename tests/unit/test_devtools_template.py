"""devtools.template (template.yaml -> boto3 kwargs) and devtools.provision against moto's mock_aws."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3.util.connection
import yaml
from moto import mock_aws

from devtools.provision import provision
from devtools.template import (
    load_template,
    queue_create_kwargs,
    resources_of_type,
    sqs_triggers,
    table_create_kwargs,
    table_ttl_attribute,
)

# mock_aws answers requests to the real endpoints; no_network makes sure nothing leaves the process.
AWS_DYNAMODB = "https://dynamodb.us-east-1.amazonaws.com"
AWS_SQS = "https://sqs.us-east-1.amazonaws.com"
AWS_KMS = "https://kms.us-east-1.amazonaws.com"

# A DLQ, a queue redriving to it (declared first, so creation order has to be worked out),
# and a FIFO queue; KMS settings must be dropped.
QUEUES_YAML = """
Resources:
  EventsQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      MessageRetentionPeriod: 345600
      ReceiveMessageWaitTimeSeconds: 20
      SqsManagedSseEnabled: true
      KmsMasterKeyId: !Ref EventsKey
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt EventsDeadLetterQueue.Arn
        maxReceiveCount: 5
  EventsDeadLetterQueue:
    Type: AWS::SQS::Queue
    Properties:
      MessageRetentionPeriod: 1209600
  OrderedQueue:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
      ContentBasedDeduplication: true
      DelaySeconds: 0
      MaximumMessageSize: 262144
"""


def write_template(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def queues_template(tmp_path: Path) -> dict[str, Any]:
    return load_template(write_template(tmp_path, QUEUES_YAML))


@pytest.fixture(autouse=True)
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """mock_aws answers requests to the real AWS endpoints; make sure nothing gets past it."""

    def refuse(address: tuple[str, int], *args: object, **kwargs: object) -> None:
        raise AssertionError(f"test tried to open a connection to {address}")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse)


@pytest.fixture
def aws(no_network: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("!Ref Stage", {"Ref": "Stage"}),
        ("!Condition IsProd", {"Condition": "IsProd"}),
        ("!GetAtt PixelTable.Arn", {"Fn::GetAtt": ["PixelTable", "Arn"]}),
        ("!GetAtt Database.Endpoint.Address", {"Fn::GetAtt": ["Database", "Endpoint.Address"]}),
        ("!GetAtt [PixelTable, StreamArn]", {"Fn::GetAtt": ["PixelTable", "StreamArn"]}),
        ("!Sub ${AWS::StackName}-core", {"Fn::Sub": "${AWS::StackName}-core"}),
        (
            "!Sub ['${Name}-x', {Name: !Ref Stage}]",
            {"Fn::Sub": ["${Name}-x", {"Name": {"Ref": "Stage"}}]},
        ),
        ("!Join ['-', [a, !Ref Stage]]", {"Fn::Join": ["-", ["a", {"Ref": "Stage"}]]}),
        ("!If [IsProd, 1024, 512]", {"Fn::If": ["IsProd", 1024, 512]}),
        ("!Equals [!Ref Stage, prod]", {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}),
        ("!Select [0, !GetAZs '']", {"Fn::Select": [0, {"Fn::GetAZs": ""}]}),
        ("!Split [',', 'a,b']", {"Fn::Split": [",", "a,b"]}),
        ("!FindInMap [Sizes, !Ref Stage, Memory]", {"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}),
        ("!GetAZs us-east-1", {"Fn::GetAZs": "us-east-1"}),
        ("!ImportValue shared-vpc-id", {"Fn::ImportValue": "shared-vpc-id"}),
        ("!Base64 echo hello", {"Fn::Base64": "echo hello"}),
        ("!Base64 {'Fn::Sub': x}", {"Fn::Base64": {"Fn::Sub": "x"}}),
        ("!Cidr [10.0.0.0/16, 4, 8]", {"Fn::Cidr": ["10.0.0.0/16", 4, 8]}),
        ("!Not [!Condition IsProd]", {"Fn::Not": [{"Condition": "IsProd"}]}),
        ("!And [!Condition A, !Condition B]", {"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]}),
        ("!Or [!Equals [a, b], !Condition B]", {"Fn::Or": [{"Fn::Equals": ["a", "b"]}, {"Condition": "B"}]}),
    ],
)
def test_load_template_turns_each_short_form_tag_into_its_long_form_dict(
    tmp_path: Path, source: str, expected: dict[str, Any]
) -> None:
    template = load_template(write_template(tmp_path, f"Value: {source}\n"))

    assert template == {"Value": expected}


def test_load_template_rejects_a_tag_that_is_not_a_cloudformation_intrinsic(tmp_path: Path) -> None:
    with pytest.raises(yaml.YAMLError, match="unknown tag !Reff"):
        load_template(write_template(tmp_path, "Value: !Reff Stage\n"))


def test_load_template_reads_the_real_template_including_its_short_form_tags() -> None:
    template = load_template()

    assert template["Resources"]["PixelTable"]["Type"] == "AWS::DynamoDB::Table"
    assert template["Outputs"]["TableName"]["Value"] == {"Ref": "PixelTable"}


def test_resources_of_type_finds_the_pixel_table_and_the_event_queues_in_the_real_template() -> None:
    template = load_template()

    assert list(resources_of_type(template, "AWS::DynamoDB::Table")) == ["PixelTable"]
    assert set(resources_of_type(template, "AWS::SQS::Queue")) == {
        "EventsQueue",
        "EventsDeadLetterQueue",
        "PublishQueue",
        "PublishDeadLetterQueue",
        "CleanupQueue",
        "CleanupDeadLetterQueue",
    }


def test_sqs_triggers_describe_the_aggregator_event_source_as_the_template_declares_it() -> None:
    triggers = {trigger.function_id: trigger for trigger in sqs_triggers(load_template())}
    assert set(triggers) == {"CounterAggregatorFunction", "CapiPublisherFunction", "PixelCleanupFunction"}
    trigger = triggers["CounterAggregatorFunction"]
    assert trigger.code_uri == "functions/counter_aggregator/"
    assert trigger.handler == "app.handler"
    assert trigger.queue_id == "EventsQueue"
    assert (trigger.batch_size, trigger.batching_window_seconds, trigger.timeout_seconds) == (1000, 2, 30)


def test_table_create_kwargs_for_pixel_table_match_the_key_schema_and_gsi_in_template_yaml() -> None:
    kwargs = table_create_kwargs(load_template(), "PixelTable", "pixels")

    assert kwargs == {
        "TableName": "pixels",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def test_table_ttl_attribute_of_pixel_table_is_expires_at() -> None:
    assert table_ttl_attribute(load_template(), "PixelTable") == "expires_at"


def test_table_kwargs_keep_lsi_and_stream_drop_throughput_and_ttl_is_none_when_disabled(
    tmp_path: Path,
) -> None:
    template = load_template(
        write_template(
            tmp_path,
            """
            Resources:
              Events:
                Type: AWS::DynamoDB::Table
                Properties:
                  TableName: !Sub ${AWS::StackName}-events
                  BillingMode: PROVISIONED
                  ProvisionedThroughput: {ReadCapacityUnits: 5, WriteCapacityUnits: 5}
                  AttributeDefinitions:
                    - {AttributeName: pk, AttributeType: S}
                    - {AttributeName: at, AttributeType: N}
                  KeySchema: [{AttributeName: pk, KeyType: HASH}]
                  GlobalSecondaryIndexes:
                    - IndexName: by_at
                      KeySchema: [{AttributeName: at, KeyType: HASH}]
                      Projection: {ProjectionType: KEYS_ONLY}
                      ProvisionedThroughput: {ReadCapacityUnits: 5, WriteCapacityUnits: 5}
                  LocalSecondaryIndexes:
                    - IndexName: lsi_at
                      KeySchema: [{AttributeName: pk, KeyType: HASH}, {AttributeName: at, KeyType: RANGE}]
                      Projection: {ProjectionType: ALL}
                  StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
                  TimeToLiveSpecification: {AttributeName: gone_at, Enabled: false}
            """,
        )
    )

    kwargs = table_create_kwargs(template, "Events", "events")

    assert kwargs["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in kwargs
    assert kwargs["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "by_at",
            "KeySchema": [{"AttributeName": "at", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]
    assert [index["IndexName"] for index in kwargs["LocalSecondaryIndexes"]] == ["lsi_at"]
    assert kwargs["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table_ttl_attribute(template, "Events") is None


def test_table_create_kwargs_refuses_a_logical_id_that_is_not_a_table() -> None:
    with pytest.raises(KeyError, match="CoreLayer"):
        table_create_kwargs(load_template(), "CoreLayer", "x")


def test_queue_create_kwargs_maps_attributes_to_strings_and_resolves_the_dead_letter_arn(
    tmp_path: Path,
) -> None:
    template = queues_template(tmp_path)
    dlq_arn = "arn:aws:sqs:us-east-1:123456789012:events-dlq"

    kwargs = queue_create_kwargs(
        template, "EventsQueue", "events", {"EventsDeadLetterQueue": dlq_arn}.__getitem__
    )

    assert kwargs == {
        "QueueName": "events",
        "Attributes": {
            "VisibilityTimeout": "60",
            "MessageRetentionPeriod": "345600",
            "ReceiveMessageWaitTimeSeconds": "20",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    }


def test_queue_create_kwargs_for_a_fifo_queue_add_the_fifo_suffix_and_lowercase_booleans(
    tmp_path: Path,
) -> None:
    def no_arn(logical_id: str) -> str:
        raise AssertionError(f"OrderedQueue has no redrive policy, yet {logical_id} was resolved")

    kwargs = queue_create_kwargs(queues_template(tmp_path), "OrderedQueue", "ordered", no_arn)

    assert kwargs == {
        "QueueName": "ordered.fifo",
        "Attributes": {
            "DelaySeconds": "0",
            "MaximumMessageSize": "262144",
            "FifoQueue": "true",
            "ContentBasedDeduplication": "true",
        },
    }


def test_queue_create_kwargs_refuses_an_intrinsic_it_cannot_resolve_locally(tmp_path: Path) -> None:
    template = load_template(
        write_template(
            tmp_path,
            """
            Resources:
              Q:
                Type: AWS::SQS::Queue
                Properties:
                  VisibilityTimeout: !Ref Timeout
            """,
        )
    )

    with pytest.raises(ValueError, match=r"Q\.VisibilityTimeout"):
        queue_create_kwargs(template, "Q", "q", str)


def test_provision_with_mock_aws_creates_table_and_queues_and_is_idempotent(
    aws: None, tmp_path: Path
) -> None:
    template = load_template()
    template["Resources"].update(queues_template(tmp_path)["Resources"])

    first = provision(template, dynamodb_endpoint=AWS_DYNAMODB, sqs_endpoint=AWS_SQS)
    second = provision(template, dynamodb_endpoint=AWS_DYNAMODB, sqs_endpoint=AWS_SQS)

    assert second == first
    assert first.table_names == {"PixelTable": "pixel-gateway-local"}
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    assert dynamodb.list_tables()["TableNames"] == ["pixel-gateway-local"]
    table = dynamodb.describe_table(TableName="pixel-gateway-local")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert [(i["IndexName"], i["KeySchema"]) for i in table["GlobalSecondaryIndexes"]] == [
        (
            "gsi1",
            [{"AttributeName": "gsi1pk", "KeyType": "HASH"}, {"AttributeName": "gsi1sk", "KeyType": "RANGE"}],
        )
    ]
    ttl = dynamodb.describe_time_to_live(TableName="pixel-gateway-local")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")

    sqs = boto3.client("sqs", region_name="us-east-1")
    assert sorted(url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]) == [
        "pixel-gateway-local-CleanupDeadLetterQueue",
        "pixel-gateway-local-CleanupQueue",
        "pixel-gateway-local-EventsDeadLetterQueue",
        "pixel-gateway-local-EventsQueue",
        "pixel-gateway-local-OrderedQueue.fifo",
        "pixel-gateway-local-PublishDeadLetterQueue",
        "pixel-gateway-local-PublishQueue",
    ]
    assert (
        set(first.queue_urls)
        == set(first.queue_arns)
        == {
            "EventsQueue",
            "EventsDeadLetterQueue",
            "OrderedQueue",
            "PublishQueue",
            "PublishDeadLetterQueue",
            "CleanupQueue",
            "CleanupDeadLetterQueue",
        }
    )
    attributes = sqs.get_queue_attributes(QueueUrl=first.queue_urls["EventsQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": first.queue_arns["EventsDeadLetterQueue"],
        "maxReceiveCount": 5,
    }
    assert attributes["VisibilityTimeout"] == "60"


def test_provision_uses_given_table_names_and_skips_queues_without_an_sqs_endpoint(
    aws: None, tmp_path: Path
) -> None:
    template = load_template()
    template["Resources"].update(queues_template(tmp_path)["Resources"])

    result = provision(
        template,
        dynamodb_endpoint=AWS_DYNAMODB,
        sqs_endpoint=None,
        table_names={"PixelTable": "custom-pixels"},
    )

    assert result.table_names == {"PixelTable": "custom-pixels"}
    assert (result.queue_urls, result.queue_arns) == ({}, {})
    assert boto3.client("dynamodb").list_tables()["TableNames"] == ["custom-pixels"]
    assert "QueueUrls" not in boto3.client("sqs").list_queues()


def test_provision_refuses_a_redrive_policy_that_points_at_something_other_than_a_queue(
    aws: None, tmp_path: Path
) -> None:
    template = load_template(
        write_template(
            tmp_path,
            """
            Resources:
              Topic:
                Type: AWS::SNS::Topic
              Q:
                Type: AWS::SQS::Queue
                Properties:
                  RedrivePolicy: {deadLetterTargetArn: !GetAtt Topic.Arn, maxReceiveCount: 3}
            """,
        )
    )

    with pytest.raises(ValueError, match="not an AWS::SQS::Queue"):
        provision(
            template,
            dynamodb_endpoint=AWS_DYNAMODB,
            sqs_endpoint=AWS_SQS,
        )


def test_provision_with_a_kms_endpoint_creates_the_access_token_key_behind_its_alias_once(aws: None) -> None:
    # Given the real template, provisioned twice as stack "pixel-gateway-dev" with a KMS endpoint
    template = load_template()

    first = provision(
        template,
        dynamodb_endpoint=AWS_DYNAMODB,
        sqs_endpoint=None,
        queue_prefix="pixel-gateway-dev",
        kms_endpoint=AWS_KMS,
    )
    second = provision(
        template,
        dynamodb_endpoint=AWS_DYNAMODB,
        sqs_endpoint=None,
        queue_prefix="pixel-gateway-dev",
        kms_endpoint=AWS_KMS,
    )

    # Then ${AWS::StackName} became the prefix, and the second run reused the key and the alias
    assert first.kms_aliases == {"AccessTokenKeyAlias": "alias/pixel-gateway-dev/access-tokens"}
    assert second == first
    kms = boto3.client("kms", region_name="us-east-1")
    (key,) = kms.list_keys()["Keys"]
    aliases = [a for a in kms.list_aliases()["Aliases"] if not a["AliasName"].startswith("alias/aws/")]
    assert [(a["AliasName"], a["TargetKeyId"]) for a in aliases] == [
        ("alias/pixel-gateway-dev/access-tokens", key["KeyId"])
    ]
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Description"] == (
        "pixel-gateway-dev access tokens of Meta pixel connections"
    )
    # And the alias encrypts and decrypts, bound to its encryption context
    context = {"tenant_id": "IaoreXfj", "pixel_id": "123"}
    blob = kms.encrypt(
        KeyId="alias/pixel-gateway-dev/access-tokens", Plaintext=b"token", EncryptionContext=context
    )["CiphertextBlob"]
    answer = kms.decrypt(
        KeyId="alias/pixel-gateway-dev/access-tokens", CiphertextBlob=blob, EncryptionContext=context
    )
    assert answer["Plaintext"] == b"token"
    assert answer["KeyId"] == key["KeyArn"]


def test_provision_without_a_kms_endpoint_creates_no_key(aws: None) -> None:
    result = provision(load_template(), dynamodb_endpoint=AWS_DYNAMODB, sqs_endpoint=None)

    assert result.kms_aliases == {}
    assert boto3.client("kms", region_name="us-east-1").list_keys()["Keys"] == []


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (
            """
            Key: {Type: AWS::KMS::Key}
            """,
            "Key: a key without an AWS::KMS::Alias",
        ),
        (
            """
            Key: {Type: AWS::KMS::Key}
            KeyAlias:
              Type: AWS::KMS::Alias
              Properties: {AliasName: !Sub "alias/${AWS::StackName}/${Stage}", TargetKeyId: !Ref Key}
            """,
            r"KeyAlias\.AliasName",
        ),
        (
            """
            Key: {Type: AWS::KMS::Key}
            KeyAlias:
              Type: AWS::KMS::Alias
              Properties: {AliasName: alias/x, TargetKeyId: !Ref Topic}
            """,
            "not an AWS::KMS::Key",
        ),
    ],
    ids=["key-without-alias", "unresolvable-alias-name", "alias-of-no-key"],
)
def test_provision_refuses_kms_resources_it_cannot_create_or_find_again_locally(
    aws: None, tmp_path: Path, resources: str, message: str
) -> None:
    template = load_template(
        write_template(tmp_path, "Resources:\n" + textwrap.indent(textwrap.dedent(resources), "  "))
    )

    with pytest.raises(ValueError, match=message):
        provision(template, dynamodb_endpoint=AWS_DYNAMODB, sqs_endpoint=None, kms_endpoint=AWS_KMS)
