"""Exceptions raised by fastric.

Each derives from :class:`FastricError` and from the standard exception that callers already catch
for that kind of failure.
"""

from __future__ import annotations

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Optional

__all__ = ["EventDecodeError", "FastricError", "RuntimeApiError"]


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


class EventDecodeError(FastricError, ValueError):
    """Part of an event does not decode as its event source documents it.

    Raised for a DynamoDB attribute value of the wrong shape, base64 data that does not decode, or a
    body that is not JSON. The message names the offending value and where it is.
    """
