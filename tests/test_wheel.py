"""The wheel: one abi3 manylinux2014 wheel per architecture that installs and serves on every Python.

The wheel is built once per test session (a release build takes a minute or two) and shared with
the layer and Dockerfile tests through `session_wheel`. `FASTRIC_TEST_WHEEL_DIR` names a folder of
wheels built beforehand, as the release workflow has; the tests then check those instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from conftest import BASE_ENV
from fastric.layer import ARCHITECTURES, PYTHON_VERSIONS, build_wheel
from runtime_api import Invocation, RuntimeApi

REPO = Path(__file__).resolve().parents[1]
WHEEL_DIR_ENV = "FASTRIC_TEST_WHEEL_DIR"
HOST_ARCH = "arm64" if os.uname().machine == "aarch64" else "x86_64"
OTHER_ARCH = "x86_64" if HOST_ARCH == "arm64" else "arm64"

# A release build on a busy two-core machine, with margin; every later use of the wheel is quick.
BUILD_TIMEOUT = 900
RUN_TIMEOUT = 30.0

# The newest glibc symbol version manylinux2014 allows.
MANYLINUX2014_GLIBC = (2, 17)

REPORT_HANDLER = """
import os, sys
import fastric

def handler(event, context):
    folder = os.path.dirname(fastric.__file__)
    return {
        "event": event,
        "python": "%d.%d" % sys.version_info[:2],
        "fastric": fastric.__file__,
        "files": sorted(os.listdir(folder)),
    }
"""

_built: dict[str, Path] = {}


def session_wheel(tmp_path_factory: pytest.TempPathFactory, arch: str) -> Path:
    """The fastric wheel for `arch`, built at most once per session.

    Skips, saying why, when `arch` is not the host's and this machine cannot cross-compile for it.
    """
    if arch in _built:
        return _built[arch]
    machine = ARCHITECTURES[arch].machine
    prebuilt = os.environ.get(WHEEL_DIR_ENV)
    if prebuilt:
        found = sorted(Path(prebuilt).glob(f"fastric-*-abi3-*_{machine}.whl"))
        if len(found) != 1:
            pytest.fail(f"${WHEEL_DIR_ENV}={prebuilt} holds {len(found)} {machine} wheels, not one")
        _built[arch] = found[0]
        return found[0]
    if arch != HOST_ARCH:
        reason = cross_build_missing(arch)
        if reason:
            pytest.skip(f"cannot build the {arch} wheel here: {reason}")
    _built[arch] = build_wheel(REPO, arch, tmp_path_factory.mktemp(f"wheel-{arch}"))
    return _built[arch]


def cross_build_missing(arch: str) -> str | None:
    """What this machine lacks to cross-compile the wheel for `arch`, or None."""
    if shutil.which("zig") is None and subprocess.run([sys.executable, "-c", "import ziglang"]).returncode != 0:
        return "zig is not installed (pip install ziglang)"
    sysroot = subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True).stdout.strip()
    target = ARCHITECTURES[arch].rust_target
    if not (Path(sysroot) / "lib" / "rustlib" / target).is_dir():
        return f"the Rust standard library for {target} is not installed (rustup target add {target})"
    return None


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fastric wheel for this machine's architecture."""
    return session_wheel(tmp_path_factory, HOST_ARCH)


def find_python(version: str) -> str | None:
    """An interpreter of Python `version` (`3.12`) on this machine, or None."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(str(path) for path in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in candidates:
        if not candidate or not os.access(candidate, os.X_OK):
            continue
        # A pyenv shim exists for every version pyenv knows, but fails for one not selected.
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def python_or_skip(version: str) -> str:
    """An interpreter of Python `version`, or a skip saying it is not installed."""
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed on this machine")
    return python


def fresh_venv(python: str, path: Path) -> Path:
    """A new virtual environment of `python` at `path`, without pip; returns its interpreter."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(path)], check=True, capture_output=True)
    return path / "bin" / "python"


def pip_install(python: Path, *requirements: str) -> None:
    """Installs into the environment of `python`, with this session's pip when it supports that
    Python (skipping the seconds `ensurepip` takes), else with a pip of the environment's own."""
    quiet = ["install", "--quiet", "--disable-pip-version-check", *requirements]
    borrowed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), *quiet], capture_output=True)
    if borrowed.returncode == 0:
        return
    if b"does not support python" not in borrowed.stderr:
        raise AssertionError(f"pip install failed:\n{borrowed.stderr.decode(errors='replace')}")
    subprocess.run([str(python), "-m", "ensurepip"], check=True, capture_output=True)
    subprocess.run([str(python), "-m", "pip", *quiet], check=True, capture_output=True)


def glibc_versions(binary: bytes) -> set[tuple[int, ...]]:
    """The glibc symbol versions a shared object asks for."""
    return {tuple(int(part) for part in found.split(b".")) for found in re.findall(rb"GLIBC_(\d+(?:\.\d+)+)", binary)}


def serve(python: Path, cwd: Path, handler: str, events: list[bytes]) -> list[bytes]:
    """Runs `python -m fastric handler` against a recording Runtime API; returns the response bodies."""
    script = [Invocation(body=body, request_id=f"req-{n}") for n, body in enumerate(events, 1)]
    expected = [("response", f"req-{n}") for n in range(1, len(events) + 1)]
    with RuntimeApi(script) as api, tempfile.TemporaryFile() as output:
        env = {**BASE_ENV, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_LAMBDA_RUNTIME_API": api.address}
        process = subprocess.Popen(
            [str(python), "-m", "fastric", handler],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
        try:
            answered = wait_for_posts(api, process, len(events))
        finally:
            process.kill()
            process.wait()
        output.seek(0)
        log = output.read().decode(errors="replace")
        posts = api.posts()
    assert answered, f"the runtime answered {len(posts)} of {len(events)} invocations:\n{log}"
    assert [(post.kind, post.request_id) for post in posts] == expected, log
    return [post.body for post in posts]


def wait_for_posts(api: RuntimeApi, process: subprocess.Popen[bytes], count: int) -> bool:
    """Waits until `api` has `count` posts; False when the process exits or time runs out first."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        if api.wait_for_posts(count, 0.05):
            return True
        if process.poll() is not None:
            return api.wait_for_posts(count, 0)
    return False


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_wheel_is_abi3_manylinux2014_with_extension_stub_and_marker(wheel: Path) -> None:
    machine = ARCHITECTURES[HOST_ARCH].machine
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        extension = archive.read("fastric/_fastric.abi3.so")
        wheel_info = next(archive.read(name) for name in names if name.endswith(".dist-info/WHEEL")).decode()
        metadata = next(archive.read(name) for name in names if name.endswith(".dist-info/METADATA")).decode()

    assert {"fastric/__init__.py", "fastric/_fastric.abi3.so", "fastric/_fastric.pyi", "fastric/py.typed"} <= names
    assert f"Tag: cp39-abi3-manylinux2014_{machine}" in wheel_info.splitlines()
    assert "Root-Is-Purelib: false" in wheel_info
    assert "Requires-Python: >=3.9" in metadata
    assert extension[:4] == b"\x7fELF"
    assert int.from_bytes(extension[18:20], "little") == ARCHITECTURES[HOST_ARCH].elf_machine
    assert glibc_versions(extension), "the extension names no glibc symbol version"
    assert max(glibc_versions(extension)) <= MANYLINUX2014_GLIBC


@pytest.mark.timeout(BUILD_TIMEOUT)
@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_wheel_installs_and_serves_a_handler(version: str, wheel: Path, tmp_path: Path) -> None:
    python = fresh_venv(python_or_skip(version), tmp_path / "venv")
    pip_install(python, str(wheel))
    function = tmp_path / "function"
    function.mkdir()
    (function / "report.py").write_text(REPORT_HANDLER)

    bodies = serve(python, function, "report.handler", [b'{"n": 1}', b'{"n": 2}'])

    reports = [json.loads(body) for body in bodies]
    assert [report["event"] for report in reports] == [{"n": 1}, {"n": 2}]
    assert reports[0]["python"] == version
    assert reports[0]["fastric"].startswith(str(tmp_path / "venv" / "lib"))
    assert {"_fastric.abi3.so", "_fastric.pyi", "py.typed"} <= set(reports[0]["files"])


def test_release_workflow_pins_every_action_and_grants_each_job_only_what_it_declares() -> None:
    workflow = (REPO / ".github" / "workflows" / "release.yml").read_text()
    uses = re.findall(r"^\s*(?:- )?uses: (.+)$", workflow, re.MULTILINE)
    jobs = re.split(r"^  (?=[a-z][a-z0-9-]*:$)", workflow.split("\njobs:\n", 1)[1], flags=re.MULTILINE)[1:]

    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", action), action
    assert re.search(r"^permissions: \{\}$", workflow, re.MULTILINE), "the workflow grants permissions by default"
    assert len(jobs) >= 5
    for job in jobs:
        assert "\n    permissions:\n" in job, f"job {job.splitlines()[0]} does not declare its permissions"
    # Builds both architectures' wheels and publishes only from a version tag.
    assert re.search(r"target: \[x86_64, aarch64\]", workflow)
    assert workflow.count("if: startsWith(github.ref, 'refs/tags/v')") >= 2
