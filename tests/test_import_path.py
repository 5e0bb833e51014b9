"""The stock runtime imports logging, traceback and their standard-library helpers before it
loads the function; fastric imports them when first needed. These tests show that the difference
cannot be seen: a function whose folder holds modules named like those does not shadow them, a
function that empties `sys.path` still gets its errors reported, and `logging` found through
`importlib.util.find_spec` first is still set up as the stock runtime sets it up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import IMPLS, RunResult, RuntimeRunner
from runtime_api import Invocation

# The reference is awslambdaric as the managed runtime starts it (see managed/), since started
# with `python -m` from the function's folder it would import that folder's `logging.py` itself.
MANAGED_REFERENCE = "awslambdaric_managed"
MANAGED_DIR = Path(__file__).parent / "managed"

FUNCTION = """\
import logging
import sys


def log_then_fail(event, context):
    logging.warning("handled %s", event["n"])
    if event["n"] == 2:
        raise ValueError("second event")
    return [type(handler).__name__ for handler in logging.getLogger().handlers]


def forget_the_path(event, context):
    sys.path[:] = ["/nonexistent"]
    raise ValueError("the path is gone")
"""

FIND_SPEC_FIRST = """\
import importlib.util

importlib.util.find_spec("logging")
import logging

logging.warning("imported after find_spec")


def handler(event, context):
    logging.warning("in the handler")
    return [type(handler).__name__ for handler in logging.getLogger().handlers]
"""

# Modules a function might well have, named like standard-library modules the runtime needs.
SHADOWS = {
    "logging.py": "raise RuntimeError('the function folder logging module was imported')\n",
    "token.py": "issue = 'a token helper of the function'\n",
    "string.py": "def slugify(text):\n    return text.lower()\n",
    "traceback.py": "raise RuntimeError('the function folder traceback module was imported')\n",
}

SCRIPT = (
    Invocation(body=b'{"n": 1}', request_id="first"),
    Invocation(body=b'{"n": 2}', request_id="second"),
)


@pytest.fixture(scope="session")
def function_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("function")
    (folder / "app.py").write_text(FUNCTION)
    (folder / "find_spec_first.py").write_text(FIND_SPEC_FIRST)
    for name, text in SHADOWS.items():
        (folder / name).write_text(text)
    return folder


def _stdout_lines(stdout: bytes) -> list[str]:
    # Timestamps differ between runs; everything else is compared.
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<time>", stdout.decode()).splitlines()


@pytest.fixture(params=[MANAGED_REFERENCE, *(impl for impl in IMPLS if impl != "awslambdaric")])
def launched(request: pytest.FixtureRequest) -> str:
    return request.param


def _run_with_reference(
    run_runtime: RuntimeRunner, impl: str, handler: str, script: tuple[Invocation, ...], folder: Path, cwd: Path
) -> tuple[RunResult, RunResult]:
    """`handler` run under `impl`, and under awslambdaric as the managed runtime starts it."""

    def run(runtime: str) -> RunResult:
        # The working directory is elsewhere, as /var/task is only the task root on Lambda by chance
        # of layout; the function's modules are found through LAMBDA_TASK_ROOT.
        env = {"LAMBDA_TASK_ROOT": str(folder)}
        if runtime == MANAGED_REFERENCE:
            env["PYTHONPATH"] = str(MANAGED_DIR)
        return run_runtime(runtime, handler, script, cwd=cwd, env=env)

    return run(impl), run(MANAGED_REFERENCE)


def test_function_modules_do_not_shadow_the_runtime_s(
    run_runtime: RuntimeRunner, launched: str, function_folder: Path, tmp_path: Path
) -> None:
    result, reference = _run_with_reference(
        run_runtime, launched, "app.log_then_fail", SCRIPT, function_folder, tmp_path
    )

    assert result.post_for("first").json() == ["LambdaLoggerHandler"], result.describe()
    error = result.post_for("second")
    assert (error.kind, error.json()["errorType"]) == ("error", "ValueError")
    assert [post.body for post in result.posts] == [post.body for post in reference.posts]
    assert _stdout_lines(result.stdout) == _stdout_lines(reference.stdout)


def test_errors_reported_after_the_path_is_emptied(
    run_runtime: RuntimeRunner, launched: str, function_folder: Path, tmp_path: Path
) -> None:
    script = (Invocation(request_id="no-path"),)
    result, reference = _run_with_reference(
        run_runtime, launched, "app.forget_the_path", script, function_folder, tmp_path
    )

    post = result.post_for("no-path")
    assert (post.kind, post.json()["errorMessage"]) == ("error", "the path is gone"), result.describe()
    assert post.body == reference.post_for("no-path").body


def test_logging_found_before_it_is_imported(
    run_runtime: RuntimeRunner, launched: str, function_folder: Path, tmp_path: Path
) -> None:
    script = (Invocation(request_id="spec-1"),)
    result, reference = _run_with_reference(
        run_runtime, launched, "find_spec_first.handler", script, function_folder, tmp_path
    )

    assert result.post_for("spec-1").json() == ["LambdaLoggerHandler"], result.describe()
    lines = _stdout_lines(result.stdout)
    assert lines == ["[WARNING]\t<time>\t\timported after find_spec", "[WARNING]\t<time>\tspec-1\tin the handler"]
    assert lines == _stdout_lines(reference.stdout)
