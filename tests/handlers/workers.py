"""Handlers for multi-worker runs: which process imported the module, and which one serves.

`meet` holds each invocation until as many distinct workers as the event asks for have arrived, so
that a run can prove that several processes serve at the same time. The meeting point is a folder
named by `WORKERS_MEETING_DIR`; each worker leaves a file named after its process id there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

IMPORTED_BY = os.getpid()
# How long a worker waits for the others before answering anyway, so a single worker fails fast.
MEETING_TIMEOUT = 4.0


def meet(event: Any, context: Any) -> dict[str, Any]:
    """Wait until `event["workers"]` processes are in this handler, then report the process."""
    folder = Path(os.environ["WORKERS_MEETING_DIR"])
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + MEETING_TIMEOUT
    while len(list(folder.iterdir())) < event["workers"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"pid": os.getpid(), "imported_by": IMPORTED_BY, "met": len(list(folder.iterdir()))}


def pid(event: Any, context: Any) -> dict[str, int]:
    """The serving process, and the one that imported this module."""
    return {"pid": os.getpid(), "imported_by": IMPORTED_BY}


def fail(event: Any, context: Any) -> None:
    raise ValueError("worker failure")
