"""Photo-like test images made with Pillow: smooth colour fields, soft shapes, texture and noise.

Used by the thumbnail benchmarks and tests, so no image file is committed. The content compresses
like a photograph: a 4032x3024 JPEG at quality 90 is a few megabytes.
"""

from __future__ import annotations

import functools
import io
import math
import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter


def photo(width: int, height: int, seed: int = 20240611, mode: str = "RGB") -> Image.Image:
    """A deterministic photo-like image of `width` x `height` in `mode` ("RGB" or "RGBA")."""
    generator = random.Random(seed)

    # Smooth colour fields: a few random colours stretched over the frame.
    field = Image.new("RGB", (5, 4))
    field.putdata([tuple(generator.randrange(256) for _ in range(3)) for _ in range(20)])
    image = field.resize((width, height), Image.Resampling.BICUBIC)

    # A few hundred shapes, softened afterwards like out-of-focus objects.
    draw = ImageDraw.Draw(image)
    scale = max(width, height)
    for _ in range(300):
        x, y = generator.randrange(width), generator.randrange(height)
        radius = max(2, int(scale * generator.uniform(0.005, 0.08)))
        colour = tuple(generator.randrange(256) for _ in range(3))
        box = (x - radius, y - radius, x + radius, y + radius)
        if generator.random() < 0.6:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(radius=max(1, scale // 1500)))

    # Fine texture and sensor noise, the part that makes photographs expensive to decode.
    noise = Image.effect_noise((width, height), 14).convert("L")
    image = ImageChops.add(image, Image.merge("RGB", (noise, noise, noise)), scale=1.0, offset=-128)
    if mode == "RGBA":
        alpha = Image.linear_gradient("L").resize((width, height)).rotate(45, fillcolor=0)
        draw = ImageDraw.Draw(alpha)
        draw.ellipse((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=255)
        image.putalpha(alpha)
    return image


def encode(image: Image.Image, format: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format, **params)
    return out.getvalue()


@functools.cache
def bench_image(name: str) -> bytes:
    """The benchmark set, by name: what an upload bucket typically receives."""
    if name == "jpeg_1920x1080":
        return encode(photo(1920, 1080), "JPEG", quality=90)
    if name == "jpeg_4032x3024":
        return encode(photo(4032, 3024), "JPEG", quality=90)
    if name == "jpeg_4032x3024_progressive":
        return encode(photo(4032, 3024), "JPEG", quality=90, progressive=True)
    if name == "jpeg_6000x4000":
        return encode(photo(6000, 4000), "JPEG", quality=90)
    if name == "png_800x600_rgba":
        return encode(photo(800, 600, mode="RGBA"), "PNG")
    raise ValueError(f"unknown benchmark image {name!r}")


BENCH_IMAGES = (
    "jpeg_1920x1080",
    "jpeg_4032x3024",
    "jpeg_4032x3024_progressive",
    "jpeg_6000x4000",
    "png_800x600_rgba",
)


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB between two RGB images of the same size."""
    if a.size != b.size:
        return 0.0
    histogram = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).histogram()
    squares = sum(count * (index % 256) ** 2 for index, count in enumerate(histogram))
    mse = squares / (a.size[0] * a.size[1] * 3)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def flatten(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """`image` composited over an opaque background, as RGB."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def reference_thumbnail(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The careful reference: every pixel decoded, premultiplied Lanczos to Pillow's thumbnail size,
    alpha flattened on white."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        target = thumbnail_size(image.size, size)
        rgba = image.convert("RGBA").convert("RGBa")
        return flatten(rgba.resize(target, Image.Resampling.LANCZOS).convert("RGBA"))


def thumbnail_size(source: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
    """The size Pillow's `Image.thumbnail` gives an image of size `source` in the box `size`."""
    x, y = size
    width, height = source
    if x >= width and y >= height:
        return source
    aspect = width / height
    if x / y >= aspect:
        return (max(min(math.floor(y * aspect), math.ceil(y * aspect), key=lambda n: abs(aspect - n / y)), 1), y)
    candidates = (math.floor(x / aspect), math.ceil(x / aspect))
    return (x, max(min(*candidates, key=lambda n: 0 if n == 0 else abs(aspect - x / n)), 1))
