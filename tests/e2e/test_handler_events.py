"""API Gateway (HTTP API, payload 2.0) events from events/ through the real Lambda handler."""

import json
from pathlib import Path
from typing import Any

from pixel_core import pixel_domains
from pixel_core.models import TableItem, bind_models
from tests.support.api_events import response_body

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = REPO_ROOT / "events"


def load_event(name: str, app=None) -> dict[str, Any]:
    text = (EVENTS / f"{name}.json").read_text()
    if app is not None:
        text = text.replace("<app-id>", app.app_id).replace("<app-secret>", app.app_secret)
        text = text.replace("Basic <basic-credentials>", app.basic_header)
    return json.loads(text)


def test_seed_domain_requests_through_the_handler(handler, lambda_context, app, table):
    # Given pixel 123, created with a base64-encoded body and Basic auth
    created = handler(load_event("graphql_create_pixel_basic_auth", app), lambda_context)
    assert created["statusCode"] == 200
    assert response_body(created)["data"]["pixels"]["data"]["name"] == "Shop"
    # When the seed's add, list and remove requests arrive as API Gateway events
    added = handler(load_event("graphql_add_domain", app), lambda_context)
    listed = handler(load_event("graphql_list_domains", app), lambda_context)
    removed = handler(load_event("graphql_remove_domain", app), lambda_context)
    # Then each answers as documented, as JSON over HTTP 200
    assert added["statusCode"] == 200
    assert added["headers"]["content-type"].startswith("application/json")
    assert response_body(added) == {
        "data": {
            "domains": {"code": 200, "data": {"domain": "example.com", "pixel_id": 123}, "message": "Success"}
        }
    }
    assert [d["domain"] for d in response_body(listed)["data"]["domains"]["data"]["domains"]] == [
        "example.com"
    ]
    assert response_body(removed)["data"]["domains"]["data"] == {
        "domain": "example.com",
        "pixel_id": 123,
        "deleted": True,
    }


def test_wrong_credentials_through_the_handler_are_an_in_band_401(handler, lambda_context, app, table):
    event = load_event("graphql_list_domains", app)
    event["body"] = event["body"].replace(app.app_secret, "wrong")
    response = handler(event, lambda_context)
    assert response["statusCode"] == 200
    assert response_body(response) == {
        "data": {"domains": {"code": 401, "data": {}, "message": "Unauthorized"}}
    }


def test_malformed_json_body_is_a_clear_400(handler, lambda_context, table):
    response = handler(load_event("capig_graphql_malformed_body"), lambda_context)
    assert response["statusCode"] == 400
    assert "Request body is not a valid JSON" in response["body"]
    assert "Traceback" not in response["body"]


def test_health_is_200_when_the_table_answers(handler, lambda_context, table):
    response = handler(load_event("health"), lambda_context)
    assert response["statusCode"] == 200
    assert response_body(response) == {"status": "ok", "checks": {"database": "ok", "events_queue": "ok"}}


def test_health_is_503_when_the_table_is_missing(handler, lambda_context, table):
    # Given models pointing at a table that does not exist
    host = TableItem.Meta.host
    bind_models(table_name="no-such-table", host=host)
    # When health is asked, then it says unavailable
    response = handler(load_event("health"), lambda_context)
    bind_models(table_name=table, host=host)
    assert response["statusCode"] == 503
    assert response_body(response)["checks"] == {"database": "unavailable", "events_queue": "ok"}


def test_unknown_path_is_404(handler, lambda_context, table):
    event = load_event("health")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/admin"
    assert handler(event, lambda_context)["statusCode"] == 404


def test_unexpected_error_is_a_500_envelope_logged_once_as_json_with_the_correlation_id(
    handler, lambda_context, app, table, json_logs, monkeypatch
):
    # Given a domain layer that fails unexpectedly
    def explode(*_args, **_kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(pixel_domains, "list_domains", explode)
    event = load_event("graphql_list_domains", app)
    # When the list request arrives
    response = handler(event, lambda_context)
    # Then the caller sees a generic 500, and the log has one JSON error line with the request id
    assert response_body(response) == {
        "data": {"domains": {"code": 500, "data": {}, "message": "Internal server error"}}
    }
    records = json_logs()
    errors = [record for record in records if record["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["correlation_id"] == event["requestContext"]["requestId"]
    assert errors[0]["operation"] == "domains"
    assert "database on fire" in errors[0]["exception"]
    assert app.app_secret not in json.dumps(records)
    assert "database on fire" not in response["body"]


def test_a_pageview_through_the_handler_emits_emf_metrics_and_a_json_log_with_the_correlation_id(
    handler, lambda_context, app, table, json_logs, capsys
):
    # Given pixel 123, created through the handler
    handler(load_event("graphql_create_pixel_basic_auth", app), lambda_context)
    capsys.readouterr()
    earlier_records = len(json_logs())
    event = load_event("graphql_list_domains", app)
    query = "mutation PV($event: PageviewEventInput!) { pageview(event: $event) { code message } }"
    event["body"] = json.dumps(
        {"query": query, "variables": {"event": {"pixelId": 123, "domain": "example.com"}}}
    )
    event["headers"]["authorization"] = app.basic_header
    # When a pageview arrives
    response = handler(event, lambda_context)
    # Then it is accepted, the invocation flushed an EMF document counting it
    assert response_body(response)["data"]["pageview"] == {"code": 200, "message": "Success"}
    documents = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')
    ]
    accepted = [d for d in documents if "EventsAccepted" in d]
    assert len(accepted) == 1
    (directive,) = accepted[0]["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "PixelGateway"
    assert {"Name": "EventsAccepted", "Unit": "Count"} in directive["Metrics"]
    assert accepted[0]["EventsAccepted"] == [1.0] or accepted[0]["EventsAccepted"] == 1.0
    # And every JSON log line of the invocation carries the API Gateway request id
    records = json_logs()[earlier_records:]
    assert [record["message"] for record in records] == ["Request handled"]
    assert records[0]["correlation_id"] == event["requestContext"]["requestId"]
    assert records[0]["status"] == 200
