"""A handler that raises the exception named by the event's `case`, or answers `{"ok": n}`."""

from __future__ import annotations

from typing import Any


class CustomError(Exception):
    """An exception class defined in user code."""


def value_error() -> None:
    raise ValueError("bad value")


def no_args() -> None:
    raise RuntimeError


def several_args() -> None:
    raise ValueError("a", 1)


def custom() -> None:
    raise CustomError("custom failure")


def level_two(value: str) -> None:
    raise LookupError(f"nothing found for {value}")


def level_one(value: str) -> None:
    level_two(value.upper())


def nested() -> None:
    level_one("needle")


def key_error() -> None:
    {}["missing"]


def zero_division() -> None:
    print(1 / 0)


def unicode() -> None:
    raise ValueError("h\u00e9llo \u2713 \U0001f600")


def multiline() -> None:
    raise ValueError("first line\nsecond line")


def chained() -> None:
    try:
        {}["inner"]
    except KeyError as exc:
        raise ValueError("outer failure") from exc


def module_not_found() -> None:
    import not_an_installed_module  # noqa: F401


def bare_assert() -> None:
    assert False  # noqa: B011 - a bare assert raises AssertionError without a message


CASES = {
    function.__name__: function
    for function in (
        value_error,
        no_args,
        several_args,
        custom,
        nested,
        key_error,
        zero_division,
        unicode,
        multiline,
        chained,
        module_not_found,
        bare_assert,
    )
}


def dispatch(event: Any, context: Any) -> Any:
    """Run the case named by `event["case"]`; answer `{"ok": event["n"]}` when it names none."""
    case = CASES.get(event.get("case"))
    if case is not None:
        case()
    return {"ok": event.get("n")}
