"""A recording Lambda Runtime API served on loopback.

The server hands out scripted invocations on `GET /2018-06-01/runtime/invocation/next` and records
every request it receives, byte for byte, together with the TCP connection it arrived on. It speaks
HTTP/1.1 with keep-alive over raw sockets, one thread per connection, which is fast enough for a
runtime to go through thousands of invocations in a few seconds.

A chunked body (a streamed response) is recorded chunk by chunk as it arrives, each chunk with its
arrival time, so a test can watch a stream while the runtime is still producing it, and make the
server a slow reader of it.

Once the script is exhausted, `next` blocks until the server stops, as Lambda does when it freezes
an idle execution environment.
"""

from __future__ import annotations

import contextlib
import http
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

API_PREFIX = "/2018-06-01/runtime"
NEXT_PATH = f"{API_PREFIX}/invocation/next"
INIT_ERROR_PATH = f"{API_PREFIX}/init/error"
DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
DEFAULT_TIMEOUT_MS = 300_000
ACCEPTED_BODY = b'{"status":"OK"}'

# What a runtime posts as the outcome of an invocation or of its init phase.
POST_KINDS = ("response", "error", "init_error")

# Bounds on what the server will read, so a broken client cannot make a test hang on memory.
MAX_LINE = 65_536
MAX_HEADERS = 200


@dataclass(frozen=True)
class Reply:
    """A scripted answer replacing the default one for a single call.

    Attributes:
        status: HTTP status code to answer with.
        body: response body.
        headers: extra response headers.
        drop: close the connection without answering at all.
    """

    status: int = 202
    body: bytes = ACCEPTED_BODY
    # Lambda labels its error answers too; awslambdaric crashes on an answer without Content-Type.
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    drop: bool = False


@dataclass(frozen=True)
class Invocation:
    """One scripted event, served by `next`.

    Header fields set to None are not sent. `request_id` None means `req-<n>` where n counts served
    invocations from 1; `deadline_ms` None means `DEFAULT_TIMEOUT_MS` after the moment it is served.

    Attributes:
        body: event bytes.
        request_id: `Lambda-Runtime-Aws-Request-Id`.
        deadline_ms: `Lambda-Runtime-Deadline-Ms`, epoch milliseconds.
        function_arn: `Lambda-Runtime-Invoked-Function-Arn`.
        trace_id: `Lambda-Runtime-Trace-Id`.
        client_context: `Lambda-Runtime-Client-Context`, raw JSON text.
        cognito_identity: `Lambda-Runtime-Cognito-Identity`, raw JSON text.
        tenant_id: `Lambda-Runtime-Aws-Tenant-Id`.
        invocation_id: `Lambda-Runtime-Invocation-Id`.
        content_type: `Content-Type` of the event.
        omit: names of headers to leave out, after everything else is built.
        headers: extra headers; one with the name of a built header replaces it.
    """

    body: bytes = b"{}"
    request_id: str | None = None
    deadline_ms: int | None = None
    function_arn: str | None = DEFAULT_ARN
    trace_id: str | None = None
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    invocation_id: str | None = None
    content_type: str | None = "application/json"
    omit: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def build_headers(self, serial: int, now_ms: int) -> list[tuple[str, str]]:
        """Headers of the `next` answer for this invocation, the `serial`-th one served."""
        deadline = self.deadline_ms if self.deadline_ms is not None else now_ms + DEFAULT_TIMEOUT_MS
        fields = [
            ("Lambda-Runtime-Aws-Request-Id", self.request_id if self.request_id is not None else f"req-{serial}"),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
            ("Lambda-Runtime-Client-Context", self.client_context),
            ("Lambda-Runtime-Cognito-Identity", self.cognito_identity),
            ("Lambda-Runtime-Aws-Tenant-Id", self.tenant_id),
            ("Lambda-Runtime-Invocation-Id", self.invocation_id),
            ("Content-Type", self.content_type),
        ]
        replaced = {name.lower() for name, _ in self.headers}
        omitted = {name.lower() for name in self.omit}
        built = [(name, value) for name, value in fields if value is not None and name.lower() not in replaced]
        return [(name, value) for name, value in built + list(self.headers) if name.lower() not in omitted]


@dataclass(frozen=True)
class Chunk:
    """One chunk of a chunked request body.

    Attributes:
        data: the chunk's bytes.
        at: `time.monotonic()` when the server had read it; the clock is system-wide on Linux, so
            it compares with readings taken in other processes.
    """

    data: bytes
    at: float


@dataclass
class Request:
    """One request received by the server.

    Attributes:
        method: HTTP method.
        path: request target as sent.
        version: HTTP version string of the request line.
        headers: header fields in arrival order, names as sent; values decoded as UTF-8 with
            surrogateescape, so any raw byte survives.
        body: body bytes, de-chunked when sent chunked.
        connection: serial number of the TCP connection it came on (1 for the first accepted).
        kind: `next`, `response`, `error`, `init_error` or `other`.
        request_id: request id taken from the path of `response` and `error` posts.
        served_headers: for `next`, the headers of the event served in answer (None if none was).
        served_at_ms: for `next`, epoch milliseconds just before the event was sent.
        trailers: trailer fields of a chunked body.
        chunks: the chunks of a chunked body, in arrival order; filled while the body arrives.
        ended_at: `time.monotonic()` when the whole request had been read.
    """

    method: str
    path: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int
    kind: str
    request_id: str | None = None
    served_headers: list[tuple[str, str]] | None = None
    served_at_ms: int | None = None
    trailers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    ended_at: float | None = None

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        values = self.header_all(name)
        return values[-1] if values else None

    def header_all(self, name: str) -> list[str]:
        """Every value of header `name` (case-insensitive), in arrival order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header_names(self) -> set[str]:
        """Lower-cased names of all headers present."""
        return {key.lower() for key, _ in self.headers}

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def trailer(self, name: str) -> str | None:
        """The last value of trailer `name` (case-insensitive), or None."""
        wanted = name.lower()
        values = [value for key, value in self.trailers if key.lower() == wanted]
        return values[-1] if values else None


def xray_cause(request: Request, working_directory: str) -> dict[str, Any] | None:
    """The X-Ray cause header of an error post, parsed and made comparable across runs.

    `working_directory` becomes `<cwd>` wherever it appears, and `paths`, whose order is that of a
    Python set, is sorted.
    """
    raw = request.header("Lambda-Runtime-Function-Xray-Error-Cause")
    if raw is None:
        return None
    cause = json.loads(raw.encode("utf-8", "surrogateescape"))
    text = json.dumps(cause).replace(json.dumps(working_directory)[1:-1], "<cwd>")
    cause = json.loads(text)
    cause["paths"] = sorted(cause.get("paths", []))
    return cause


def classify(path: str) -> tuple[str, str | None]:
    """Kind of a Runtime API path, and the request id it names, if any."""
    if path == NEXT_PATH:
        return "next", None
    if path == INIT_ERROR_PATH:
        return "init_error", None
    prefix = f"{API_PREFIX}/invocation/"
    if path.startswith(prefix):
        request_id, _, action = path[len(prefix) :].rpartition("/")
        if request_id and action in ("response", "error"):
            return action, request_id
    return "other", None


class _Closed(Exception):
    """The peer closed the connection, or sent something unparseable."""


class RuntimeApi:
    """A scripted, recording Runtime API on 127.0.0.1 and an ephemeral port.

    Use as a context manager, or call `start` and `stop`.
    """

    def __init__(
        self,
        invocations: Iterable[Invocation] = (),
        overrides: dict[tuple[str, int], Reply] | None = None,
        *,
        chunk_hook: Callable[[Request, Chunk], None] | None = None,
        receive_buffer: int | None = None,
    ):
        """Prepare the server; nothing listens before `start`.

        Args:
            invocations: events to serve in order.
            overrides: answers replacing the default for the n-th call (counted from 0) of a kind,
                e.g. `{("next", 0): Reply(500, b"...")}`. A replaced `next` does not consume an event.
            chunk_hook: called in the connection's thread after each chunk of a chunked body is
                recorded; the next chunk is not read before it returns, so a hook that sleeps or
                waits makes the server a slow reader.
            receive_buffer: `SO_RCVBUF` of accepted connections, in bytes; a small one keeps the
                data a slow reader leaves in flight small. None keeps the kernel's autotuning.
        """
        self._script = list(invocations)
        self._overrides = dict(overrides or {})
        self._chunk_hook = chunk_hook
        self._receive_buffer = receive_buffer
        self._streams: list[Request] = []
        self._calls: dict[str, int] = {}
        self._served = 0
        self._requests: list[Request] = []
        self._post_count = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._connections: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._acceptor: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._port = 0

    # ---- lifecycle ----

    def start(self) -> RuntimeApi:
        """Bind, listen and start accepting connections."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self._receive_buffer is not None:
            # Set before listen: accepted sockets inherit it, and the window is sized from it.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._receive_buffer)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        self._port = listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop serving: release blocked `next` calls, close every socket, join the threads."""
        self._stopping.set()
        if self._listener is not None:
            # shutdown wakes a thread blocked in accept(); close alone does not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
        with self._changed:
            connections = list(self._connections.values())
            threads = list(self._threads)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> RuntimeApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """`host:port`, the value for `AWS_LAMBDA_RUNTIME_API`."""
        return f"127.0.0.1:{self._port}"

    # ---- reading the record ----

    @property
    def requests(self) -> list[Request]:
        """A snapshot of every request received so far, in arrival order."""
        with self._changed:
            return list(self._requests)

    def posts(self) -> list[Request]:
        """Received `/response`, `/error` and `/init/error` posts, in arrival order."""
        return [request for request in self.requests if request.kind in POST_KINDS]

    def wait_until(self, predicate: Callable[[list[Request]], bool], timeout: float) -> bool:
        """Wait until `predicate(requests)` holds, or `timeout` seconds pass; return whether it held."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self._requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_for_posts(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` posts are recorded; return whether they were."""
        # A running count: recounting the record on every wake-up would cost quadratic time.
        return self.wait_until(lambda _: self._post_count >= count, timeout)

    def streams(self) -> list[Request]:
        """Requests with a chunked body, in the order they began, those still arriving included.

        A request still arriving has `ended_at` None and is not yet among `requests`; its `chunks`
        are those received so far (a snapshot).
        """
        with self._changed:
            return [replace(request, chunks=list(request.chunks)) for request in self._streams]

    def wait_for_chunks(self, count: int, timeout: float, *, stream: int = 0) -> bool:
        """Wait until the `stream`-th chunked body (from 0) has at least `count` chunks; return whether it had."""
        return self.wait_until(
            lambda _: len(self._streams) > stream and len(self._streams[stream].chunks) >= count, timeout
        )

    # ---- serving ----

    def _accept_loop(self) -> None:
        assert self._listener is not None
        serial = 0
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            serial += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve_connection, args=(conn, serial), daemon=True)
            with self._changed:
                # stop() sets the flag before taking this lock, so a late connection is never missed.
                if self._stopping.is_set():
                    conn.close()
                    return
                self._connections[serial] = conn
                self._threads.append(thread)
            thread.start()

    def _serve_connection(self, conn: socket.socket, serial: int) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stopping.is_set():
                request = _read_request(reader, conn, serial, self._stream_began, self._chunk_arrived)
                if request is None:
                    return
                if not self._answer(conn, request):
                    return
        except (_Closed, OSError):
            return
        finally:
            reader.close()
            conn.close()
            with self._changed:
                self._connections.pop(serial, None)

    def _stream_began(self, request: Request) -> None:
        with self._changed:
            self._streams.append(request)
            self._changed.notify_all()

    def _chunk_arrived(self, request: Request, chunk: Chunk) -> None:
        with self._changed:
            request.chunks.append(chunk)
            self._changed.notify_all()
        if self._chunk_hook is not None:
            self._chunk_hook(request, chunk)

    def _answer(self, conn: socket.socket, request: Request) -> bool:
        """Record and answer one request; return whether the connection stays open."""
        with self._changed:
            index = self._calls.get(request.kind, 0)
            self._calls[request.kind] = index + 1
            reply = self._overrides.get((request.kind, index))
            invocation = None
            if request.kind == "next" and reply is None and self._served < len(self._script):
                invocation = self._script[self._served]
                self._served += 1
                request.served_at_ms = int(time.time() * 1000)
                request.served_headers = invocation.build_headers(self._served, request.served_at_ms)
            self._requests.append(request)
            self._post_count += request.kind in POST_KINDS
            self._changed.notify_all()

        if reply is not None:
            if reply.drop:
                return False
            _send(conn, reply.status, list(reply.headers), reply.body)
        elif request.kind == "next":
            if invocation is None:
                # Script exhausted: hold the call as a frozen environment would, until stop.
                self._stopping.wait()
                return False
            assert request.served_headers is not None
            _send(conn, 200, request.served_headers, invocation.body)
        elif request.kind in POST_KINDS:
            _send(conn, 202, [("Content-Type", "application/json")], ACCEPTED_BODY)
        else:
            _send(conn, 404, [("Content-Type", "application/json")], b'{"errorMessage":"not found"}')
        return _keeps_alive(request)


def _read_line(reader: Any) -> bytes:
    line = reader.readline(MAX_LINE)
    if not line.endswith(b"\n"):
        raise _Closed
    return line


def _read_fields(reader: Any) -> list[tuple[str, str]]:
    fields = []
    while True:
        line = _read_line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        if len(fields) >= MAX_HEADERS:
            raise _Closed
        name, sep, value = line.decode("utf-8", "surrogateescape").partition(":")
        if not sep:
            raise _Closed
        fields.append((name.strip(), value.strip()))


def _read_exact(reader: Any, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise _Closed
    return data


def _read_request(
    reader: Any,
    conn: socket.socket,
    serial: int,
    on_stream: Callable[[Request], None] | None = None,
    on_chunk: Callable[[Request, Chunk], None] | None = None,
) -> Request | None:
    """Read one request from the connection; None when the peer closed it cleanly in between.

    `on_stream` is told when a chunked body begins and `on_chunk` of each of its chunks as it arrives.
    """
    line = reader.readline(MAX_LINE)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise _Closed
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise _Closed
    method, path, version = parts
    headers = _read_fields(reader)
    request = Request(method, path, version, headers, b"", serial, *classify(path))
    if (request.header("Expect") or "").lower() == "100-continue":
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    if (request.header("Transfer-Encoding") or "").lower() == "chunked":
        if on_stream is not None:
            on_stream(request)
        chunks = []
        while True:
            size = int(_read_line(reader).split(b";")[0], 16)
            if size == 0:
                break
            chunks.append(_read_exact(reader, size))
            _read_line(reader)
            if on_chunk is not None:
                on_chunk(request, Chunk(chunks[-1], time.monotonic()))
        request.trailers = _read_fields(reader)
        request.body = b"".join(chunks)
    else:
        length = request.header("Content-Length")
        request.body = _read_exact(reader, int(length)) if length else b""
    request.ended_at = time.monotonic()
    return request


def _keeps_alive(request: Request) -> bool:
    tokens = {token.strip().lower() for value in request.header_all("Connection") for token in value.split(",")}
    if request.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def _send(conn: socket.socket, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
    # One write per answer: split writes would meet Nagle and delayed ACKs on the client side.
    conn.sendall(head + body)
