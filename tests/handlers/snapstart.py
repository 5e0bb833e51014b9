"""A function with SnapStart runtime hooks; `SNAPSTART_FAIL` picks a hook that fails, and how.

The handler reports which hooks ran, in order, and what is left in the hook registries.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from snapshot_restore_py import get_after_restore, get_before_snapshot, register_after_restore, register_before_snapshot

CALLS: list[str] = []
FAIL = os.environ.get("SNAPSTART_FAIL", "")


class HookError(Exception):
    """Raised by a hook asked to fail."""


def record(name: str, *args: Any, **kwargs: Any) -> None:
    CALLS.append(" ".join([name, *map(str, args), *(f"{key}={value}" for key, value in sorted(kwargs.items()))]))


def _fail_if(when: str) -> None:
    if when == FAIL:
        raise HookError(f"{when} hook failed")
    if f"{when}_exit" == FAIL:
        sys.exit(9)


register_before_snapshot(record, "before-1")
register_before_snapshot(record, "before-2", "arg", key="kw")


@register_before_snapshot
def before_last() -> None:
    record("before-3")
    _fail_if("before")


@register_after_restore
def after_first() -> None:
    record("after-1")
    _fail_if("after")


register_after_restore(record, "after-2", 3)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return {"calls": CALLS, "before_left": len(get_before_snapshot()), "after_left": len(get_after_restore())}
