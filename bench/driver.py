"""A Runtime API driven step by step from the benchmark itself, one invocation per call.

What an invocation costs the runtime is the time it holds the ball: from the moment the `next`
reply starts going out to the moment the posted result has fully arrived, plus the gap from the
moment the acknowledgement starts going out to the arrival of the runtime's next `GET`. The
server's own work between those moments (building replies, parsing requests) is not counted;
`runtime_clock` is a clock that advances only by those spans."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

HANDLERS = Path(__file__).resolve().parent / "handlers"
HEAD_END = b"\r\n\r\n"
_ACK_BODY = b'{"status":"OK"}'
ACK = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(_ACK_BODY),
    _ACK_BODY,
)


# How the layer's wrapper starts fastric: through `-c`, which spares the interpreter `runpy`.
_LAYER_LAUNCH = "import sys; from fastric.__main__ import main; sys.exit(main())"


def runtime_command(implementation: str) -> list[str]:
    """How each runtime under test is started; `floor` is a client that only speaks HTTP, `bare` an
    interpreter that sends one request and nothing more."""
    if implementation == "fastric-layer":
        return [sys.executable, "-c", _LAYER_LAUNCH]
    if implementation == "floor":
        return [sys.executable, str(HANDLERS / "floor_client.py")]
    if implementation == "bare":
        return [sys.executable, str(HANDLERS / "bare_get.py")]
    return [sys.executable, "-m", implementation]


class Request:
    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        self.body = body

    @property
    def request_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode()


class RuntimeDriver:
    """Starts a runtime against a listening socket and serves it one invocation per call."""

    def __init__(self, implementation: str, handler: str, env: Optional[dict[str, str]] = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        host, port = self._listener.getsockname()[:2]
        environment = {
            **os.environ,
            "AWS_LAMBDA_RUNTIME_API": f"{host}:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            **(env or {}),
        }
        environment.pop("AWS_EXECUTION_ENV", None)
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [*runtime_command(implementation), handler],
            cwd=HANDLERS,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._connection: Optional[socket.socket] = None
        self._buffer = bytearray()
        self._sequence = 0
        # perf_counter when the last bytes came in, and the runtime's share of the time so far.
        self._received_at = 0.0
        self._runtime_seconds = 0.0
        self.first_get = self.wait_for_next()

    def wait_for_next(self) -> float:
        """Waits for the runtime's `GET next` and returns when it arrived (perf_counter)."""
        request = self._read_request()
        if not request.request_line.startswith("GET ") or "/invocation/next" not in request.request_line:
            raise RuntimeError(f"expected GET next, got {request.request_line!r}")
        return self._received_at

    def runtime_clock(self) -> float:
        """Seconds the runtime has held the ball since the driver started: a benchmark timer."""
        return self._runtime_seconds

    def invoke(self, event: bytes) -> bytes:
        """One invocation: the event goes out, the result comes back, the next `GET` arrives."""
        self._sequence += 1
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Lambda-Runtime-Aws-Request-Id: bench-{self._sequence}\r\n"
            f"Lambda-Runtime-Deadline-Ms: {int(time.time() * 1000) + 300_000}\r\n"
            "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n"
            "Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(event)}\r\n\r\n"
        ).encode()
        connection = self._require_connection()
        reply_sent = time.perf_counter()
        connection.sendall(head + event if len(event) < 65536 else head)
        if len(event) >= 65536:
            connection.sendall(event)
        result = self._read_request()
        self._runtime_seconds += self._received_at - reply_sent
        if "/response" not in result.request_line:
            raise RuntimeError(f"the runtime posted {result.request_line!r}: {result.body[:500]!r}")
        ack_sent = time.perf_counter()
        connection.sendall(ACK)
        self._runtime_seconds += self.wait_for_next() - ack_sent
        return result.body

    def first_response(self, event: bytes) -> float:
        """Sends one event and returns when its result had fully arrived (perf_counter)."""
        self._sequence += 1
        head = (
            f"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: cold-{self._sequence}\r\n"
            f"Lambda-Runtime-Deadline-Ms: {int(time.time() * 1000) + 300_000}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(event)}\r\n\r\n"
        ).encode()
        self._require_connection().sendall(head + event)
        self._read_request()
        arrived = self._received_at
        self._require_connection().sendall(ACK)
        return arrived

    def rss_kib(self) -> int:
        """The runtime process's resident set size."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        if self._connection is not None:
            self._connection.close()
        self._listener.close()

    def _require_connection(self) -> socket.socket:
        if self._connection is None:
            raise RuntimeError("the runtime is not connected")
        return self._connection

    def _read_request(self) -> Request:
        while True:
            end = self._buffer.find(HEAD_END)
            if end >= 0:
                head = bytes(self._buffer[:end])
                length = _content_length(head)
                total = end + len(HEAD_END) + length
                while len(self._buffer) < total:
                    self._receive()
                body = bytes(self._buffer[end + len(HEAD_END) : total])
                del self._buffer[:total]
                return Request(head, body)
            self._receive()

    def _receive(self) -> None:
        if self._connection is None:
            self._listener.settimeout(30)
            try:
                self._connection, _ = self._listener.accept()
            except TimeoutError:
                raise RuntimeError(self._failure("the runtime did not connect")) from None
            self._connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connection.settimeout(30)
        chunk = self._connection.recv(1 << 20)
        self._received_at = time.perf_counter()
        if not chunk:
            self._connection.close()
            self._connection = None
            raise RuntimeError(self._failure("the runtime closed its connection"))
        self._buffer += chunk

    def _failure(self, what: str) -> str:
        self.process.kill()
        _, stderr = self.process.communicate()
        return f"{what}: {stderr.decode(errors='replace')[-2000:]}"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0
