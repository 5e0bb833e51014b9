"""The context object: every attribute with the stock runtime's value and type, header by header."""

from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import REFERENCE, RunResult, RuntimeRunner
from runtime_api import DEFAULT_ARN, Invocation

CLIENT_CONTEXT = {
    "custom": {"key": "value", "nested": {"n": [1, 2]}},
    "env": {"platform": "test", "locale": "en_GB"},
    "client": {
        "installation_id": "install-1",
        "app_title": "title",
        "app_version_name": "1.0",
        "app_version_code": "100",
        "app_package_name": "com.example",
    },
}
COGNITO = {"cognitoIdentityId": "us-east-1:identity-1", "cognitoIdentityPoolId": "us-east-1:pool-1", "other": 1}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
W3C_CONTEXT = {
    "custom": {"k": "v"},
    "w3c": {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE", "baggage": "userId=alice", "x": "dropped"},
}

# Invocations whose context the handler describes; each must be described as the reference does.
CONTEXT_CASES = {
    "plain": Invocation(),
    "client_context": Invocation(client_context=json.dumps(CLIENT_CONTEXT)),
    "client_context_empty_object": Invocation(client_context="{}"),
    "client_context_empty_client": Invocation(client_context='{"client": {}}'),
    "client_context_extra_keys": Invocation(client_context='{"custom": {"a": 1}, "other": 2, "Custom": 3}'),
    "client_context_null": Invocation(client_context="null"),
    "client_context_empty_header": Invocation(client_context=""),
    "w3c": Invocation(client_context=json.dumps(W3C_CONTEXT)),
    "w3c_only": Invocation(client_context=json.dumps({"w3c": {"traceparent": TRACEPARENT}})),
    "w3c_non_string_values": Invocation(
        client_context='{"w3c": {"traceparent": 1, "tracestate": "kept", "baggage": null}}'
    ),
    "w3c_not_an_object": Invocation(client_context='{"w3c": "00-abc", "custom": {}}'),
    "cognito": Invocation(cognito_identity=json.dumps(COGNITO)),
    "cognito_partial": Invocation(cognito_identity='{"cognitoIdentityId": "only-id"}'),
    "cognito_empty_object": Invocation(cognito_identity="{}"),
    "cognito_null": Invocation(cognito_identity="null"),
    "tenant": Invocation(tenant_id="tenant-7"),
    "tenant_empty": Invocation(tenant_id=""),
    "trace": Invocation(trace_id="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
    "alias_arn": Invocation(function_arn=f"{DEFAULT_ARN}:live"),
    "no_arn": Invocation(function_arn=None),
    "every_header": Invocation(
        client_context=json.dumps(W3C_CONTEXT | {"env": {"e": 1}}),
        cognito_identity=json.dumps(COGNITO),
        tenant_id="tenant-9",
        trace_id="Root=1-abc",
        invocation_id="invocation-1",
        function_arn=f"{DEFAULT_ARN}:7",
    ),
}
CONTEXT_SCRIPT = tuple(
    dataclasses.replace(invocation, request_id=f"ctx-{name}") for name, invocation in CONTEXT_CASES.items()
)

ATTRIBUTE_TYPES = {
    "aws_request_id": "str",
    "log_group_name": "str",
    "log_stream_name": "str",
    "function_name": "str",
    "memory_limit_in_mb": "str",
    "function_version": "str",
    "invoked_function_arn": "str",
    "tenant_id": "NoneType",
    "client_context": "NoneType",
    "identity": "CognitoIdentity",
}
PUBLIC_NAMES = [
    "aws_request_id",
    "client_context",
    "custom_attribute",
    "function_name",
    "function_version",
    "get_remaining_time_in_millis",
    "identity",
    "invoked_function_arn",
    "log",
    "log_group_name",
    "log_stream_name",
    "memory_limit_in_mb",
    "tenant_id",
    "w3c",
]


def context_runs(run_runtime: RuntimeRunner, impl: str) -> tuple[RunResult, RunResult]:
    return (
        run_runtime(impl, "context_probe.describe", CONTEXT_SCRIPT),
        run_runtime(REFERENCE, "context_probe.describe", CONTEXT_SCRIPT),
    )


def described(result: RunResult, case: str) -> dict[str, object]:
    post = result.post_for(f"ctx-{case}")
    assert post.kind == "response", result.describe()
    return post.json()


@pytest.mark.parametrize("case", list(CONTEXT_CASES))
def test_context_described_alike(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = context_runs(run_runtime, impl)

    assert described(result, case) == described(reference, case)


def test_attribute_types(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)
    report = described(result, "plain")

    assert report["types"] == ATTRIBUTE_TYPES
    assert report["remaining_type"] == "int"
    assert report["public_names"] == PUBLIC_NAMES
    assert report["values"]["memory_limit_in_mb"] == "128"  # type: ignore[index]


def test_absent_identity_and_client_context(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)
    values = described(result, "plain")["values"]

    # `identity` always exists, with None fields; `client_context` is None without the header.
    assert values["identity"] == {  # type: ignore[index]
        "type": "CognitoIdentity",
        "fields": {"cognito_identity_id": None, "cognito_identity_pool_id": None},
    }
    assert values["client_context"] is None  # type: ignore[index]


def test_cognito_and_client_context_values(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)
    values = described(result, "every_header")["values"]

    assert values["identity"]["fields"] == {  # type: ignore[index]
        "cognito_identity_id": "us-east-1:identity-1",
        "cognito_identity_pool_id": "us-east-1:pool-1",
    }
    assert values["client_context"] == {  # type: ignore[index]
        "type": "ClientContext",
        "fields": {"custom": {"k": "v"}, "env": {"e": 1}, "client": None},
    }
    assert values["tenant_id"] == "tenant-9"  # type: ignore[index]
    assert values["invoked_function_arn"] == f"{DEFAULT_ARN}:7"  # type: ignore[index]


def test_full_client_context(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)
    report = described(result, "client_context")

    assert report["values"]["client_context"]["fields"] == {  # type: ignore[index]
        "custom": CLIENT_CONTEXT["custom"],
        "env": CLIENT_CONTEXT["env"],
        "client": {"type": "Client", "fields": CLIENT_CONTEXT["client"]},
    }
    assert report["client_context_slots"] == ["client", "custom", "env"]
    assert report["identity_slots"] == ["cognito_identity_id", "cognito_identity_pool_id"]
    # The context takes attributes a framework sets on it; the slot objects do not.
    assert (report["context_accepts_attributes"], report["identity_accepts_attributes"]) == (True, False)


def test_w3c_accessor(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)

    assert described(result, "w3c")["w3c"] == {
        "traceparent": TRACEPARENT,
        "tracestate": "congo=t61rcWkgMzE",
        "baggage": "userId=alice",
    }
    assert described(result, "w3c_non_string_values")["w3c"] == {"tracestate": "kept"}
    assert described(result, "w3c_not_an_object")["w3c"] == {}
    assert described(result, "plain")["w3c"] == {}
    # The w3c entry is taken out of the client context, which otherwise stays as sent.
    only = described(result, "w3c_only")
    assert only["w3c"] == {"traceparent": TRACEPARENT}
    assert only["values"]["client_context"]["fields"] == {"custom": None, "env": None, "client": None}  # type: ignore[index]


def test_repr(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)

    assert described(result, "cognito")["repr"] == (
        "LambdaContext([aws_request_id=ctx-cognito,log_group_name=/aws/lambda/test-function,"
        "log_stream_name=2024/01/02/[$LATEST]0123456789abcdef0123456789abcdef,function_name=test-function,"
        f"memory_limit_in_mb=128,function_version=$LATEST,invoked_function_arn={DEFAULT_ARN},"
        "client_context=None,identity=CognitoIdentity([cognito_identity_id=us-east-1:identity-1,"
        "cognito_identity_pool_id=us-east-1:pool-1]),tenant_id=None])"
    )


def test_tenant_id(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = context_runs(run_runtime, impl)

    assert described(result, "tenant")["values"]["tenant_id"] == "tenant-7"  # type: ignore[index]
    assert described(result, "tenant_empty")["values"]["tenant_id"] is None  # type: ignore[index]


# Headers the context cannot be built from: the stock runtime's error type and message for each.
BAD_HEADER_CASES = {
    "client_context_not_json": (
        Invocation(client_context="{not json"),
        "Runtime.LambdaContextUnmarshalError",
        "Unable to parse Client Context JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)",
    ),
    "cognito_not_json": (
        Invocation(cognito_identity="nope"),
        "Runtime.LambdaContextUnmarshalError",
        "Unable to parse Cognito Identity JSON: Expecting value: line 1 column 1 (char 0)",
    ),
    "client_context_list": (
        Invocation(client_context="[1, 2]"),
        "AttributeError",
        "'list' object has no attribute 'get'",
    ),
    "client_context_number": (Invocation(client_context="5"), "AttributeError", "'int' object has no attribute 'get'"),
    "client_string": (
        Invocation(client_context='{"client": "app"}'),
        "AttributeError",
        "'str' object has no attribute 'get'",
    ),
    "cognito_list": (Invocation(cognito_identity="[1, 2]"), "AttributeError", "'list' object has no attribute 'get'"),
    "cognito_empty_list": (Invocation(cognito_identity="[]"), "AttributeError", "'list' object has no attribute 'get'"),
    "cognito_zero": (Invocation(cognito_identity="0"), "AttributeError", "'int' object has no attribute 'get'"),
    "cognito_string": (Invocation(cognito_identity='"id"'), "AttributeError", "'str' object has no attribute 'get'"),
}
BAD_HEADER_SCRIPT = tuple(
    invocation
    for name, (bad, _, _) in BAD_HEADER_CASES.items()
    for invocation in (
        dataclasses.replace(bad, request_id=f"bad-{name}"),
        Invocation(request_id=f"after-{name}"),
    )
)


@pytest.mark.parametrize("case", list(BAD_HEADER_CASES))
def test_bad_context_header(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result = run_runtime(impl, "context_probe.describe", BAD_HEADER_SCRIPT)
    reference = run_runtime(REFERENCE, "context_probe.describe", BAD_HEADER_SCRIPT)
    post = result.post_for(f"bad-{case}")
    _, error_type, message = BAD_HEADER_CASES[case]
    document = post.json()

    assert post.kind == "error", result.describe()
    assert (document["errorType"], document["errorMessage"]) == (error_type, message)
    # Deliberate difference: fastric names the error type in a header as well.
    assert post.header("Lambda-Runtime-Function-Error-Type") == (None if impl == REFERENCE else error_type)
    if error_type.startswith("Runtime."):
        assert document["stackTrace"] == []
        assert post.body == reference.post_for(f"bad-{case}").body
    assert result.post_for(f"after-{case}").kind == "response"


# ---- time and environment ----

DEADLINE_CASES = {
    "past": Invocation(deadline_ms=1_000),
    "missing": Invocation(omit=("Lambda-Runtime-Deadline-Ms",)),
    "junk": Invocation(headers=(("Lambda-Runtime-Deadline-Ms", "12abc"),)),
    "default": Invocation(),
}
DEADLINE_SCRIPT = tuple(
    dataclasses.replace(invocation, request_id=f"deadline-{name}") for name, invocation in DEADLINE_CASES.items()
)


@pytest.mark.parametrize("case", list(DEADLINE_CASES))
def test_remaining_time(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result = run_runtime(impl, "context_probe.remaining", DEADLINE_SCRIPT)
    post = result.post_for(f"deadline-{case}")
    first, second = post.json()

    assert post.kind == "response", result.describe()
    assert first >= second >= 0
    if case == "default":
        served = result.served(f"deadline-{case}")
        assert served.served_headers is not None and served.served_at_ms is not None
        deadline = int(dict(served.served_headers)["Lambda-Runtime-Deadline-Ms"])
        assert 0 < second < first <= deadline - served.served_at_ms
    else:
        assert (first, second) == (0, 0)


# Variables left out, and the attributes read from them.
def test_empty_deadline_header(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [
        Invocation(request_id="deadline-empty", headers=(("Lambda-Runtime-Deadline-Ms", ""),)),
        Invocation(request_id="deadline-after"),
    ]
    result = run_runtime(impl, "context_probe.remaining", script, until="exit" if impl == REFERENCE else "posts")

    if impl == REFERENCE:
        # Known failure: the stock runtime's native client aborts on an empty deadline (SIGABRT).
        assert (result.returncode, result.posts) == (-6, []), result.describe()
    else:
        # Improvement: an empty deadline reads as no deadline, as a missing one does.
        assert result.post_for("deadline-empty").json() == [0, 0]
        assert result.post_for("deadline-after").kind == "response"


MISSING_ENV = dict.fromkeys(
    (
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
    )
)
UNSET_ATTRIBUTES = ("memory_limit_in_mb", "log_group_name", "log_stream_name", "function_version")


def test_unset_environment_gives_none(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [Invocation(request_id="ctx-bare")]
    result = run_runtime(impl, "context_probe.describe", script, env=MISSING_ENV)
    reference = run_runtime(REFERENCE, "context_probe.describe", script, env=MISSING_ENV)
    report = described(result, "bare")

    assert report == described(reference, "bare")
    assert report["types"] == ATTRIBUTE_TYPES | dict.fromkeys(UNSET_ATTRIBUTES, "NoneType")


def test_environment_read_per_invocation(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [
        Invocation(body=b'{"rename_to": "renamed"}', request_id="env-1"),
        Invocation(body=b'{"rename_to": "again"}', request_id="env-2"),
    ]
    result = run_runtime(impl, "context_probe.rename_function", script)
    reference = run_runtime(REFERENCE, "context_probe.rename_function", script)

    assert result.post_for("env-1").json() == {"function_name": "test-function", "memory_limit_in_mb": "128"}
    assert result.post_for("env-2").json() == {"function_name": "renamed", "memory_limit_in_mb": "2048"}
    assert [post.body for post in result.posts] == [post.body for post in reference.posts]


def test_context_log(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [
        Invocation(body=b'{"message": "first\\nsecond"}', request_id="log-1"),
        Invocation(body=b'{"message": "caf\\u00e9"}', request_id="log-2"),
    ]
    result = run_runtime(impl, "context_probe.log_message", script)
    reference = run_runtime(REFERENCE, "context_probe.log_message", script)

    # Written as given: no level, no request id, no newline added.
    assert result.stdout == "first\nsecondcaf\u00e9".encode()
    assert result.stdout == reference.stdout
