"""The handlers the benchmarks run under each runtime."""

from typing import Any


def noop(event: Any, context: Any) -> None:
    return None


def echo(event: Any, context: Any) -> Any:
    return event
