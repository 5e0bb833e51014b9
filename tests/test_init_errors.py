"""Handler loading: what is posted to /init/error, the exit status, and the handler forms that work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import HANDLERS_DIR, REFERENCE, RunResult, RuntimeRunner
from runtime_api import Invocation

IMPORTLIB_FRAMES = 8  # importlib.import_module and the frozen importlib frames below it

# Handler string, errorType, errorMessage of awslambdaric 4.2.2 for handlers that cannot be loaded.
INIT_CASES = {
    "missing_module": (
        "does_not_exist.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'does_not_exist': No module named 'does_not_exist'",
    ),
    "missing_dependency": (
        "broken_import.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'broken_import': No module named 'not_a_real_dependency_xyz'",
    ),
    "syntax_error": (
        "syntax_broken.handler",
        "Runtime.UserCodeSyntaxError",
        "Syntax error in module 'syntax_broken': expected ':' (syntax_broken.py, line 4)",
    ),
    "missing_attribute": ("app.not_there", "Runtime.HandlerNotFound", "Handler 'not_there' missing on module 'app'"),
    "empty_attribute": ("app.", "Runtime.HandlerNotFound", "Handler '' missing on module 'app'"),
    "no_dot": (
        "app",
        "Runtime.MalformedHandlerName",
        "Bad handler 'app': not enough values to unpack (expected 2, got 1)",
    ),
    "builtin_sys": (
        "sys.handler",
        "Runtime.BuiltInModuleConflict",
        "Cannot use built-in module sys as a handler module",
    ),
    "builtin_gc": ("gc.handler", "Runtime.BuiltInModuleConflict", "Cannot use built-in module gc as a handler module"),
    "builtin_dotted": (
        "time.sub.handler",
        "Runtime.BuiltInModuleConflict",
        "Cannot use built-in module time.sub as a handler module",
    ),
    "module_not_package": (
        "app.echo.extra",
        "Runtime.ImportModuleError",
        "Unable to import module 'app.echo': No module named 'app.echo'; 'app' is not a package",
    ),
    "slash_missing_attribute": (
        "pkg_dir/inner.nothing",
        "Runtime.HandlerNotFound",
        "Handler 'nothing' missing on module 'pkg_dir/inner'",
    ),
    "slash_missing_module": (
        "pkg_dir/absent.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'pkg_dir/absent': No module named 'pkg_dir.absent'",
    ),
    "raises_at_import": ("raises_at_import.handler", "RuntimeError", "configuration missing at import"),
    "custom_error_at_import": ("custom_error_at_import.handler", "SettingsError", "('settings are wrong', 42)"),
}

# The last frames of the trace of a module raising at import: (function, source line).
IMPORT_RAISE_FRAMES = {
    "raises_at_import": [
        ("<module>", "configure()"),
        ("configure", 'raise RuntimeError("configuration missing at import")'),
    ],
    "custom_error_at_import": [("<module>", 'raise SettingsError("settings are wrong", 42)')],
}

FRAME = re.compile(r'  File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<function>\S+)\n(    (?P<source>.+)\n)?')
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="session")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The handlers directory plus a module that does not compile, which no linter would let into the tree."""
    directory = tmp_path_factory.mktemp("code")
    for source in HANDLERS_DIR.rglob("*.py"):
        target = directory / source.relative_to(HANDLERS_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    (directory / "syntax_broken.py").write_text('"""Broken."""\n\n\ndef handler(event, context)\n    return event\n')
    return directory


def init_runs(run_runtime: RuntimeRunner, impl: str, case: str, cwd: Path) -> tuple[RunResult, RunResult]:
    handler = INIT_CASES[case][0]
    # One event is scripted so that a runtime wrongly polling after an init error would get it.
    script = [Invocation(request_id="never")]
    result = run_runtime(impl, handler, script, cwd=cwd, until="exit")
    return result, run_runtime(REFERENCE, handler, script, cwd=cwd, until="exit")


@pytest.mark.parametrize("case", list(INIT_CASES))
def test_init_error_posted(run_runtime: RuntimeRunner, impl: str, case: str, code_dir: Path) -> None:
    result, reference = init_runs(run_runtime, impl, case, code_dir)
    _, error_type, message = INIT_CASES[case]

    assert result.returncode == 1, result.describe()
    assert [request.kind for request in result.requests] == ["init_error"], result.describe()
    [post] = result.posts
    assert post.method == "POST"
    assert post.header("Lambda-Runtime-Function-Error-Type") == error_type
    document = post.json()
    assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (document["errorType"], document["errorMessage"], document["requestId"]) == (error_type, message, "")
    assert post.body == reference.posts[0].body


@pytest.mark.parametrize(
    "case", [case for case in INIT_CASES if INIT_CASES[case][1].startswith("Runtime.") and case != "syntax_error"]
)
def test_handler_faults_have_no_trace(run_runtime: RuntimeRunner, impl: str, case: str, code_dir: Path) -> None:
    result, _ = init_runs(run_runtime, impl, case, code_dir)

    assert result.posts[0].json()["stackTrace"] == []


def test_syntax_error_trace(run_runtime: RuntimeRunner, impl: str, code_dir: Path) -> None:
    result, _ = init_runs(run_runtime, impl, "syntax_error", code_dir)

    assert result.posts[0].json()["stackTrace"] == [
        f'  File "{code_dir / "syntax_broken.py"}" Line 4\n    def handler(event, context)\n'
    ]


@pytest.mark.parametrize("case", list(IMPORT_RAISE_FRAMES))
def test_import_time_exception_trace(run_runtime: RuntimeRunner, impl: str, case: str, code_dir: Path) -> None:
    result, _ = init_runs(run_runtime, impl, case, code_dir)
    stack_trace = result.posts[0].json()["stackTrace"]
    frames = [FRAME.fullmatch(entry) for entry in stack_trace]

    assert all(frames), stack_trace
    matched = [frame for frame in frames if frame]
    # The trace starts at importlib: the runtime's own frames are cut, the import machinery is kept.
    assert matched[0]["path"].endswith("/importlib/__init__.py")
    assert matched[0]["function"] == "import_module"
    assert all(frame["path"].startswith("<frozen importlib.") for frame in matched[1 : IMPORTLIB_FRAMES - 1])
    module_file = str(code_dir / INIT_CASES[case][0].split(".")[0]) + ".py"
    tail = [(frame["function"], frame["source"]) for frame in matched if frame["path"] == module_file]
    assert tail == IMPORT_RAISE_FRAMES[case]


@pytest.mark.parametrize("case", ["missing_module", "syntax_error", "no_dot", "raises_at_import"])
def test_init_error_log(run_runtime: RuntimeRunner, impl: str, case: str, code_dir: Path) -> None:
    result, reference = init_runs(run_runtime, impl, case, code_dir)
    stdout = TIMESTAMP.sub(b"<time>", result.stdout)
    _, error_type, message = INIT_CASES[case]

    expected = TIMESTAMP.sub(b"<time>", reference.stdout)

    assert stdout.startswith(b"[WARNING]\t<time>\t\tLAMBDA_WARNING: Unhandled exception. ")
    assert f"\r\n[ERROR] {error_type}: {message}\rTraceback (most recent call last):".encode() in stdout
    # The warning's marker sentence and documentation link are the stock runtime's; fastric words the
    # explanation between them its own way. Every other byte is the same.
    assert _without_warning_explanation(stdout) == _without_warning_explanation(expected)


def _without_warning_explanation(stdout: bytes) -> bytes:
    marker = b"The most likely cause is an issue in the function code. "
    link = b"https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r\n"
    start, end = stdout.index(marker) + len(marker), stdout.index(link)
    return stdout[:start] + stdout[end:]


def test_exit_at_import(run_runtime: RuntimeRunner, impl: str) -> None:
    result = run_runtime(impl, "exits_at_import.handler", [Invocation()], until="exit")

    assert result.returncode == 7, result.describe()
    assert result.requests == []


@pytest.mark.parametrize("handler", ["pkg_dir/inner.handler", "pkg_dir.inner.handler"])
def test_nested_handler_forms(run_runtime: RuntimeRunner, impl: str, handler: str) -> None:
    result = run_runtime(impl, handler, [Invocation(body=b'{"k": 1}', request_id="nested-1")])
    post = result.post_for("nested-1")

    assert (post.kind, post.body) == ("response", b'{"module": "pkg_dir.inner", "event": {"k": 1}}')


@pytest.fixture(scope="session")
def shadowed_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A working directory and a task root, each with its own `shadow` module."""
    cwd, task_root = tmp_path_factory.mktemp("cwd"), tmp_path_factory.mktemp("task_root")
    for directory, origin in ((cwd, "cwd"), (task_root, "task root")):
        (directory / "shadow.py").write_text(f"def handler(event, context):\n    return {origin!r}\n")
    return cwd, task_root


def test_task_root_precedes_cwd(run_runtime: RuntimeRunner, impl: str, shadowed_dirs: tuple[Path, Path]) -> None:
    cwd, task_root = shadowed_dirs
    script = [Invocation(request_id="shadow-1")]
    result = run_runtime(impl, "shadow.handler", script, cwd=cwd, env={"LAMBDA_TASK_ROOT": str(task_root)})
    body = result.post_for("shadow-1").body

    if impl == REFERENCE:
        # awslambdaric never reads LAMBDA_TASK_ROOT; `python -m` puts only the working directory on sys.path.
        assert body == b'"cwd"'
    else:
        assert body == b'"task root"'


def test_task_root_alone(run_runtime: RuntimeRunner, impl: str, tmp_path: Path) -> None:
    script = [Invocation(request_id="root-1")]
    result = run_runtime(
        impl,
        "app.echo",
        script,
        cwd=tmp_path,
        env={"LAMBDA_TASK_ROOT": str(HANDLERS_DIR)},
        until="exit" if impl == REFERENCE else "posts",
    )

    if impl == REFERENCE:
        assert result.returncode == 1
        assert result.posts[0].header("Lambda-Runtime-Function-Error-Type") == "Runtime.ImportModuleError"
    else:
        assert result.post_for("root-1").body == b"{}"
