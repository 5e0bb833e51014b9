"""Local mode: `python -m fastric HANDLER` serving an emulator-compatible invoke endpoint over real HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
MAX_REQUEST_BYTES = 6291456
START_TIMEOUT = 20.0
POLL_INTERVAL = 0.02

# The runtime behind the local endpoints: fastric's own (the default), or the stock client for comparison.
RUNTIMES = {"fastric": None, "awslambdaric": f"{shlex.quote(sys.executable)} -m awslambdaric"}

APP = """\
import os
import time

calls = 0


def echo(event, context):
    return event


def counter(event, context):
    global calls
    calls += 1
    if event == "exit":
        os._exit(1)
    if isinstance(event, dict) and "sleep" in event:
        time.sleep(event["sleep"])
    return {"pid": os.getpid(), "calls": calls, "event": event}


def fail(event, context):
    raise ValueError("bad value")


def big(event, context):
    return "x" * event


def describe(event, context):
    client_context = context.client_context
    return {
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory": context.memory_limit_in_mb,
        "log_group": context.log_group_name,
        "log_stream": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "tenant_id": context.tenant_id,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "region": os.environ.get("AWS_REGION"),
        "runtime_api": os.environ["AWS_LAMBDA_RUNTIME_API"],
        "custom": client_context.custom if client_context else None,
        "env": client_context.env if client_context else None,
        "installation_id": client_context.client.installation_id if client_context else None,
    }
"""

# Counts its own imports in a file, then fails to import a dependency.
BROKEN = """\
with open("inits.log", "a") as log:
    log.write("init\\n")

import not_a_real_dependency_xyz


def handler(event, context):
    return "unreachable"
"""

FIXED = """\
def handler(event, context):
    return {"fixed": event}
"""

# The Runtime API calls both probe runtimes below make, one connection each.
PROBE_CALL = """\
import http.client
import json
import os
import sys

API = os.environ["AWS_LAMBDA_RUNTIME_API"]


def call(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(API, timeout=30)
    connection.request(method, "/2018-06-01/runtime" + path, body, headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response, data
"""

# A bare-bones runtime that reports what the Runtime API told it, one invocation behind for its own posts.
PROBE_RUNTIME = (
    PROBE_CALL
    + """\


posted = []
while True:
    invocation, event = call("GET", "/invocation/next")
    second_next, _ = call("GET", "/invocation/next")
    report = {
        "handler": sys.argv[1],
        "event": json.loads(event),
        "content_type": invocation.getheader("Content-Type"),
        "deadline_ms": int(invocation.getheader("Lambda-Runtime-Deadline-Ms")),
        "second_next": second_next.status,
        "posted": posted,
    }
    request_id = invocation.getheader("Lambda-Runtime-Aws-Request-Id")
    path = "/invocation/" + request_id + "/response"
    answer, _ = call("POST", path, json.dumps(report), {"Content-Type": "text/plain; charset=utf-8"})
    posted.append(answer.status)
"""
)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalServer:
    """A `python -m fastric --port PORT HANDLER` process and the log of everything it and its runtime printed."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def invoke(
        self,
        payload: Any = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        path: str = INVOKE_PATH,
    ) -> Response:
        data = json.dumps(payload).encode() if body is None else body
        return request(self.port, "POST", path, data, headers)

    def wait_for_log(self, text: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while text not in self.log:
            assert time.monotonic() < deadline, f"{text!r} never appeared in the log:\n{self.log}"
            time.sleep(POLL_INTERVAL)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def request(port: int, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, dict(headers or {}))
        response = connection.getresponse()
        return Response(response.status, response.headers, response.read())
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        assert process.poll() is None, f"the server exited with {process.returncode}:\n{log_path.read_text()}"
        assert time.monotonic() < deadline, f"port {port} never opened:\n{log_path.read_text()}"
        time.sleep(POLL_INTERVAL)


def server_command(port: int, handler: str, *options: str) -> list[str]:
    return [sys.executable, "-m", "fastric", "--port", str(port), *options, handler]


def server_environment(runtime: str, env: Mapping[str, str] | None) -> dict[str, str]:
    # Start from a clean slate: the emulator's defaults are part of what is tested.
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "FASTRIC_", "_HANDLER", "_X_AMZN"))
    }
    environ["PYTHONDONTWRITEBYTECODE"] = "1"
    runtime_command = RUNTIMES[runtime]
    if runtime_command:
        environ["FASTRIC_LOCAL_RUNTIME_CMD"] = runtime_command
    environ.update(env or {})
    return environ


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """The runtime process behind the local endpoints."""
    return request.param


def start_server(
    handler: str,
    *,
    cwd: Path,
    log_path: Path,
    options: Sequence[str] = (),
    runtime: str = "fastric",
    env: Mapping[str, str] | None = None,
) -> LocalServer:
    """Start `python -m fastric --port PORT [OPTIONS] HANDLER` on a free port and wait until it listens."""
    port = free_port()
    # A file rather than a pipe, so that a chatty server never blocks; the process keeps its own descriptor.
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(port, handler, *options),
            cwd=cwd,
            env=server_environment(runtime, env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LocalServer(process, port, log_path)
    try:
        wait_for_port(process, port, log_path)
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    """Start local mode on a free port in a directory holding `app.py` (and any extra modules)."""
    servers: list[LocalServer] = []

    def start(
        handler: str,
        *,
        runtime: str = "fastric",
        files: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> LocalServer:
        for name, source in {"app.py": APP, **(files or {})}.items():
            (tmp_path / name).write_text(source)
        log_path = tmp_path / f"server-{len(servers)}.log"
        server = start_server(handler, cwd=tmp_path, log_path=log_path, runtime=runtime, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_echo_answers_with_the_result(serve: Callable[..., LocalServer], runtime: str) -> None:
    server = serve("app.echo", runtime=runtime)
    response = server.invoke({"hello": ["world", 1]})
    assert response.status == 200
    assert response.json() == {"hello": ["world", 1]}
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Amz-Function-Error"] is None
    assert response.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert uuid.UUID(response.headers["X-Amzn-RequestId"]).version == 4


def test_startup_prints_the_url_and_a_curl_line(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.echo")
    url = f"http://127.0.0.1:{server.port}{INVOKE_PATH}"
    server.wait_for_log(f"curl -s -d '{{}}' {url}")
    assert f"fastric: serving app.echo locally at {url}\n" in server.log


def test_context_comes_from_the_invoke_and_the_emulator_defaults(
    serve: Callable[..., LocalServer], runtime: str
) -> None:
    server = serve("app.describe", runtime=runtime)
    trace_id = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    response = server.invoke({}, headers={"X-Amzn-Trace-Id": trace_id, "X-Amz-Tenant-Id": "tenant-7"})
    described = response.json()
    assert described["request_id"] == response.headers["X-Amzn-RequestId"]
    assert described["arn"] == "arn:aws:lambda:us-east-1:012345678912:function:test_function"
    assert described["function_name"] == "test_function"
    assert described["function_version"] == "$LATEST"
    assert described["memory"] == "3008"
    assert described["log_group"] == "/aws/lambda/Functions"
    assert described["log_stream"] == "$LATEST"
    assert described["region"] == "us-east-1"
    assert 290_000 < described["remaining_ms"] <= 300_000
    assert described["trace_id"] == trace_id
    assert described["tenant_id"] == "tenant-7"
    assert described["custom"] is None


def test_function_name_and_timeout_come_from_the_environment(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.describe", env={"AWS_LAMBDA_FUNCTION_NAME": "orders", "AWS_LAMBDA_FUNCTION_TIMEOUT": "7"})
    described = server.invoke({}, path="/2015-03-31/functions/orders/invocations").json()
    assert described["arn"] == "arn:aws:lambda:us-east-1:012345678912:function:orders"
    assert 5_000 < described["remaining_ms"] <= 7_000
    assert described["trace_id"] is None
    assert described["tenant_id"] is None


def test_client_context_reaches_the_handler(serve: Callable[..., LocalServer], runtime: str) -> None:
    server = serve("app.describe", runtime=runtime)
    client_context = {"custom": {"flag": "on", "n": 3}, "env": {"locale": "fr"}, "client": {"installation_id": "i-1"}}
    # Pretty-printed on purpose: it travels on to the runtime in a header.
    encoded = base64.b64encode(json.dumps(client_context, indent=2).encode()).decode()
    described = server.invoke({}, headers={"X-Amz-Client-Context": encoded}).json()
    assert described["custom"] == {"flag": "on", "n": 3}
    assert described["env"] == {"locale": "fr"}
    assert described["installation_id"] == "i-1"


def test_client_context_that_is_not_base64_json_is_refused(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.echo")
    for value in ("%%%not-base64", base64.b64encode(b"not json").decode()):
        response = server.invoke({}, headers={"X-Amz-Client-Context": value})
        assert response.status == 400
        assert response.headers["X-Amzn-ErrorType"] == "InvalidRequestContentException"
        assert response.json() == {
            "Type": "User",
            "message": "Client context must be a valid Base64-encoded JSON object.",
        }


def test_handler_error_is_answered_as_a_function_error(serve: Callable[..., LocalServer], runtime: str) -> None:
    server = serve("app.fail", runtime=runtime)
    response = server.invoke({})
    assert response.status == 200
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    document = response.json()
    assert document["errorType"] == "ValueError"
    assert document["errorMessage"] == "bad value"
    assert document["requestId"] == response.headers["X-Amzn-RequestId"]
    assert 'raise ValueError("bad value")' in document["stackTrace"][-1]


def test_import_error_answers_the_invoke_and_init_runs_again(
    serve: Callable[..., LocalServer], runtime: str, tmp_path: Path
) -> None:
    server = serve("broken.handler", runtime=runtime, files={"broken.py": BROKEN})
    message = "Unable to import module 'broken': No module named 'not_a_real_dependency_xyz'"
    # Init is eager: the error shows before anything is invoked.
    server.wait_for_log(message)
    inits = tmp_path / "inits.log"

    first = server.invoke({})
    assert first.status == 200
    assert first.headers["X-Amz-Function-Error"] == "Unhandled"
    assert first.json()["errorType"] == "Runtime.ImportModuleError"
    assert first.json()["errorMessage"] == message
    assert inits.read_text().count("init") == 1

    second = server.invoke({})
    assert second.headers["X-Amz-Function-Error"] == "Unhandled"
    assert second.json()["errorMessage"] == message
    assert inits.read_text().count("init") == 2

    (tmp_path / "broken.py").write_text(FIXED)
    fixed = server.invoke({"n": 1})
    assert fixed.headers["X-Amz-Function-Error"] is None
    assert fixed.json() == {"fixed": {"n": 1}}


def test_exit_during_init_is_an_exit_error(serve: Callable[..., LocalServer], runtime: str) -> None:
    server = serve("exits.handler", runtime=runtime, files={"exits.py": "import os\n\nos._exit(3)\n"})
    response = server.invoke({})
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    request_id = response.headers["X-Amzn-RequestId"]
    assert response.json() == {
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
        "errorType": "Runtime.ExitError",
    }


def test_exit_during_invocation_is_an_exit_error_and_a_fresh_runtime_follows(
    serve: Callable[..., LocalServer], runtime: str
) -> None:
    server = serve("app.counter", runtime=runtime)
    first = server.invoke({}).json()
    assert server.invoke({}).json()["calls"] == 2

    crashed = server.invoke("exit")
    assert crashed.status == 200
    assert crashed.headers["X-Amz-Function-Error"] == "Unhandled"
    request_id = crashed.headers["X-Amzn-RequestId"]
    assert crashed.json() == {
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 1",
        "errorType": "Runtime.ExitError",
    }

    after = server.invoke({}).json()
    assert after["calls"] == 1, "module state survived: init did not run again"
    assert after["pid"] != first["pid"]
    assert "the runtime exited (exit status 1)" in server.log


def test_concurrent_invokes_are_all_answered_one_at_a_time(serve: Callable[..., LocalServer], runtime: str) -> None:
    server = serve("app.counter", runtime=runtime)
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda i: server.invoke({"i": i, "sleep": 0.01}), range(20)))
    answers = [response.json() for response in responses]
    assert [answer["event"]["i"] for answer in answers] == list(range(20))
    # One process took them in turn: its call counter saw each invoke exactly once.
    assert sorted(answer["calls"] for answer in answers) == list(range(1, 21))
    assert len({answer["pid"] for answer in answers}) == 1
    assert len({response.headers["X-Amzn-RequestId"] for response in responses}) == 20


def test_request_over_6_mb_is_refused(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.echo")
    response = server.invoke(body=b" " * (MAX_REQUEST_BYTES + 1))
    assert response.status == 413
    assert response.headers["X-Amzn-ErrorType"] == "RequestTooLargeException"
    assert response.json() == {
        "Type": "User",
        "message": "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    }
    assert server.invoke("still here").json() == "still here"


def test_request_over_6_mb_is_refused_before_the_body_when_the_client_asks(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.echo")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = f"POST {INVOKE_PATH} HTTP/1.1\r\nHost: local\r\nContent-Length: {MAX_REQUEST_BYTES + 1}\r\n"
        sock.sendall(f"{head}Expect: 100-continue\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert json.loads(response.read())["message"].startswith("Request must be smaller than 6291456 bytes")
        response.close()


def test_request_of_exactly_6_mb_is_accepted(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.echo")
    event = "y" * (MAX_REQUEST_BYTES - 2)
    response = server.invoke(event)
    assert response.status == 200
    assert response.body == json.dumps(event).encode()


def test_chunked_request_body_is_read(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.echo")
    # Without a length, http.client sends an iterable body with Transfer-Encoding: chunked.
    chunks = iter([b'{"parts": ', b"[1, 2", b", 3]}"])
    response = request(server.port, "POST", INVOKE_PATH, chunks)
    assert response.json() == {"parts": [1, 2, 3]}


def test_response_over_6_mb_is_a_function_error(serve: Callable[..., LocalServer], runtime: str) -> None:
    server = serve("app.big", runtime=runtime)
    response = server.invoke(7 * 1024 * 1024)
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    # awslambdaric sends the response and local mode refuses it; fastric's runtime refuses it before sending and
    # names the size in the message.
    document = response.json()
    assert document["errorType"] == "Function.ResponseSizeTooLarge"
    assert re.fullmatch(
        r"Response payload size( \(\d+ bytes\))? exceeded maximum allowed payload size \(6291556 bytes\)\.",
        document["errorMessage"],
    )
    assert server.invoke(3).json() == "xxx"


@pytest.mark.parametrize(
    ("header", "value", "field", "allowed"),
    [
        ("X-Amz-Invocation-Type", "Sometimes", "invocationType", "[Event, RequestResponse, DryRun]"),
        ("X-Amz-Log-Type", "Everything", "logType", "[None, Tail]"),
    ],
)
def test_unknown_invocation_and_log_types_are_refused(
    serve: Callable[..., LocalServer], header: str, value: str, field: str, allowed: str
) -> None:
    server = serve("app.echo")
    response = server.invoke({}, headers={header: value})
    assert response.status == 400
    assert response.headers["X-Amzn-ErrorType"] == "ValidationException"
    assert response.json() == {
        "message": f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: "
        f"Member must satisfy enum value set: {allowed}"
    }
    assert (
        server.invoke({}, headers={"X-Amz-Invocation-Type": "RequestResponse", "X-Amz-Log-Type": "None"}).json() == {}
    )


def test_unknown_path_is_not_found(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.echo")
    response = server.invoke({}, path="/2015-03-31/functions/other/invocations")
    assert response.status == 404
    assert response.headers["X-Amzn-ErrorType"] == "ResourceNotFoundException"
    assert INVOKE_PATH in response.json()["Message"]


def test_runtime_api_rejects_unknown_and_answered_request_ids(serve: Callable[..., LocalServer]) -> None:
    server = serve("app.describe")
    answered = server.invoke({})
    runtime_api_port = int(answered.json()["runtime_api"].rsplit(":", 1)[1])
    invalid = {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}
    for request_id in ("not-a-request", answered.headers["X-Amzn-RequestId"]):
        for action in ("response", "error"):
            path = f"/2018-06-01/runtime/invocation/{request_id}/{action}"
            response = request(runtime_api_port, "POST", path, b"{}")
            assert (response.status, response.json()) == (400, invalid)

    # Init is over once the runtime has asked for work.
    late_init_error = request(runtime_api_port, "POST", "/2018-06-01/runtime/init/error", b"{}")
    assert late_init_error.status == 403
    assert late_init_error.json()["errorType"] == "InvalidStateTransition"
    assert server.invoke("fine").status == 200


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_the_server_and_the_runtime(serve: Callable[..., LocalServer], signum: int) -> None:
    server = serve("app.counter")
    runtime_pid = server.invoke({}).json()["pid"]
    assert server.stop(signum) == 0
    with pytest.raises(ProcessLookupError, match="No such process"):
        os.kill(runtime_pid, 0)
    assert "Traceback" not in server.log


def test_busy_port_is_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        command = server_command(port, "app.echo")
        env = server_environment("fastric", None)
        completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20)
    assert completed.returncode == 1
    assert f"fastric: cannot listen on 127.0.0.1:{port}: Address already in use" in completed.stderr


def test_runtime_path_does_not_import_local_mode() -> None:
    probe = "import sys, fastric.__main__, fastric.bootstrap; print('fastric.local' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20, check=True)
    assert completed.stdout.strip() == "False"


def test_runtime_api_contract_as_a_runtime_sees_it(serve: Callable[..., LocalServer]) -> None:
    server = serve(
        "app.echo",
        files={"probe_runtime.py": PROBE_RUNTIME},
        env={"FASTRIC_LOCAL_RUNTIME_CMD": f"{shlex.quote(sys.executable)} probe_runtime.py"},
    )
    before_ms = time.time() * 1000
    first = server.invoke({"n": 1})
    # The runtime's content type is passed on as it is.
    assert first.headers["Content-Type"] == "text/plain; charset=utf-8"
    report = first.json()
    assert report["handler"] == "app.echo"
    assert report["event"] == {"n": 1}
    assert report["content_type"] == "application/json"
    assert before_ms + 299_000 < report["deadline_ms"] <= time.time() * 1000 + 300_000
    # One invocation at a time: a second /next before answering the first is refused.
    assert report["second_next"] == 403
    assert server.invoke({"n": 2}).json()["posted"] == [202]


# ---- Streamed responses ----

STREAMING_APP = Path(__file__).parent / "handlers" / "streaming_app.py"
STREAM_WAIT_S = 10.0


@dataclass
class Streamed:
    """A response read off the socket as it came: its chunks as framed on the wire, and its trailers."""

    status: int
    headers: http.client.HTTPMessage
    chunks: list[bytes]
    trailers: dict[str, str]

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def error_document(self) -> Any:
        return json.loads(base64.b64decode(self.trailers["Lambda-Runtime-Function-Error-Body"], validate=True))


class StreamReader:
    """A raw HTTP/1.1 exchange with the invoke endpoint, read chunk by chunk."""

    def __init__(
        self, port: int, payload: Any, headers: Mapping[str, str] | None = None, *, version: str = "HTTP/1.1"
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STREAM_WAIT_S)
        body = json.dumps(payload).encode()
        lines = [f"POST {INVOKE_PATH} {version}", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.reader = self.sock.makefile("rb")
        self.status = int(self.reader.readline().split()[1])
        self.headers = http.client.parse_headers(self.reader)
        self.chunks: list[bytes] = []
        self.trailers: dict[str, str] = {}

    def next_chunk(self) -> bytes | None:
        """The next chunk of a chunked body, or None at its end, when the trailers have been read."""
        size = int(self.reader.readline().split(b";")[0], 16)
        if size == 0:
            while line := self.reader.readline().strip():
                name, _, value = line.decode().partition(":")
                self.trailers[name.strip()] = value.strip()
            return None
        data = self.reader.read(size)
        assert self.reader.readline() == b"\r\n"
        self.chunks.append(data)
        return data

    def finish(self) -> Streamed:
        if self.headers["Transfer-Encoding"] == "chunked":
            while self.next_chunk() is not None:
                pass
        else:
            self.chunks.append(self.reader.read())
        self.close()
        return Streamed(self.status, self.headers, self.chunks, self.trailers)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def invoke_streamed(server: LocalServer, payload: Any, headers: Mapping[str, str] | None = None) -> Streamed:
    return StreamReader(server.port, payload, headers).finish()


@pytest.fixture
def streaming(serve: Callable[..., LocalServer]) -> LocalServer:
    """Local mode serving `streaming_app.handler`."""
    return serve("streaming_app.handler", files={"streaming_app.py": STREAMING_APP.read_text()})


def read_until(stream: Any, wanted: bytes) -> bytes:
    """Read a pipe until `wanted` has come, within `STREAM_WAIT_S`."""
    received = b""
    deadline = time.monotonic() + STREAM_WAIT_S
    while wanted not in received:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{wanted!r} did not come while the handler was still running; got {received!r}"
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            data = os.read(stream.fileno(), 65536)
            assert data, f"the output ended before {wanted!r}: {received!r}"
            received += data
    return received


def test_curl_n_prints_each_chunk_as_the_handler_produces_it(streaming: LocalServer, tmp_path: Path) -> None:
    # The handler sends its second chunk only once the gate exists, and the gate is made only once the
    # first chunk has been printed: the first chunk must come through while the handler still runs.
    gate = tmp_path / "gate"
    payload = json.dumps({"do": "gated", "gate": str(gate)})
    url = f"http://127.0.0.1:{streaming.port}{INVOKE_PATH}"
    curl = shutil.which("curl")
    if curl is None:
        reader = StreamReader(streaming.port, json.loads(payload))
        assert reader.next_chunk() == b"first chunk\n"
        gate.touch()
        assert reader.finish().body == b"first chunk\nsecond chunk\n"
        return

    process = subprocess.Popen([curl, "-sSN", "-d", payload, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        first = read_until(process.stdout, b"first chunk\n")
        assert first == b"first chunk\n"
        assert process.poll() is None
        gate.touch()
        rest, errors = process.communicate(timeout=STREAM_WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, errors) == (0, b"")
    assert first + rest == b"first chunk\nsecond chunk\n"


def test_streamed_response_is_chunked_as_the_handler_yields(streaming: LocalServer) -> None:
    response = invoke_streamed(streaming, {"do": "chunks", "parts": ["a", "bb", "ccc"]})
    assert response.status == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert response.headers["Content-Length"] is None
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert uuid.UUID(response.headers["X-Amzn-RequestId"]).version == 4
    assert response.chunks == [b"a", b"bb", b"ccc"]
    assert response.trailers == {}

    # An invoke that does not stream is answered as before, on the same runtime.
    plain = streaming.invoke({"do": "echo"})
    assert (plain.headers["Content-Length"], plain.json()) == (str(len(plain.body)), {"do": "echo"})


def test_stream_helper_content_type_is_passed_on(streaming: LocalServer) -> None:
    response = invoke_streamed(streaming, {"do": "stream", "parts": ["x", "y"], "content_type": "text/plain"})
    assert (response.headers["Content-Type"], response.body) == ("text/plain", b"xy")


def test_http_integration_prelude_sets_status_headers_and_cookies(streaming: LocalServer) -> None:
    payload = {
        "do": "http",
        "parts": ["data: 1\n\n", "data: 2\n\n"],
        "status": 201,
        "headers": {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Content-Length": "1"},
        "multi_value_headers": {"X-Many": ["1", "2"]},
        "cookies": ["session=abc; Secure", "theme=dark"],
    }
    response = invoke_streamed(streaming, payload)
    # As a function URL answers: the prelude is not part of the body.
    assert response.status == 201
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers.get_all("X-Many") == ["1", "2"]
    assert response.headers.get_all("Set-Cookie") == ["session=abc; Secure", "theme=dark"]
    # The prelude cannot override the framing.
    assert (response.headers["Content-Length"], response.headers["Transfer-Encoding"]) == (None, "chunked")
    assert response.body == b"data: 1\n\ndata: 2\n\n"

    bare = invoke_streamed(streaming, {"do": "http", "parts": []})
    assert (bare.status, bare.headers["Content-Type"], bare.body) == (200, "application/octet-stream", b"")


def test_error_part_way_ends_the_body_with_error_trailers(streaming: LocalServer) -> None:
    response = invoke_streamed(streaming, {"do": "fails_midway", "message": "no more"})
    assert response.status == 200
    assert response.headers["X-Amz-Function-Error"] is None
    assert response.headers["Trailer"] == (
        "X-Amz-Function-Error, Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body, X-Amz-Log-Result"
    )
    assert response.body == b"partial output"
    assert response.trailers["X-Amz-Function-Error"] == "Unhandled"
    assert response.trailers["Lambda-Runtime-Function-Error-Type"] == "ValueError"
    document = response.error_document()
    assert (document["errorType"], document["errorMessage"]) == ("ValueError", "no more")
    assert document["requestId"] == response.headers["X-Amzn-RequestId"]
    assert "X-Amz-Log-Result" not in response.trailers

    # Before the first chunk, an error is an ordinary function error.
    early = streaming.invoke({"do": "fails_at_start", "message": "too early"})
    assert early.headers["X-Amz-Function-Error"] == "Unhandled"
    assert early.json()["errorMessage"] == "too early"
    assert streaming.invoke({"do": "echo"}).json() == {"do": "echo"}


def test_streamed_response_is_not_held_to_6_mb(streaming: LocalServer) -> None:
    response = invoke_streamed(streaming, {"do": "large", "chunks": 160})
    assert len(response.body) == 160 * 64 * 1024
    assert response.body[-64 * 1024 :] == (159).to_bytes(4, "big") * (16 * 1024)
    assert response.trailers == {}


def test_http_1_0_invoker_gets_the_stream_until_the_connection_closes(streaming: LocalServer) -> None:
    reader = StreamReader(streaming.port, {"do": "chunks", "parts": ["a", "b"]}, version="HTTP/1.0")
    response = reader.finish()
    assert response.headers["Transfer-Encoding"] is None
    assert response.headers["Connection"] == "close"
    assert response.body == b"ab"


# A bare-bones runtime that first posts its response with a response mode Lambda does not have, then streams
# what it was told, framed by a length rather than chunked.
STREAM_PROBE_RUNTIME = (
    PROBE_CALL
    + """\


while True:
    invocation, _ = call("GET", "/invocation/next")
    path = "/invocation/" + invocation.getheader("Lambda-Runtime-Aws-Request-Id") + "/response"
    refused, document = call("POST", path, b"ignored", {"Lambda-Runtime-Function-Response-Mode": "buffered"})
    report = json.dumps({"status": refused.status, "document": json.loads(document)})
    headers = {"Lambda-Runtime-Function-Response-Mode": "streaming", "Content-Type": "text/plain"}
    call("POST", path, report, headers)
"""
)


def test_runtime_api_takes_only_the_streaming_response_mode(serve: Callable[..., LocalServer]) -> None:
    server = serve(
        "app.echo",
        files={"stream_probe.py": STREAM_PROBE_RUNTIME},
        env={"FASTRIC_LOCAL_RUNTIME_CMD": f"{shlex.quote(sys.executable)} stream_probe.py"},
    )
    response = invoke_streamed(server, {})
    assert (response.headers["Content-Type"], response.headers["Transfer-Encoding"]) == ("text/plain", "chunked")
    report = json.loads(response.body)
    assert report["status"] == 400
    assert report["document"]["errorType"] == "Runtime.InvalidResponseModeHeader"
