"""Event decoding and result encoding alone, on the benchmark events, against the libraries a
runtime could use: `json`, `simplejson` (what awslambdaric uses) and `orjson`."""

from __future__ import annotations

import json
from typing import Any, Callable

import orjson
import pytest
import simplejson

from events import workloads
from fastric import _fastric

EVENTS = workloads()
OBJECTS = {name: json.loads(data) for name, data in EVENTS.items()}
# awslambdaric's encoder: simplejson with its default separators, ASCII escapes, NaN allowed.
SIMPLEJSON_ENCODER = simplejson.JSONEncoder(use_decimal=False, allow_nan=True)

DECODERS: dict[str, Callable[[bytes], Any]] = {
    "fastric": _fastric.decode_json,
    "json": json.loads,
    "simplejson": simplejson.loads,
    "orjson": orjson.loads,
}
ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "fastric": lambda value: _fastric.encode_json(value, ensure_ascii=True),
    "json": lambda value: json.dumps(value).encode(),
    "simplejson": lambda value: SIMPLEJSON_ENCODER.encode(value).encode(),
    "orjson": orjson.dumps,
}


@pytest.mark.parametrize("library", list(DECODERS))
@pytest.mark.parametrize("workload", list(EVENTS))
def test_decode(benchmark, library: str, workload: str) -> None:
    decode = DECODERS[library]
    data = EVENTS[workload]
    benchmark.group = f"decode {workload}"
    correct = decode(data) == OBJECTS[workload]
    benchmark.extra_info.update(implementation=library, correct=correct)
    benchmark(decode, data)
    assert correct


@pytest.mark.parametrize("library", list(ENCODERS))
@pytest.mark.parametrize("workload", list(EVENTS))
def test_encode(benchmark, library: str, workload: str) -> None:
    encode = ENCODERS[library]
    value = OBJECTS[workload]
    benchmark.group = f"encode {workload}"
    encoded = encode(value)
    # Every library must produce the same value; fastric must also produce awslambdaric's bytes.
    correct = json.loads(encoded) == value
    if library == "fastric":
        correct = correct and encoded == ENCODERS["simplejson"](value)
    benchmark.extra_info.update(implementation=library, correct=correct)
    benchmark(encode, value)
    assert correct
