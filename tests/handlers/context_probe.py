"""Handlers describing the context object: every attribute, its type, and how it behaves."""

from __future__ import annotations

import os
import time
from typing import Any

ATTRIBUTES = (
    "aws_request_id",
    "log_group_name",
    "log_stream_name",
    "function_name",
    "memory_limit_in_mb",
    "function_version",
    "invoked_function_arn",
    "tenant_id",
    "client_context",
    "identity",
)


def _slots_of(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {name: _plain(getattr(value, name, "<absent>")) for name in type(value).__slots__}


def _plain(value: Any) -> Any:
    # Slot objects nested in the context become dicts so that the report is JSON.
    if hasattr(type(value), "__slots__") and not isinstance(value, (str, int, float, bool, type(None), dict, list)):
        return {"type": type(value).__name__, "fields": _slots_of(value)}
    return value


def _can_set(target: Any, name: str) -> bool:
    try:
        setattr(target, name, 1)
    except AttributeError:
        return False
    return True


def describe(event: Any, context: Any) -> dict[str, Any]:
    """Report every attribute with its type, the w3c fields and the object's shape."""
    client_context = context.client_context
    return {
        "types": {name: type(getattr(context, name)).__name__ for name in ATTRIBUTES},
        "values": {name: _plain(getattr(context, name)) for name in ATTRIBUTES},
        "repr": repr(context),
        "w3c": context.w3c(),
        "remaining_type": type(context.get_remaining_time_in_millis()).__name__,
        "context_accepts_attributes": _can_set(context, "custom_attribute"),
        "identity_accepts_attributes": _can_set(context.identity, "custom_attribute"),
        "client_context_slots": None if client_context is None else sorted(type(client_context).__slots__),
        "identity_slots": sorted(type(context.identity).__slots__),
        "public_names": sorted(name for name in dir(context) if not name.startswith("_")),
    }


def remaining(event: Any, context: Any) -> list[int]:
    """Remaining time read twice, a few milliseconds apart."""
    first = context.get_remaining_time_in_millis()
    start = time.monotonic()
    while time.monotonic() - start < 0.005:
        pass
    return [first, context.get_remaining_time_in_millis()]


def rename_function(event: Any, context: Any) -> dict[str, Any]:
    """Change the environment the context reads, and report what this invocation's context says."""
    seen = {"function_name": context.function_name, "memory_limit_in_mb": context.memory_limit_in_mb}
    os.environ["AWS_LAMBDA_FUNCTION_NAME"] = event["rename_to"]
    os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = "2048"
    return seen


def log_message(event: Any, context: Any) -> str:
    """Write through `context.log`, as older handlers do."""
    context.log(event["message"])
    return "logged"
