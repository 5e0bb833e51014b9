"""Fixtures running a Lambda runtime, awslambdaric or fastric, against the recording Runtime API."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runtime_api import POST_KINDS, Invocation, Reply, Request, RuntimeApi

IMPLS = ("awslambdaric", "fastric")
REFERENCE = "awslambdaric"
HANDLERS_DIR = Path(__file__).parent / "handlers"

# What the Lambda service sets for every function; tests add or remove variables per run.
BASE_ENV = {
    "LANG": "C.UTF-8",
    "TZ": ":UTC",
    "PYTHONDONTWRITEBYTECODE": "1",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_LAMBDA_FUNCTION_NAME": "test-function",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/test-function",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/02/[$LATEST]0123456789abcdef0123456789abcdef",
}

# Long enough for a slow start on a loaded machine; a healthy run ends well before.
RUN_TIMEOUT = 20.0
POLL_INTERVAL = 0.02


@dataclass
class RunResult:
    """What one runtime process did.

    Attributes:
        impl: `awslambdaric` or `fastric`.
        handler: the handler string it was given.
        returncode: exit status; negative for a signal (-15 when the run ended it).
        ended_by_run: the process was still running when the run stopped it.
        timed_out: the run stopped it because the expected posts never came.
        requests: everything the Runtime API received, in order.
        stdout: bytes written to fd 1.
        stderr: bytes written to fd 2.
    """

    impl: str
    handler: str
    returncode: int
    ended_by_run: bool
    timed_out: bool
    requests: list[Request]
    stdout: bytes
    stderr: bytes

    def of_kind(self, *kinds: str) -> list[Request]:
        """Requests of the given kinds, in arrival order."""
        return [request for request in self.requests if request.kind in kinds]

    @property
    def posts(self) -> list[Request]:
        """Responses, invocation errors and init errors, in arrival order."""
        return self.of_kind(*POST_KINDS)

    def post_for(self, request_id: str) -> Request:
        """The single `/response` or `/error` post for `request_id`."""
        found = [post for post in self.posts if post.request_id == request_id]
        assert len(found) == 1, (
            f"{self.impl}: expected one post for {request_id!r}, got {len(found)}\n{self.describe()}"
        )
        return found[0]

    def served(self, request_id: str) -> Request:
        """The `next` call that was answered with the event of `request_id`."""
        for request in self.of_kind("next"):
            if request.served_headers and ("Lambda-Runtime-Aws-Request-Id", request_id) in request.served_headers:
                return request
        raise AssertionError(f"{self.impl}: no event {request_id!r} was served\n{self.describe()}")

    def describe(self) -> str:
        """A summary for assertion messages."""
        paths = "\n".join(f"  {r.method} {r.path} conn={r.connection} {r.body[:200]!r}" for r in self.requests)
        return (
            f"{self.impl} {self.handler}: rc={self.returncode} ended_by_run={self.ended_by_run} "
            f"timed_out={self.timed_out}\nrequests:\n{paths}\n"
            f"stdout: {self.stdout[-2000:]!r}\nstderr: {self.stderr[-3000:]!r}"
        )


def _freeze(mapping: Mapping[Any, Any] | None) -> tuple[Any, ...]:
    return tuple(sorted((mapping or {}).items(), key=repr))


class RuntimeRunner:
    """Runs a runtime as `python -m <impl> HANDLER` against a fresh recording Runtime API.

    Runs are deterministic in what they post, so identical calls share one process per test
    session: a test comparing fastric with awslambdaric reuses the awslambdaric run made by the
    test's own awslambdaric variant.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], RunResult] = {}

    def __call__(
        self,
        impl: str,
        handler: str,
        invocations: Iterable[Invocation] = (),
        *,
        env: Mapping[str, str | None] | None = None,
        cwd: Path = HANDLERS_DIR,
        overrides: Mapping[tuple[str, int], Reply] | None = None,
        until: str = "posts",
        expect_posts: int | None = None,
        api_address: str | None = None,
        timeout: float = RUN_TIMEOUT,
        cache: bool = True,
    ) -> RunResult:
        """Run `handler` under `impl` and return what happened.

        Args:
            impl: module run with `python -m`: `awslambdaric` or `fastric`.
            handler: handler string, passed as the only argument.
            invocations: events the Runtime API serves, in order.
            env: variables added to `BASE_ENV`; a None value removes one.
            cwd: working directory, where awslambdaric imports the handler from.
            overrides: scripted answers, see `RuntimeApi`.
            until: `posts` to stop the process once `expect_posts` posts are recorded (or when it
                exits first), `exit` to wait for the process to end by itself.
            expect_posts: posts awaited with `until="posts"`; defaults to one per invocation.
            api_address: `AWS_LAMBDA_RUNTIME_API` value instead of the server's address.
            timeout: seconds before the run gives up and stops the process.
            cache: reuse the result of an identical earlier call.
        """
        invocations = tuple(invocations)
        key = (
            impl,
            handler,
            invocations,
            _freeze(env),
            str(cwd),
            _freeze(overrides),
            until,
            expect_posts,
            api_address,
        )
        if cache and key in self._cache:
            return self._cache[key]
        expected = len(invocations) if expect_posts is None else expect_posts
        result = self._run(impl, handler, invocations, env, cwd, overrides, until, expected, api_address, timeout)
        if cache:
            self._cache[key] = result
        return result

    def _run(
        self,
        impl: str,
        handler: str,
        invocations: tuple[Invocation, ...],
        env: Mapping[str, str | None] | None,
        cwd: Path,
        overrides: Mapping[tuple[str, int], Reply] | None,
        until: str,
        expected: int,
        api_address: str | None,
        timeout: float,
    ) -> RunResult:
        with RuntimeApi(invocations, dict(overrides or {})) as api:
            process_env = {**BASE_ENV, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            process_env["AWS_LAMBDA_RUNTIME_API"] = api_address or api.address
            for name, value in (env or {}).items():
                if value is None:
                    process_env.pop(name, None)
                else:
                    process_env[name] = value

            # Files, not pipes: a chatty runtime must never block on a pipe nobody reads yet.
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                process = subprocess.Popen(
                    [sys.executable, "-m", impl, handler],
                    cwd=cwd,
                    env=process_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                )
                try:
                    timed_out = not _wait(process, api, until, expected, timeout)
                finally:
                    ended_by_run = process.poll() is None
                    if ended_by_run:
                        process.terminate()
                        try:
                            process.wait(timeout=5)
                        except subprocess.TimeoutExpired:
                            process.kill()
                            process.wait()
                out.seek(0)
                err.seek(0)
                stdout, stderr = out.read(), err.read()

        return RunResult(
            impl=impl,
            handler=handler,
            returncode=process.returncode,
            ended_by_run=ended_by_run,
            timed_out=timed_out,
            requests=api.requests,
            stdout=stdout,
            stderr=stderr,
        )


def _wait(process: subprocess.Popen[bytes], api: RuntimeApi, until: str, expected: int, timeout: float) -> bool:
    """Wait for the stop condition; return False when `timeout` passed first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return True
        if until == "posts" and api.wait_for_posts(expected, POLL_INTERVAL):
            return True
        if until == "exit":
            try:
                process.wait(timeout=POLL_INTERVAL)
            except subprocess.TimeoutExpired:
                continue
            return True
    return False


@pytest.fixture(scope="session")
def run_runtime() -> RuntimeRunner:
    """Run a runtime against a fresh recording Runtime API; see `RuntimeRunner.__call__`."""
    return RuntimeRunner()


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    """The runtime under test."""
    return request.param


@pytest.fixture
def runtime_api() -> Iterator[RuntimeApi]:
    """A started recording Runtime API with an empty script, stopped after the test."""
    with RuntimeApi() as api:
        yield api
