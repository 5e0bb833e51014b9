"""The context object handed to handlers, attribute for attribute as the stock runtime builds it."""

from __future__ import annotations

import os
import sys
import time

from . import _logging

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Optional

__all__ = ["Client", "ClientContext", "CognitoIdentity", "LambdaContext"]

# Only these W3C trace-context fields are surfaced by `LambdaContext.w3c()`, and only as strings.
_W3C_FIELDS = ("traceparent", "tracestate", "baggage")

# What the context reports of the function, from the environment, read per invocation as the stock
# runtime reads it.
_FUNCTION_VARIABLES = (
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
)
_ENCODING = sys.getfilesystemencoding()
_ENCODED_FUNCTION_VARIABLES = tuple(name.encode(_ENCODING) for name in _FUNCTION_VARIABLES)


def _function_environment() -> list[Optional[str]]:
    # Five os.environ.get calls cost an invocation several microseconds; on POSIX, os.environ keeps
    # its variables current in an encoded table, which answers the same for a fraction of that.
    encoded = getattr(os.environ, "_data", None)
    if os.name != "posix" or not isinstance(encoded, dict):
        return [os.environ.get(name) for name in _FUNCTION_VARIABLES]
    values = map(encoded.get, _ENCODED_FUNCTION_VARIABLES)
    return [None if value is None else value.decode(_ENCODING, "surrogateescape") for value in values]


class CognitoIdentity:
    """The Amazon Cognito identity that authorised the call; fields are None without one."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity: Optional[dict[str, Any]] = None) -> None:
        self.cognito_identity_id = None if identity is None else identity.get("cognitoIdentityId")
        self.cognito_identity_pool_id = None if identity is None else identity.get("cognitoIdentityPoolId")

    def __repr__(self) -> str:
        return (
            f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}])"
        )


class Client:
    """The mobile client application that invoked the function."""

    __slots__ = ("app_package_name", "app_title", "app_version_code", "app_version_name", "installation_id")

    def __init__(self, client: dict[str, Any]) -> None:
        self.installation_id = client.get("installation_id")
        self.app_title = client.get("app_title")
        self.app_version_name = client.get("app_version_name")
        self.app_version_code = client.get("app_version_code")
        self.app_package_name = client.get("app_package_name")

    def __repr__(self) -> str:
        return (
            f"Client([installation_id={self.installation_id},app_title={self.app_title},"
            f"app_version_name={self.app_version_name},app_version_code={self.app_version_code},"
            f"app_package_name={self.app_package_name}])"
        )


class ClientContext:
    """The client context the invoker passed: `custom`, `env` and `client`."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, context: dict[str, Any]) -> None:
        self.custom = context.get("custom")
        self.env = context.get("env")
        client = context.get("client")
        self.client = None if client is None else Client(client)

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


class LambdaContext:
    """What a handler receives as its second argument."""

    def __init__(
        self,
        invoke_id: str,
        client_context: Optional[Any],
        cognito_identity: Optional[Any],
        epoch_deadline_time_in_ms: int,
        invoked_function_arn: Optional[str] = None,
        tenant_id: Optional[str] = None,
    ) -> None:
        self.aws_request_id = invoke_id
        (
            self.log_group_name,
            self.log_stream_name,
            self.function_name,
            self.memory_limit_in_mb,
            self.function_version,
        ) = _function_environment()
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._w3c_fields = self._extract_and_strip_w3c(client_context)
        self.client_context = None if client_context is None else ClientContext(client_context)
        self.identity = CognitoIdentity(cognito_identity)
        self._epoch_deadline_time_in_ms = epoch_deadline_time_in_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation times out, never negative."""
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def w3c(self) -> dict[str, str]:
        """The W3C trace context (`traceparent`, `tracestate`, `baggage`) the invoker passed."""
        return dict(self._w3c_fields)

    @staticmethod
    def _extract_and_strip_w3c(client_context: Any) -> dict[str, str]:
        # The `w3c` entry is removed from the client context so that it is read through `w3c()` only.
        if not isinstance(client_context, dict) or "w3c" not in client_context:
            return {}
        carried = client_context.pop("w3c")
        if not isinstance(carried, dict):
            return {}
        return {key: carried[key] for key in _W3C_FIELDS if isinstance(carried.get(key), str)}

    def log(self, msg: Any) -> None:
        """Writes `msg` to the function's log as one record, without a level or a newline."""
        _logging.context_log(str(msg))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},identity={self.identity},tenant_id={self.tenant_id}])"
        )
