"""Handlers that succeed, or fail only where a test asks them to."""

from __future__ import annotations

import datetime
import os
import sys
from typing import Any


def echo(event: Any, context: Any) -> Any:
    """Return the event unchanged."""
    return event


def none(event: Any, context: Any) -> None:
    """Return nothing."""


def raw_bytes(event: Any, context: Any) -> bytes:
    """Return bytes, which a runtime sends as they are."""
    return b"\x00\xffraw \xe2\x9c\x93 bytes"


def noop(event: Any, context: Any) -> int:
    """Do nothing, cheaply."""
    return 1


def exit_three(event: Any, context: Any) -> None:
    """Leave the process, which no runtime catches."""
    sys.exit(3)


def unserializable(event: Any, context: Any) -> Any:
    """Return what the event asks for, some of it not JSON serializable."""
    kind = event.get("return") if isinstance(event, dict) else None
    if kind == "datetime":
        return {"at": datetime.datetime(2024, 1, 2, 3, 4, 5)}
    if kind == "set":
        return {1, 2}
    return event


def context_report(event: Any, context: Any) -> dict[str, Any]:
    """Report what the context and the environment say about this invocation."""
    client_context = context.client_context
    client = None if client_context is None else client_context.client
    return {
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_time_in_millis": context.get_remaining_time_in_millis(),
        "identity": {
            "cognito_identity_id": context.identity.cognito_identity_id,
            "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
        },
        "client_context": None
        if client_context is None
        else {
            "custom": client_context.custom,
            "env": client_context.env,
            "client": None
            if client is None
            else {
                "installation_id": client.installation_id,
                "app_title": client.app_title,
                "app_version_name": client.app_version_name,
                "app_version_code": client.app_version_code,
                "app_package_name": client.app_package_name,
            },
        },
        "tenant_id": context.tenant_id,
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
    }
