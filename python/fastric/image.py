"""Thumbnails of uploaded images, made natively with the GIL released.

JPEGs are decoded at the smallest DCT scale that keeps twice the thumbnail size (progressive JPEGs
from their DC scans alone), resized with Lanczos3, turned upright from their EXIF orientation, and
encoded as JPEG or PNG::

    from fastric.image import thumbnail

    small = thumbnail(s3_object_bytes, (200, 200))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple, Optional, Union

from . import _fastric
from .errors import (
    CorruptImageError,
    DecompressionBombError,
    ImageError,
    UnidentifiedImageError,
    UnsupportedImageError,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "CorruptImageError",
    "DecompressionBombError",
    "ImageError",
    "Thumbnail",
    "UnidentifiedImageError",
    "UnsupportedImageError",
    "thumbnail",
    "thumbnail_with_info",
    "thumbnails",
]

DEFAULT_MAX_PIXELS: int = _fastric.DEFAULT_MAX_PIXELS
"""The default pixel limit, Pillow's ``Image.MAX_IMAGE_PIXELS`` (about 89.5 million pixels)."""

OutputFormat = Literal["JPEG", "PNG"]


class Thumbnail(NamedTuple):
    """An encoded thumbnail with its size and MIME type."""

    data: bytes
    width: int
    height: int
    content_type: str


def thumbnail(
    data: bytes,
    size: tuple[int, int] = (200, 200),
    *,
    format: OutputFormat = "JPEG",
    quality: int = 85,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    shrink_on_load: bool = True,
) -> bytes:
    """Makes a thumbnail of an image and returns it encoded.

    The thumbnail keeps the aspect ratio, fits inside `size` and is never larger than the image.
    JPEG, PNG, GIF and WebP are read; animations give their first frame. The EXIF orientation is
    applied, so the thumbnail is upright. An ICC profile in the image is copied into the thumbnail
    when it describes the thumbnail's colours (RGB or grey).

    Args:
        data: the image file's bytes.
        size: the box to fit in, as (width, height).
        format: ``"JPEG"`` or ``"PNG"``. JPEG output flattens transparency onto `background`; PNG
            output keeps it.
        quality: the JPEG quality, 1 to 100.
        background: the RGB colour transparent pixels are flattened onto for JPEG output.
        max_pixels: images whose header announces more pixels are refused before decoding;
            ``None`` removes the limit.
        shrink_on_load: decode JPEGs at the smallest DCT scale that keeps twice the thumbnail size.
            ``False`` decodes every pixel first: several times slower and memory-hungry, for a
            difference hardly visible.

    Returns:
        The encoded thumbnail.

    Raises:
        UnidentifiedImageError: `data` is not an image in a supported format.
        DecompressionBombError: the image has more than `max_pixels` pixels.
        CorruptImageError: the image is truncated or damaged.
        UnsupportedImageError: the image uses a feature that is not supported.
        ImageError: an option is invalid.
    """
    return _fastric.thumbnail(
        data,
        size,
        format=format,
        quality=quality,
        background=background,
        max_pixels=max_pixels,
        shrink_on_load=shrink_on_load,
    )[0]


def thumbnail_with_info(
    data: bytes,
    size: tuple[int, int] = (200, 200),
    *,
    format: OutputFormat = "JPEG",
    quality: int = 85,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    shrink_on_load: bool = True,
) -> Thumbnail:
    """Like :func:`thumbnail`, but also returns the thumbnail's width, height and content type."""
    return Thumbnail(
        *_fastric.thumbnail(
            data,
            size,
            format=format,
            quality=quality,
            background=background,
            max_pixels=max_pixels,
            shrink_on_load=shrink_on_load,
        )
    )


def thumbnails(
    images: Iterable[bytes],
    size: tuple[int, int] = (200, 200),
    *,
    format: OutputFormat = "JPEG",
    quality: int = 85,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    shrink_on_load: bool = True,
    workers: Optional[int] = None,
    return_exceptions: bool = False,
) -> list[Union[Thumbnail, ImageError]]:
    """Makes thumbnails of many images on a pool of native threads.

    Takes the same options as :func:`thumbnail`, applied to every image.

    Args:
        images: the image files' bytes.
        workers: the number of threads; by default, the number of CPUs this process may use.
        return_exceptions: put the exception of an image that fails in its place in the list,
            rather than raising the first one.

    Returns:
        One :class:`Thumbnail` per image, in order (or an :class:`ImageError` when
        `return_exceptions` is true and that image failed).

    Raises:
        ImageError: (or a subclass) for the first image that failed, unless `return_exceptions`.
    """
    if workers is not None and workers < 1:
        raise ImageError(f"workers must be at least 1, got {workers}")
    results = _fastric.thumbnails(
        list(images),
        size,
        format=format,
        quality=quality,
        background=background,
        max_pixels=max_pixels,
        shrink_on_load=shrink_on_load,
        workers=workers,
    )
    out: list[Union[Thumbnail, ImageError]] = []
    for result in results:
        if isinstance(result, ImageError):
            if not return_exceptions:
                raise result
            out.append(result)
        else:
            out.append(Thumbnail(*result))
    return out
