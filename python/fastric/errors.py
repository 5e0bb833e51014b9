"""Exceptions raised by fastric.

Each derives from :class:`FastricError` and from the standard exception that callers already catch
for that kind of failure.
"""

from __future__ import annotations

__all__ = ["FastricError", "RuntimeApiError"]


class FastricError(Exception):
    """Base class of every exception fastric raises."""


class RuntimeApiError(FastricError, ConnectionError):
    """The Lambda Runtime API could not be reached or answered with an error."""
