"""The runtime: logging set-up, handler import, init errors and the invocation loop.

The loop itself runs in the native core, which calls `invoke` once per invocation; this module keeps
the handler contract: how handlers are found, what they receive, and what their errors look like.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from typing import Any, Callable, NoReturn

from . import _fastric, _logging
from ._marshal import (
    ENSURE_ASCII,
    FaultError,
    decode_reference,
    encode_reference,
    error_document,
    format_frames,
    to_json,
    user_frames,
    xray_cause,
)
from .context import LambdaContext
from .errors import RuntimeApiError

__all__ = ["load_handler", "run"]

Handler = Callable[[Any, LambdaContext], Any]

_TRACE_ENV = "_X_AMZN_TRACE_ID"
# A fault is a runtime-made error; X-Ray files those under this type, with no stack.
_FAULT_XRAY_TYPE = "LambdaValidationError"
# The exit statuses the platform expects when a snapshot hook fails.
_EXIT_BEFORE_SNAPSHOT = 64
_EXIT_AFTER_RESTORE = 65


def run(handler_name: str) -> NoReturn:
    """Serves invocations of `handler_name` from the Runtime API at `AWS_LAMBDA_RUNTIME_API`."""
    _put_task_root_first()
    _logging.setup()
    client = _fastric.RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"], _user_agent())

    # Import the handler; a failure is reported as the init error and ends the process.
    try:
        handler = load_handler(handler_name)
    except FaultError as fault:
        _fail_init(client, error_document(fault.message, fault.error_type, fault.stack_trace, ""), fault.error_type)
    except Exception as error:
        document = _exception_document(error, "")
        _fail_init(client, document, document["errorType"])

    # A snapshotted function runs its hooks around the snapshot before serving.
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        _run_snapshot_hooks(client)

    try:
        client.run(_invoker(handler), _decode_fallback, _encode_fallback, ensure_ascii=ENSURE_ASCII)
    except RuntimeApiError as error:
        _runtime_failure(error)
    raise AssertionError("the invocation loop returned")  # pragma: no cover - the loop only raises


def load_handler(handler_name: str) -> Handler:
    """Imports `module.function` (or `path/module.function`) and returns the function.

    Raises:
        FaultError: with the `Runtime.*` error type the platform reports for a bad handler.
    """
    try:
        module_name, function_name = handler_name.rsplit(".", 1)
    except ValueError as error:
        raise FaultError("Runtime.MalformedHandlerName", f"Bad handler '{handler_name}': {error}") from None

    try:
        if module_name.split(".")[0] in sys.builtin_module_names:
            raise FaultError(
                "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {module_name} as a handler module"
            )
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as error:
        raise FaultError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}") from None
    except SyntaxError as error:
        trace = [f'  File "{error.filename}" Line {error.lineno}\n    {error.text}']
        message = f"Syntax error in module '{module_name}': {error}"
        raise FaultError("Runtime.UserCodeSyntaxError", message, trace) from None

    try:
        return getattr(module, function_name)
    except AttributeError:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        raise FaultError("Runtime.HandlerNotFound", message) from None


def _put_task_root_first() -> None:
    # The managed runtime's bootstrap puts the function's folder first on the import path, so a
    # function module shadows anything of the same name installed elsewhere.
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root and (not sys.path or sys.path[0] != task_root):
        sys.path.insert(0, task_root)


def _user_agent() -> str:
    return f"aws-lambda-python/{platform.python_version()}-fastric/{_fastric.__version__}"


def _invoker(handler: Handler) -> Callable[[_fastric.Invocation, Any], Any]:
    environ = os.environ

    def invoke(invocation: _fastric.Invocation, event: Any) -> Any:
        _begin(invocation, environ)
        request_id = invocation.request_id
        try:
            context = _context_for(invocation)
            return handler(event, context)
        except FaultError as fault:
            return _fault_response(fault, request_id)
        except Exception as error:
            return _error_response(error, request_id)

    return invoke


def _begin(invocation: _fastric.Invocation, environ: Any = os.environ) -> None:
    _logging.set_request(invocation.request_id, invocation.tenant_id)
    trace_id = invocation.trace_id
    if trace_id is None:
        environ.pop(_TRACE_ENV, None)
    else:
        environ[_TRACE_ENV] = trace_id


def _context_for(invocation: _fastric.Invocation) -> LambdaContext:
    client_context = invocation.client_context
    cognito_identity = invocation.cognito_identity
    return LambdaContext(
        invocation.request_id,
        _parse_header_json(client_context, "Client Context") if client_context else None,
        _parse_header_json(cognito_identity, "Cognito Identity") if cognito_identity else None,
        invocation.deadline_ms,
        invocation.invoked_function_arn,
        invocation.tenant_id,
    )


def _parse_header_json(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except Exception as error:
        raise FaultError("Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {error}") from None


def _decode_fallback(invocation: _fastric.Invocation, body: bytes) -> Any:
    try:
        return decode_reference(body)
    except FaultError as fault:
        _begin(invocation)
        return _fault_response(fault, invocation.request_id)


def _encode_fallback(invocation: _fastric.Invocation, result: Any) -> Any:
    try:
        return encode_reference(result)
    except FaultError as fault:
        return _fault_response(fault, invocation.request_id)


def _fault_response(fault: FaultError, request_id: str) -> _fastric.ErrorResponse:
    document = error_document(fault.message, fault.error_type, fault.stack_trace, request_id)
    _logging.log_error(document["errorType"], document["errorMessage"], document["stackTrace"])
    cause = xray_cause(_FAULT_XRAY_TYPE, fault.message, [])
    return _fastric.ErrorResponse(fault.error_type, to_json(document), xray_cause=cause)


def _error_response(error: BaseException, request_id: str) -> _fastric.ErrorResponse:
    error_type = type(error).__name__
    message = _describe(error)
    frames = user_frames(error.__traceback__)
    document = error_document(message, error_type, format_frames(frames), request_id)
    _logging.log_error(error_type, message, document["stackTrace"])
    cause = xray_cause(error_type, message, frames)
    return _fastric.ErrorResponse(error_type, to_json(document), xray_cause=cause)


def _exception_document(error: BaseException, request_id: str) -> dict[str, Any]:
    frames = user_frames(error.__traceback__)
    return error_document(_describe(error), type(error).__name__, format_frames(frames), request_id)


def _describe(error: BaseException) -> str:
    # An exception whose __str__ fails still deserves a report; the stock runtime crashes here.
    try:
        return str(error)
    except Exception:
        return f"<exception str() failed: {type(error).__name__}>"


def _fail_init(client: _fastric.RuntimeClient, document: dict[str, Any], error_type: str) -> NoReturn:
    _report_init_error(client, document, error_type)
    sys.exit(1)


def _report_init_error(client: _fastric.RuntimeClient, document: dict[str, Any], error_type: str) -> None:
    _logging.warn_unhandled()
    _logging.log_error(document["errorType"], document["errorMessage"], document["stackTrace"])
    try:
        client.post_init_error(error_type, to_json(document))
    except RuntimeApiError as error:
        _runtime_failure(error)


def _run_snapshot_hooks(client: _fastric.RuntimeClient) -> None:
    before_snapshot, after_restore = _snapshot_hook_registries()
    try:
        # Hooks run in reverse order of registration before the snapshot, in order after it.
        while before_snapshot:
            function, args, kwargs = before_snapshot.pop()
            function(*args, **kwargs)
        client.restore_next()
    except BaseException as error:  # the platform must hear of any failure here, exits included
        document = _exception_document(error, "")
        _report_init_error(client, document, "Runtime.BeforeSnapshotError")
        sys.exit(_EXIT_BEFORE_SNAPSHOT)

    try:
        for function, args, kwargs in after_restore:
            function(*args, **kwargs)
    except BaseException as error:  # the platform must hear of any failure here, exits included
        document = _exception_document(error, "")
        _logging.log_error(document["errorType"], document["errorMessage"], document["stackTrace"])
        try:
            client.post_restore_error("Runtime.AfterRestoreError", to_json(document))
        except RuntimeApiError as post_error:
            _runtime_failure(post_error)
        sys.exit(_EXIT_AFTER_RESTORE)


def _snapshot_hook_registries() -> tuple[list[Any], list[Any]]:
    try:
        from snapshot_restore_py import get_after_restore, get_before_snapshot
    except ImportError:
        return [], []
    return get_before_snapshot(), get_after_restore()


def _runtime_failure(error: RuntimeApiError) -> NoReturn:
    # Lambda replaces an environment whose runtime exits, which is the one recovery there is.
    sys.stdout.write(f"[ERROR] [{int(time.time() * 1000)}] LAMBDA_RUNTIME {error}\n")
    sys.stdout.flush()
    sys.exit(1)
