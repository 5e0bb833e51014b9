"""Libraries users run on Lambda, unchanged: Powertools for AWS Lambda, Mangum, and stdlib logging setups.

Each handler runs under both runtimes; what the runtime posts and what the library logs must agree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from conftest import REFERENCE, RunResult, RuntimeRunner
from runtime_api import Invocation

EVENTS = Path(__file__).parent / "fixtures" / "events"
TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def fixture_event(name: str) -> bytes:
    return (EVENTS / f"example-{name}.json").read_bytes()


def both(
    run_runtime: RuntimeRunner, impl: str, handler: str, script: Any, **options: Any
) -> tuple[RunResult, RunResult]:
    return run_runtime(impl, handler, script, **options), run_runtime(REFERENCE, handler, script, **options)


def json_lines(stdout: bytes) -> list[dict[str, Any]]:
    """Powertools' log records, with the one field that depends on the clock removed."""
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith(b"{")]
    for record in records:
        record.pop("timestamp")
    return records


# ---- Powertools Logger ----

LOGGER_SCRIPT = (
    Invocation(body=b'{"order": 1, "customer": "c-1"}', request_id="order-1", trace_id=TRACE),
    Invocation(body=b'{"order": 2, "customer": "c-2"}', request_id="order-2"),
)


def test_powertools_logger_records(run_runtime: RuntimeRunner, impl: str) -> None:
    result, reference = both(run_runtime, impl, "powertools_app.logged", LOGGER_SCRIPT)
    records = json_lines(result.stdout)

    assert [post.body for post in result.posts] == [b'{"order": 1}', b'{"order": 2}'], result.describe()
    assert [(record["level"], record["message"]) for record in records] == [
        ("INFO", "handling order"),
        ("WARNING", "done with order"),
    ] * 2
    # The request id and the cold start come from the context the runtime built.
    assert [record["function_request_id"] for record in records] == ["order-1", "order-1", "order-2", "order-2"]
    assert [record["cold_start"] for record in records] == [True, True, False, False]
    assert {record["function_memory_size"] for record in records} == {"128"}
    assert [record.get("xray_trace_id") for record in records] == ["1-5759e988-bd862e3fe1be46a994272793"] * 2 + [
        None
    ] * 2
    assert [record.get("customer") for record in records] == [None, "c-1", None, "c-2"]
    assert records == json_lines(reference.stdout)


def test_powertools_logger_exception(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [Invocation(request_id="rejected"), Invocation(request_id="rejected-again")]
    result, reference = both(run_runtime, impl, "powertools_app.logged_failure", script)
    records = json_lines(result.stdout)

    assert [(record["message"], record["exception_name"]) for record in records] == [
        ("could not handle order", "ValueError")
    ] * 2
    assert [record["function_request_id"] for record in records] == ["rejected", "rejected-again"]
    for request_id in ("rejected", "rejected-again"):
        post = result.post_for(request_id)
        assert (post.kind, post.json()["errorMessage"]) == ("error", "order rejected")
        assert post.body == reference.post_for(request_id).body
    assert records == json_lines(reference.stdout)


# ---- Powertools BatchProcessor ----


def test_powertools_batch_processor(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [Invocation(body=fixture_event("sqs-batch"), request_id="batch-1")]
    result, reference = both(run_runtime, impl, "powertools_app.batch", script)
    post = result.post_for("batch-1")

    # Grace Hopper's record fails; only its message id is reported back for a retry.
    assert post.body == b'{"batchItemFailures": [{"itemIdentifier": "cf5d2daf-7e46-4844-a4ef-38b6979da42f"}]}'
    assert post.body == reference.post_for("batch-1").body
    records = json_lines(result.stdout)
    assert [(record["message_id"], record["function_request_id"]) for record in records] == [
        ("3851b138-00e2-45bd-a69c-1f5115153382", "batch-1"),
        ("63defc39-6948-413d-b936-645b232a05b9", "batch-1"),
    ]
    assert records == json_lines(reference.stdout)


# ---- Powertools event handler ----

API_SCRIPT = (
    Invocation(body=fixture_event("apigw-v2-get-users"), request_id="api-get"),
    Invocation(body=fixture_event("apigw-v2-post-users"), request_id="api-post"),
)


@pytest.mark.parametrize(("request_id", "status"), [("api-get", 200), ("api-post", 201)])
def test_powertools_http_resolver(run_runtime: RuntimeRunner, impl: str, request_id: str, status: int) -> None:
    result, reference = both(run_runtime, impl, "powertools_app.api", API_SCRIPT)
    post = result.post_for(request_id)
    response = post.json()

    assert response["statusCode"] == status, result.describe()
    body = json.loads(response["body"])
    assert body == (
        {"users": [{"name": "Ada Lovelace"}], "request": "api-get"}
        if request_id == "api-get"
        else {"created": "Grace Hopper"}
    )
    assert post.body == reference.post_for(request_id).body


# ---- Mangum and a bare ASGI application ----


@pytest.mark.parametrize(("request_id", "status"), [("api-get", 200), ("api-post", 201)])
def test_mangum_asgi_app(run_runtime: RuntimeRunner, impl: str, request_id: str, status: int) -> None:
    result, reference = both(run_runtime, impl, "mangum_app.handler", API_SCRIPT)
    post = result.post_for(request_id)
    response = post.json()

    assert (response["statusCode"], response["headers"]) == (status, {"content-type": "application/json"})
    described = json.loads(response["body"])
    assert described["request_id"] == request_id
    # The application lives on between invocations, as it does on Lambda.
    assert described["calls"] == {"api-get": 1, "api-post": 2}[request_id]
    assert described["method"] == {"api-get": "GET", "api-post": "POST"}[request_id]
    assert post.body == reference.post_for(request_id).body
    assert b"Traceback" not in result.stderr


# ---- stdlib logging configured by the function ----

LOGGING_SCRIPT = tuple(Invocation(body=b'{"n": %d}' % n, request_id=f"log-{n}") for n in (1, 2))
LOGGING_ENVS = {"default": {}, "info": {"AWS_LAMBDA_LOG_LEVEL": "INFO"}}


@pytest.mark.parametrize("level", list(LOGGING_ENVS))
def test_basic_config_and_thread_logging(run_runtime: RuntimeRunner, impl: str, level: str) -> None:
    result, reference = both(run_runtime, impl, "user_logging.handler", LOGGING_SCRIPT, env=LOGGING_ENVS[level])
    lines = result.stdout.decode().splitlines()
    expected = [("WARNING", "main thread"), ("WARNING", "worker thread"), ("ERROR", "root logger")]
    if level == "info":
        expected.insert(0, ("INFO", "info line"))

    # basicConfig adds no handler of its own: the runtime's handler stays the only one, at its level.
    for post in result.posts:
        assert post.json() == {"root_handlers": 1, "root_level": 20 if level == "info" else 30}
    # Every record, the worker thread's included, carries the request id of its invocation.
    assert [(line.split("\t")[0], line.split("\t")[2], line.split("\t")[3].rsplit(" ", 1)[0]) for line in lines] == [
        (f"[{name}]", f"log-{n}", message) for n in (1, 2) for name, message in expected
    ]
    assert TIMESTAMP.sub(b"<time>", result.stdout) == TIMESTAMP.sub(b"<time>", reference.stdout)
