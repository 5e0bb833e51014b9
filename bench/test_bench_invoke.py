"""Per-invocation overhead of each runtime: what one invocation costs the runtime itself.

Each round sends one event on a kept-alive connection, waits for the posted result, answers it and
waits for the runtime's next `GET`; only the spans in which the runtime is working are timed (see
`driver.py`), so the benchmark server's own Python work stays out of the figures. The same handlers
and events go to fastric, awslambdaric and the floor (a client that only speaks HTTP) in one run;
`bench/render.py` turns the saved run into the README's table with the ratios.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from driver import RuntimeDriver
from events import workloads

IMPLEMENTATIONS = ["fastric", "awslambdaric", "floor"]
HANDLERS = ["noop", "echo"]
EVENTS = workloads()


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def implementation(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def drivers(implementation: str) -> Iterator[dict[str, RuntimeDriver]]:
    started = {handler: RuntimeDriver(implementation, f"bench_app.{handler}") for handler in HANDLERS}
    yield started
    for driver in started.values():
        driver.close()


def _is_correct(handler: str, event: bytes, result: bytes) -> bool:
    if handler == "noop":
        return result == b"null"
    return json.loads(result) == json.loads(event)


@pytest.mark.parametrize("handler", HANDLERS)
@pytest.mark.parametrize("workload", list(EVENTS))
def test_invoke(benchmark, drivers: dict[str, RuntimeDriver], implementation: str, handler: str, workload: str) -> None:
    driver = drivers[handler]
    event = EVENTS[workload]
    correct = _is_correct(handler, event, driver.invoke(event))

    benchmark.group = f"invoke {handler} {workload}"
    benchmark.extra_info.update(implementation=implementation, correct=correct, event_bytes=len(event))
    rounds = 20 if len(event) > 500_000 else 200
    # The fixture has no public way to take another clock for one benchmark.
    benchmark._timer = driver.runtime_clock
    benchmark.pedantic(driver.invoke, args=(event,), rounds=rounds, warmup_rounds=3)
    if benchmark.stats is not None:
        timings = sorted(benchmark.stats.stats.data)
        benchmark.extra_info["p99"] = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    assert correct
