"""Errors raised while handling an invocation: the error document, the X-Ray cause, the loop going on."""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import HANDLERS_DIR, REFERENCE, RunResult, RuntimeRunner
from runtime_api import Invocation, xray_cause

FAILING = HANDLERS_DIR / "failing.py"
CWD = os.path.realpath(HANDLERS_DIR)

# Case of `failing.dispatch`: errorType, errorMessage, and the functions of the reported frames.
ERROR_CASES = {
    "value_error": ("ValueError", "bad value", ["value_error"]),
    "no_args": ("RuntimeError", "", ["no_args"]),
    "several_args": ("ValueError", "('a', 1)", ["several_args"]),
    "custom": ("CustomError", "custom failure", ["custom"]),
    "nested": ("LookupError", "nothing found for NEEDLE", ["nested", "level_one", "level_two"]),
    "key_error": ("KeyError", "'missing'", ["key_error"]),
    "zero_division": ("ZeroDivisionError", "division by zero", ["zero_division"]),
    "unicode": ("ValueError", "h\u00e9llo \u2713 \U0001f600", ["unicode"]),
    "multiline": ("ValueError", "first line\nsecond line", ["multiline"]),
    "chained": ("ValueError", "outer failure", ["chained"]),
    "module_not_found": ("ModuleNotFoundError", "No module named 'not_an_installed_module'", ["module_not_found"]),
    "bare_assert": ("AssertionError", "", ["bare_assert"]),
}
# Each failing event is followed by one that succeeds, proving the loop survives the error.
ERROR_SCRIPT = tuple(
    invocation
    for n, case in enumerate(ERROR_CASES)
    for invocation in (
        Invocation(
            body=json.dumps({"case": case}).encode(),
            request_id=f"err-{case}",
            invocation_id="invocation-err" if case == "value_error" else None,
        ),
        Invocation(body=json.dumps({"n": n}).encode(), request_id=f"ok-{case}"),
    )
)

FRAME = re.compile(
    r'  File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)\n    (?P<source>.+)\n', re.DOTALL
)

MARSHAL_CASES = {
    "datetime": "Object of type datetime is not JSON serializable",
    "set": "Object of type set is not JSON serializable",
}
MARSHAL_SCRIPT = tuple(
    invocation
    for kind in MARSHAL_CASES
    for invocation in (
        Invocation(body=json.dumps({"return": kind}).encode(), request_id=f"marshal-{kind}"),
        Invocation(body=b'{"fine": true}', request_id=f"after-{kind}"),
    )
)


def error_runs(run_runtime: RuntimeRunner, impl: str) -> tuple[RunResult, RunResult]:
    return run_runtime(impl, "failing.dispatch", ERROR_SCRIPT), run_runtime(REFERENCE, "failing.dispatch", ERROR_SCRIPT)


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_document(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = error_runs(run_runtime, impl)
    post = result.post_for(f"err-{case}")
    error_type, message, _ = ERROR_CASES[case]

    assert post.kind == "error", result.describe()
    document = post.json()
    assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (document["errorType"], document["errorMessage"], document["requestId"]) == (
        error_type,
        message,
        f"err-{case}",
    )
    assert post.body == reference.post_for(f"err-{case}").body


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_stack_trace_frames(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, _ = error_runs(run_runtime, impl)
    stack_trace = result.post_for(f"err-{case}").json()["stackTrace"]
    frames = [FRAME.fullmatch(entry) for entry in stack_trace]

    assert all(frames), stack_trace
    # The trace starts at the handler: none of the runtime's own frames are reported.
    assert [frame["function"] for frame in frames if frame] == ["dispatch", *ERROR_CASES[case][2]]
    assert {frame["path"] for frame in frames if frame} == {str(FAILING)}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_loop_goes_on_after_error(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, _ = error_runs(run_runtime, impl)
    post = result.post_for(f"ok-{case}")

    assert (post.kind, post.json()) == ("response", {"ok": list(ERROR_CASES).index(case)})


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_xray_cause(run_runtime: RuntimeRunner, impl: str, case: str) -> None:
    result, reference = error_runs(run_runtime, impl)
    cause = xray_cause(result.post_for(f"err-{case}"), CWD)
    error_type, message, functions = ERROR_CASES[case]

    assert cause is not None
    assert list(cause) == ["working_directory", "exceptions", "paths"]
    assert cause["working_directory"] == "<cwd>"
    assert cause["paths"] == ["<cwd>/failing.py"]
    [exception] = cause["exceptions"]
    assert (exception["type"], exception["message"]) == (error_type, message)
    assert [frame["label"] for frame in exception["stack"]] == ["dispatch", *functions]
    assert all(isinstance(frame["line"], int) for frame in exception["stack"])
    assert cause == xray_cause(reference.post_for(f"err-{case}"), CWD)


def test_error_headers(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = error_runs(run_runtime, impl)
    errors = result.of_kind("error")

    assert len(errors) == len(ERROR_CASES)
    assert {post.header("Content-Type") for post in errors} == {"application/json"}
    error_types = [post.header("Lambda-Runtime-Function-Error-Type") for post in errors]
    if impl == REFERENCE:
        assert error_types == [None] * len(errors)
    else:
        # fastric names the error type in a header too, so the platform need not parse the body.
        assert error_types == [post.json()["errorType"] for post in errors]


def test_invocation_id_echoed_on_error(run_runtime: RuntimeRunner, impl: str) -> None:
    result, _ = error_runs(run_runtime, impl)

    assert result.post_for("err-value_error").header_all("Lambda-Runtime-Invocation-Id") == ["invocation-err"]
    assert result.post_for("err-custom").header_all("Lambda-Runtime-Invocation-Id") == []


def test_error_log_lines(run_runtime: RuntimeRunner, impl: str) -> None:
    result, reference = error_runs(run_runtime, impl)
    first = "[ERROR] ValueError: bad value\rTraceback (most recent call last):\r\u00a0\u00a0File "

    assert result.stdout.decode().startswith(first)
    assert result.stdout == reference.stdout


def marshal_runs(run_runtime: RuntimeRunner, impl: str) -> tuple[RunResult, RunResult]:
    result = run_runtime(impl, "app.unserializable", MARSHAL_SCRIPT)
    return result, run_runtime(REFERENCE, "app.unserializable", MARSHAL_SCRIPT)


@pytest.mark.parametrize("kind", list(MARSHAL_CASES))
def test_marshal_error(run_runtime: RuntimeRunner, impl: str, kind: str) -> None:
    result, reference = marshal_runs(run_runtime, impl)
    post = result.post_for(f"marshal-{kind}")
    message = f"Unable to marshal response: {MARSHAL_CASES[kind]}"

    assert post.kind == "error", result.describe()
    assert post.json() == {
        "errorMessage": message,
        "errorType": "Runtime.MarshalError",
        "requestId": f"marshal-{kind}",
        "stackTrace": [],
    }
    assert post.body == reference.post_for(f"marshal-{kind}").body
    assert xray_cause(post, CWD) == {
        "working_directory": "<cwd>",
        "exceptions": [{"message": message, "type": "LambdaValidationError", "stack": []}],
        "paths": [],
    }


@pytest.mark.parametrize("kind", list(MARSHAL_CASES))
def test_loop_goes_on_after_marshal_error(run_runtime: RuntimeRunner, impl: str, kind: str) -> None:
    result, _ = marshal_runs(run_runtime, impl)
    post = result.post_for(f"after-{kind}")

    assert (post.kind, post.body) == ("response", b'{"fine": true}')


def test_sys_exit_in_handler(run_runtime: RuntimeRunner, impl: str) -> None:
    result = run_runtime(impl, "app.exit_three", [Invocation(), Invocation()], until="exit")

    assert result.returncode == 3, result.describe()
    assert [request.kind for request in result.requests] == ["next"]
