"""Coroutine handlers, and synchronous handlers that run event loops of their own."""

from __future__ import annotations

import asyncio
import decimal
import functools
import logging
from typing import Any, Callable

_background: asyncio.Task[str] | None = None


async def loop_identity(event: Any, context: Any) -> dict[str, Any]:
    """Report the running loop, after giving it a turn."""
    await asyncio.sleep(0)
    return {"loop": id(asyncio.get_running_loop()), "request_id": context.aws_request_id}


async def _finish_later(started_by: str) -> str:
    await asyncio.sleep(0.01)
    return f"finished, started by {started_by}"


async def background(event: Any, context: Any) -> Any:
    """Start a task in one invocation and collect it in the next, which needs the loop to live on."""
    global _background
    if event.get("start"):
        _background = asyncio.get_running_loop().create_task(_finish_later(context.aws_request_id))
        return "started"
    assert _background is not None
    return await _background


async def raising(event: Any, context: Any) -> None:
    await asyncio.sleep(0)
    raise ValueError(f"async failure {event.get('n')}")


async def returns_special(event: Any, context: Any) -> Any:
    """Return values that go through the reference encoder, or bytes."""
    await asyncio.sleep(0)
    kind = event.get("kind")
    if kind == "bytes":
        return b"\x00raw"
    if kind == "set":
        return {1}
    return {"price": decimal.Decimal("19.99")}


async def logs(event: Any, context: Any) -> str:
    await asyncio.sleep(0)
    logging.getLogger("async.handler").warning("inside coroutine %s", event.get("n"))
    return "logged"


def _sync_wrapper(function: Callable[..., Any]) -> Callable[..., Any]:
    # Decorators such as tracing or logging middleware often wrap a coroutine function in a plain one.
    @functools.wraps(function)
    def wrapper(event: Any, context: Any) -> Any:
        return function(event, context)

    return wrapper


@_sync_wrapper
async def decorated(event: Any, context: Any) -> str:
    await asyncio.sleep(0)
    return "decorated coroutine awaited"


def runs_own_loop(event: Any, context: Any) -> dict[str, Any]:
    """A synchronous handler that runs a coroutine with asyncio.run, as many libraries do."""

    async def work() -> int:
        await asyncio.sleep(0)
        return event["n"] * 2

    return {"doubled": asyncio.run(work())}


def uses_new_loop(event: Any, context: Any) -> int:
    """A synchronous handler driving a loop it made itself."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.sleep(0, result=event["n"] + 1))
    finally:
        loop.close()
