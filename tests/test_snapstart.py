"""SnapStart: runtime hooks around the snapshot, `restore/next`, and the exits 64 and 65."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from conftest import REFERENCE, RunResult, RuntimeRunner
from runtime_api import API_PREFIX, Invocation, Reply

HANDLER = "snapstart.handler"
SNAP_START = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
RESTORE_NEXT = f"{API_PREFIX}/restore/next"
RESTORE_ERROR = f"{API_PREFIX}/restore/error"
# `restore/next` answers once the snapshot is restored; `restore/error` accepts a report.
RESTORED = {("other", 0): Reply(200, b""), ("other", 1): Reply(202)}
SCRIPT = (Invocation(request_id="snap-1"), Invocation(request_id="snap-2"))

EXPECTED_CALLS = ["before-3", "before-2 arg key=kw", "before-1", "after-1", "after-2 3"]


def snap_run(
    run_runtime: RuntimeRunner,
    impl: str,
    fail: str = "",
    overrides: Mapping[tuple[str, int], Reply] = RESTORED,
    handler: str = HANDLER,
) -> RunResult:
    env = {**SNAP_START, "SNAPSTART_FAIL": fail}
    until = "exit" if fail or overrides != RESTORED or handler != HANDLER else "posts"
    return run_runtime(impl, handler, SCRIPT, env=env, overrides=overrides, until=until)


def test_hooks_run_around_the_snapshot(run_runtime: RuntimeRunner, impl: str) -> None:
    result = snap_run(run_runtime, impl)
    reference = snap_run(run_runtime, REFERENCE)

    # Before-snapshot hooks run last registered first and are used up; after-restore hooks run in order.
    assert result.post_for("snap-1").json() == {"calls": EXPECTED_CALLS, "before_left": 0, "after_left": 2}
    assert result.post_for("snap-2").json() == result.post_for("snap-1").json()
    assert [post.body for post in result.posts] == [post.body for post in reference.posts]


def test_restore_next_comes_before_the_first_poll(run_runtime: RuntimeRunner, impl: str) -> None:
    result = snap_run(run_runtime, impl)
    restore = result.requests[0]

    assert [request.kind for request in result.requests[:3]] == ["other", "next", "response"], result.describe()
    assert (restore.method, restore.path, restore.body) == ("GET", RESTORE_NEXT, b"")


@pytest.mark.parametrize("init_type", ["on-demand", "provisioned-concurrency", None])
def test_no_hooks_without_snap_start(run_runtime: RuntimeRunner, impl: str, init_type: str | None) -> None:
    env = {"AWS_LAMBDA_INITIALIZATION_TYPE": init_type}
    result = run_runtime(impl, HANDLER, SCRIPT, env=env)

    assert result.post_for("snap-1").json() == {"calls": [], "before_left": 3, "after_left": 2}
    assert [request.kind for request in result.requests][:4] == ["next", "response", "next", "response"]


def assert_hook_frames(impl: str, stack_trace: list[str], reference_trace: list[str]) -> None:
    """The trace of a failing hook: the hook's frames, which end the stock runtime's trace too."""
    hook_frames = [frame for frame in reference_trace if "/snapstart.py" in frame]
    assert len(hook_frames) == 2
    if impl == REFERENCE:
        assert "/awslambdaric/lambda_runtime_hooks_runner.py" in stack_trace[0]
        assert stack_trace[1:] == hook_frames
    else:
        # Deliberate difference: the runtime's own hook runner is left out, as its other frames are.
        assert stack_trace == hook_frames


# Failing hook, and the error type and message reported for it.
BEFORE_FAILURES = {"before": ("HookError", "before hook failed"), "before_exit": ("SystemExit", "9")}


@pytest.mark.parametrize("fail", list(BEFORE_FAILURES))
def test_before_snapshot_failure(run_runtime: RuntimeRunner, impl: str, fail: str) -> None:
    result = snap_run(run_runtime, impl, fail)
    reference = snap_run(run_runtime, REFERENCE, fail)

    assert result.returncode == 64, result.describe()
    assert [request.kind for request in result.requests] == ["init_error"]
    post = result.requests[0]
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.BeforeSnapshotError"
    document = post.json()
    assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (document["errorType"], document["errorMessage"], document["requestId"]) == (*BEFORE_FAILURES[fail], "")
    expected = reference.requests[0].json()
    assert (document["errorType"], document["errorMessage"]) == (expected["errorType"], expected["errorMessage"])
    assert_hook_frames(impl, document["stackTrace"], expected["stackTrace"])


def test_restore_next_refused(run_runtime: RuntimeRunner, impl: str) -> None:
    overrides = {("other", 0): Reply(500, b'{"errorMessage":"restore failed","errorType":"InternalServerError"}')}
    result = snap_run(run_runtime, impl, overrides=overrides)

    assert result.returncode == 64, result.describe()
    assert [(request.kind, request.path) for request in result.requests] == [
        ("other", RESTORE_NEXT),
        ("init_error", f"{API_PREFIX}/init/error"),
    ]
    post = result.requests[1]
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.BeforeSnapshotError"
    assert "500" in post.json()["errorMessage"]


AFTER_FAILURES = {"after": ("HookError", "after hook failed"), "after_exit": ("SystemExit", "9")}


@pytest.mark.parametrize("fail", list(AFTER_FAILURES))
def test_after_restore_failure(run_runtime: RuntimeRunner, impl: str, fail: str) -> None:
    result = snap_run(run_runtime, impl, fail)
    reference = snap_run(run_runtime, REFERENCE, fail)

    assert result.returncode == 65, result.describe()
    assert [(request.method, request.path) for request in result.requests] == [
        ("GET", RESTORE_NEXT),
        ("POST", RESTORE_ERROR),
    ]
    post = result.requests[1]
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.AfterRestoreError"
    document = post.json()
    assert (document["errorType"], document["errorMessage"], document["requestId"]) == (*AFTER_FAILURES[fail], "")
    assert_hook_frames(impl, document["stackTrace"], reference.requests[1].json()["stackTrace"])


@pytest.mark.parametrize("fail", [*BEFORE_FAILURES, *AFTER_FAILURES])
def test_hook_failure_log_line(run_runtime: RuntimeRunner, impl: str, fail: str) -> None:
    result = snap_run(run_runtime, impl, fail)
    error_type, message = {**BEFORE_FAILURES, **AFTER_FAILURES}[fail]

    # Unlike an import failure, a hook failure is not preceded by the unhandled-exception warning.
    assert result.stdout.startswith(f"[ERROR] {error_type}: {message}\rTraceback (most recent call last):\r".encode())
    assert b"LAMBDA_WARNING" not in result.stdout


def test_init_error_under_snap_start(run_runtime: RuntimeRunner, impl: str) -> None:
    result = snap_run(run_runtime, impl, handler="broken_import.handler")

    # The import fails before any hook could run: an ordinary init error, no restore.
    assert result.returncode == 1, result.describe()
    assert [request.kind for request in result.requests] == ["init_error"]
    assert result.requests[0].header("Lambda-Runtime-Function-Error-Type") == "Runtime.ImportModuleError"
