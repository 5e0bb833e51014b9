"""A module the handler calls into, so that an error's frames span two files."""

from __future__ import annotations


def fail(message: str) -> None:
    raise LookupError(message)
