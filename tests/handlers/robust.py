"""Handlers that push a runtime where the stock one breaks: huge, unencodable or odd results and errors."""

from __future__ import annotations

import sys
from typing import Any

import helper_module

# Lambda's limit on a synchronous response: 6 MiB plus 100 bytes.
RESPONSE_LIMIT = 6 * 1024 * 1024 + 100


class UnprintableError(Exception):
    """An exception whose message cannot be produced."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


class NotAStringError(Exception):
    """An exception whose __str__ breaks its contract."""

    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


def _json_string_of(size: int) -> str:
    # A string whose JSON encoding, quotes included, is `size` bytes long.
    return "x" * (size - 2)


CASES = {
    "at_limit": lambda: _json_string_of(RESPONSE_LIMIT),
    "over_limit": lambda: _json_string_of(RESPONSE_LIMIT + 1),
    "far_over_limit": lambda: {"items": ["y" * 1000] * 7000},
    "bytes_over_limit": lambda: b"z" * (RESPONSE_LIMIT + 1),
    "bytes_at_limit": lambda: b"z" * RESPONSE_LIMIT,
    "small": lambda: {"small": True},
    "surrogate": lambda: {"s": "lone \ud800 and caf\u00e9"},
    "surrogate_low": lambda: ["\udcff"],
    # Two lone surrogates in a row, which a JSON reader joins into one character.
    "surrogate_halves": lambda: "\ud83d\ude80",
}


def dispatch(event: Any, context: Any) -> Any:
    """Return or raise what `event["case"]` names; answer the event's type name when it names none."""
    case = event.get("case") if isinstance(event, dict) else None
    if case in CASES:
        return CASES[case]()
    if case == "raise_surrogate":
        raise ValueError("bad \udcff value")
    if case == "raise_unprintable":
        raise UnprintableError("hidden")
    if case == "raise_not_a_string":
        raise NotAStringError()
    if case == "raise_non_ascii":
        raise ValueError("h\u00e9llo \u2713 \U0001f600")
    if case == "raise_huge":
        raise ValueError("m" * (1024 * 1024))
    if case == "raise_elsewhere":
        helper_module.fail("from the helper")
    if case == "raise_dict_message":
        raise KeyError({"a": 1})
    return {"type": type(event).__name__, "event": event if not isinstance(event, bytes) else event.decode()}


def exit_zero(event: Any, context: Any) -> None:
    sys.exit(0)


def exit_one(event: Any, context: Any) -> None:
    sys.exit(1)


def exit_message(event: Any, context: Any) -> None:
    sys.exit("leaving with a message")


def keyboard_interrupt(event: Any, context: Any) -> None:
    raise KeyboardInterrupt


def base_exception(event: Any, context: Any) -> None:
    raise BaseException("beyond Exception")


def one_argument(event: Any) -> Any:
    """A handler with the wrong number of parameters."""
    return event


not_callable = {"a": "dict, not a function"}
