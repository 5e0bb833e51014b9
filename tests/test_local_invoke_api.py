"""Local mode behaves as Lambda's Invoke API does: timeouts, crashes, concurrency, headers, REPORT lines, one shot."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from test_local_mode import LocalServer, Response, StreamReader, invoke_streamed, server_environment, start_server

HANDLERS = Path(__file__).parent / "handlers_local"
REPORT = re.compile(
    r"REPORT RequestId: (?P<request_id>[0-9a-f-]{36})\tDuration: (?P<duration>\d+\.\d\d) ms\t"
    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<memory_size>\d+) MB\t"
    r"Max Memory Used: (?P<max_memory>\d+) MB\t(?:Init Duration: (?P<init>\d+\.\d\d) ms\t)?"
    r"(?:Status: (?P<status>\w+)\t)?(?:Error Type: (?P<error_type>[\w.]+)\t)?"
)
TAIL = {"X-Amz-Log-Type": "Tail"}


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    """Start local mode in `tests/handlers_local`, with extra command-line options and environment."""
    servers: list[LocalServer] = []

    def start(handler: str, *options: str, env: Mapping[str, str] | None = None) -> LocalServer:
        log_path = tmp_path / f"server-{len(servers)}.log"
        server = start_server(handler, cwd=HANDLERS, log_path=log_path, options=options, env=env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def tail(response: Response) -> str:
    """The invocation's log from `X-Amz-Log-Result`."""
    return base64.b64decode(response.headers["X-Amz-Log-Result"]).decode()


def report(log: str) -> dict[str, Any]:
    """The fields of the one REPORT line in an invocation's log, which ends with it."""
    *_, last_line, end = log.split("\n")
    assert end == ""
    match = REPORT.fullmatch(last_line)
    assert match, f"not a REPORT line: {last_line!r}"
    return match.groupdict()


def test_each_invocation_logs_start_end_and_a_measured_report(local: Callable[..., LocalServer]) -> None:
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "INIT_SLEEP": "0.3"}
    server = local("functions.work", env=env)

    first = server.invoke({}, headers=TAIL)
    request_id = first.headers["X-Amzn-RequestId"]
    assert first.json()["memory"] == "256"
    log = tail(first)
    assert log.startswith(f"START RequestId: {request_id} Version: $LATEST\nworking on {request_id}\n")
    assert f"\nEND RequestId: {request_id}\nREPORT RequestId: {request_id}\t" in log
    # Init output belongs to no invocation.
    assert "init done" not in log
    cold = report(log)
    assert (cold["request_id"], cold["memory_size"], cold["status"]) == (request_id, "256", None)
    # Init lasts from the process's start to its first /next, so it includes the module's own 0.3 s.
    assert 300 <= float(cold["init"]) < 20_000
    assert int(cold["billed"]) == math.ceil(float(cold["duration"]) + float(cold["init"]))
    # The terminal shows the same lines.
    assert log in server.log

    warm = report(tail(server.invoke({"allocate_mb": 64}, headers=TAIL)))
    assert warm["init"] is None
    assert int(warm["billed"]) == math.ceil(float(warm["duration"]))
    assert int(warm["max_memory"]) >= int(cold["max_memory"]) + 60
    assert report(tail(server.invoke({}, headers=TAIL)))["max_memory"] == warm["max_memory"]


def test_log_tail_holds_both_streams_and_at_most_4_kb(local: Callable[..., LocalServer]) -> None:
    server = local("functions.work")
    assert "X-Amz-Log-Result" not in server.invoke({}).headers

    both = tail(server.invoke({"stderr": "to stderr"}, headers=TAIL))
    assert "working on" in both
    assert "to stderr\n" in both

    long = server.invoke({"log_kb": 8}, headers=TAIL)
    log = base64.b64decode(long.headers["X-Amz-Log-Result"])
    assert len(log) == 4096
    assert log.endswith(b"\t\n")
    assert b"START RequestId" not in log
    assert f"END RequestId: {long.headers['X-Amzn-RequestId']}\n".encode() in log


def test_timeout_is_lambdas_error_and_a_fresh_process_follows(local: Callable[..., LocalServer]) -> None:
    server = local("functions.work", env={"AWS_LAMBDA_FUNCTION_TIMEOUT": "1"})
    first = server.invoke({}).json()

    started = time.monotonic()
    timed_out = server.invoke({"sleep": 30}, headers=TAIL)
    assert time.monotonic() - started < 10
    request_id = timed_out.headers["X-Amzn-RequestId"]
    assert timed_out.status == 200
    assert timed_out.headers["X-Amz-Function-Error"] == "Unhandled"
    assert timed_out.json() == {
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
        "errorType": "Sandbox.Timedout",
    }
    log = tail(timed_out)
    assert re.search(
        rf"\n\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z {request_id} Task timed out after 1.00 seconds\n", log
    )
    fields = report(log)
    assert (fields["status"], fields["error_type"]) == ("timeout", None)
    assert 1000 <= float(fields["duration"]) < 10_000

    after = server.invoke({}, headers=TAIL)
    assert after.json()["calls"] == 1
    assert after.json()["pid"] != first["pid"]
    assert report(tail(after))["init"] is not None


def test_killed_process_is_an_exit_error_and_init_runs_again(local: Callable[..., LocalServer]) -> None:
    server = local("functions.work")
    first = server.invoke({}).json()
    helper = server.invoke({"spawn": True}).json()["helper"]

    killed = server.invoke({"kill": True}, headers=TAIL)
    request_id = killed.headers["X-Amzn-RequestId"]
    message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    assert killed.headers["X-Amz-Function-Error"] == "Unhandled"
    assert killed.json() == {"errorMessage": message, "errorType": "Runtime.ExitError"}
    log = tail(killed)
    assert f"\n{message}\nRuntime.ExitError\nEND RequestId: {request_id}\n" in log
    fields = report(log)
    assert (fields["status"], fields["error_type"]) == ("error", "Runtime.ExitError")

    after = server.invoke({}, headers=TAIL)
    assert after.json()["calls"] == 1
    assert after.json()["pid"] != first["pid"]
    assert report(tail(after))["init"] is not None
    assert server.log.count("init done") == 2
    # What the runtime started went with it.
    wait_until_gone(helper)


def wait_until_gone(pid: int) -> None:
    """Wait for a process to end: gone, or a zombie waiting for whoever adopted it."""
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 10
    while True:
        try:
            state = re.search(r"^State:\s+(\w)", status.read_text(), re.MULTILINE)
        except FileNotFoundError:
            return
        if state and state.group(1) == "Z":
            return
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.02)


def test_init_error_answers_with_its_log(local: Callable[..., LocalServer]) -> None:
    server = local("broken.handler")
    response = server.invoke({}, headers=TAIL)
    assert response.headers["X-Amz-Function-Error"] == "Unhandled"
    assert response.json()["errorType"] == "Runtime.ImportModuleError"
    log = tail(response)
    assert log.startswith("importing the dependency\n")
    assert "Unable to import module 'broken': No module named 'not_a_real_dependency_xyz'" in log
    fields = report(log)
    assert (fields["status"], fields["error_type"]) == ("error", "Runtime.ImportModuleError")


def test_concurrent_invokes_are_spread_over_up_to_n_processes(local: Callable[..., LocalServer]) -> None:
    server = local("functions.work", "--concurrency", "4")
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: server.invoke({"sleep": 0.3}, headers=TAIL), range(20)))

    assert [response.status for response in responses] == [200] * 20
    calls_by_pid: dict[int, list[int]] = {}
    for response in responses:
        answer = response.json()
        calls_by_pid.setdefault(answer["pid"], []).append(answer["calls"])
    # Invokes waited while every process was busy, so all four started; each took its share one at a time.
    assert len(calls_by_pid) == 4
    assert all(sorted(calls) == list(range(1, len(calls) + 1)) for calls in calls_by_pid.values())
    # Each process reports its init once.
    assert sum(report(tail(response))["init"] is not None for response in responses) == 4


def test_invocation_types_dry_run_event_and_request_response(local: Callable[..., LocalServer]) -> None:
    server = local("functions.work")

    dry_run = server.invoke({}, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert (dry_run.status, dry_run.body) == (204, b"")
    assert "X-Amz-Executed-Version" not in dry_run.headers
    assert server.invoke({}).json()["calls"] == 1

    event = server.invoke({"sleep": 0.5}, headers={"X-Amz-Invocation-Type": "Event"})
    assert (event.status, event.body) == (202, b"")
    request_id = event.headers["X-Amzn-RequestId"]
    # Answered before the function ran to its end, which the log then shows.
    assert f"END RequestId: {request_id}" not in server.log
    server.wait_for_log(f"END RequestId: {request_id}")
    assert f"working on {request_id}\n" in server.log

    synchronous = server.invoke({})
    assert synchronous.json()["calls"] == 3
    assert synchronous.headers["X-Amz-Executed-Version"] == "$LATEST"
    assert f"working on {dry_run.headers['X-Amzn-RequestId']}" not in server.log


def test_memory_size_is_reported_and_limited_only_when_asked(local: Callable[..., LocalServer]) -> None:
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128"}
    unlimited = local("functions.work", env=env)
    unlimited.wait_for_log("fastric: timeout 300 s, memory size 128 MB, reported to the function but not enforced")
    assert unlimited.invoke({"allocate_mb": 160}).headers["X-Amz-Function-Error"] is None
    unlimited.wait_for_log("more than the memory size of 128 MB; on Lambda it would have been stopped")

    limited = local("functions.work", "--limit-memory", env=env)
    limited.wait_for_log("memory size 128 MB, enforced as an address-space limit (RLIMIT_AS)")
    assert limited.invoke({}).json()["memory"] == "128"
    over = limited.invoke({"allocate_mb": 160})
    assert over.headers["X-Amz-Function-Error"] == "Unhandled"
    assert over.json()["errorType"] == "MemoryError"


def test_invoke_endpoint_listens_on_loopback_only(local: Callable[..., LocalServer]) -> None:
    server = local("functions.work")
    # /proc/net/tcp lists each socket's address as little-endian hex; 0A is LISTEN.
    listening = [
        fields[1].split(":")[0]
        for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == server.port
    ]
    assert listening == ["0100007F"]


def one_shot(event_args: Sequence[str], *, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-m", "fastric", "--invoke", *event_args, "functions.work"]
    env = server_environment("fastric", None)
    return subprocess.run(command, cwd=HANDLERS, env=env, input=stdin, capture_output=True, timeout=30)


def test_one_shot_invoke_prints_the_result_and_exits_with_its_status(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text('{"stderr": "a log line"}')
    succeeded = one_shot([str(event)])
    assert succeeded.returncode == 0, succeeded.stderr
    answer = json.loads(succeeded.stdout)
    assert (answer["calls"], succeeded.stdout.endswith(b"}\n")) == (1, True)
    logs = succeeded.stderr.decode()
    assert "a log line\n" in logs
    assert re.search(r"\nEND RequestId: \S+\nREPORT RequestId: .*\tInit Duration: ", logs)

    failed = one_shot(["-"], stdin=b'{"fail": "no luck"}')
    assert failed.returncode == 1
    document = json.loads(failed.stdout)
    assert (document["errorType"], document["errorMessage"]) == ("RuntimeError", "no luck")

    missing = one_shot([str(tmp_path / "missing.json")])
    assert missing.returncode == 2
    assert b"fastric: cannot read the event: [Errno 2] No such file or directory" in missing.stderr


# ---- Streamed responses ----

STREAMING = {"PYTHONPATH": str(Path(__file__).parent / "handlers")}


def test_stream_past_the_timeout_ends_with_a_timeout_in_the_trailers(local: Callable[..., LocalServer]) -> None:
    server = local("streaming_app.handler", env={**STREAMING, "AWS_LAMBDA_FUNCTION_TIMEOUT": "1"})
    # The gate never opens: the handler waits after its first chunk until the invocation times out.
    response = invoke_streamed(server, {"do": "gated", "gate": "/nonexistent/gate"}, TAIL)
    request_id = response.headers["X-Amzn-RequestId"]
    assert response.body == b"first chunk\n"
    assert response.trailers["X-Amz-Function-Error"] == "Unhandled"
    assert response.trailers["Lambda-Runtime-Function-Error-Type"] == "Sandbox.Timedout"
    assert response.error_document() == {
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds",
        "errorType": "Sandbox.Timedout",
    }
    fields = report(base64.b64decode(response.trailers["X-Amz-Log-Result"]).decode())
    assert (fields["request_id"], fields["status"]) == (request_id, "timeout")
    assert server.invoke({"do": "echo"}).json() == {"do": "echo"}


def test_runtime_exit_part_way_ends_with_an_exit_error_in_the_trailers(local: Callable[..., LocalServer]) -> None:
    server = local("streaming_app.handler", env=STREAMING)
    response = invoke_streamed(server, {"do": "exits_midway"})
    request_id = response.headers["X-Amzn-RequestId"]
    assert response.body == b"before the exit"
    assert response.trailers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ExitError"
    assert response.error_document() == {
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3",
        "errorType": "Runtime.ExitError",
    }
    assert server.invoke({"do": "echo"}).json() == {"do": "echo"}


def test_stream_log_tail_comes_in_a_trailer(local: Callable[..., LocalServer]) -> None:
    server = local("streaming_app.handler", env=STREAMING)
    response = invoke_streamed(server, {"do": "chunks", "parts": ["a"]}, TAIL)
    request_id = response.headers["X-Amzn-RequestId"]
    assert "X-Amz-Log-Result" not in response.headers
    assert set(response.trailers) == {"X-Amz-Log-Result"}
    log = base64.b64decode(response.trailers["X-Amz-Log-Result"]).decode()
    assert log.startswith(f"START RequestId: {request_id} Version: $LATEST\n")
    assert report(log)["request_id"] == request_id


def test_streams_nobody_reads_do_not_hold_the_runtime_up(local: Callable[..., LocalServer]) -> None:
    server = local("streaming_app.handler", env=STREAMING)
    # 4 MB, more than waits for an invoker: an Event invoke, whose answer nobody reads.
    event = server.invoke({"do": "large", "chunks": 64}, headers={"X-Amz-Invocation-Type": "Event"})
    assert event.status == 202
    server.wait_for_log(f"END RequestId: {event.headers['X-Amzn-RequestId']}")

    # An invoker that hangs up after the first chunk.
    reader = StreamReader(server.port, {"do": "large", "chunks": 64})
    assert reader.next_chunk() == (0).to_bytes(4, "big") * (16 * 1024)
    request_id = reader.headers["X-Amzn-RequestId"]
    reader.close()
    server.wait_for_log(f"END RequestId: {request_id}")
    assert server.invoke({"do": "echo"}).json() == {"do": "echo"}


def test_one_shot_invoke_writes_a_stream_as_it_comes(tmp_path: Path) -> None:
    def run(event: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
        command = [sys.executable, "-m", "fastric", "--invoke", "-", "streaming_app.handler"]
        env = {**server_environment("fastric", None), **STREAMING}
        return subprocess.run(
            command, cwd=tmp_path, env=env, input=json.dumps(event).encode(), capture_output=True, timeout=30
        )

    succeeded = run({"do": "chunks", "parts": ["one ", "two"]})
    assert (succeeded.returncode, succeeded.stdout) == (0, b"one two\n"), succeeded.stderr

    failed = run({"do": "fails_midway", "message": "gave up"})
    assert (failed.returncode, failed.stdout) == (1, b"partial output\n")
    prefix = b"\nfastric: the response stream failed part-way: "
    document = json.loads(failed.stderr.split(prefix, 1)[1].split(b"\n", 1)[0])
    assert (document["errorType"], document["errorMessage"]) == ("ValueError", "gave up")
