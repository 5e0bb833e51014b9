"""Renders a saved benchmark run as the README's tables.

Usage: python bench/render.py [RUN.json]   (default: the newest run under .benchmarks)

Every number comes from the run; a result whose correctness flag is false is shown as "wrong".
"""

from __future__ import annotations

import json
import platform
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def newest_run() -> Path:
    runs = sorted((ROOT / ".benchmarks").glob("*/*.json"), key=lambda path: path.stat().st_mtime)
    if not runs:
        raise SystemExit("no saved benchmark run: run `make bench` first")
    return runs[-1]


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else newest_run()
    run = json.loads(path.read_text())
    results: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for benchmark in run["benchmarks"]:
        extra = benchmark["extra_info"]
        if "implementation" not in extra:
            # Thumbnail and event benchmarks: their figures are in their own README sections.
            continue
        results[benchmark["group"]][extra["implementation"]] = {**benchmark["stats"], **extra}

    sections = [
        _invoke_table(results),
        _cold_start_table(results),
        _memory_table(results),
        _codec_table(results, "decode"),
        _codec_table(results, "encode"),
        _reproducing(run, path),
    ]
    print("\n\n".join(section for section in sections if section))
    return 0


def _cell(result: dict[str, Any] | None, key: str = "median", scale: float = 1e6, digits: int = 0) -> str:
    if result is None:
        return "-"
    if not result.get("correct", True):
        return "wrong"
    return f"{result[key] * scale:,.{digits}f}"


def _ratio(numerator: dict[str, Any] | None, denominator: dict[str, Any] | None, key: str = "median") -> str:
    if not numerator or not denominator or not numerator.get("correct") or not denominator.get("correct"):
        return "-"
    return f"{numerator[key] / denominator[key]:.2f}"


def _groups(results: dict[str, dict[str, dict[str, Any]]], prefix: str) -> list[str]:
    return [group for group in results if group.startswith(prefix)]


def _invoke_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    groups = _groups(results, "invoke ")
    if not groups:
        return ""
    lines = [
        "Per-invocation overhead (µs; median, and p99 in brackets; ratio of medians):",
        "",
        "| handler | event | fastric | awslambdaric | floor | fastric / awslambdaric |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for group in groups:
        _, handler, workload = group.split(" ", 2)
        by_impl = results[group]
        cells = [
            f"{_cell(by_impl.get(impl))} ({_cell(by_impl.get(impl), 'p99')})"
            for impl in ("fastric", "awslambdaric", "floor")
        ]
        ratio = _ratio(by_impl.get("fastric"), by_impl.get("awslambdaric"))
        lines.append(f"| {handler} | {workload} | {' | '.join(cells)} | {ratio} |")
    return "\n".join(lines)


def _cold_start_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    groups = _groups(results, "cold start")
    if not groups:
        return ""
    implementations = ("fastric", "fastric-layer", "awslambdaric", "bare")
    lines = [
        "Cold start (ms, median of process starts; `fastric -m` as a container starts it, `fastric -c` as",
        "the layer's wrapper does, awslambdaric with `-m`; the last column is fastric -c minus bare):",
        "",
        "| from spawn to | fastric -m | fastric -c | awslambdaric | bare | above bare |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for group in groups:
        by_impl = results[group]
        cells = [_cell(by_impl.get(impl), scale=1e3, digits=1) for impl in implementations]
        layer, bare = by_impl.get("fastric-layer"), by_impl.get("bare")
        above = f"{(layer['median'] - bare['median']) * 1e3:.1f}" if layer and bare else "-"
        lines.append(f"| {group.removeprefix('cold start to ')} | {' | '.join(cells)} | {above} |")
    return "\n".join(lines)


def _memory_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    groups = _groups(results, "memory ")
    if not groups:
        return ""
    lines = [
        "Resident memory of the runtime process (MiB, after the first tenth of the invocations → at the end):",
        "",
        "| event | invocations | fastric | awslambdaric |",
        "|---|---:|---:|---:|",
    ]
    for group in groups:
        by_impl = results[group]
        count = next(iter(by_impl.values()))["invocations"]
        cells = [
            f"{by_impl[impl]['rss_early_kib'] / 1024:.1f} → {by_impl[impl]['rss_end_kib'] / 1024:.1f}"
            if impl in by_impl
            else "-"
            for impl in ("fastric", "awslambdaric")
        ]
        lines.append(f"| {group.removeprefix('memory ')} | {count:,} | {' | '.join(cells)} |")
    return "\n".join(lines)


def _codec_table(results: dict[str, dict[str, dict[str, Any]]], operation: str) -> str:
    groups = _groups(results, f"{operation} ")
    if not groups:
        return ""
    libraries = ("fastric", "orjson", "json", "simplejson")
    lines = [
        f"{operation.capitalize()} alone (µs, median):",
        "",
        f"| event | {' | '.join(libraries)} | fastric / orjson | fastric / simplejson |",
        f"|---|{'---:|' * (len(libraries) + 2)}",
    ]
    for group in groups:
        by_impl = results[group]
        cells = [_cell(by_impl.get(library), digits=1) for library in libraries]
        ratios = [_ratio(by_impl.get("fastric"), by_impl.get(peer)) for peer in ("orjson", "simplejson")]
        lines.append(f"| {group.split(' ', 1)[1]} | {' | '.join(cells + ratios)} |")
    return "\n".join(lines)


def _reproducing(run: dict[str, Any], path: Path) -> str:
    machine = run.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw") or machine.get("processor") or platform.processor()
    cores = machine.get("cpu", {}).get("count", "?")
    python = machine.get("python_version", platform.python_version())
    system = f"{machine.get('system', '')} {machine.get('release', '')}".strip()
    return (
        f"Measured on {cpu} ({cores} cores), {system}, CPython {python}, release build of fastric, "
        f"in one run ({path.name}). Reproduce with `make bench`, then `python bench/render.py`."
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
