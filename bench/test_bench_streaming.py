"""Time to first byte: how soon the first bytes of a slowly produced response reach the Runtime API.

The handler produces a response in 16 pieces of 1 KB, 1 ms apart, as a model producing tokens
would. Streamed, fastric sends each piece as it comes, so the first byte leaves after the first
piece; buffered (fastric or awslambdaric returning the joined pieces), nothing leaves before the
last. Each timed call is exactly that wait: from the event going out to the first byte of the
response body arriving; the rest of the response is read, and the runtime's next `GET` awaited,
before the next call, untimed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from driver import ACK, HEAD_END, RuntimeDriver

PIECES = 16
PIECE = b"t" * 1023 + b"\n"
EXPECTED = PIECE * PIECES
ROUNDS = 30

# The handlers, written to a folder of their own: a generator of pieces, and the same pieces joined.
HANDLER_SOURCE = f"""
import time

PIECES = {PIECES}
PIECE = {PIECE.decode()!r}


def pieces():
    for index in range(PIECES):
        if index:
            time.sleep(0.001)
        yield PIECE


def streamed(event, context):
    return pieces()


def buffered(event, context):
    return "".join(pieces())
"""

# (runtime, handler): the streamed response, and buffered ones for comparison.
CASES = {
    "fastric-streamed": ("fastric", "bench_stream.streamed"),
    "fastric-buffered": ("fastric", "bench_stream.buffered"),
    "awslambdaric-buffered": ("awslambdaric", "bench_stream.buffered"),
}


class StreamingDriver(RuntimeDriver):
    """A `RuntimeDriver` that reads responses incrementally, chunked ones included."""

    def __init__(self, implementation: str, handler: str, env: Optional[dict[str, str]] = None) -> None:
        super().__init__(implementation, handler, env)
        self._body_start = 0
        self._chunked = False
        self._length = 0

    def first_byte(self) -> None:
        """Sends one event and returns once the first byte of the response body has arrived."""
        self._sequence += 1
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Lambda-Runtime-Aws-Request-Id: ttfb-{self._sequence}\r\n"
            f"Lambda-Runtime-Deadline-Ms: {int(time.time() * 1000) + 300_000}\r\n"
            "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        ).encode()
        self._require_connection().sendall(head)
        while (end := self._buffer.find(HEAD_END)) < 0:
            self._receive()
        head_bytes = bytes(self._buffer[:end]).lower()
        if b"/response " not in head_bytes.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"the runtime posted {head_bytes[:200]!r}")
        self._chunked = b"transfer-encoding: chunked" in head_bytes
        self._length = _header_int(head_bytes, b"content-length")
        self._body_start = end + len(HEAD_END)
        # A chunked body's first byte is the first byte of data after the first size line.
        while not self._has_first_byte():
            self._receive()

    def rest(self) -> bytes:
        """Reads the rest of the response, answers it and waits for the runtime's next `GET`."""
        body = self._read_chunked() if self._chunked else self._read_length()
        self._require_connection().sendall(ACK)
        self.wait_for_next()
        return body

    def _has_first_byte(self) -> bool:
        available = len(self._buffer) - self._body_start
        if not self._chunked:
            return available > 0 or self._length == 0
        line_end = self._buffer.find(b"\r\n", self._body_start)
        return line_end >= 0 and len(self._buffer) > line_end + 2

    def _read_length(self) -> bytes:
        while len(self._buffer) < self._body_start + self._length:
            self._receive()
        body = bytes(self._buffer[self._body_start : self._body_start + self._length])
        del self._buffer[: self._body_start + self._length]
        return body

    def _read_chunked(self) -> bytes:
        body = bytearray()
        position = self._body_start
        while True:
            while (line_end := self._buffer.find(b"\r\n", position)) < 0:
                self._receive()
            size = int(bytes(self._buffer[position:line_end]).split(b";")[0], 16)
            position = line_end + 2
            if size == 0:
                # No trailers on a successful stream: the empty line ends it.
                while len(self._buffer) < position + 2:
                    self._receive()
                del self._buffer[: position + 2]
                return bytes(body)
            while len(self._buffer) < position + size + 2:
                self._receive()
            body += self._buffer[position : position + size]
            position += size + 2


def _header_int(head: bytes, name: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip() == name:
            return int(value.strip())
    return 0


@pytest.fixture(scope="module")
def handler_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench_stream")
    (folder / "bench_stream.py").write_text(HANDLER_SOURCE)
    return folder


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, handler_dir: Path) -> Iterator[tuple[str, StreamingDriver]]:
    implementation, handler = CASES[request.param]
    driver = StreamingDriver(implementation, handler, env={"PYTHONPATH": str(handler_dir)})
    yield request.param, driver
    driver.close()


def test_time_to_first_byte(benchmark, case: tuple[str, StreamingDriver]) -> None:
    name, driver = case
    bodies: list[bytes] = []
    pending = [False]

    def finish_previous() -> None:
        # Untimed: the rest of the previous response, its answer and the runtime's next `GET`.
        if pending[0]:
            bodies.append(driver.rest())
        pending[0] = True

    benchmark.group = "time to first byte, 16 pieces 1 ms apart"
    benchmark.pedantic(driver.first_byte, setup=finish_previous, rounds=ROUNDS, warmup_rounds=2)
    bodies.append(driver.rest())

    expected = EXPECTED if name == "fastric-streamed" else b'"' + EXPECTED.replace(b"\n", b"\\n") + b'"'
    correct = bool(bodies) and all(body == expected for body in bodies)
    benchmark.extra_info.update(implementation=name, correct=correct, response_bytes=len(expected))
    assert correct, bodies[-1][:200]
