"""Handlers for local mode's Invoke API tests; the event says what to do."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

# Module state shows whether init ran again: a fresh process starts from zero.
calls = 0
kept: list[bytes] = []

time.sleep(float(os.environ.get("INIT_SLEEP", "0")))
print("init done")


def work(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global calls
    calls += 1
    print(f"working on {context.aws_request_id}")
    if "stderr" in event:
        print(event["stderr"], file=sys.stderr)
    for _ in range(event.get("log_kb", 0)):
        print("." * 1023)
    if "allocate_mb" in event:
        # Written, not just reserved, so that the pages count as resident.
        kept.append(b"\x01" * (event["allocate_mb"] << 20))
    if "sleep" in event:
        time.sleep(event["sleep"])
    if event.get("spawn"):
        # A helper process the runtime leaves running between invocations.
        helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        return {"helper": helper.pid}
    if event.get("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if "fail" in event:
        raise RuntimeError(event["fail"])
    return {"pid": os.getpid(), "calls": calls, "memory": context.memory_limit_in_mb}
