"""Handlers returning values of every kind a result encoder meets, and reporting decoded events."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import uuid
from typing import Any, Callable

Decimal = decimal.Decimal
Point = collections.namedtuple("Point", ["x", "y"])


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 2


class Tag(str, enum.Enum):
    NEW = "new"


class Row:
    """Not a namedtuple, but an object with `_asdict`, which encoders treat alike."""

    def _asdict(self) -> dict[str, Any]:
        return {"id": 7, "name": "row"}


class Numbers(list):  # type: ignore[type-arg]
    """A list subclass."""


class Name(str):
    """A str subclass."""


def _circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


# Results every encoder of the stock runtime's family can write.
ENCODABLE: dict[str, Callable[[], Any]] = {
    "prices": lambda: {"price": Decimal("19.99"), "qty": Decimal("3"), "big": 2**70},
    "decimal_forms": lambda: [
        Decimal("1.10"),
        Decimal("1E+400"),
        Decimal("-0"),
        Decimal("1.23E-10"),
        Decimal("0.000001"),
        Decimal("123456789012345678901234567890.123456789"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
    ],
    "decimal_nan": lambda: [Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN")],
    "big_ints": lambda: [2**63, 2**64, -(2**64) - 1, 10**40, -(10**30)],
    "floats": lambda: [0.1, 1.0, -0.0, 1e300, 5e-324, 1e16, 123456789.123, 0.30000000000000004],
    "non_finite": lambda: [float("nan"), float("inf"), float("-inf")],
    "key_order": lambda: {"z": 1, "a": 2, "m": {"y": 1, "b": 2}},
    "separators": lambda: {"a": [1, {"b": None}], "c": [], "d": {}},
    "namedtuple": lambda: {"at": Point(1, 2), "list": [Point(x=3, y=Point(4, 5))]},
    "asdict_object": lambda: [Row()],
    "tuples": lambda: (1, "a", (2, (3,)), ()),
    "subclasses": lambda: {
        "list": Numbers([1, 2]),
        "str": Name("name"),
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
    },
    "enums": lambda: [Level.HIGH, Tag.NEW, {"level": Level.HIGH}],
    "nested_bytes": lambda: {"b": b"caf\xc3\xa9", "l": [b"x", b""]},
    "non_str_keys": lambda: {3: "int", 2.5: "float", False: "bool", None: "none", b"k": "bytes"},
    "literals": lambda: [True, False, None, "", 0, -1],
    "control_chars": lambda: 'tab\t nl\n quote" back\\ slash/ nul\x00 unit\x1f del\x7f',
    "line_separators": lambda: "a\u2028b\u2029c",
    "non_ascii": lambda: {"name": "Zo\u00eb \U0001f680", "cjk": "\u6f22\u5b57", "latin": "\u00a3\u00e9"},
    "deep": lambda: _deep(200),
    "long_list": lambda: list(range(5000)),
    "string": lambda: "just text",
    "number": lambda: 42,
}

# Results no JSON encoder of the stock runtime's family accepts, and the message it gives.
UNENCODABLE: dict[str, tuple[Callable[[], Any], str]] = {
    "datetime": (lambda: {"when": datetime.datetime(2024, 1, 1)}, "Object of type datetime is not JSON serializable"),
    "date": (lambda: [datetime.date(2024, 1, 1)], "Object of type date is not JSON serializable"),
    "set": (lambda: {1, 2}, "Object of type set is not JSON serializable"),
    "frozenset": (lambda: {"f": frozenset()}, "Object of type frozenset is not JSON serializable"),
    "uuid": (lambda: uuid.UUID(int=1), "Object of type UUID is not JSON serializable"),
    "enum": (lambda: Colour.RED, "Object of type Colour is not JSON serializable"),
    "bytearray": (lambda: bytearray(b"x"), "Object of type bytearray is not JSON serializable"),
    "complex": (lambda: 1j, "Object of type complex is not JSON serializable"),
    "range": (lambda: range(3), "Object of type range is not JSON serializable"),
    "object": (lambda: object(), "Object of type object is not JSON serializable"),
    "type": (lambda: int, "Object of type type is not JSON serializable"),
    "tuple_key": (lambda: {(1, 2): "x"}, "keys must be str, int, float, bool or None, not tuple"),
    "decimal_key": (lambda: {Decimal("1"): "x"}, "keys must be str, int, float, bool or None, not Decimal"),
    "bad_utf8_bytes": (
        lambda: {"b": b"\xff"},
        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ),
    "circular": (_circular, "Circular reference detected"),
}


# Top-level bytes results, which a runtime posts as they are.
RAW: dict[str, bytes] = {
    "bytes_empty": b"",
    "bytes_binary": bytes(range(256)),
    "bytes_json_like": b'{"a": 1}',
    "bytes_large": b"0123456789abcdef" * 65_536,
}


def returns(event: Any, context: Any) -> Any:
    """Return the value named by `event["case"]`, or the event itself when it names none."""
    case = event.get("case") if isinstance(event, dict) else None
    if case in RAW:
        return RAW[case]
    if case in ENCODABLE:
        return ENCODABLE[case]()
    if case in UNENCODABLE:
        return UNENCODABLE[case][0]()
    return event


def event_repr(event: Any, context: Any) -> list[str]:
    """Describe the decoded event exactly: its type and its repr."""
    return [type(event).__name__, repr(event)]


def echo_or_raise(event: Any, context: Any) -> Any:
    """Raise ValueError with `event["raise"]` as the message, else return the event."""
    if isinstance(event, dict) and "raise" in event:
        raise ValueError(event["raise"])
    return event
