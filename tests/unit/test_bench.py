"""The pipeline benchmark measures what it says: sane, consistent figures on a small workload.

Speed is measured by `make bench`, never asserted here.
"""

from pathlib import Path

import pytest

from bench import Options, cost
from bench.cost import Pageview
from bench.pipeline import (
    BATCH_SIZE,
    UNIT_KINDS,
    Call,
    aggregator_batch_size,
    figure,
    item_size,
    make_workload,
    measure,
    read_units,
    write_units,
)
from devtools.template import load_template


@pytest.fixture(scope="module")
def result(dynamodb_local):
    # A small workload: the naive run makes ~5 requests per event, so it counts only a prefix.
    return measure(dynamodb_local.endpoint_url, events=200, seed=7, naive_sample=50, what_if_batch_size=None)


@pytest.mark.dynamodb_local
def test_every_run_makes_requests_and_consumes_capacity(result):
    assert list(result.runs) == ["after", "before", "naive"]
    for run in result.runs.values():
        assert run.total_requests > 0
        assert run.wcu > 0
        assert run.cpu_seconds > 0
        assert run.retries == 0
    # BatchGetItem: the aggregator reads which visitor-days exist before writing.
    for run in (result.aggregated, result.before):
        assert set(run.requests) == {"TransactWriteItems", "BatchGetItem"}
        assert run.rcu > 0
    assert set(result.naive.requests) == {"PutItem", "UpdateItem"}
    assert (result.aggregated.events, result.naive.events) == (200, 50)


@pytest.mark.dynamodb_local
def test_the_aggregator_makes_fewer_requests_per_event_than_the_naive_baseline(result):
    aggregated, naive = result.aggregated, result.naive
    assert aggregated.total_requests < naive.total_requests
    assert aggregated.per(aggregated.total_requests) < naive.per(naive.total_requests)


@pytest.mark.dynamodb_local
def test_the_naive_baseline_computes_the_same_counters_as_the_aggregator(result):
    assert result.counters_identical
    labels = [comparison.label for comparison in result.comparisons]
    assert labels == ["first 50 events", "all 200 events"]
    first = result.comparisons[0]
    expected = first.expected
    assert first.stored["naive"] == first.stored["after"] == first.stored["before"] == expected
    assert sum(1 for _pk, sk in expected if sk.startswith("VISITOR#")) > 0


@pytest.mark.dynamodb_local
def test_the_naive_baseline_makes_one_request_per_item_an_event_touches(result):
    expected = 0
    for event in make_workload(200, 7).events[:50]:
        # marker + TOTALS; an accepted pageview adds MK (match keys), DAY and DAY#D, an identified
        # one DV and VISITOR.
        expected += 2 if event.dropped else 5 + (2 if event.visitor_md5 else 0)
    assert result.naive.total_requests == expected


@pytest.mark.dynamodb_local
def test_dynamodb_local_agrees_with_the_capacity_rules_on_single_item_writes(result):
    checked, agreeing = result.naive.local_agrees_on_single_writes()
    assert checked > 0
    assert agreeing == checked


@pytest.mark.dynamodb_local
def test_the_figure_reports_every_run_and_where_the_write_units_go(result):
    text = figure(result, Options(events=200, seed=7)).render()
    assert "counters identical: yes" in text
    assert "WCU per 10,000 pageviews" in text
    assert "requests per 10,000 pageviews" in text
    assert "CPU ms per 10,000 pageviews" in text
    for kind in UNIT_KINDS:
        assert f"  {kind} " in text
    for run in result.runs.values():
        assert sum(run.wcu_by_kind[kind] for kind in UNIT_KINDS) == run.wcu


@pytest.mark.dynamodb_local
def test_packing_by_pixel_writes_no_more_than_arrival_order_and_checks_each_pixel_once_a_transaction(result):
    after, before = result.aggregated, result.before
    assert after.wcu <= before.wcu
    assert after.wcu_by_kind["markers"] == before.wcu_by_kind["markers"] == 2 * 200  # one per event
    assert after.wcu_by_kind["condition checks"] <= 2 * 4 * after.requests["TransactWriteItems"]


def test_capacity_rules_bill_a_condition_check_like_a_transactional_write_and_reads_by_consistency():
    key = {"pk": {"S": "PIXEL#1"}, "sk": {"S": "PIXEL"}}
    check = Call("TransactWriteItems", {"TransactItems": [{"ConditionCheck": {"Key": key}}]}, None, None, 0)
    assert write_units(check) == [("condition checks", 2)]
    keys = {"t": {"Keys": [key, key]}, "u": {"Keys": [key], "ConsistentRead": True}}
    assert read_units(Call("BatchGetItem", {"RequestItems": keys}, None, None, 0)) == 2.0


def test_the_bench_batches_as_the_template_does():
    assert aggregator_batch_size(load_template()) == BATCH_SIZE


def test_the_workload_is_deterministic_and_realistic():
    first, again = make_workload(2_000, 3), make_workload(2_000, 3)
    assert first == again
    events = first.events
    assert len(first.pixels) == 4
    assert len({event.domain for event in events}) > 30
    assert 0.5 < sum(1 for event in events if event.visitor_md5) / len(events) < 0.7
    assert 0 < sum(1 for event in events if event.dropped) / len(events) < 0.05
    assert len({event.day for event in events}) >= 7
    assert [event.received_at for event in events] == sorted(event.received_at for event in events)


def test_write_capacity_follows_the_documented_rules():
    key = {"pk": {"S": "PIXEL#1"}, "sk": {"S": "TOTALS"}}
    assert item_size(key) == len("pk") + len("PIXEL#1") + len("sk") + len("TOTALS")
    big = {"Item": {**key, "blob": {"S": "x" * 1500}}}
    assert write_units(Call("PutItem", big, None, None, 0)) == [("counters", 2)]
    transaction = {
        "TransactItems": [{"Put": big}, {"ConditionCheck": {"Key": {**key, "sk": {"S": "PIXEL"}}}}]
    }
    assert write_units(Call("TransactWriteItems", transaction, None, None, 0)) == [
        ("counters", 4),
        ("condition checks", 2),
    ]
    assert write_units(Call("Query", {}, None, None, 0)) == []
    # An update that puts the item in gsi1 writes the index entry too, once, outside the doubling
    indexed = {
        "Key": key,
        "UpdateExpression": "SET #0 = :0",
        "ExpressionAttributeNames": {"#0": "gsi1pk"},
        "ExpressionAttributeValues": {":0": {"S": "TENANT#t"}},
    }
    assert write_units(
        Call("TransactWriteItems", {"TransactItems": [{"Update": indexed}]}, None, None, 0)
    ) == [
        ("counters", 2),
        ("tenant index (gsi1)", 1),
    ]


# --- the cold start, warm request and AWS requests figures: sane, never timed ----------------------


@pytest.fixture(scope="module")
def aws_requests():
    from bench.aws_requests import measure as measure_aws_requests

    return measure_aws_requests()


def test_a_warm_pageview_makes_one_sqs_request_and_at_most_one_dynamodb_read(aws_requests):
    from bench.aws_requests import PAGEVIEW_ANONYMOUS, PAGEVIEW_IDENTIFIED

    for label in (PAGEVIEW_ANONYMOUS, PAGEVIEW_IDENTIFIED):
        warm = aws_requests.row(label).warm
        assert warm.sqs == 1
        assert warm.dynamodb_reads <= 1
        assert warm.dynamodb_writes == warm.kms == 0
    assert aws_requests.row(PAGEVIEW_IDENTIFIED).warm.calls == (
        ("dynamodb", "GetItem"),
        ("sqs", "SendMessage"),
    )
    assert aws_requests.targets_met()


def test_every_operation_is_counted_warm_and_cold_and_cold_costs_no_less(aws_requests):
    from bench.aws_requests import OPERATIONS

    assert [row.operation for row in aws_requests.rows] == list(OPERATIONS)
    for row in aws_requests.rows:
        assert row.warm.total > 0
        assert row.warm.total <= row.cold.total
        assert row.warm.uncategorised == row.cold.uncategorised == 0
        # The caches hold reads only: writes and sends are the same either way.
        assert (row.warm.dynamodb_writes, row.warm.sqs) == (row.cold.dynamodb_writes, row.cold.sqs)


def test_the_aws_requests_figure_reports_every_operation(aws_requests):
    from bench.aws_requests import OPERATIONS, figure

    text = figure(aws_requests).render()
    assert "target: a warm pageview makes one SQS request and at most one DynamoDB read; met" in text
    for operation in OPERATIONS:
        assert operation.label in text


def test_the_warm_figure_times_both_paths():
    from bench.warm import figure, measure

    result = measure(iterations=5, warm_up=1)
    for timings in (result.handler, result.direct):
        assert len(timings.total) == 5
        assert all(total > 0 for total in timings.total)
        assert all(0 < aws < total for aws, total in zip(timings.in_aws, timings.total, strict=True))
    assert result.aws_calls_per_request > 0
    assert result.ratio > 0
    assert "handler/graphql-core" in figure(result).render()


def test_the_cold_start_figure_times_every_import_in_fresh_interpreters():
    from bench.cold_start import (
        BOTO3,
        HANDLER,
        HANDLER_ALONE,
        HANDLER_WITHOUT_BYTECODE,
        THIRD_PARTY_ALONE,
        figure,
        measure,
    )

    result = measure(runs=1, untimed_first=False)
    assert list(result.runs) == [HANDLER_ALONE, THIRD_PARTY_ALONE, HANDLER, HANDLER_WITHOUT_BYTECODE, BOTO3]
    for runs in result.runs.values():
        assert len(runs) == 1
        assert 0 < runs[0].init_seconds < runs[0].process_seconds
    assert result.ratio_of(BOTO3) == 1
    assert result.ratio > 0
    top = result.top_modules()
    assert top[0].module == "app"
    assert top[0].imported_by is None
    assert all(entry.cumulative_us > 0 for entry in top)
    text = figure(result).render()
    assert "top 10 modules of the handler as built" in text
    assert all(label in text for label in result.runs)


def test_the_cold_start_stages_the_handler_with_and_without_bytecode_as_lambda_would_mount_it(tmp_path):
    from bench.cold_start import stage_function, stage_installed_without_bytecode

    built = stage_function(tmp_path / "built")
    unbuilt = stage_function(tmp_path / "unbuilt", bytecode=False)
    stage_installed_without_bytecode(["graphql", "typing_extensions.py"], unbuilt[1])

    assert [path.relative_to(tmp_path / "built") for path in built] == [Path("var/task"), Path("opt/python")]
    assert (built[0] / "app.py").is_file()
    assert (built[1] / "pixel_core" / "models.py").is_file()
    assert (built[0] / "graphql_api" / "schema" / "heropixel.graphql").is_file()
    assert list(built[1].rglob("*.pyc"))
    assert list(built[0].rglob("*.pyc"))
    assert (unbuilt[1] / "graphql" / "language" / "ast.py").is_file()
    assert (unbuilt[1] / "typing_extensions.py").is_file()
    assert [str(path) for path in (tmp_path / "unbuilt").rglob("*.pyc")] == []


def test_import_times_are_parsed_with_who_imported_what():
    from bench.cold_start import ImportTime, parse_import_times

    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:        10 |         10 |     c",
            "import time:        20 |         30 |   b",
            "import time:        40 |         40 |   d",
            "import time:         5 |         75 | a",
        ]
    )
    assert parse_import_times(stderr) == [
        ImportTime("c", "b", 10, 10),
        ImportTime("b", "a", 20, 30),
        ImportTime("d", "a", 40, 40),
        ImportTime("a", None, 5, 75),
    ]


# --- cold start as the user feels it (issue 16): the first request, SnapStart, the floor ----------


def test_the_cold_start_figure_answers_a_first_pageview_and_a_restored_one_against_the_floor():
    from bench.cold_start import FIRST_REQUEST_CALLS, HANDLER_ALONE, THIRD_PARTY_ALONE, figure, measure

    result = measure(runs=1, untimed_first=False)
    (handler,) = result.handler
    (restored,) = result.restored
    # The child checked the answer (200, pageview code 200) and the AWS calls (FIRST_REQUEST_CALLS).
    assert len(FIRST_REQUEST_CALLS) == 4
    assert 0 < handler.request_seconds < handler.first_request_seconds
    assert restored.request_seconds > 0
    assert restored.snapshot_seconds > 0
    assert result.floor_modules
    assert not any(
        module.split(".")[0] in {"app", "graphql_api", "pixel_core"} for module in result.floor_modules
    )
    # The handler's child timed the floor first, then the handler: (a) = (c) + what only it does
    assert 0 < handler.floor_seconds == result.floor < handler.init_seconds
    assert handler.init_seconds == handler.floor_seconds + handler.import_seconds
    # And the cross-check's children imported nothing first
    for label in (HANDLER_ALONE, THIRD_PARTY_ALONE):
        (alone,) = result.runs[label]
        assert alone.floor_seconds < 0.001 < alone.import_seconds
    # (the handler alone also spares the floor's imports the collector, so one run may fall below 1)
    handler_alone, floor_alone = result.runs[HANDLER_ALONE][0], result.runs[THIRD_PARTY_ALONE][0]
    assert result.apart_ratio == handler_alone.init_seconds / floor_alone.init_seconds
    assert result.first_request_ratio > result.init_ratio > 1
    assert result.init_ratio == handler.init_seconds / handler.floor_seconds
    assert result.restored_ratio == restored.request_seconds / restored.floor_seconds
    text = figure(result).render()
    for phrase in (
        "(a) handler, as built",
        "(b) (a) + the first pageview",
        "(b) restored",
        "(c) third-party",
    ):
        assert phrase in text
    assert "target (a) / (c):" in text
    assert "target (b) / (c):" in text


def test_the_floor_is_what_project_modules_import_from_outside_the_project_and_the_standard_library():
    from bench.cold_start import ImportTime, third_party_imports

    entries = [
        ImportTime("encodings", None, 1, 1),  # interpreter start-up
        ImportTime("botocore.regions", "pynamodb.connection", 1, 1),  # by a third-party module
        ImportTime("pynamodb.models", "pixel_core.models", 1, 2),
        ImportTime("logging", "app", 1, 1),  # the standard library
        ImportTime("pixel_core.models", "pixel_core.auth", 1, 3),  # our own
        ImportTime("mangum", "app", 1, 1),
    ]
    assert third_party_imports(entries) == ("pynamodb.models", "mangum")


def test_aws_in_memory_answers_a_real_botocore_client_without_the_network(monkeypatch):
    import botocore.httpsession
    import botocore.session

    from bench import in_memory_aws

    monkeypatch.setattr(botocore.httpsession.URLLib3Session, "send", botocore.httpsession.URLLib3Session.send)
    item = {"pk": {"S": "APP#a"}, "sk": {"S": "APP"}, "app_id": {"S": "a"}}
    fake = in_memory_aws.install({in_memory_aws.item_key("APP#a", "APP"): item})
    session = botocore.session.get_session()
    dynamodb = session.create_client("dynamodb", region_name="us-east-1")
    sqs = session.create_client("sqs", region_name="us-east-1")

    found = dynamodb.get_item(TableName="t", Key={"pk": {"S": "APP#a"}, "sk": {"S": "APP"}})
    missing = dynamodb.get_item(TableName="t", Key={"pk": {"S": "APP#b"}, "sk": {"S": "APP"}})
    sent = sqs.send_message(
        QueueUrl="https://sqs.us-east-1.amazonaws.com/123456789012/q", MessageBody="hello"
    )

    assert found["Item"] == item
    assert "Item" not in missing
    assert sent["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592"  # botocore checks it
    assert fake.calls == ["DynamoDB_20120810.GetItem"] * 2 + ["AmazonSQS.SendMessage"]


@pytest.mark.dynamodb_local
def test_the_cost_figure_prices_every_run_from_its_units_and_the_template_memory(result):
    pageviews = {False: Pageview(0.001, 1, 0.0), True: Pageview(0.001, 2, 0.5)}
    text = cost.figure(result, pageviews).render()
    assert "Cost of 1,000,000 pageviews" in text
    assert cost.memory_mb("GraphQLFunction") > 0
    naive, after = (cost.costs(run, 0.02, 0.3) for run in (result.naive, result.aggregated))
    assert after.http_api == naive.http_api == 1.0
    assert after.dynamodb_writes == pytest.approx(
        result.aggregated.wcu / result.aggregated.events * cost.DYNAMODB_PER_MILLION_WRITE_UNITS
    )


# --- stats and tenantQueries reads (issue 16) ------------------------------------------------------


@pytest.mark.dynamodb_local
def test_the_reads_figure_sums_read_units_and_requests_of_each_operation_against_its_cost(dynamodb_local):
    from bench.reads import RANGES, figure, measure

    operations, fill_seconds = measure(
        dynamodb_local.endpoint_url, visitors_per_day=300, tenant_pixels=5, repeats=1
    )

    assert [operation.label for operation in operations] == [
        *(f"stats, {days} days" for days in RANGES),
        "tenantQueries, 5 pixels",
    ]
    for operation in operations:
        assert operation.reads.read_units > 0
        assert operation.cost > 0
        assert len(operation.seconds) == 1
    stats_7, stats_31, stats_92, tenant = operations
    # Longer ranges read more (their days) and are charged more (2 a day).
    assert stats_7.reads.read_units < stats_92.reads.read_units
    assert stats_7.cost < stats_31.cost < stats_92.cost
    assert stats_92.reads.requests["BatchGetItem"] == 1
    # The tenant's pixels and their totals in one Query (the index holds both), read once for its
    # three fields; the tenant and the app.
    assert tenant.reads.requests == {"Query": 1, "GetItem": 2}
    assert fill_seconds > 0
    assert "units/cost" in figure(operations, fill_seconds, 300).render()


def test_the_cold_start_ratio_cancels_a_penalty_on_whichever_side_runs_first_in_a_round():
    from bench.cold_start import paired_ratio

    # Given a true ratio of 1.08, and whichever child runs first in a round 20 % slower: the handler
    # first in even rounds, the floor first in odd ones, as `measure` alternates them
    handler = [1.08 * (1.2 if round_number % 2 == 0 else 1.0) for round_number in range(8)]
    floor = [1.0 * (1.0 if round_number % 2 == 0 else 1.2) for round_number in range(8)]

    # Then the pairs of rounds give the true ratio, where the rounds' own ratios give 1.296 and 0.9
    assert paired_ratio(handler, floor) == pytest.approx(1.08)
    # And an odd last round counts as it is
    assert paired_ratio([3.0], [2.0]) == 1.5
    assert paired_ratio([2.0, 2.0, 4.0], [2.0, 2.0, 2.0]) == 1.5
