"""fastric: a fast, drop-in replacement for the AWS Lambda runtime interface client for Python."""

from ._fastric import __version__
from .errors import EventDecodeError, FastricError, RuntimeApiError

__all__ = ["EventDecodeError", "FastricError", "RuntimeApiError", "__version__"]
