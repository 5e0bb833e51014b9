"""Coroutine handlers on one lasting event loop, and Lambda Managed Instances' worker processes.

awslambdaric has no coroutine support: an `async def` handler's coroutine fails to marshal. fastric
awaits it on one loop that outlives the invocation. With `AWS_LAMBDA_MAX_CONCURRENCY` both runtimes
start that many worker processes, each importing the handler and polling the Runtime API itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import BASE_ENV, HANDLERS_DIR, REFERENCE, RunResult, RuntimeRunner
from runtime_api import Invocation, Reply, Request, RuntimeApi, xray_cause

CWD = os.path.realpath(HANDLERS_DIR)
FRAME_FUNCTION = " in "


def frame_functions(stack_trace: list[str]) -> list[str]:
    """The function named by each formatted frame."""
    return [entry.split("\n", 1)[0].rsplit(FRAME_FUNCTION, 1)[1] for entry in stack_trace]


# ---- coroutine handlers ----

LOOP_SCRIPT = tuple(Invocation(request_id=f"loop-{n}") for n in range(3))
COROUTINE_MARSHAL_ERROR = "Unable to marshal response: Object of type coroutine is not JSON serializable"


def test_async_handler_awaited_on_one_loop(run_runtime: RuntimeRunner, impl: str) -> None:
    result = run_runtime(impl, "async_handlers.loop_identity", LOOP_SCRIPT)

    if impl == REFERENCE:
        # Known limitation: the coroutine is posted as a marshalling error and never awaited.
        for invocation in LOOP_SCRIPT:
            document = result.post_for(str(invocation.request_id)).json()
            assert (document["errorType"], document["errorMessage"]) == (
                "Runtime.MarshalError",
                COROUTINE_MARSHAL_ERROR,
            )
        assert b"was never awaited" in result.stderr
        return
    reports = [result.post_for(str(invocation.request_id)).json() for invocation in LOOP_SCRIPT]
    assert [report["request_id"] for report in reports] == ["loop-0", "loop-1", "loop-2"]
    # One loop object serves every invocation.
    assert len({report["loop"] for report in reports}) == 1
    assert b"never awaited" not in result.stderr


def test_task_started_in_one_invocation_finishes_in_the_next(run_runtime: RuntimeRunner) -> None:
    script = [
        Invocation(body=b'{"start": true}', request_id="bg-start"),
        Invocation(body=b"{}", request_id="bg-collect"),
    ]
    result = run_runtime("fastric", "async_handlers.background", script)

    assert result.post_for("bg-start").json() == "started"
    assert result.post_for("bg-collect").json() == "finished, started by bg-start"


def test_async_handler_error(run_runtime: RuntimeRunner) -> None:
    script = [
        Invocation(body=b'{"n": 1}', request_id="async-err-1"),
        Invocation(body=b'{"n": 2}', request_id="async-err-2"),
    ]
    result = run_runtime("fastric", "async_handlers.raising", script)

    for n in (1, 2):
        post = result.post_for(f"async-err-{n}")
        document = post.json()
        assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
        assert (document["errorType"], document["errorMessage"]) == ("ValueError", f"async failure {n}")
        # The trace starts at the coroutine: neither the runtime's nor asyncio's frames are reported.
        assert frame_functions(document["stackTrace"]) == ["raising"]
        assert post.header("Lambda-Runtime-Function-Error-Type") == "ValueError"
        cause = xray_cause(post, CWD)
        assert cause is not None
        assert cause["paths"] == ["<cwd>/async_handlers.py"]
    assert result.stdout.startswith(b"[ERROR] ValueError: async failure 1\rTraceback (most recent call last):\r")


def test_async_handler_results(run_runtime: RuntimeRunner) -> None:
    script = [
        Invocation(body=b'{"kind": "decimal"}', request_id="async-decimal"),
        Invocation(body=b'{"kind": "bytes"}', request_id="async-bytes"),
        Invocation(body=b'{"kind": "set"}', request_id="async-set"),
    ]
    result = run_runtime("fastric", "async_handlers.returns_special", script)

    assert result.post_for("async-decimal").body == b'{"price": 19.99}'
    raw = result.post_for("async-bytes")
    assert (raw.body, raw.header("Content-Type")) == (b"\x00raw", "application/unknown")
    assert result.post_for("async-set").json()["errorMessage"] == (
        "Unable to marshal response: Object of type set is not JSON serializable"
    )


def test_async_handler_logs_carry_request_id(run_runtime: RuntimeRunner) -> None:
    script = [
        Invocation(body=b'{"n": 1}', request_id="async-log-1"),
        Invocation(body=b'{"n": 2}', request_id="async-log-2"),
    ]
    result = run_runtime("fastric", "async_handlers.logs", script)
    lines = result.stdout.decode().splitlines()

    assert [line.split("\t")[2:] for line in lines] == [
        ["async-log-1", "inside coroutine 1"],
        ["async-log-2", "inside coroutine 2"],
    ]


def test_coroutine_returned_by_a_plain_wrapper_is_awaited(run_runtime: RuntimeRunner) -> None:
    result = run_runtime("fastric", "async_handlers.decorated", [Invocation(request_id="wrapped")])

    assert result.post_for("wrapped").json() == "decorated coroutine awaited"


@pytest.mark.parametrize("handler", ["async_handlers.runs_own_loop", "async_handlers.uses_new_loop"])
def test_sync_handler_running_its_own_loop(run_runtime: RuntimeRunner, impl: str, handler: str) -> None:
    script = [Invocation(body=b'{"n": 20}', request_id="own-1"), Invocation(body=b'{"n": 4}', request_id="own-2")]
    result = run_runtime(impl, handler, script)
    reference = run_runtime(REFERENCE, handler, script)

    assert [post.kind for post in result.posts] == ["response", "response"], result.describe()
    assert [post.body for post in result.posts] == [post.body for post in reference.posts]


# ---- Lambda Managed Instances: worker processes ----

WORKER_COUNT = 3


@pytest.fixture(scope="session")
def meeting_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An empty meeting folder per runtime, for `workers.meet`."""
    return {impl: tmp_path_factory.mktemp(f"meeting-{impl}") for impl in ("awslambdaric", "fastric")}


def worker_run(run_runtime: RuntimeRunner, impl: str, meeting_dirs: dict[str, Path]) -> RunResult:
    script = [Invocation(body=json.dumps({"workers": WORKER_COUNT}).encode()) for _ in range(WORKER_COUNT)]
    env = {"AWS_LAMBDA_MAX_CONCURRENCY": str(WORKER_COUNT), "WORKERS_MEETING_DIR": str(meeting_dirs[impl])}
    return run_runtime(impl, "workers.meet", script, env=env)


def test_workers_serve_at_the_same_time(run_runtime: RuntimeRunner, impl: str, meeting_dirs: dict[str, Path]) -> None:
    result = worker_run(run_runtime, impl, meeting_dirs)
    reports = [post.json() for post in result.posts]

    assert [post.kind for post in result.posts] == ["response"] * WORKER_COUNT, result.describe()
    # Every invocation waited until all workers were inside the handler at once.
    assert [report["met"] for report in reports] == [WORKER_COUNT] * WORKER_COUNT
    assert len({report["pid"] for report in reports}) == WORKER_COUNT


def test_each_worker_imports_the_handler(run_runtime: RuntimeRunner, impl: str, meeting_dirs: dict[str, Path]) -> None:
    result = worker_run(run_runtime, impl, meeting_dirs)

    assert [post.json()["imported_by"] == post.json()["pid"] for post in result.posts] == [True] * WORKER_COUNT


def test_each_worker_has_its_own_connection(
    run_runtime: RuntimeRunner, impl: str, meeting_dirs: dict[str, Path]
) -> None:
    result = worker_run(run_runtime, impl, meeting_dirs)
    served = [request for request in result.of_kind("next") if request.served_headers]

    assert len({request.connection for request in served}) == WORKER_COUNT
    for post in result.posts:
        # A worker answers on the connection its event came on.
        assert post.connection == result.served(str(post.request_id)).connection


def test_worker_post_failure_is_survived(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [Invocation(request_id="lost"), Invocation(request_id="kept")]
    overrides = {("response", 0): Reply(500, b'{"errorMessage":"internal","errorType":"InternalServerError"}')}
    result = run_runtime(impl, "workers.pid", script, env={"AWS_LAMBDA_MAX_CONCURRENCY": "1"}, overrides=overrides)

    assert [post.request_id for post in result.posts] == ["lost", "kept"], result.describe()
    assert result.ended_by_run
    assert b"500" in result.stdout + result.stderr


def test_worker_error_post_failure_is_survived(run_runtime: RuntimeRunner, impl: str) -> None:
    script = [Invocation(request_id="lost-error"), Invocation(request_id="kept-error")]
    overrides = {("error", 0): Reply(500, b'{"errorMessage":"internal","errorType":"InternalServerError"}')}
    result = run_runtime(impl, "workers.fail", script, env={"AWS_LAMBDA_MAX_CONCURRENCY": "1"}, overrides=overrides)

    assert [post.request_id for post in result.posts] == ["lost-error", "kept-error"], result.describe()
    assert result.ended_by_run


# Two workers fail to import; the second init error is refused as the platform refuses a repeat.
def init_error_run(run_runtime: RuntimeRunner, impl: str, status: int) -> RunResult:
    overrides = {("init_error", 1): Reply(status, b'{"errorMessage":"refused","errorType":"InvalidStateTransition"}')}
    env = {"AWS_LAMBDA_MAX_CONCURRENCY": "2"}
    return run_runtime(impl, "broken_import.handler", [Invocation()], env=env, overrides=overrides, until="exit")


def test_worker_init_error_403_is_ignored(run_runtime: RuntimeRunner, impl: str) -> None:
    result = init_error_run(run_runtime, impl, 403)

    assert [request.kind for request in result.requests] == ["init_error", "init_error"], result.describe()
    assert not result.timed_out
    assert {post.header("Lambda-Runtime-Function-Error-Type") for post in result.posts} == {"Runtime.ImportModuleError"}
    # The refusal only means another worker reported first: nothing about it is logged.
    assert b"403" not in result.stdout + result.stderr


def test_worker_init_error_other_refusal_is_logged(run_runtime: RuntimeRunner, impl: str) -> None:
    result = init_error_run(run_runtime, impl, 500)

    assert [request.kind for request in result.requests] == ["init_error", "init_error"], result.describe()
    assert b"500" in result.stdout + result.stderr


# ---- retries of a failing `next` in a worker, timed ----

# The pauses before each retry of `next`.
BACKOFF = [0.1, 0.2, 0.4, 0.8]
# Slack on each pause for a loaded machine; a runtime that does not pause at all still fails.
BACKOFF_SLACK = 1.5
FAILED_NEXT = Reply(500, b'{"errorMessage":"internal","errorType":"InternalServerError"}')


class StampedRuntimeApi(RuntimeApi):
    """The recording Runtime API, noting when each request arrives."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.arrivals: list[tuple[str, float]] = []

    def _answer(self, conn: object, request: Request) -> bool:  # type: ignore[override]
        self.arrivals.append((request.kind, time.monotonic()))
        return super()._answer(conn, request)  # type: ignore[arg-type]


@dataclass
class TimedRun:
    """What a runtime did against a `StampedRuntimeApi`."""

    returncode: int | None
    arrivals: list[tuple[str, float]]
    requests: list[Request]
    stdout: bytes
    stderr: bytes

    def next_gaps(self) -> list[float]:
        times = [at for kind, at in self.arrivals if kind == "next"]
        return [later - earlier for earlier, later in zip(times, times[1:])]


def timed_run(
    impl: str,
    handler: str,
    invocations: list[Invocation],
    overrides: Mapping[tuple[str, int], Reply],
    env: Mapping[str, str],
    done: Callable[[list[Request]], bool],
    timeout: float = 15.0,
) -> TimedRun:
    """Run `impl` in a session of its own until `done` holds or it exits, then end the whole session."""
    api = StampedRuntimeApi(invocations, dict(overrides))
    with api, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process_env = {**BASE_ENV, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
        process_env["AWS_LAMBDA_RUNTIME_API"] = api.address
        process = subprocess.Popen(
            [sys.executable, "-m", impl, handler],
            cwd=HANDLERS_DIR,
            env=process_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None and time.monotonic() < deadline:
                if api.wait_until(done, 0.02):
                    break
        finally:
            returncode = process.poll()
            # The workers are the process's children: end the session it leads, and nothing else.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        out.seek(0)
        err.seek(0)
        return TimedRun(returncode, list(api.arrivals), api.requests, out.read(), err.read())


def assert_backoff(gaps: list[float]) -> None:
    assert len(gaps) >= len(BACKOFF), gaps
    for gap, pause in zip(gaps, BACKOFF):
        assert pause <= gap < pause + BACKOFF_SLACK, gaps


# awslambdaric retries only where it polls from a thread, which the python3.12+ environments turn on.
RETRY_ENVS = {
    "thread_polling": {"AWS_LAMBDA_MAX_CONCURRENCY": "1", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"},
    "image": {"AWS_LAMBDA_MAX_CONCURRENCY": "1"},
}


@pytest.mark.parametrize("env_name", list(RETRY_ENVS))
def test_failing_next_is_retried_with_backoff(impl: str, env_name: str) -> None:
    if impl == REFERENCE and env_name == "image":
        pytest.skip("awslambdaric retries only when it polls from a thread (python3.12+ environments)")
    overrides = {("next", n): FAILED_NEXT for n in range(4)}
    run = timed_run(
        impl,
        "workers.pid",
        [Invocation(request_id="after-retries")],
        overrides,
        RETRY_ENVS[env_name],
        done=lambda requests: any(request.kind == "response" for request in requests),
    )

    kinds = [request.kind for request in run.requests]
    # The runtime asks for the following event right after posting; only the requests up to the
    # response belong to this exchange.
    assert kinds[: kinds.index("response") + 1] == ["next"] * 5 + ["response"], run
    assert_backoff(run.next_gaps()[:4])


def test_worker_gives_up_after_five_failed_polls(impl: str) -> None:
    overrides = {("next", n): FAILED_NEXT for n in range(6)}
    run = timed_run(
        impl,
        "workers.pid",
        [Invocation(request_id="never")],
        overrides,
        RETRY_ENVS["thread_polling"],
        done=lambda requests: False,
    )

    # The worker ends by itself after the fifth failure, without a sixth poll, and the parent,
    # whose workers have all ended, ends normally.
    assert run.returncode == 0, run
    assert [request.kind for request in run.requests] == ["next"] * 5, run
    assert_backoff(run.next_gaps())
