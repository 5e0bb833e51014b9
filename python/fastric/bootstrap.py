"""The runtime: logging set-up, handler import, init errors and the invocation loop.

The loop itself runs in the native core, which calls `invoke` once per invocation; this module keeps
the handler contract: how handlers are found, what they receive, and what their errors look like.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

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

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, NoReturn, Optional

    Handler = Callable[[Any, "LambdaContext"], Any]

__all__ = ["HandlerContract", "load_handler", "run", "run_workers"]


# The types of what generator and coroutine functions return, made as the `types` module makes
# them, which costs a cold start more than these few lines.
def _generator() -> Any:
    yield


async def _coroutine() -> None:
    pass


async def _async_generator() -> Any:
    yield


GeneratorType = type(_generator())
_probe = _coroutine()
CoroutineType = type(_probe)
_probe.close()
AsyncGeneratorType = type(_async_generator())
del _probe

_TRACE_ENV = "_X_AMZN_TRACE_ID"
# A fault is a runtime-made error; X-Ray files those under this type, with no stack.
_FAULT_XRAY_TYPE = "LambdaValidationError"
# The exit statuses the platform expects when a snapshot hook fails.
_EXIT_BEFORE_SNAPSHOT = 64
_EXIT_AFTER_RESTORE = 65
_MAX_RESPONSE = 6 * 1024 * 1024 + 100
_PAYLOAD_TOO_LARGE = 413
_FORBIDDEN = 403
# A Managed Instance worker asks for the next event this many times, waiting 0.1 s, then twice as
# long each time, as the stock runtime does.
_NEXT_ATTEMPTS = 5
_NEXT_FIRST_DELAY = 0.1


def run(handler_name: str, *, concurrent: bool = False) -> NoReturn:
    """Serves invocations of `handler_name` from the Runtime API at `AWS_LAMBDA_RUNTIME_API`.

    With `concurrent`, the process is one of several workers of a Lambda Managed Instance: a failing
    `next` is retried with backoff, a failed post is logged and the loop goes on, and an init error
    that another worker already reported (403) is not an error.
    """
    _arrange_import_path()
    _logging.setup()
    client = _fastric.RuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"], _user_agent())

    # Import the handler; a failure is reported as the init error and ends the process.
    try:
        handler = load_handler(handler_name)
    except FaultError as fault:
        document = error_document(fault.message, fault.error_type, fault.stack_trace, "")
        _fail_init(client, document, fault.error_type, concurrent=concurrent)
    except Exception as error:
        document = _exception_document(error, "")
        _fail_init(client, document, document["errorType"], concurrent=concurrent)

    # A snapshotted function runs its hooks around the snapshot before serving.
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        _run_snapshot_hooks(client)

    contract = (_WorkerContract if concurrent else HandlerContract)(handler)
    try:
        client.run(contract, ensure_ascii=ENSURE_ASCII)
    except RuntimeApiError as error:
        _runtime_failure(error)
    raise AssertionError("the invocation loop returned")  # pragma: no cover - the loop only raises


def run_workers(handler_name: str, count: int) -> int:
    """Runs `count` worker processes, each its own runtime, as a Lambda Managed Instance does.

    Returns the exit status once every worker has ended.
    """
    _logging.setup()
    import logging

    worker_pool = {"event": "runtime_worker_pool_initializing", "workerCount": count}
    logging.getLogger().debug({**worker_pool, "executionEnvironmentMaxConcurrency": count})
    # The workers log through their standard streams; the telemetry descriptor is the parent's.
    _logging.teardown()

    workers = [_fork_worker(handler_name) for _ in range(count)]
    for pid in workers:
        os.waitpid(pid, 0)
    return 0


def _fork_worker(handler_name: str) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    status = 1
    try:
        socket_path = os.environ.get("_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET")
        if socket_path:
            _redirect_output(socket_path)
        run(handler_name, concurrent=True)
    except SystemExit as exit_request:
        status = exit_request.code if isinstance(exit_request.code, int) else int(exit_request.code is not None)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _redirect_output(socket_path: str) -> None:
    # Each worker's stdout and stderr go to a stream socket of the platform's, one per stream.
    import socket

    for stream in (sys.stdout, sys.stderr):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(socket_path)
            os.dup2(connection.fileno(), stream.fileno())


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


def _arrange_import_path() -> None:
    # The managed runtime's bootstrap puts the function's folder first on the import path, so a
    # function module shadows anything of the same name installed elsewhere.
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    # Where the stock runtime's own imports found their modules: not the function's folder or
    # the working directory (where `python -m` looks first), which hold the function's modules.
    function_folders = {"", os.getcwd(), task_root}
    sys.meta_path.insert(0, _PreloadedElsewhere([entry for entry in sys.path if entry not in function_folders]))
    if task_root and (not sys.path or sys.path[0] != task_root):
        sys.path.insert(0, task_root)


class _PreloadedElsewhere:
    """Finds the modules the stock runtime has already imported before it loads the function (the
    standard library's it uses, simplejson) on the import path as it was then, before the
    function's folder went first and before the function could change it.

    fastric imports those lazily to start faster; without this, a function's `logging.py`,
    `token.py` or `string.py` would shadow them for the runtime and the function alike, where under
    the stock runtime it shadows nothing, and an import of `traceback` on an error path would
    depend on the function not having emptied `sys.path`.
    """

    _NAMES = frozenset(
        (
            "atexit",
            "copyreg",
            "decimal",
            "enum",
            "json",
            "linecache",
            "logging",
            "math",
            "numbers",
            "re",
            "simplejson",
            "string",
            "textwrap",
            "threading",
            "token",
            "tokenize",
            "traceback",
            "weakref",
        )
    )

    def __init__(self, path: list[str]) -> None:
        self._path = path

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if path is not None or name not in self._NAMES:
            return None
        from importlib.machinery import PathFinder

        return PathFinder.find_spec(name, self._path, target)


def _user_agent() -> str:
    python_version = ".".join(str(part) for part in sys.version_info[:3])
    return f"aws-lambda-python/{python_version}-fastric/{_fastric.__version__}"


class HandlerContract:
    """What the native loop calls: the handler for each event, and the runtime's answers to the
    cases the loop cannot settle alone."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._environ = os.environ
        self._event_loop: Any = None

    def invoke(self, invocation: _fastric.Invocation, event: Any) -> Any:
        """Runs the handler; returns its result, or the ErrorResponse for what it raised."""
        self._begin(invocation)
        try:
            result = self._handler(event, _context_for(invocation))
            result_type = type(result)
            if result_type is CoroutineType:
                result = self._await(result)
                result_type = type(result)
            if result_type is GeneratorType:
                return _fastric.ResponseStream(result)
            if result_type is AsyncGeneratorType:
                return _fastric.ResponseStream(self._iterate(result))
            if result_type is _fastric.ResponseStream and _is_async_iterable(result.chunks):
                return _fastric.ResponseStream(
                    self._iterate(result.chunks), content_type=result.content_type, prelude=result.prelude
                )
            return result
        except FaultError as fault:
            return _fault_response(fault, invocation.request_id)
        except Exception as error:
            return _error_response(error, invocation.request_id)

    def decode_fallback(self, invocation: _fastric.Invocation, body: bytes) -> Any:
        """Decodes an event the native decoder could not, or reports why it is not JSON."""
        try:
            return decode_reference(body)
        except FaultError as fault:
            self._begin(invocation)
            return _fault_response(fault, invocation.request_id)

    def encode_fallback(self, invocation: _fastric.Invocation, result: Any) -> Any:
        """Encodes a result the native encoder stepped aside from, or reports why it cannot be."""
        try:
            return encode_reference(result)
        except FaultError as fault:
            return _fault_response(fault, invocation.request_id)

    def response_too_large(self, invocation: _fastric.Invocation, size: int) -> _fastric.ErrorResponse:
        """The error Lambda reports for a response over the payload limit, which is not sent."""
        message = f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({_MAX_RESPONSE} bytes)."
        return _fault_response(FaultError("Function.ResponseSizeTooLarge", message), invocation.request_id)

    def next_failed(self, error: RuntimeApiError, attempt: int) -> Optional[float]:
        """Seconds to wait before asking for the next event again, or None to give up."""
        return None

    def post_failed(self, invocation: _fastric.Invocation, error: RuntimeApiError) -> None:
        """Decides whether the loop survives a refused post; raises to end it."""
        if error.status == _PAYLOAD_TOO_LARGE:
            # The platform has already failed the invocation; the environment is still sound.
            sys.stdout.write(f"[ERROR] [{_now_ms()}] LAMBDA_RUNTIME {error}\n")
            return
        raise error

    def stream_failed(self, invocation: _fastric.Invocation, error: Exception) -> _fastric.ErrorResponse:
        """The error to report for a streamed response whose chunks raised `error`."""
        return _error_response(error, invocation.request_id)

    def _begin(self, invocation: _fastric.Invocation) -> None:
        _logging.set_request(invocation.request_id, invocation.tenant_id)
        trace_id = invocation.trace_id
        if trace_id is None:
            self._environ.pop(_TRACE_ENV, None)
        else:
            self._environ[_TRACE_ENV] = trace_id

    def _await(self, coroutine: Any) -> Any:
        # One event loop serves every invocation, so clients bound to it survive between them.
        if self._event_loop is None:
            import asyncio

            self._event_loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._event_loop)
        return self._event_loop.run_until_complete(coroutine)

    def _iterate(self, chunks: Any) -> Any:
        # An async generator is driven on the same event loop, one chunk at a time.
        iterator = chunks.__aiter__()
        while True:
            try:
                yield self._await(iterator.__anext__())
            except StopAsyncIteration:
                return


def _is_async_iterable(chunks: Any) -> bool:
    return hasattr(chunks, "__aiter__") and not hasattr(chunks, "__iter__")


class _WorkerContract(HandlerContract):
    """A Lambda Managed Instance worker: the loop outlives Runtime API hiccups."""

    def next_failed(self, error: RuntimeApiError, attempt: int) -> Optional[float]:
        import logging  # the worker's records go through the root logger, as the stock runtime's do

        if attempt == 1:
            logging.warning(f"Initial runtime_client.next() failed: {error}")
        else:
            logging.warning(f"Attempt {attempt} failed: {error}")
        if attempt >= _NEXT_ATTEMPTS:
            return None
        logging.info(f"Retrying runtime_client.next() [attempt {attempt + 1}]...")
        return _NEXT_FIRST_DELAY * 2 ** (attempt - 1)

    def post_failed(self, invocation: _fastric.Invocation, error: RuntimeApiError) -> None:
        import logging

        logging.warning(f"{error}: This won't kill the Runtime loop")


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
    import json

    try:
        return json.loads(value)
    except Exception as error:
        raise FaultError("Runtime.LambdaContextUnmarshalError", f"Unable to parse {name} JSON: {error}") from None


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


def _fail_init(
    client: _fastric.RuntimeClient, document: dict[str, Any], error_type: str, *, concurrent: bool = False
) -> NoReturn:
    _report_init_error(client, document, error_type, concurrent=concurrent)
    sys.exit(1)


def _report_init_error(
    client: _fastric.RuntimeClient,
    document: dict[str, Any],
    error_type: str,
    *,
    concurrent: bool = False,
    warn: bool = True,
) -> None:
    # The unhandled-exception warning points at function code; a snapshot hook's failure gets none.
    if warn:
        _logging.warn_unhandled()
    _logging.log_error(document["errorType"], document["errorMessage"], document["stackTrace"])
    try:
        client.post_init_error(error_type, to_json(document))
    except RuntimeApiError as error:
        # Among Managed Instance workers only the first init error is taken; the rest get 403.
        if not (concurrent and error.status == _FORBIDDEN):
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
        _report_init_error(client, document, "Runtime.BeforeSnapshotError", warn=False)
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
    sys.stdout.write(f"[ERROR] [{_now_ms()}] LAMBDA_RUNTIME {error}\n")
    sys.stdout.flush()
    sys.exit(1)


def _now_ms() -> int:
    return int(time.time() * 1000)
