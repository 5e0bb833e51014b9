"""Handlers whose responses are streamed: generators, async generators and `fastric.streaming` helpers.

`handler` does what the event's `do` says, so that one runtime process can go through many kinds of
stream in a row; the other functions are the same streams under a name of their own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

# Without fastric installed (under awslambdaric) only the handlers that do not stream are usable.
try:
    from fastric import streaming
except ImportError:  # pragma: no cover - the stock runtime cannot stream anyway
    streaming = None  # type: ignore[assignment]

CHUNK_BYTES = 64 * 1024
# How long a gated stream waits for its gate before it gives up, so that a broken test cannot hang it.
GATE_TIMEOUT_S = 20.0


def block(index: int) -> bytes:
    """The `index`-th chunk of a large stream: 64 KB whose content depends on the index."""
    return index.to_bytes(4, "big") * (CHUNK_BYTES // 4)


def explode(message: str) -> None:
    raise ValueError(message)


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} never opened")
        time.sleep(0.005)


def _gated(event: dict[str, Any]) -> Iterator[bytes]:
    # The second chunk is produced only once the test has opened the gate, which it does only after
    # seeing the first chunk arrive: the first chunk must leave before the handler is done.
    yield b"first chunk\n"
    _wait_for(event["gate"])
    yield b"second chunk\n"


def _resident_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _large(event: dict[str, Any]) -> Iterator[bytes]:
    # The process's memory before the stream, to measure what streaming it costs.
    if "start" in event:
        with open(event["start"], "w") as start:
            start.write(str(_resident_kib()))
    for index in range(event["chunks"]):
        yield block(index)
    # When the last chunk was produced, on the clock other processes read too.
    if "done" in event:
        with open(event["done"], "w") as done:
            done.write(repr(time.monotonic()))


def _fails_midway(event: dict[str, Any]) -> Iterator[bytes]:
    yield b"partial "
    yield b"output"
    explode(event.get("message", "broke midway"))


def _fails_at_start(event: dict[str, Any]) -> Iterator[bytes]:
    explode(event.get("message", "broke at start"))
    yield b"never sent"


def _exits_midway() -> Iterator[bytes]:
    yield b"before the exit"
    os._exit(3)


def _bad_chunk(event: dict[str, Any]) -> Iterator[Any]:
    yield b"fine"
    yield 42


async def _async_chunks(event: dict[str, Any]) -> AsyncIterator[bytes]:
    for index in range(event.get("count", 3)):
        await asyncio.sleep(0)
        yield f"async {index};".encode()


async def _async_fails(event: dict[str, Any]) -> AsyncIterator[bytes]:
    await asyncio.sleep(0)
    yield b"async partial"
    await asyncio.sleep(0)
    explode(event.get("message", "async broke midway"))


def _mixed() -> Iterator[Any]:
    yield b"bytes,"
    yield bytearray(b"bytearray,")
    yield memoryview(b"..memoryview,..")[2:-2]
    yield ""
    yield b""
    yield "text \u00e9\u2028\U0001f600"


def _generators(event: dict[str, Any], context: Any) -> Any:
    do = event["do"]
    if do == "chunks":
        return (part.encode() for part in event["parts"])
    if do == "text":
        return iter_text(event["parts"])
    if do == "mixed":
        return _mixed()
    if do == "empty":
        return iter_text([])
    if do == "gated":
        return _gated(event)
    if do == "large":
        return _large(event)
    if do == "fails_midway":
        return _fails_midway(event)
    if do == "fails_at_start":
        return _fails_at_start(event)
    if do == "bad_chunk":
        return _bad_chunk(event)
    if do == "exits_midway":
        return _exits_midway()
    if do == "async_chunks":
        return _async_chunks(event)
    if do == "async_fails":
        return _async_fails(event)
    return None


def handler(event: dict[str, Any], context: Any) -> Any:
    """Streams, or answers, as `event["do"]` says."""
    do = event["do"]
    if do == "plain_error":
        # The same exception as the streamed failures, raised before any stream exists.
        explode(event.get("message", "broke midway"))
    if do == "request_id":
        return iter_text([context.aws_request_id])
    if do == "http":
        return streaming.http_stream(
            iter_text(event["parts"]),
            status_code=event.get("status", 200),
            headers=event.get("headers"),
            cookies=event.get("cookies"),
            multi_value_headers=event.get("multi_value_headers"),
        )
    if do == "http_async":
        return streaming.http_stream(_async_chunks(event), status_code=202, headers={"X-Kind": "async"})
    if do == "http_fails":
        return streaming.http_stream(_fails_midway(event), status_code=200)
    if do == "stream":
        return streaming.stream(list(event["parts"]), content_type=event["content_type"])
    if do == "echo":
        return event
    result = _generators(event, context)
    if result is None:
        raise KeyError(f"unknown do: {do}")
    return result


def iter_text(parts: list[str]) -> Iterator[str]:
    yield from parts


async def async_handler(event: dict[str, Any], context: Any) -> Any:
    """A coroutine handler whose result, once awaited, is a stream."""
    await asyncio.sleep(0)
    return handler(event, context)


def async_generator_handler(event: dict[str, Any], context: Any) -> AsyncIterator[bytes]:
    """An async generator function used directly as the handler."""
    return _async_chunks(event)


def not_streamed(event: dict[str, Any], context: Any) -> Any:
    """Results that are iterable but not generators: they are answered as they always were."""
    kind = event["kind"]
    if kind == "list":
        return ["a", "b", 1]
    if kind == "tuple":
        return ("a", 2)
    if kind == "str":
        return "not a stream"
    if kind == "bytes":
        return b"raw bytes"
    if kind == "map":
        return map(str, [1, 2])
    if kind == "dict":
        return {"chunks": ["x"], "n": 1}
    raise KeyError(kind)
