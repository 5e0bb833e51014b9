"""Memory: the runtime process's resident set after many invocations of each event size, and
whether it keeps growing (between the first 10% of the invocations and the end)."""

from __future__ import annotations

import os

import pytest

from driver import RuntimeDriver
from events import workloads

IMPLEMENTATIONS = ["fastric", "awslambdaric"]
# Timed runs (make bench) do the full count; the untimed test-suite run does a handful.
INVOCATIONS = int(os.environ.get("FASTRIC_BENCH_INVOCATIONS", "10000"))
EVENTS = {name: data for name, data in workloads().items() if name in ("1KB", "apigw", "sqs10")}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("workload", list(EVENTS))
def test_rss_after_invocations(benchmark, implementation: str, workload: str) -> None:
    count = INVOCATIONS if benchmark.enabled else 20
    event = EVENTS[workload]
    benchmark.group = f"memory {workload}"
    driver = RuntimeDriver(implementation, "bench_app.echo")
    try:

        def serve(invocations: int) -> None:
            for _ in range(invocations):
                driver.invoke(event)

        early = count // 10
        serve(early)
        rss_early = driver.rss_kib()
        benchmark.pedantic(serve, args=(count - early,), rounds=1, iterations=1)
        rss_end = driver.rss_kib()
    finally:
        driver.close()
    benchmark.extra_info.update(
        implementation=implementation,
        correct=True,
        invocations=count,
        rss_early_kib=rss_early,
        rss_end_kib=rss_end,
        growth_kib=rss_end - rss_early,
    )
    assert rss_end > 0
