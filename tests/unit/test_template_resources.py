"""What template.yaml promises about the pipeline, read from the template itself."""

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pixel_core import models
from pixel_core.clock import utc_now
from pixel_core.models import PixelItem, TotalsItem

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_INCARNATION = "5d41402abc4b2a76"  # the pixel incarnation events/sqs_pixel_events.json carries


def sample_sqs_event() -> dict[str, Any]:
    """events/sqs_pixel_events.json, as if its events had just been accepted (so never too old)."""
    sample = json.loads((REPO_ROOT / "events" / "sqs_pixel_events.json").read_text())
    for record in sample["Records"]:
        body = json.loads(record["body"])
        body["received_at"] = time.time()
        record["body"] = json.dumps(body)
    return sample


@pytest.fixture(scope="module")
def resources(template):
    return template["Resources"]


def test_events_queue_is_encrypted_redrives_to_a_dlq_after_bounded_receives_and_outlives_the_aggregator(
    resources,
):
    queue = resources["EventsQueue"]["Properties"]
    aggregator = resources["CounterAggregatorFunction"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert resources["EventsDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
    assert 1 < queue["RedrivePolicy"]["maxReceiveCount"] <= 10
    assert queue["VisibilityTimeout"] >= 6 * aggregator["Timeout"]
    # The DLQ keeps messages longer than the queue, so nothing expires before anyone can redrive it.
    assert (
        resources["EventsDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"]
        > queue["MessageRetentionPeriod"]
    )


def test_aggregator_reads_batches_with_a_window_partial_failures_and_bounded_concurrency(resources):
    (event,) = resources["CounterAggregatorFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS"
    source = event["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["MaximumBatchingWindowInSeconds"] > 0
    assert source["BatchSize"] > 10
    assert 2 <= source["ScalingConfig"]["MaximumConcurrency"] <= 1000


def test_the_sample_sqs_event_goes_through_the_real_aggregator_handler(
    table, lambda_context, aggregator_handler
):
    # Given pixel 123 and the sample batch from events/ (two pageviews, one dropped)
    PixelItem.new(123, "IaoreXfj", created_at=utc_now(), incarnation=SAMPLE_INCARNATION).save()
    sample = sample_sqs_event()
    handler = aggregator_handler
    # When the aggregator handles it (twice: SQS may deliver it again)
    answers = [handler(sample, lambda_context) for _ in range(2)]
    # Then nothing failed and the totals count each event once
    assert answers == [{"batchItemFailures": []}] * 2
    totals = TotalsItem.get(*TotalsItem.key(123))
    assert (totals.events_received, totals.events_dropped) == (2, 1)


def test_unreadable_records_are_reported_as_batch_item_failures_and_the_rest_is_counted(
    table, lambda_context, aggregator_handler
):
    PixelItem.new(123, "IaoreXfj", created_at=utc_now(), incarnation=SAMPLE_INCARNATION).save()
    sample = sample_sqs_event()
    for body, record in zip(
        ("not json", '{"v": 2}', json.dumps({"v": 1, "event_id": "x"})), list(sample["Records"]), strict=True
    ):
        record_copy = dict(record, body=body, messageId=record["messageId"] + "-bad")
        sample["Records"].append(record_copy)
    handler = aggregator_handler
    answer = handler(sample, lambda_context)
    assert answer is not None
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == sorted(
        record["messageId"] for record in sample["Records"] if record["messageId"].endswith("-bad")
    )
    totals = TotalsItem.get(*TotalsItem.key(123))
    assert (totals.events_received, totals.events_dropped) == (2, 1)


def test_aggregator_logs_json_with_a_correlation_id_and_emits_emf(
    table, lambda_context, json_logs, capsys, aggregator_handler
):
    PixelItem.new(123, "IaoreXfj", created_at=utc_now(), incarnation=SAMPLE_INCARNATION).save()
    sample = sample_sqs_event()
    handler = aggregator_handler
    handler(sample, lambda_context)
    (record,) = [r for r in json_logs() if r["message"] == "Batch counted"]
    assert record["correlation_id"] == lambda_context.aws_request_id
    assert (record["counted"], record["records"]) == (3, 3)
    documents = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')
    ]
    assert any(document.get("EventsCounted") in (3.0, [3.0]) for document in documents)


def test_publish_queue_and_publisher_mirror_the_events_pipeline_guarantees(resources):
    queue = resources["PublishQueue"]["Properties"]
    publisher = resources["CapiPublisherFunction"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["PublishDeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] >= 6 * publisher["Timeout"]
    (event,) = publisher["Events"].values()
    assert event["Properties"]["Queue"] == {"Fn::GetAtt": ["PublishQueue", "Arn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["BatchSize"] >= 1000  # one Meta request can carry 1,000 events
    assert publisher["Environment"]["Variables"]["GRAPH_API_BASE_URL"] == {"Ref": "GraphApiBaseUrl"}
    aggregator_env = resources["CounterAggregatorFunction"]["Properties"]["Environment"]["Variables"]
    assert aggregator_env["PUBLISH_QUEUE_URL"] == {"Ref": "PublishQueue"}


FUNCTIONS = ("GraphQLFunction", "CounterAggregatorFunction", "CapiPublisherFunction", "PixelCleanupFunction")


def _alarms(resources):
    return {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_every_function_has_a_log_group_with_retention(resources):
    for function in FUNCTIONS:
        group = resources[f"{function}LogGroup"]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_alarms_watch_errors_throttles_api_5xx_dead_letter_queues_and_queue_age(resources):
    watched = {
        (alarm["Namespace"], alarm["MetricName"], json.dumps(alarm["Dimensions"], sort_keys=True))
        for alarm in _alarms(resources).values()
    }
    for function in FUNCTIONS:
        dimensions = json.dumps([{"Name": "FunctionName", "Value": {"Ref": function}}], sort_keys=True)
        assert ("AWS/Lambda", "Errors", dimensions) in watched
        assert ("AWS/Lambda", "Throttles", dimensions) in watched
    assert any(namespace == "AWS/ApiGateway" and metric == "5xx" for namespace, metric, _ in watched)
    for queue in ("EventsDeadLetterQueue", "PublishDeadLetterQueue", "CleanupDeadLetterQueue"):
        dimensions = json.dumps(
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}], sort_keys=True
        )
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dimensions) in watched
    for queue in ("EventsQueue", "PublishQueue"):
        dimensions = json.dumps(
            [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}], sort_keys=True
        )
        assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", dimensions) in watched


def test_alarms_notify_the_topic_given_as_a_parameter(template, resources):
    assert template["Parameters"]["AlarmTopicArn"]["Type"] == "String"
    for alarm in _alarms(resources).values():
        assert alarm["AlarmActions"] == {
            "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
        }


def test_the_dashboard_shows_requests_errors_latency_queues_and_events(resources):
    body = json.loads(resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])
    titles = [widget["properties"]["title"] for widget in body["widgets"]]
    assert titles == [
        "API requests and errors",
        "API latency (p50, p99)",
        "Function errors and throttles",
        "Queue depth",
        "Age of the oldest message (s)",
        "Events",
        "Function duration (p99, ms)",
    ]
    events = next(widget for widget in body["widgets"] if widget["properties"]["title"] == "Events")
    metric_names = {line[1] for line in events["properties"]["metrics"]}
    assert {
        "EventsAccepted",
        "EventsDropped",
        "EventsCounted",
        "EventsPublished",
        "PublishFailures",
    } <= metric_names


def test_the_graphql_function_writes_out_its_tunables_at_the_defaults_the_code_uses(resources):
    from pixel_core.config import load_settings

    environment = resources["GraphQLFunction"]["Properties"]["Environment"]["Variables"]
    tunables = {
        "AUTH_CACHE_SECONDS": "auth_cache_seconds",
        "PIXEL_CACHE_SECONDS": "pixel_cache_seconds",
        "MAX_QUERY_DEPTH": "max_query_depth",
        "MAX_QUERY_COST": "max_query_cost",
        "MAX_ALIASES": "max_aliases",
        "MAX_QUERY_TOKENS": "max_query_tokens",
        "MAX_BODY_BYTES": "max_body_bytes",
    }
    from_template = load_settings({name: environment[name] for name in tunables})
    defaults = load_settings({})
    for name, field in tunables.items():
        assert getattr(from_template, field) == getattr(defaults, field), name
    # And each is read from the environment: a changed value reaches the settings
    for name, field in tunables.items():
        changed = load_settings({name: "7"})
        assert getattr(changed, field) == 7, name


@pytest.mark.parametrize(
    ("queue_id", "dead_letter_queue_id"),
    [("EventsQueue", "EventsDeadLetterQueue"), ("PublishQueue", "PublishDeadLetterQueue")],
)
def test_markers_outlive_every_way_a_message_of_the_template_can_come_back(
    resources, queue_id, dead_letter_queue_id
):
    # A message lives its queue's retention, then the dead-letter queue's, then the queue's again
    # after a redrive (a moved message starts a new retention period).
    queue_days = resources[queue_id]["Properties"]["MessageRetentionPeriod"] / 86_400
    dead_letter_days = resources[dead_letter_queue_id]["Properties"]["MessageRetentionPeriod"] / 86_400
    comes_back_within = timedelta(days=queue_days + dead_letter_days + queue_days)
    assert comes_back_within <= models.REDELIVERY_WINDOW
    margin = models.MARKER_TTL - models.REDELIVERY_WINDOW
    assert margin >= timedelta(days=1)  # for clock skew


def test_get_on_graphql_is_routed_so_the_explorer_answers_in_dev_and_405_in_prod(resources):
    events = resources["GraphQLFunction"]["Properties"]["Events"].values()
    routes = {(event["Properties"]["Method"], event["Properties"]["Path"]) for event in events}
    assert ("GET", "/graphql") in routes
    assert ("POST", "/graphql") in routes


def test_what_browsers_reach_is_routed_to_the_api_function(resources):
    # The snippet and its collection, as graphql_api/browser.py serves them
    events = resources["GraphQLFunction"]["Properties"]["Events"].values()
    routes = {(event["Properties"]["Method"], event["Properties"]["Path"]) for event in events}
    assert {("GET", "/px.js"), ("POST", "/px/{pixelId}")} <= routes


def test_every_function_of_the_template_has_a_build_target(resources):
    makefile = (REPO_ROOT / "devtools" / "sam_build" / "Makefile").read_text()
    (listed,) = [
        line.split(":=", 1)[1].split() for line in makefile.splitlines() if line.startswith("FUNCTIONS :=")
    ]
    functions = {
        name for name, resource in resources.items() if resource["Type"] == "AWS::Serverless::Function"
    }
    assert set(listed) == functions
