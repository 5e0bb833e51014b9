"""Cold start: from spawning the runtime process to its first `GET next`, and to its first posted
response, against a bare interpreter that opens its connection with `_socket` and sends one `GET`
(the least any Python runtime can do).

fastric is started both as a container starts it (`python -m fastric`) and as the layer's wrapper
starts it (`python -c`, without `runpy`); awslambdaric as its documentation starts it (`-m`). Every
runtime's modules are compiled to bytecode first, as a package installed by pip is.
"""

from __future__ import annotations

import compileall
import time
from pathlib import Path

import pytest

import fastric
from driver import RuntimeDriver

IMPLEMENTATIONS = ["fastric", "fastric-layer", "awslambdaric", "bare"]
ROUNDS = 31


@pytest.fixture(scope="module", autouse=True)
def _compiled_bytecode() -> None:
    # An editable install, or PYTHONDONTWRITEBYTECODE, would leave fastric compiling its modules
    # from source at every start, which no installed package does.
    assert compileall.compile_dir(Path(fastric.__file__).parent, quiet=1)


def _first_get(implementation: str) -> float:
    driver = RuntimeDriver(implementation, "bench_app.noop")
    try:
        return driver.first_get - driver.started
    finally:
        driver.close()


def _first_response(implementation: str) -> float:
    driver = RuntimeDriver(implementation, "bench_app.noop")
    try:
        return driver.first_response(b"{}") - driver.started
    finally:
        driver.close()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_cold_start_to_first_next(benchmark, implementation: str) -> None:
    benchmark.group = "cold start to first GET next"
    benchmark.extra_info.update(implementation=implementation, correct=True)
    # Each round is one process start, timed from spawn to the request's arrival at the server.
    samples: list[float] = []
    benchmark.pedantic(lambda: samples.append(_first_get(implementation)), rounds=ROUNDS, iterations=1)
    benchmark.extra_info["spawn_to_get_median_s"] = sorted(samples)[len(samples) // 2]
    assert all(sample > 0 for sample in samples)


@pytest.mark.parametrize("implementation", ["fastric", "fastric-layer", "awslambdaric"])
def test_cold_start_to_first_response(benchmark, implementation: str) -> None:
    benchmark.group = "cold start to first response"
    benchmark.extra_info.update(implementation=implementation, correct=True)
    samples: list[float] = []
    benchmark.pedantic(lambda: samples.append(_first_response(implementation)), rounds=ROUNDS, iterations=1)
    benchmark.extra_info["spawn_to_response_median_s"] = sorted(samples)[len(samples) // 2]
    assert all(sample > 0 for sample in samples)


def test_timer_resolution() -> None:
    # The spawn-to-request figures are differences of perf_counter readings.
    assert time.get_clock_info("perf_counter").resolution < 1e-6
