"""Response streaming: what a streaming handler posts to the Runtime API, chunk by chunk, on real sockets."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import BASE_ENV, HANDLERS_DIR, REFERENCE, RunResult, RuntimeRunner
from runtime_api import Chunk, Invocation, Reply, Request, RuntimeApi

STREAM_HEADERS = {
    "Content-Type": "application/octet-stream",
    "Lambda-Runtime-Function-Response-Mode": "streaming",
    "Transfer-Encoding": "chunked",
    "Trailer": "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body",
}
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
NUL_DELIMITER = b"\x00" * 8
WAIT_S = 20.0
# The large stream of `streaming_app`: 64 KB chunks whose content depends on their index.
CHUNK_BYTES = 64 * 1024


def block(index: int) -> bytes:
    return index.to_bytes(4, "big") * (CHUNK_BYTES // 4)


def event(request_id: str, invocation_id: str | None = None, **fields: Any) -> Invocation:
    return Invocation(body=json.dumps(fields).encode(), request_id=request_id, invocation_id=invocation_id)


# One runtime process goes through all of these in a row, so every stream also shows that the loop
# and its connection carry on after it.
SCRIPT = (
    event("chunks", "invocation-7", do="chunks", parts=["a", "bb", "ccc"]),
    event("mixed", do="mixed"),
    event("empty", do="empty"),
    event("text", do="text", parts=["caf\u00e9 ", "\u2603", ""]),
    event("helper", do="stream", parts=["plain ", "text"], content_type="text/plain; charset=utf-8"),
    event(
        "http",
        do="http",
        parts=["data: 1\n\n", "data: 2\n\n"],
        status=201,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        cookies=["session=abc; Secure", "theme=dark"],
    ),
    event("http-minimal", do="http", parts=["body"]),
    event("http-multi", do="http", parts=[], multi_value_headers={"X-Many": ["1", "2"]}),
    event("http-async", do="http_async", count=2),
    event("plain-error", do="plain_error", message="broke for plain-error"),
    event("midway", do="fails_midway", message="broke for midway"),
    event("async-midway", do="async_fails", message="broke for async-midway"),
    event("http-midway", do="http_fails", message="broke for http-midway"),
    event("bad-chunk", do="bad_chunk"),
    event("at-start", do="fails_at_start", message="broke for at-start"),
    event("async-chunks", do="async_chunks", count=3),
    event("request-id", do="request_id"),
    event("echo", do="echo", n=1),
)


@pytest.fixture(scope="module")
def script_run(run_runtime: RuntimeRunner) -> RunResult:
    result = run_runtime("fastric", "streaming_app.handler", SCRIPT)
    assert not result.timed_out, result.describe()
    return result


def streamed(result: RunResult, request_id: str) -> Request:
    post = result.post_for(request_id)
    assert post.kind == "response", result.describe()
    assert post.header("Lambda-Runtime-Function-Response-Mode") == "streaming", result.describe()
    return post


def chunk_data(post: Request) -> list[bytes]:
    return [chunk.data for chunk in post.chunks]


def trailer_document(post: Request) -> dict[str, Any]:
    encoded = post.trailer("Lambda-Runtime-Function-Error-Body")
    assert encoded is not None, post.trailers
    return json.loads(base64.b64decode(encoded, validate=True))


def test_generator_is_posted_as_a_chunked_stream(script_run: RunResult) -> None:
    post = streamed(script_run, "chunks")
    assert (post.method, post.path) == ("POST", "/2018-06-01/runtime/invocation/chunks/response")
    assert {name: post.header(name) for name in STREAM_HEADERS} == STREAM_HEADERS
    assert post.header("Content-Length") is None
    assert post.header("Lambda-Runtime-Invocation-Id") == "invocation-7"
    # Each chunk the handler yields is one chunk on the wire.
    assert chunk_data(post) == [b"a", b"bb", b"ccc"]
    assert post.body == b"abbccc"
    assert post.trailers == []


def test_chunks_may_be_bytes_like_or_str_sent_as_utf8(script_run: RunResult) -> None:
    # Empty chunks are left out: on the wire an empty chunk would end the body.
    assert chunk_data(streamed(script_run, "mixed")) == [
        b"bytes,",
        b"bytearray,",
        b"memoryview,",
        "text \u00e9\u2028\U0001f600".encode(),
    ]
    assert streamed(script_run, "text").body == "caf\u00e9 \u2603".encode()
    assert streamed(script_run, "request-id").body == b"request-id"


def test_empty_generator_posts_an_empty_stream(script_run: RunResult) -> None:
    post = streamed(script_run, "empty")
    assert (post.body, post.chunks, post.trailers) == (b"", [], [])
    assert post.header("Lambda-Runtime-Invocation-Id") is None


def test_stream_helper_sets_the_content_type(script_run: RunResult) -> None:
    post = streamed(script_run, "helper")
    assert post.header("Content-Type") == "text/plain; charset=utf-8"
    assert chunk_data(post) == [b"plain ", b"text"]


def test_async_generator_is_driven_on_the_event_loop(script_run: RunResult) -> None:
    assert chunk_data(streamed(script_run, "async-chunks")) == [b"async 0;", b"async 1;", b"async 2;"]


def test_http_stream_sends_the_json_prelude_and_eight_nul_bytes_first(script_run: RunResult) -> None:
    post = streamed(script_run, "http")
    assert post.header("Content-Type") == HTTP_INTEGRATION
    prelude = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        "cookies": ["session=abc; Secure", "theme=dark"],
    }
    # The prelude and its delimiter travel together, ahead of the body, which keeps its own chunks.
    assert chunk_data(post) == [
        json.dumps(prelude, separators=(",", ":")).encode() + NUL_DELIMITER,
        b"data: 1\n\n",
        b"data: 2\n\n",
    ]
    assert post.trailers == []


def test_http_stream_prelude_holds_only_what_was_given(script_run: RunResult) -> None:
    assert streamed(script_run, "http-minimal").body == b'{"statusCode":200}' + NUL_DELIMITER + b"body"
    # A prelude goes out even when the body is empty.
    multi = streamed(script_run, "http-multi")
    assert multi.body == b'{"statusCode":200,"multiValueHeaders":{"X-Many":["1","2"]}}' + NUL_DELIMITER
    asynchronous = streamed(script_run, "http-async")
    assert asynchronous.body == b'{"statusCode":202,"headers":{"X-Kind":"async"}}' + NUL_DELIMITER + b"async 0;async 1;"


@pytest.mark.parametrize(
    ("request_id", "partial", "first_frame"),
    [
        ("midway", b"partial output", "_fails_midway"),
        ("async-midway", b"async partial", "_async_fails"),
        ("http-midway", b'{"statusCode":200}' + NUL_DELIMITER + b"partial output", "_fails_midway"),
    ],
)
def test_exception_midway_is_reported_in_the_trailers(
    script_run: RunResult, request_id: str, partial: bytes, first_frame: str
) -> None:
    post = streamed(script_run, request_id)
    assert post.body == partial
    assert [name for name, _ in post.trailers] == [
        "Lambda-Runtime-Function-Error-Type",
        "Lambda-Runtime-Function-Error-Body",
    ]
    assert post.trailer("Lambda-Runtime-Function-Error-Type") == "ValueError"

    # The error document is the one fastric posts to /error for the same exception raised before any
    # stream, but for the request id and the frame the exception passed through first.
    plain = script_run.post_for("plain-error")
    assert plain.kind == "error"
    document = trailer_document(post)
    assert list(document) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert document["errorMessage"] == f"broke for {request_id}"
    assert f", in {first_frame}\n" in document["stackTrace"][0]
    expected = {**plain.json(), "errorMessage": f"broke for {request_id}", "requestId": request_id}
    expected["stackTrace"] = [document["stackTrace"][0], *plain.json()["stackTrace"][1:]]
    assert base64.b64decode(post.trailer("Lambda-Runtime-Function-Error-Body") or "") == json.dumps(expected).encode()
    # The runtime logs it as it logs any invocation error.
    assert f"[ERROR] ValueError: broke for {request_id}\r".encode() in script_run.stdout


def test_chunk_that_is_not_bytes_or_str_is_a_type_error_in_the_trailers(script_run: RunResult) -> None:
    post = streamed(script_run, "bad-chunk")
    assert post.body == b"fine"
    assert post.trailer("Lambda-Runtime-Function-Error-Type") == "TypeError"
    document = trailer_document(post)
    assert (document["errorType"], document["errorMessage"], document["requestId"]) == (
        "TypeError",
        "a streamed chunk must be bytes, bytearray, memoryview or str, not int",
        "bad-chunk",
    )


def test_exception_before_the_first_chunk_is_an_ordinary_error_post(script_run: RunResult) -> None:
    post = script_run.post_for("at-start")
    assert (post.kind, post.path) == ("error", "/2018-06-01/runtime/invocation/at-start/error")
    assert post.header("Lambda-Runtime-Function-Response-Mode") is None
    assert post.header("Lambda-Runtime-Function-Error-Type") == "ValueError"
    document = post.json()
    assert (document["errorType"], document["errorMessage"]) == ("ValueError", "broke for at-start")
    assert ", in _fails_at_start\n" in document["stackTrace"][0]


def test_loop_and_connection_go_on_after_streams(script_run: RunResult) -> None:
    assert [post.request_id for post in script_run.posts] == [invocation.request_id for invocation in SCRIPT]
    echo = script_run.post_for("echo")
    assert (echo.header("Content-Type"), echo.header("Content-Length"), echo.json()) == (
        "application/json",
        str(len(echo.body)),
        {"do": "echo", "n": 1},
    )
    assert echo.header("Lambda-Runtime-Function-Response-Mode") is None
    assert {request.connection for request in script_run.requests} == {1}
    assert script_run.ended_by_run


@pytest.mark.parametrize("handler", ["streaming_app.async_handler", "streaming_app.async_generator_handler"])
def test_coroutine_and_async_generator_handlers_stream(run_runtime: RuntimeRunner, handler: str) -> None:
    script = [event("first", do="chunks", parts=["x", "y"], count=2), event("second", do="echo", count=1)]
    result = run_runtime("fastric", handler, script)
    first = streamed(result, "first")
    if handler == "streaming_app.async_handler":
        assert chunk_data(first) == [b"x", b"y"]
        assert result.post_for("second").json() == {"do": "echo", "count": 1}
    else:
        assert chunk_data(first) == [b"async 0;", b"async 1;"]
        assert chunk_data(streamed(result, "second")) == [b"async 0;"]


def test_stream_refused_with_413_is_logged_and_the_loop_goes_on(run_runtime: RuntimeRunner) -> None:
    script = [event("refused", do="chunks", parts=["a"]), event("after", do="echo")]
    refusal = Reply(413, b'{"errorMessage":"too large","errorType":"RequestEntityTooLarge"}')
    result = run_runtime("fastric", "streaming_app.handler", script, overrides={("response", 0): refusal})
    assert streamed(result, "refused").body == b"a"
    assert result.post_for("after").json() == {"do": "echo"}
    assert b"LAMBDA_RUNTIME streaming the invocation response failed: the Runtime API answered 413" in result.stdout


NOT_STREAMED = ("list", "tuple", "str", "bytes", "map", "dict")


@pytest.mark.parametrize("kind", NOT_STREAMED)
def test_results_that_are_not_generators_are_posted_as_before(run_runtime: RuntimeRunner, impl: str, kind: str) -> None:
    script = tuple(event(f"plain-{name}", kind=name) for name in NOT_STREAMED)
    result = run_runtime(impl, "streaming_app.not_streamed", script)
    reference = run_runtime(REFERENCE, "streaming_app.not_streamed", script)
    post, expected = result.post_for(f"plain-{kind}"), reference.post_for(f"plain-{kind}")
    assert (post.kind, post.path, post.body) == (expected.kind, expected.path, expected.body)
    assert post.header("Content-Type") == expected.header("Content-Type")
    assert post.header("Content-Length") == str(len(post.body))
    assert post.header("Transfer-Encoding") is None
    assert post.header("Lambda-Runtime-Function-Response-Mode") is None


# ---- Live streams: watched while the runtime is still producing them ----


@contextmanager
def runtime_process(api: RuntimeApi, handler: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m fastric HANDLER` against `api`, ended (if still running) on leaving."""
    env = {**BASE_ENV, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_LAMBDA_RUNTIME_API": api.address}
    with (tmp_path / "runtime.out").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "fastric", handler],
            cwd=HANDLERS_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def runtime_output(tmp_path: Path) -> str:
    return (tmp_path / "runtime.out").read_text(errors="replace")


def test_chunks_reach_the_runtime_api_before_the_handler_finishes(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with (
        RuntimeApi([event("gated", do="gated", gate=str(gate))]) as api,
        runtime_process(api, "streaming_app.handler", tmp_path),
    ):
        assert api.wait_for_chunks(1, WAIT_S), runtime_output(tmp_path)
        # The first chunk is here while the handler waits for the gate, which only this test opens.
        [open_stream] = api.streams()
        assert (open_stream.request_id, open_stream.ended_at) == ("gated", None)
        assert [chunk.data for chunk in open_stream.chunks] == [b"first chunk\n"]
        assert api.posts() == []
        opened_at = time.monotonic()
        gate.touch()
        assert api.wait_for_posts(1, WAIT_S), runtime_output(tmp_path)

    [post] = api.posts()
    first, second = post.chunks
    assert (first.data, second.data) == (b"first chunk\n", b"second chunk\n")
    assert first.at < opened_at < second.at
    assert post.trailers == []


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (`VmRSS`), or its peak so far (`VmHWM`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_fifty_megabytes_stream_through_a_slow_reader_in_bounded_memory(tmp_path: Path) -> None:
    chunks = 50 * 1024 * 1024 // CHUNK_BYTES
    start, done = tmp_path / "start", tmp_path / "done"
    samples: list[int] = []
    pid: list[int] = []
    digest = hashlib.sha256()

    def read_slowly(request: Request, chunk: Chunk) -> None:
        # A reader a good deal slower than the handler, so that the runtime has to wait for it.
        digest.update(chunk.data)
        samples.append(memory_kib(pid[0]))
        time.sleep(0.001)

    # A small receive window keeps what the kernel holds in flight small and known.
    script = [event("large", do="large", chunks=chunks, start=str(start), done=str(done)), event("after", do="echo")]
    with (
        RuntimeApi(script, chunk_hook=read_slowly, receive_buffer=256 * 1024) as api,
        runtime_process(api, "streaming_app.handler", tmp_path) as process,
    ):
        pid.append(process.pid)
        assert api.wait_for_posts(2, 60), runtime_output(tmp_path)
        peak = memory_kib(process.pid, "VmHWM")

    post = api.posts()[0]
    assert len(post.chunks) == chunks
    assert sum(len(chunk.data) for chunk in post.chunks) == 50 * 1024 * 1024
    expected = hashlib.sha256()
    for index in range(chunks):
        expected.update(block(index))
    assert digest.hexdigest() == expected.hexdigest()
    assert hashlib.sha256(post.body).hexdigest() == expected.hexdigest()
    assert api.posts()[1].json() == {"do": "echo"}

    # The runtime's memory stayed flat while 50 MB went through it: measured against what it held
    # when the generator started, by sampling during the stream and by the kernel's high-water mark.
    growth_mib = (max(*samples, peak) - int(start.read_text())) / 1024
    assert growth_mib < 30, f"resident memory grew by {growth_mib:.1f} MiB"
    # Back-pressure reached the handler: by the time it produced its last chunk, all but what the
    # socket buffers hold (a few MB) had been read.
    finished_at = float(done.read_text())
    read_by_then = sum(len(chunk.data) for chunk in post.chunks if chunk.at <= finished_at)
    assert read_by_then > 40 * 1024 * 1024, f"only {read_by_then} bytes read when the handler finished"
