"""The invocation loop: fastric must post what awslambdaric posts for the same events."""

from __future__ import annotations

import json
import os
import socket

import pytest

from conftest import HANDLERS_DIR, REFERENCE, RunResult, RuntimeRunner
from runtime_api import DEFAULT_ARN, Invocation, Reply, xray_cause

# Event body and the exact bytes awslambdaric 4.2.2 answers when the handler returns the event.
ECHO_CASES = {
    "empty_object": (b"{}", b"{}"),
    "mixed_object": (
        b'{"b": 1, "a": [1, 2.5, null, true, false], "nested": {"z": "y"}}',
        b'{"b": 1, "a": [1, 2.5, null, true, false], "nested": {"z": "y"}}',
    ),
    "compact": (b'{"k":"v","n":[1,2,3]}', b'{"k": "v", "n": [1, 2, 3]}'),
    "string": (b'"just a string"', b'"just a string"'),
    "big_int": (b"12345678901234567890123", b"12345678901234567890123"),
    "floats": (b"[1.10, 0.1, 1e300, -0.0, 1E2, 5e-324]", b"[1.1, 0.1, 1e+300, -0.0, 100.0, 5e-324]"),
    "non_ascii": (
        '{"s": "h\u00e9llo \u2028 \U0001f600"}'.encode(),
        b'{"s": "h\\u00e9llo \\u2028 \\ud83d\\ude00"}',
    ),
    "escapes": (b'{"s": "tab\\t quote\\" slash\\/ nul\\u0000"}', b'{"s": "tab\\t quote\\" slash/ nul\\u0000"}'),
    "whitespace": (b"  \n [ ]  \n", b"[]"),
    "null": (b"null", b"null"),
    "bom": (b'\xef\xbb\xbf{"bom": 1}', b'{"bom": 1}'),
    "duplicate_keys": (b'{"a": 1, "a": 2}', b'{"a": 2}'),
    "overflow": (b"[1e400, -1e400]", b"[Infinity, -Infinity]"),
    "lone_surrogate": (b'"\\ud800"', b'"\\ud800"'),
}
ECHO_SCRIPT = tuple(Invocation(body=body, request_id=f"echo-{name}") for name, (body, _) in ECHO_CASES.items())

# Bodies awslambdaric cannot decode as JSON, and its error message for each.
UNMARSHAL_CASES = {
    "text": (b"not json", "Expecting value: line 1 column 1 (char 0)"),
    "empty": (b"", "Expecting value: line 1 column 1 (char 0)"),
    "bad_utf8": (b"\xff", "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
    "nan": (b'{"a": NaN}', "Expecting value: line 1 column 7 (char 6)"),
    "truncated": (b'{"a": [1, 2', "Expecting ',' delimiter or ']': line 1 column 12 (char 11)"),
}
UNMARSHAL_SCRIPT = tuple(
    invocation
    for name, (body, _) in UNMARSHAL_CASES.items()
    for invocation in (
        Invocation(body=body, request_id=f"bad-{name}"),
        Invocation(body=b'{"after": "%s"}' % name.encode(), request_id=f"after-{name}"),
    )
)

CLIENT_CONTEXT = {
    "custom": {"key": "value"},
    "env": {"platform": "test"},
    "client": {
        "installation_id": "install-1",
        "app_title": "title",
        "app_version_name": "1.0",
        "app_version_code": "100",
        "app_package_name": "com.example",
    },
}
COGNITO = {"cognitoIdentityId": "identity-1", "cognitoIdentityPoolId": "pool-1", "ignored": True}
CONTEXT_CASES = {
    "plain": Invocation(request_id="ctx-plain"),
    "traced": Invocation(request_id="ctx-traced", trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
    "client_context": Invocation(request_id="ctx-client", client_context=json.dumps(CLIENT_CONTEXT)),
    "client_context_partial": Invocation(request_id="ctx-client-partial", client_context='{"custom": {"a": 1}}'),
    "client_context_null": Invocation(request_id="ctx-client-null", client_context="null"),
    "cognito": Invocation(request_id="ctx-cognito", cognito_identity=json.dumps(COGNITO), trace_id="Root=2"),
    "tenant": Invocation(request_id="ctx-tenant", tenant_id="tenant-7"),
    "empty_tenant": Invocation(request_id="ctx-empty-tenant", tenant_id=""),
    "other_arn": Invocation(request_id="ctx-arn", function_arn=f"{DEFAULT_ARN}:prod"),
    "no_arn": Invocation(request_id="ctx-no-arn", function_arn=None),
}
CONTEXT_SCRIPT = tuple(CONTEXT_CASES.values())
# The first event carries no trace id, so the stale value from the environment must go.
CONTEXT_ENV = {"_X_AMZN_TRACE_ID": "Root=stale"}

# Invocations of the no-op handler; awslambdaric is slower, and only shows the harness works.
MANY = {"awslambdaric": 500, "fastric": 3000}


def echo_runs(run_runtime: RuntimeRunner, impl: str) -> tuple[RunResult, RunResult]:
    return run_runtime(impl, "app.echo", ECHO_SCRIPT), run_runtime(REFERENCE, "app.echo", ECHO_SCRIPT)


@pytest.mark.parametrize("case", list(ECHO_CASES))
def test_echo_body(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = echo_runs(run_runtime, impl)
    post = result.post_for(f"echo-{case}")

    assert post.kind == "response", result.describe()
    assert post.body == ECHO_CASES[case][1]
    assert post.body == reference.post_for(f"echo-{case}").body


def test_echo_content_type(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = echo_runs(run_runtime, impl)

    assert [post.header("Content-Type") for post in result.posts] == ["application/json"] * len(ECHO_SCRIPT)
    assert all(post.method == "POST" for post in result.posts)


def test_echo_posts_in_order(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = echo_runs(run_runtime, impl)

    assert [post.path for post in result.posts] == [
        f"/2018-06-01/runtime/invocation/{invocation.request_id}/response" for invocation in ECHO_SCRIPT
    ]
    assert not result.timed_out


def test_none_result(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [Invocation(body=b'{"x": 1}', request_id="none-1"), Invocation(request_id="none-2")]
    result = run_runtime(impl, "app.none", script)

    for request_id in ("none-1", "none-2"):
        post = result.post_for(request_id)
        assert (post.kind, post.body, post.header("Content-Type")) == ("response", b"null", "application/json")


def test_bytes_result(run_runtime: RuntimeRunner, impl: str) -> None:
    result = run_runtime(impl, "app.raw_bytes", [Invocation(request_id="bytes-1")])
    post = result.post_for("bytes-1")

    assert post.body == b"\x00\xffraw \xe2\x9c\x93 bytes"
    assert post.header("Content-Type") == "application/unknown"


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream"])
def test_non_json_event_is_passed_as_bytes(run_runtime: RuntimeRunner, impl: str, content_type: str) -> None:
    body = b'{"not": "decoded"} \xff'
    script = [Invocation(body=body, request_id="raw-1", content_type=content_type)]
    result = run_runtime(impl, "app.echo", script)
    reference = run_runtime(REFERENCE, "app.echo", script)
    post = result.post_for("raw-1")

    assert (post.kind, post.body, post.header("Content-Type")) == ("response", body, "application/unknown")
    assert post.body == reference.post_for("raw-1").body


# Deliberate difference: awslambdaric hands `application/json; charset=utf-8` events to the handler
# as bytes, so `event["key"]` fails; fastric decodes every JSON media type.
@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_media_type_with_parameters_is_decoded(run_runtime: RuntimeRunner, content_type: str) -> None:
    script = [Invocation(body=b'{"a": 1}', request_id="charset-1", content_type=content_type)]
    post = run_runtime("fastric", "app.echo", script).post_for("charset-1")

    assert (post.kind, post.body, post.header("Content-Type")) == ("response", b'{"a": 1}', "application/json")


def context_runs(run_runtime: RuntimeRunner, impl: str) -> tuple[RunResult, RunResult]:
    result = run_runtime(impl, "app.context_report", CONTEXT_SCRIPT, env=CONTEXT_ENV)
    reference = run_runtime(REFERENCE, "app.context_report", CONTEXT_SCRIPT, env=CONTEXT_ENV)
    return result, reference


@pytest.mark.parametrize("case", list(CONTEXT_CASES))
def test_context_matches_reference(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = context_runs(run_runtime, impl)
    request_id = CONTEXT_CASES[case].request_id
    assert request_id is not None
    report = result.post_for(request_id).json()
    expected = reference.post_for(request_id).json()

    # The only field that depends on when the handler ran.
    report.pop("remaining_time_in_millis")
    expected.pop("remaining_time_in_millis")
    assert report == expected


def test_context_fields(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)
    report = result.post_for("ctx-plain").json()

    assert report["aws_request_id"] == "ctx-plain"
    assert report["invoked_function_arn"] == DEFAULT_ARN
    assert report["function_name"] == "test-function"
    assert report["function_version"] == "$LATEST"
    assert report["memory_limit_in_mb"] == "128"
    assert report["log_group_name"] == "/aws/lambda/test-function"
    assert report["log_stream_name"] == "2024/01/02/[$LATEST]0123456789abcdef0123456789abcdef"
    assert report["identity"] == {"cognito_identity_id": None, "cognito_identity_pool_id": None}
    assert report["client_context"] is None
    assert report["tenant_id"] is None
    assert result.post_for("ctx-arn").json()["invoked_function_arn"] == f"{DEFAULT_ARN}:prod"
    assert result.post_for("ctx-no-arn").json()["invoked_function_arn"] == ""


def test_context_headers_populate_objects(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)

    assert result.post_for("ctx-client").json()["client_context"] == CLIENT_CONTEXT
    assert result.post_for("ctx-client-partial").json()["client_context"] == {
        "custom": {"a": 1},
        "env": None,
        "client": None,
    }
    assert result.post_for("ctx-client-null").json()["client_context"] is None
    assert result.post_for("ctx-cognito").json()["identity"] == {
        "cognito_identity_id": "identity-1",
        "cognito_identity_pool_id": "pool-1",
    }
    assert result.post_for("ctx-tenant").json()["tenant_id"] == "tenant-7"
    assert result.post_for("ctx-empty-tenant").json()["tenant_id"] is None


@pytest.mark.parametrize("case", list(CONTEXT_CASES))
def test_remaining_time(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, _ = context_runs(run_runtime, impl)
    request_id = CONTEXT_CASES[case].request_id
    assert request_id is not None
    served = result.served(request_id)
    assert served.served_headers is not None and served.served_at_ms is not None
    deadline = int(dict(served.served_headers)["Lambda-Runtime-Deadline-Ms"])

    remaining = result.post_for(request_id).json()["remaining_time_in_millis"]
    assert isinstance(remaining, int)
    assert 0 < remaining <= deadline - served.served_at_ms


def test_remaining_time_past_deadline_is_zero(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [
        Invocation(request_id="late", deadline_ms=1_000),
        Invocation(request_id="no-deadline", omit=("Lambda-Runtime-Deadline-Ms",)),
    ]
    result = run_runtime(impl, "app.context_report", script)

    assert result.post_for("late").json()["remaining_time_in_millis"] == 0
    assert result.post_for("no-deadline").json()["remaining_time_in_millis"] == 0


def test_trace_id_env_per_invocation(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)
    traces = {case: result.post_for(str(inv.request_id)).json()["trace_env"] for case, inv in CONTEXT_CASES.items()}

    assert traces["plain"] is None
    assert traces["traced"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert traces["client_context"] is None
    assert traces["cognito"] == "Root=2"
    assert traces["tenant"] is None


def test_invocation_id_echoed(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [Invocation(request_id="inv-1", invocation_id="invocation-abc"), Invocation(request_id="inv-2")]
    result = run_runtime(impl, "app.echo", script)

    assert result.post_for("inv-1").header_all("Lambda-Runtime-Invocation-Id") == ["invocation-abc"]
    assert result.post_for("inv-2").header_all("Lambda-Runtime-Invocation-Id") == []


def test_many_invocations_on_one_connection(run_runtime: RuntimeRunner, impl: str) -> None:
    count = MANY[impl]
    script = [Invocation(body=b'{"i": %d}' % i, request_id=f"many-{i}") for i in range(count)]
    result = run_runtime(impl, "app.noop", script, timeout=60)

    assert not result.timed_out, result.describe()
    assert [post.path for post in result.posts] == [
        f"/2018-06-01/runtime/invocation/many-{i}/response" for i in range(count)
    ]
    assert {post.body for post in result.posts} == {b"1"}
    assert {post.header("Content-Type") for post in result.posts} == {"application/json"}
    # Every next and every response travels on the one kept-alive connection.
    assert {request.connection for request in result.requests} == {1}
    assert len(result.of_kind("next")) >= count


def unmarshal_runs(run_runtime: RuntimeRunner, impl: str) -> tuple[RunResult, RunResult]:
    return run_runtime(impl, "app.echo", UNMARSHAL_SCRIPT), run_runtime(REFERENCE, "app.echo", UNMARSHAL_SCRIPT)


@pytest.mark.parametrize("case", list(UNMARSHAL_CASES))
def test_unmarshal_error(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = unmarshal_runs(run_runtime, impl)
    post = result.post_for(f"bad-{case}")
    message = f"Unable to unmarshal input: {UNMARSHAL_CASES[case][1]}"

    assert post.kind == "error", result.describe()
    assert post.json() == {
        "errorMessage": message,
        "errorType": "Runtime.UnmarshalError",
        "requestId": f"bad-{case}",
        "stackTrace": [],
    }
    assert post.body == reference.post_for(f"bad-{case}").body


@pytest.mark.parametrize("case", list(UNMARSHAL_CASES))
def test_unmarshal_error_xray_cause(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = unmarshal_runs(run_runtime, impl)
    cwd = os.path.realpath(HANDLERS_DIR)
    cause = xray_cause(result.post_for(f"bad-{case}"), cwd)

    assert cause == {
        "working_directory": "<cwd>",
        "exceptions": [
            {
                "message": f"Unable to unmarshal input: {UNMARSHAL_CASES[case][1]}",
                "type": "LambdaValidationError",
                "stack": [],
            }
        ],
        "paths": [],
    }
    assert cause == xray_cause(reference.post_for(f"bad-{case}"), cwd)


@pytest.mark.parametrize("case", list(UNMARSHAL_CASES))
def test_loop_goes_on_after_unmarshal_error(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, _ = unmarshal_runs(run_runtime, impl)
    post = result.post_for(f"after-{case}")

    assert (post.kind, post.json()) == ("response", {"after": case})


def closed_port_address() -> str:
    """An address on which nothing listens, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


NEXT_FAILURES = {
    "status_500": {("next", 0): Reply(500, b'{"errorMessage":"internal","errorType":"InternalServerError"}')},
    "status_403": {("next", 0): Reply(403, b'{"errorMessage":"denied","errorType":"InvalidStateTransition"}')},
    "dropped": {("next", 0): Reply(drop=True)},
}


@pytest.mark.parametrize("failure", list(NEXT_FAILURES))
def test_failing_next_exits_1(run_runtime: RuntimeRunner, impl: str, failure: str) -> None:
    result = run_runtime(impl, "app.echo", [Invocation()], overrides=NEXT_FAILURES[failure], until="exit")

    assert result.returncode == 1, result.describe()
    assert [request.kind for request in result.requests] == ["next"]


def test_refused_connection_exits_1(run_runtime: RuntimeRunner, impl: str) -> None:
    result = run_runtime(impl, "app.echo", [Invocation()], api_address=closed_port_address(), until="exit", cache=False)

    assert result.returncode == 1, result.describe()
    assert result.requests == []
    # Exit status 1 is also what a runtime that cannot even be imported gives.
    assert b"No module named" not in result.stderr


def test_missing_content_type_does_not_crash(run_runtime: RuntimeRunner, impl: str) -> None:
    if impl == REFERENCE:
        pytest.skip("awslambdaric dies by SIGSEGV when next carries no Content-Type")
    script = [
        Invocation(body=b'{"a": 1}', request_id="no-ct", omit=("Content-Type",)),
        Invocation(body=b'{"b": 2}', request_id="after-no-ct"),
    ]
    result = run_runtime(impl, "app.echo", script)

    assert not result.timed_out, result.describe()
    assert result.post_for("no-ct").kind in ("response", "error")
    assert result.post_for("after-no-ct").body == b'{"b": 2}'
