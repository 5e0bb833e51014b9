"""fastric.image: thumbnails of generated images, checked against what the pixels should be."""

from __future__ import annotations

import io
import math
import random
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageDraw, ImageFilter

from fastric import errors
from fastric.image import (
    DEFAULT_MAX_PIXELS,
    Thumbnail,
    thumbnail,
    thumbnail_with_info,
    thumbnails,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def photo(width: int, height: int, seed: int = 7) -> Image.Image:
    """A small photo-like RGB image: colour gradients, soft shapes and noise."""
    generator = random.Random(seed)
    field = Image.new("RGB", (3, 3))
    field.putdata([tuple(generator.randrange(256) for _ in range(3)) for _ in range(9)])
    image = field.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y, radius = generator.randrange(width), generator.randrange(height), generator.randrange(4, 60)
        colour = tuple(generator.randrange(256) for _ in "rgb")
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(2))
    noise = Image.effect_noise((width, height), 10).convert("L")
    return ImageChops.add(image, Image.merge("RGB", (noise, noise, noise)), scale=1.0, offset=-128)


def encode(image: Image.Image, format: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format, **params)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def mean_colour(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> tuple[float, ...]:
    region = image.convert("RGB").crop(box) if box else image.convert("RGB")
    samples = region.tobytes()
    return tuple(sum(samples[channel::3]) / (len(samples) // 3) for channel in range(3))


def assert_colour(actual: tuple[float, ...], expected: tuple[int, ...], tolerance: float = 12) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected)), f"{actual} is not about {expected}"


def psnr(a: Image.Image, b: Image.Image) -> float:
    histogram = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).histogram()
    squares = sum(count * (index % 256) ** 2 for index, count in enumerate(histogram))
    mse = squares / (a.size[0] * a.size[1] * 3)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def png_bytes(width: int, height: int, colour_type: int, bit_depth: int, rows: list[bytes]) -> bytes:
    """A PNG written by hand, for the kinds Pillow cannot write (16-bit RGB) or would refuse to make."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(b"".join(b"\0" + row for row in rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# Size: aspect ratio, fitting in the box, never enlarging.


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        ((640, 480), (200, 200), (200, 150)),
        ((480, 640), (200, 200), (150, 200)),
        ((1920, 1080), (200, 200), (200, 113)),
        ((4000, 10), (200, 200), (200, 1)),
        ((10, 4000), (200, 200), (1, 200)),
        ((1, 1), (200, 200), (1, 1)),
        ((150, 100), (200, 200), (150, 100)),
        ((640, 480), (100, 300), (100, 75)),
    ],
)
def test_fits_the_box_keeps_aspect_and_never_enlarges(
    source: tuple[int, int], box: tuple[int, int], expected: tuple[int, int]
) -> None:
    data = encode(photo(*source))
    result = thumbnail_with_info(data, box)
    assert (result.width, result.height) == expected
    assert decode(result.data).size == expected
    # Pillow's thumbnail picks the same size.
    reference = decode(data)
    reference.thumbnail(box)
    assert reference.size == expected


def test_returns_jpeg_bytes_and_info() -> None:
    data = encode(photo(320, 240))
    result = thumbnail_with_info(data, (100, 100))
    assert isinstance(result, Thumbnail)
    assert result.content_type == "image/jpeg"
    assert result.data == thumbnail(data, (100, 100))
    assert decode(result.data).format == "JPEG"
    png = thumbnail_with_info(data, (100, 100), format="PNG")
    assert png.content_type == "image/png"
    assert decode(png.data).format == "PNG"


def test_quality_changes_the_size_of_the_output() -> None:
    data = encode(photo(640, 480))
    assert len(thumbnail(data, quality=30)) < len(thumbnail(data, quality=95))


# EXIF orientation.

# What exif_transpose does for each orientation, to make a stored image from an upright one we use
# the inverse transpose.
INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def quadrants(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 2 - 1, height // 2 - 1), fill=RED)
    draw.rectangle((width // 2, 0, width - 1, height // 2 - 1), fill=GREEN)
    draw.rectangle((0, height // 2, width // 2 - 1, height - 1), fill=BLUE)
    return image


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_makes_the_thumbnail_upright(orientation: int, format: str) -> None:
    upright = quadrants(160, 96)
    stored = upright.transpose(INVERSE[orientation]) if orientation in INVERSE else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(stored, format, exif=exif.tobytes(), **({"quality": 95} if format != "PNG" else {}))

    result = thumbnail_with_info(data, (80, 80))

    assert (result.width, result.height) == (80, 48)
    image = decode(result.data)
    assert_colour(mean_colour(image, (5, 5, 30, 18)), RED, tolerance=20)
    assert_colour(mean_colour(image, (50, 5, 75, 18)), GREEN, tolerance=20)
    assert_colour(mean_colour(image, (5, 30, 30, 43)), BLUE, tolerance=20)
    assert_colour(mean_colour(image, (50, 30, 75, 43)), WHITE, tolerance=20)


def test_orientation_uses_the_box_of_the_upright_image() -> None:
    stored = photo(300, 100).transpose(Image.Transpose.ROTATE_90)  # stored 100x300, upright 300x100
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(stored, exif=exif.tobytes())
    result = thumbnail_with_info(data, (150, 20))
    assert (result.width, result.height) == (60, 20)


# Transparency.


def half_transparent(mode: str) -> Image.Image:
    """Left half opaque red (or mid-grey), right half fully transparent."""
    rgba = Image.new("RGBA", (80, 40), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle((0, 0, 39, 39), fill=(*RED, 255))
    if mode == "RGBA":
        return rgba
    if mode == "LA":
        return rgba.convert("LA")
    return rgba.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_alpha_is_flattened_on_white_for_jpeg(mode: str) -> None:
    source = half_transparent(mode)
    params = {"transparency": source.getpixel((79, 0))} if mode == "P" else {}
    data = encode(source, "PNG", **params)
    image = decode(thumbnail(data, (40, 40)))
    assert image.mode in ("RGB", "L")
    expected_left = RED if mode != "LA" else (76, 76, 76)
    assert_colour(mean_colour(image, (2, 2, 16, 18)), expected_left)
    assert_colour(mean_colour(image, (24, 2, 38, 18)), WHITE)


def test_background_is_configurable() -> None:
    data = encode(half_transparent("RGBA"), "PNG")
    image = decode(thumbnail(data, (40, 40), background=(0, 0, 255)))
    assert_colour(mean_colour(image, (24, 2, 38, 18)), BLUE)


def test_png_output_keeps_alpha() -> None:
    data = encode(half_transparent("RGBA"), "PNG")
    image = decode(thumbnail(data, (40, 40), format="PNG"))
    assert image.mode == "RGBA"
    assert image.getpixel((5, 5)) == (*RED, 255)
    assert image.getpixel((35, 5))[3] == 0


def test_transparent_pixels_do_not_bleed_into_edges() -> None:
    # Transparent black next to opaque white: filtering without premultiplying darkens the edge.
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle((0, 0, 49, 99), fill=(255, 255, 255, 255))
    image = decode(thumbnail(encode(rgba, "PNG"), (50, 50), format="PNG"))
    edge = image.getpixel((24, 25))
    assert edge[3] > 0
    assert edge[:3] == (255, 255, 255)


# Colour: CMYK, grey, 16 bits.


def test_cmyk_jpeg_gives_the_right_colours() -> None:
    cmyk = Image.new("CMYK", (64, 32), (0, 255, 255, 0))  # red ink
    ImageDraw.Draw(cmyk).rectangle((32, 0, 63, 31), fill=(255, 0, 0, 64))  # cyan, a little black
    data = encode(cmyk, quality=95)
    image = decode(thumbnail(data, (32, 32)))
    expected = decode(data).convert("RGB")
    assert image.size == (32, 16)
    assert_colour(mean_colour(image, (2, 2, 12, 14)), expected.getpixel((5, 5)))
    assert_colour(mean_colour(image, (20, 2, 30, 14)), expected.getpixel((50, 5)))


# A press CMYK profile from Debian's libgs-common, which the test set-up installs.
CMYK_PROFILE = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")


def test_cmyk_jpeg_is_converted_through_its_profile() -> None:
    profile = CMYK_PROFILE.read_bytes()
    cmyk = Image.new("CMYK", (64, 32), (0, 255, 255, 0))  # red ink
    ImageDraw.Draw(cmyk).rectangle((32, 0, 63, 31), fill=(255, 0, 0, 64))  # cyan, a little black
    data = encode(cmyk, quality=95, icc_profile=profile)

    press = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    intent = ImageCms.getDefaultIntent(press)
    srgb = ImageCms.createProfile("sRGB")
    expected = ImageCms.profileToProfile(cmyk, press, srgb, renderingIntent=intent, outputMode="RGB")
    naive = decode(data).convert("RGB")
    # The profile matters: a press red is far from the naive formula's pure red.
    assert max(abs(a - b) for a, b in zip(expected.getpixel((5, 5)), naive.getpixel((5, 5)))) > 20

    image = decode(thumbnail(data, (32, 32)))
    assert image.size == (32, 16)
    assert_colour(mean_colour(image, (2, 2, 12, 14)), expected.getpixel((5, 5)), tolerance=6)
    assert_colour(mean_colour(image, (20, 2, 30, 14)), expected.getpixel((50, 5)), tolerance=6)
    # The output is sRGB, so the CMYK profile is not carried into it.
    assert "icc_profile" not in image.info


def test_cmyk_jpeg_with_an_unusable_profile_falls_back_to_the_formula() -> None:
    cmyk = Image.new("CMYK", (64, 32), (0, 255, 255, 0))
    rgb_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for profile in (rgb_profile, b"not a profile at all" * 10):
        data = encode(cmyk, quality=95, icc_profile=profile)
        image = decode(thumbnail(data, (32, 32)))
        assert_colour(mean_colour(image, (2, 2, 30, 14)), decode(data).convert("RGB").getpixel((5, 5)))


def test_grey_jpeg_stays_grey() -> None:
    grey = photo(200, 100).convert("L")
    image = decode(thumbnail(encode(grey), (100, 100)))
    assert image.mode == "L"
    assert psnr(image, grey.resize((100, 50), Image.Resampling.LANCZOS)) > 30


def test_sixteen_bit_grey_png_keeps_its_levels() -> None:
    # A horizontal ramp over the full 16-bit range; Pillow's thumbnail turns this white.
    width, height = 256, 8
    row = b"".join(struct.pack(">H", x * 257) for x in range(width))
    data = png_bytes(width, height, colour_type=0, bit_depth=16, rows=[row] * height)
    image = decode(thumbnail(data, (128, 128), format="PNG"))
    assert image.mode == "L"
    assert image.size == (128, 4)
    levels = [image.getpixel((x, 2)) for x in (0, 32, 64, 96, 127)]
    for level, expected in zip(levels, (1, 65, 129, 193, 254)):
        assert abs(level - expected) <= 3, levels


def test_sixteen_bit_rgb_png_keeps_its_colours() -> None:
    width, height = 64, 32
    pixel = struct.pack(">HHH", 0xFFFF, 0x8000, 0x0000)
    data = png_bytes(width, height, colour_type=2, bit_depth=16, rows=[pixel * width] * height)
    image = decode(thumbnail(data, (32, 32), format="PNG"))
    assert image.mode == "RGB"
    assert image.getpixel((10, 10)) == (255, 128, 0)


# Animations: the first frame.


@pytest.mark.parametrize("format", ["GIF", "WEBP"])
def test_animation_gives_its_first_frame(format: str) -> None:
    frames = [Image.new("RGB", (60, 40), colour) for colour in (RED, GREEN, BLUE)]
    data = encode(frames[0], format, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert decode(data).n_frames == 3
    image = decode(thumbnail(data, (30, 30)))
    assert image.size == (30, 20)
    assert_colour(mean_colour(image), RED)


def test_gif_frame_offset_and_transparency() -> None:
    # A 20x20 frame at (10, 10) on a 40x40 screen: outside it the screen is transparent.
    frame = Image.new("P", (40, 40), 0)
    frame.putpalette([0, 0, 0, *GREEN] + [0] * 762)
    ImageDraw.Draw(frame).rectangle((10, 10, 29, 29), fill=1)
    data = encode(frame, "GIF", transparency=0)
    image = decode(thumbnail(data, (40, 40), format="PNG"))
    assert image.getpixel((20, 20)) == (*GREEN, 255)
    assert image.getpixel((2, 2))[3] == 0


# Colour profiles.


@pytest.mark.parametrize("output", ["JPEG", "PNG"])
@pytest.mark.parametrize("source", ["JPEG", "PNG"])
def test_icc_profile_is_kept(source: str, output: str) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(photo(120, 90), source, icc_profile=profile)
    image = decode(thumbnail(data, (60, 60), format=output))
    assert image.info.get("icc_profile") == profile


def test_no_profile_means_none_is_invented() -> None:
    image = decode(thumbnail(encode(photo(120, 90)), (60, 60)))
    assert "icc_profile" not in image.info


# Decompression bombs.


def test_png_bomb_is_refused_from_its_header() -> None:
    # 20000x20000 announced; the data behind the header is never needed.
    data = png_bytes(20000, 20000, colour_type=0, bit_depth=8, rows=[b"\0" * 10])
    started = time.perf_counter()
    with pytest.raises(errors.DecompressionBombError, match=r"20000x20000 pixels is over the limit of 89478485"):
        thumbnail(data)
    assert time.perf_counter() - started < 0.1


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is patched to announce `width` x `height`."""
    data = bytearray(encode(photo(64, 64)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_jpeg_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(errors.DecompressionBombError, match="decompression bomb"):
        thumbnail(jpeg_claiming(60000, 60000))


def test_pixel_limit_is_configurable() -> None:
    data = encode(photo(100, 100))
    with pytest.raises(errors.DecompressionBombError, match="limit of 9999 pixels"):
        thumbnail(data, max_pixels=9999)
    assert decode(thumbnail(data, max_pixels=10000)).size == (100, 100)
    assert DEFAULT_MAX_PIXELS == 89_478_485
    assert thumbnail(data, max_pixels=None)


def test_bomb_is_refused_in_bounded_memory() -> None:
    # A real deflate stream of 20000x20000 zero bytes (400 MB once inflated) in a fresh process.
    script = """
import struct, sys, zlib
from fastric import errors
from fastric.image import thumbnail

def peak_kb():
    # VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak.
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

compressor = zlib.compressobj(9)
row = b"\\0" * 20001
idat = b"".join(compressor.compress(row) for _ in range(20000)) + compressor.flush()
header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
data = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
before = peak_kb()
try:
    thumbnail(data)
except errors.DecompressionBombError:
    pass
else:
    sys.exit("not refused")
print(peak_kb() - before)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    growth_kb = int(result.stdout)
    assert growth_kb < 10_000


# Bad input.


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_is_an_error_not_a_grey_image(progressive: bool) -> None:
    data = encode(photo(640, 480), quality=90, progressive=progressive)
    with pytest.raises(errors.CorruptImageError, match="corrupt or truncated JPEG image"):
        thumbnail(data[: len(data) * 6 // 10])
    with pytest.raises(errors.CorruptImageError, match="corrupt or truncated JPEG image"):
        thumbnail(data[: len(data) * 6 // 10], shrink_on_load=False)


@pytest.mark.parametrize("format", ["PNG", "GIF", "WEBP"])
def test_truncated_images_are_errors(format: str) -> None:
    data = encode(photo(160, 120).convert("P") if format == "GIF" else photo(160, 120), format)
    name = "WebP" if format == "WEBP" else format
    with pytest.raises(errors.CorruptImageError, match=f"corrupt or truncated {name} image"):
        thumbnail(data[: len(data) // 2])


def test_corrupt_jpeg_is_an_error() -> None:
    data = bytearray(encode(photo(320, 240)))
    sos = data.index(b"\xff\xda")
    data[sos + 20 : sos + 400] = b"\xff\xd9" * 190
    with pytest.raises(errors.CorruptImageError, match="JPEG"):
        thumbnail(bytes(data))


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [(1, 0xC3, "lossless coding"), (4, 12, "12-bit samples"), (1, 0xC5, "hierarchical coding")],
)
def test_unsupported_jpeg_kinds_say_what_they_are(offset: int, value: int, message: str) -> None:
    data = bytearray(encode(photo(64, 64)))
    data[data.index(b"\xff\xc0") + offset] = value
    with pytest.raises(errors.UnsupportedImageError, match=f"unsupported JPEG image: {message}"):
        thumbnail(bytes(data))


@pytest.mark.parametrize("data", [b"", b"hello world", b"%PDF-1.7\n", b"\xff\xd8"])
def test_not_an_image_says_so(data: bytes) -> None:
    with pytest.raises(errors.UnidentifiedImageError, match="not an image"):
        thumbnail(data)


def test_errors_share_one_base_class() -> None:
    for error in (
        errors.UnidentifiedImageError,
        errors.DecompressionBombError,
        errors.CorruptImageError,
        errors.UnsupportedImageError,
    ):
        assert issubclass(error, errors.ImageError)
    assert issubclass(errors.ImageError, errors.FastricError)
    assert issubclass(errors.ImageError, ValueError)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": (0, 10)}, "size must be at least 1x1"),
        ({"quality": 0}, "quality must be between 1 and 100"),
        ({"format": "TIFF"}, "unknown output format"),
    ],
)
def test_bad_options_are_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(errors.ImageError, match=message):
        thumbnail(encode(photo(20, 20)), **options)


# Quality and the fast paths.


@pytest.mark.parametrize("progressive", [False, True])
def test_quality_is_at_least_pillows(progressive: bool) -> None:
    source = photo(1600, 1200)
    data = encode(source, quality=90, progressive=progressive)
    reference = decode(data).resize((200, 150), Image.Resampling.LANCZOS)
    ours = decode(thumbnail(data, format="PNG"))
    pillow = decode(data)
    pillow.thumbnail((200, 200))
    assert ours.size == pillow.size == (200, 150)
    assert psnr(ours, reference) >= psnr(pillow, reference)


def test_shrink_on_load_looks_like_a_full_decode() -> None:
    data = encode(photo(1600, 1200), quality=90, progressive=True)
    fast = decode(thumbnail(data, format="PNG"))
    full = decode(thumbnail(data, format="PNG", shrink_on_load=False))
    assert psnr(fast, full) > 35


@pytest.mark.parametrize("restart", [{"restart_marker_blocks": 7}, {"restart_marker_rows": 1}])
def test_progressive_jpeg_with_restart_markers(restart: dict[str, int]) -> None:
    # The 1/8-scale path reads the DC scans itself, restart intervals included.
    data = encode(photo(1600, 1200), quality=90, progressive=True, **restart)
    assert b"\xff\xdd" in data  # a restart interval is defined
    fast = decode(thumbnail(data, format="PNG"))
    full = decode(thumbnail(data, format="PNG", shrink_on_load=False))
    assert psnr(fast, full) > 35


# Batches and threads.


def test_batch_matches_single_calls() -> None:
    images = [encode(photo(200 + 40 * index, 150, seed=index)) for index in range(6)]
    results = thumbnails(images, (64, 64), workers=3)
    assert [result.data for result in results] == [thumbnail(image, (64, 64)) for image in images]
    assert all(isinstance(result, Thumbnail) for result in results)


def test_batch_reports_failures_in_place_or_raises_the_first() -> None:
    good = encode(photo(100, 100))
    batch = [good, b"not an image", good[:300], good]
    results = thumbnails(batch, (50, 50), return_exceptions=True)
    assert isinstance(results[0], Thumbnail)
    assert isinstance(results[1], errors.UnidentifiedImageError)
    assert isinstance(results[2], errors.CorruptImageError)
    assert isinstance(results[3], Thumbnail)
    with pytest.raises(errors.UnidentifiedImageError, match="not an image"):
        thumbnails(batch, (50, 50))
    assert thumbnails([], (50, 50)) == []


def test_batch_needs_a_worker() -> None:
    with pytest.raises(errors.ImageError, match="workers must be at least 1"):
        thumbnails([encode(photo(10, 10))], workers=0)


def test_gil_is_released_while_working() -> None:
    data = encode(photo(3000, 2000), quality=95)
    gaps: list[float] = []
    done = threading.Event()

    def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    started = time.perf_counter()
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        for _ in range(5):
            thumbnail(data, shrink_on_load=False)
    finally:
        done.set()
        thread.join()
    call = (time.perf_counter() - started) / 5
    # With the GIL held, the ticker would stall for a whole call at least once.
    assert max(gaps) < call / 2
