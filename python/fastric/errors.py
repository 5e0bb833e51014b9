"""Exceptions raised by fastric.

Each derives from :class:`FastricError` and from the standard exception that callers already catch
for that kind of failure.
"""

from __future__ import annotations

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = [
    "CorruptImageError",
    "DecompressionBombError",
    "EventDecodeError",
    "FastricError",
    "ImageError",
    "RuntimeApiError",
    "UnidentifiedImageError",
    "UnsupportedImageError",
]


class FastricError(Exception):
    """Base class of every exception fastric raises."""


class RuntimeApiError(FastricError, ConnectionError):
    """The Lambda Runtime API could not be reached or answered with an error.

    Attributes:
        status: the HTTP status of the Runtime API's answer, or None when there was no answer.
    """

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ImageError(FastricError, ValueError):
    """An image could not be made into a thumbnail, or a thumbnail option is invalid."""


class UnidentifiedImageError(ImageError):
    """The data is not an image in a format fastric reads (JPEG, PNG, GIF, WebP)."""


class DecompressionBombError(ImageError):
    """The image header announces more pixels than `max_pixels` allows; nothing was decoded."""


class CorruptImageError(ImageError):
    """The image data is truncated or damaged."""


class UnsupportedImageError(ImageError):
    """The image is valid but uses a feature fastric does not decode (e.g. 12-bit or lossless JPEG)."""


class EventDecodeError(FastricError, ValueError):
    """Part of an event does not decode as its event source documents it.

    Raised for a DynamoDB attribute value of the wrong shape, base64 data that does not decode, or a
    body that is not JSON. The message names the offending value and where it is.
    """
