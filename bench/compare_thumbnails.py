"""Interleaved timing of the thumbnail implementations, for ratios that survive a busy machine.

pytest-benchmark times one implementation after another, so load that comes and goes skews the
ratios between them. Here every round calls each implementation once in turn, and the medians over
rounds are compared. Usage::

    taskset -c 1 python bench/compare_thumbnails.py [--rounds 21] [IMAGE ...]
"""

from __future__ import annotations

import argparse
import statistics
import time

from images import BENCH_IMAGES, bench_image
from test_thumbnails import IMPLEMENTATIONS, PILLOW


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", default=list(BENCH_IMAGES), help=", ".join(BENCH_IMAGES))
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--implementations", default=f"fastric,{PILLOW}")
    args = parser.parse_args()
    names = args.implementations.split(",")

    print(f"| image | {' | '.join(f'{name} ms' for name in names)} | {names[0]} vs {names[-1]} |")
    print(f"|---|{'---|' * len(names)}---|")
    for image in args.images:
        data = bench_image(image)
        for name in names:
            IMPLEMENTATIONS[name](data)
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(args.rounds):
            for name in names:
                started = time.perf_counter()
                IMPLEMENTATIONS[name](data)
                times[name].append(time.perf_counter() - started)
        medians = [statistics.median(times[name]) * 1000 for name in names]
        cells = " | ".join(f"{median:.1f}" for median in medians)
        print(f"| {image} | {cells} | {medians[-1] / medians[0]:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
