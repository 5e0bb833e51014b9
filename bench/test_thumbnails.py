"""Thumbnails, bytes in and JPEG bytes out: fastric against Pillow's `Image.thumbnail`.

Each image is a group. `pillow` is the usual Pillow recipe (draft mode through `thumbnail`, then
`exif_transpose`, flatten, save); it is reported as `pillow-simd` when Pillow-SIMD is installed in
its place. The `*_naive` rows decode every pixel before resizing, as tutorial code does, and are
there for comparison only. `extra_info` records whether the output is right (size and PSNR),
the PSNR against a careful full-decode Lanczos reference, and the peak memory growth of one call in
a fresh process.

Run timed with ``pytest bench/test_thumbnails.py --benchmark-enable``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import PIL
import pytest
from PIL import Image, ImageOps

from fastric.image import thumbnail, thumbnails
from images import BENCH_IMAGES, bench_image, flatten, psnr, reference_thumbnail, thumbnail_size

BOX = (200, 200)
QUALITY = 85
PILLOW = "pillow-simd" if ".post" in PIL.__version__ else "pillow"
# Below this the output is visibly wrong (Pillow's default BICUBIC scores about 40 dB here).
MIN_PSNR = 30.0


def pillow_thumbnail(data: bytes, format: str = "JPEG") -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail(BOX)
        image = ImageOps.exif_transpose(image)
        return save(image, format)


def pillow_naive(data: bytes, format: str = "JPEG") -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
        return save(image.resize(thumbnail_size(image.size, BOX), Image.Resampling.LANCZOS), format)


def save(image: Image.Image, format: str) -> bytes:
    out = io.BytesIO()
    if format == "JPEG":
        flatten(image).save(out, "JPEG", quality=QUALITY)
    else:
        image.save(out, "PNG")
    return out.getvalue()


IMPLEMENTATIONS: dict[str, Callable[..., bytes]] = {
    "fastric": lambda data, format="JPEG": thumbnail(data, BOX, format=format, quality=QUALITY),
    PILLOW: pillow_thumbnail,
    "fastric_naive": lambda data, format="JPEG": thumbnail(
        data, BOX, format=format, quality=QUALITY, shrink_on_load=False
    ),
    f"{PILLOW}_naive": pillow_naive,
}

# The peak is read from VmHWM: unlike ru_maxrss, it starts afresh at exec rather than inheriting
# the parent's peak.
MEMORY_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from test_thumbnails import IMPLEMENTATIONS

def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

data = open(sys.argv[3], "rb").read()
before = peak_kb()
IMPLEMENTATIONS[sys.argv[2]](data)
print(json.dumps((peak_kb() - before) / 1024))
"""


def peak_memory_growth_mb(implementation: str, data: bytes) -> float:
    """Peak RSS growth of one call in a fresh process, after imports and reading the input."""
    with tempfile.NamedTemporaryFile(suffix=".img") as file:
        file.write(data)
        file.flush()
        here = str(Path(__file__).parent)
        command = [sys.executable, "-c", MEMORY_SCRIPT, here, implementation, file.name]
        result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return float(json.loads(result.stdout))


@pytest.fixture(scope="module")
def references() -> dict[str, Image.Image]:
    return {name: reference_thumbnail(bench_image(name), BOX) for name in BENCH_IMAGES}


@pytest.mark.parametrize("image_name", BENCH_IMAGES)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_thumbnail(benchmark, references: dict[str, Image.Image], implementation: str, image_name: str) -> None:
    data = bench_image(image_name)
    make = IMPLEMENTATIONS[implementation]
    reference = references[image_name]
    benchmark.group = image_name

    # Correctness first: the JPEG output has the right size, and the lossless output is close to
    # the reference (PNG output isolates resampling from JPEG loss).
    output = Image.open(io.BytesIO(make(data)))
    quality = psnr(flatten(Image.open(io.BytesIO(make(data, format="PNG")))), reference)
    correct = output.format == "JPEG" and output.size == reference.size and quality >= MIN_PSNR
    benchmark.extra_info["correct"] = correct
    benchmark.extra_info["psnr_db"] = round(quality, 2)
    if not benchmark.disabled:
        benchmark.extra_info["peak_rss_growth_mb"] = round(peak_memory_growth_mb(implementation, data), 1)
    assert correct, f"{implementation} on {image_name}: size {output.size}, PSNR {quality:.1f} dB"

    benchmark(make, data)


@pytest.mark.parametrize("workers", [1, 2])
def test_batch(benchmark, workers: int) -> None:
    images = [bench_image("jpeg_1920x1080")] * 8
    benchmark.group = "batch of 8 1920x1080 JPEGs"
    results = thumbnails(images, BOX, workers=workers)
    benchmark.extra_info["correct"] = all(result.width == 200 for result in results)
    benchmark(thumbnails, images, BOX, workers=workers)
