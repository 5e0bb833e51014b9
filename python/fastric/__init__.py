"""fastric: a fast, drop-in replacement for the AWS Lambda runtime interface client for Python."""

from ._fastric import __version__
from .errors import (
    CorruptImageError,
    DecompressionBombError,
    EventDecodeError,
    FastricError,
    ImageError,
    RuntimeApiError,
    UnidentifiedImageError,
    UnsupportedImageError,
)

__all__ = [
    "CorruptImageError",
    "DecompressionBombError",
    "EventDecodeError",
    "FastricError",
    "ImageError",
    "RuntimeApiError",
    "UnidentifiedImageError",
    "UnsupportedImageError",
    "__version__",
]
