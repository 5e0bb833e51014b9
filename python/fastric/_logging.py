"""Runtime logging: the root log handler, telemetry frames and the runtime's own error lines.

Everything written here matches awslambdaric 4.2.2 byte for byte (text and JSON layouts, frame
headers, level mapping), so metric filters, subscription filters and log tooling written for the
stock runtime keep working. The format and level are read once, by `setup()`, before the handler
module is imported; the handlers that need the `logging` package are in `_log_handlers`.

Where the stock runtime fails, this module degrades instead:

- an unusable `_LAMBDA_TELEMETRY_LOG_FD` (not a number, or a closed descriptor) falls back to
  stdout rather than killing the runtime before init;
- a message that cannot be encoded as UTF-8 (lone surrogates) is framed with backslash escapes
  instead of being dropped;
- a short write on the telemetry descriptor is completed, so a frame is never cut in half;
- `sys.stdout.write` returns the number of characters written, as a real stream does, not None.
"""

from __future__ import annotations

import os
import sys
import time

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self, TextIO


# Indexed by `_level_index(levelno)`: NOTSET, DEBUG, INFO, WARNING, ERROR, CRITICAL.
_TEXT_FRAME_TYPES: tuple[bytes, ...] = tuple(
    code.to_bytes(4, "big") for code in (0xA55A0003, 0xA55A000B, 0xA55A000F, 0xA55A0013, 0xA55A0017, 0xA55A001B)
)
_JSON_FRAME_TYPES: tuple[bytes, ...] = tuple(
    code.to_bytes(4, "big") for code in (0xA55A0002, 0xA55A000A, 0xA55A000E, 0xA55A0012, 0xA55A0016, 0xA55A001A)
)
_DEFAULT_FRAME_TYPE = _TEXT_FRAME_TYPES[0]
_ERROR_INDEX = 4

# The stock runtime's JSON logs carry whole seconds only.
_JSON_DATEFMT = "%Y-%m-%dT%H:%M:%SZ"

# Record attributes never copied into a JSON log line as extra fields.
_RESERVED_ATTRIBUTES = frozenset(
    (
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "aws_request_id",
        "tenant_id",
        "_frame_type",
    )
)

# Execution environments whose runtime error JSON keeps non-ASCII characters unescaped.
_UNESCAPED_ENVS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15))

_NBSP = "\u00a0"

# The first sentence is the marker users filter CloudWatch logs on, so it is kept as Lambda
# writes it; the rest explains, in fastric's words, what to check, and ends with the doc link.
_UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "Less often, an update of the Lambda runtime changes how a function behaves. "
    "On managed runtimes such updates arrive automatically or together with a change to the function. "
    "The runtime version in use is shown in the INIT_START log entry; "
    "if this error started when that version changed, "
    "rolling back to the previous runtime version for a while can work around it. "
    "See https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)

# Current invocation, stamped on every record by `LambdaLoggerFilter`. Module globals rather than
# thread-locals: records logged from threads the handler starts belong to the invocation too.
_request_id = ""
_tenant_id: str | None = None


def _level_index(levelno: int) -> int:
    """Clamp a level to 0..50 and floor it to a multiple of ten, as an index into the frame tables."""
    return min(5, max(0, levelno) // 10)


def _level_from_env(value: str | None) -> str:
    """Map `AWS_LAMBDA_LOG_LEVEL` the way the stock runtime does (only exact `TRACE` means DEBUG)."""
    if value is None:
        return ""
    if value == "TRACE":
        return "DEBUG"
    return value.upper()


class Unbuffered:
    """Proxy for `sys.stdout`/`sys.stderr` that flushes after every write.

    Lambda freezes the process between invocations, so anything left in a buffer would show up
    late, in the next invocation's logs, or never.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # `with sys.stdout:` must not close the real stream.
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        self.stream.flush()
        return written

    def writelines(self, lines: Any) -> None:
        self.stream.writelines(lines)
        self.stream.flush()


class _StdoutSink:
    """Writes log text to whatever `sys.stdout` is at the time of the call."""

    def log(self, message: str, frame_type: bytes | None = None) -> None:
        sys.stdout.write(message)

    def log_error(self, lines: list[str], frame_type: bytes) -> None:
        # One CloudWatch event per stdout line: `\r` keeps a multi-line error in one event.
        sys.stdout.write("\r".join(lines) + "\n")


class _FramedSink:
    """Writes each message as one frame on the telemetry log descriptor.

    Frame: 4-byte type, 4-byte payload length, 8-byte timestamp in microseconds since the epoch,
    UTF-8 payload, all big-endian, handed to the descriptor in one write.
    """

    def __init__(self, file: Any) -> None:
        self.file = file
        self._write = file.write

    def log(self, message: str, frame_type: bytes | None = None) -> None:
        payload = message.encode("utf-8", "backslashreplace")
        header = len(payload).to_bytes(4, "big") + (time.time_ns() // 1000).to_bytes(8, "big")
        frame = (frame_type or _DEFAULT_FRAME_TYPE) + header + payload
        written = self._write(frame)
        if written != len(frame):
            self._finish(frame, written or 0)

    def _finish(self, frame: bytes, written: int) -> None:
        view = memoryview(frame)
        while written < len(frame):
            written += self._write(view[written:]) or 0

    def log_error(self, lines: list[str], frame_type: bytes) -> None:
        self.log("\n".join(lines), frame_type)


_sink: _StdoutSink | _FramedSink = _StdoutSink()
_json_format = False
_level = ""
_configured = False


def _open_sink() -> _StdoutSink | _FramedSink:
    # Removed from the environment so that child processes do not write frames of their own.
    raw_fd = os.environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    if raw_fd is None:
        return _StdoutSink()
    try:
        return _FramedSink(os.fdopen(int(raw_fd), "wb", 0))
    except (ValueError, OSError):
        return _StdoutSink()


def setup() -> None:
    """Configure logging for the runtime; call once, before the handler module is imported.

    Reads `AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL` and `_LAMBDA_TELEMETRY_LOG_FD`, makes
    stdout and stderr unbuffered, switches all log timestamps to UTC and adds one handler to the
    root logger (which also makes a later `logging.basicConfig()` a no-op).
    """
    global _sink, _json_format, _level, _configured
    if _configured:
        return
    _configured = True

    for stream in (sys.stdout, sys.stderr):
        # On a stream that cannot encode a character (an ASCII locale, say), a log line with one
        # would crash the runtime mid-invocation; it is written with backslash escapes instead.
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if not isinstance(sys.stdout, Unbuffered):
        sys.stdout = Unbuffered(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, Unbuffered):
        sys.stderr = Unbuffered(sys.stderr)  # type: ignore[assignment]
    _sink = _open_sink()

    log_format = os.environ.get("AWS_LAMBDA_LOG_FORMAT")
    _json_format = (log_format or "").upper() == "JSON"
    _level = _level_from_env(os.environ.get("AWS_LAMBDA_LOG_LEVEL"))

    # The `logging` package costs a cold start about as much as the interpreter itself, so the
    # root logger is set up the moment anything imports it, and a function that never logs
    # through it never pays for it.
    if "logging" in sys.modules:
        _configure_root()
    else:
        sys.meta_path.insert(0, _ConfigureOnImport())


def _configure_root() -> None:
    from ._log_handlers import configure_root

    configure_root(_sink, json_format=_json_format, level=_level)


class _ConfigureOnImport:
    """An import hook that hands `logging` to whoever imports it first with the root logger
    already set up; it leaves once `logging` has been loaded."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _ThenConfigure(spec.loader)
                return spec
        return None


class _ThenConfigure:
    """Loads a module with `loader`, then sets up the root logger."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # The module keeps its real loader; this one only adds a step after it. A spec that was
        # only looked at (importlib.util.find_spec) leaves the hook in place for the real import.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _remove_import_hook()
        _configure_root()


def _remove_import_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _ConfigureOnImport)]


def teardown() -> None:
    """Undo `setup`: remove the runtime's root handler and close the telemetry descriptor.

    Used before forking workers, each of which sets logging up again for itself.
    """
    global _sink, _configured
    _remove_import_hook()
    if "logging" in sys.modules:
        from ._log_handlers import remove_root_handler

        remove_root_handler()
    if isinstance(_sink, _FramedSink):
        _sink.file.close()
    _sink = _StdoutSink()
    _configured = False


def set_request(request_id: str, tenant_id: str | None) -> None:
    """Make `request_id` and `tenant_id` the ones stamped on log records from now on."""
    global _request_id, _tenant_id
    _request_id = request_id or ""
    _tenant_id = tenant_id


def _error_text_lines(error_type: str, error_message: str, stack_trace: list[str]) -> list[str]:
    head = "[ERROR]"
    if error_type:
        head += " " + error_type
    if error_message:
        head += (": " if error_type else " ") + error_message
    lines = [head, "Traceback (most recent call last):"]
    for item in stack_trace:
        if item == "":
            lines.append("")
            continue
        for line in item.splitlines():
            body = line.lstrip(" ")
            lines.append(_NBSP * (len(line) - len(body)) + body)
    return lines


def _error_json(error_type: str, error_message: str, stack_trace: list[str]) -> str:
    import simplejson

    # Same encoder settings as the error document posted to the Runtime API.
    encoder = simplejson.JSONEncoder(
        use_decimal=False,
        allow_nan=True,
        ensure_ascii=os.environ.get("AWS_EXECUTION_ENV") not in _UNESCAPED_ENVS,
    )
    document = {
        "timestamp": time.strftime(_JSON_DATEFMT, _log_time_converter()(time.time())),
        "level": "ERROR",
        "errorMessage": error_message,
        "errorType": error_type,
        "requestId": _request_id,
        "stackTrace": stack_trace,
    }
    return encoder.encode(document)


def _log_time_converter() -> Any:
    # Log times are UTC unless the function has since chosen otherwise for its records.
    logging = sys.modules.get("logging")
    return logging.Formatter.converter if logging is not None else time.gmtime


def log_error(error_type: str, error_message: str, stack_trace: list[str]) -> None:
    """Log the runtime's line for an init or invocation error, in the configured format.

    Text: `[ERROR] type: message`, a `Traceback (most recent call last):` line and the frames with
    their indentation turned into no-break spaces. JSON: one object with the error fields. The
    request id is the current invocation's (empty during init).
    """
    error_type = error_type or ""
    error_message = error_message or ""
    stack_trace = stack_trace or []
    if _json_format:
        _sink.log_error([_error_json(error_type, error_message, stack_trace)], _JSON_FRAME_TYPES[_ERROR_INDEX])
    else:
        _sink.log_error(_error_text_lines(error_type, error_message, stack_trace), _TEXT_FRAME_TYPES[_ERROR_INDEX])


def warn_unhandled() -> None:
    """Log the `LAMBDA_WARNING: Unhandled exception` line that precedes an init error."""
    # Through the root logger on purpose: the line obeys the user's level and format like any
    # other record, and still appears (via basicConfig) if the handler was removed.
    import logging

    logging.warning(_UNHANDLED_WARNING)


def context_log(message: str) -> None:
    """Write `message` as `LambdaContext.log` does: raw, as one default frame, no newline added.

    It goes through the runtime's root handler while that handler is installed, else to stdout.
    """
    text = str(message)
    logging = sys.modules.get("logging")
    if logging is None:
        # Nothing has imported `logging`, so nothing can have removed the handler yet.
        _sink.log(text)
        return
    for handler in logging.getLogger().handlers:
        if hasattr(handler, "log_sink"):
            handler.log_sink.log(text)
            return
    sys.stdout.write(text)
