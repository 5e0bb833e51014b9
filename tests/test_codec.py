"""The native encoder writes the same bytes as the stock runtime's simplejson settings, value for
value, over many generated values rather than a handful of examples."""

from __future__ import annotations

import math
import random
import struct

import pytest
import simplejson

from fastric import _fastric


def _reference(value: object, *, ensure_ascii: bool) -> bytes:
    return simplejson.dumps(value, ensure_ascii=ensure_ascii).encode()


def _random_floats(count: int, seed: int) -> list[float]:
    generator = random.Random(seed)
    from_bits = [struct.unpack("<d", generator.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(count)]
    prices = [round(generator.uniform(0, 1000), 2) for _ in range(count // 4)]
    return [value for value in from_bits if math.isfinite(value)] + prices


EDGE_FLOATS = [
    0.0,
    -0.0,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    0.1,
    1e-4,
    9.999999999999999e-5,
    1e16,
    9999999999999998.0,
    1e15,
    123456789012345680.0,
    *(2.0**exponent for exponent in range(-1074, 1024, 7)),
    *(10.0**exponent for exponent in range(-323, 308)),
    *(float(2**53 + offset) for offset in range(-8, 8)),
]


@pytest.mark.parametrize("seed", [1, 2])
def test_floats_as_python_repr(seed: int) -> None:
    # Halfway cases (two shortest candidates) are where float printers part ways with repr.
    values = _random_floats(50_000, seed) + EDGE_FLOATS
    assert _fastric.encode_json(values, ensure_ascii=True) == _reference(values, ensure_ascii=True)


def test_float_specials() -> None:
    values = [math.nan, math.inf, -math.inf]
    assert _fastric.encode_json(values, ensure_ascii=True) == b"[NaN, Infinity, -Infinity]"


def _random_text(generator: random.Random, length: int) -> str:
    ranges = [
        (0, 0x20),
        (0x20, 0x80),
        (0x20, 0x80),
        (0x7F, 0x800),
        (0x800, 0xD800),
        (0xE000, 0x10000),
        (0x10000, 0x110000),
    ]
    characters = []
    for _ in range(length):
        low, high = generator.choice(ranges)
        characters.append(chr(generator.randrange(low, high)))
    return "".join(characters)


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_strings_escaped_alike(ensure_ascii: bool) -> None:
    generator = random.Random(7)
    texts = [_random_text(generator, generator.randrange(0, 40)) for _ in range(3000)]
    texts += ['"', "\\", "\x7f", "a" * 7 + '"', "\u2028\u2029", "🚀" * 3]
    value = {text: texts[-index - 1] for index, text in enumerate(texts)}
    assert _fastric.encode_json(value, ensure_ascii=ensure_ascii) == _reference(value, ensure_ascii=ensure_ascii)


def test_integers_of_every_size() -> None:
    values = [0, -1, 2**31, -(2**63), 2**63 - 1, 2**63, -(2**63) - 1, 10**40, -(10**100), True, False, None]
    assert _fastric.encode_json(values, ensure_ascii=True) == _reference(values, ensure_ascii=True)


def test_lone_surrogates_step_aside() -> None:
    # A str that has no UTF-8 goes to the reference encoder, which has its own rules for it.
    assert _fastric.encode_json(["ok", "\ud800"], ensure_ascii=False) is None
    assert _fastric.encode_json({"\udfff": 1}, ensure_ascii=True) is None
