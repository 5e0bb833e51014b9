"""Runtime logging: the root log handler, telemetry frames and the runtime's own error lines.

Everything written here matches awslambdaric 4.2.2 byte for byte (text and JSON layouts, frame
headers, level mapping), so metric filters, subscription filters and log tooling written for the
stock runtime keep working. The format and level are read once, by `setup()`, before the handler
module is imported.

Where the stock runtime fails, this module degrades instead:

- an unusable `_LAMBDA_TELEMETRY_LOG_FD` (not a number, or a closed descriptor) falls back to
  stdout rather than killing the runtime before init;
- a message that cannot be encoded as UTF-8 (lone surrogates) is framed with backslash escapes
  instead of being dropped;
- a short write on the telemetry descriptor is completed, so a frame is never cut in half;
- `sys.stdout.write` returns the number of characters written, as a real stream does, not None.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from struct import Struct

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Self, TextIO

# Frame header after the 4-byte frame type: payload length, then microseconds since the epoch.
_FRAME_HEADER = Struct(">IQ")

# Indexed by `_level_index(levelno)`: NOTSET, DEBUG, INFO, WARNING, ERROR, CRITICAL.
_TEXT_FRAME_TYPES: tuple[bytes, ...] = tuple(
    code.to_bytes(4, "big") for code in (0xA55A0003, 0xA55A000B, 0xA55A000F, 0xA55A0013, 0xA55A0017, 0xA55A001B)
)
_JSON_FRAME_TYPES: tuple[bytes, ...] = tuple(
    code.to_bytes(4, "big") for code in (0xA55A0002, 0xA55A000A, 0xA55A000E, 0xA55A0012, 0xA55A0016, 0xA55A001A)
)
_DEFAULT_FRAME_TYPE = _TEXT_FRAME_TYPES[0]
_ERROR_INDEX = 4

_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"
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

    Frame: 4-byte type, 4-byte payload length, 8-byte timestamp in microseconds, UTF-8 payload,
    all big-endian, handed to the descriptor in one write.
    """

    def __init__(self, file: Any) -> None:
        self.file = file
        self._write = file.write

    def log(self, message: str, frame_type: bytes | None = None) -> None:
        payload = message.encode("utf-8", "backslashreplace")
        frame = (frame_type or _DEFAULT_FRAME_TYPE) + _FRAME_HEADER.pack(len(payload), time.time_ns() // 1000) + payload
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
_configured = False


class LambdaLoggerFilter(logging.Filter):
    """Stamps `aws_request_id` and `tenant_id` of the current invocation on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id
        record.tenant_id = _tenant_id
        return True


# The handler class names are those of the stock runtime: tracing libraries look the root handler
# up by class name to swap its formatter.
class LambdaLoggerHandler(logging.Handler):
    """Root handler for text logs without a configured level: every record is a default frame."""

    def __init__(self, log_sink: _StdoutSink | _FramedSink) -> None:
        super().__init__()
        self.log_sink = log_sink

    def emit(self, record: logging.LogRecord) -> None:
        self.log_sink.log(self.format(record))


class LambdaLoggerHandlerWithFrameType(logging.Handler):
    """Root handler for JSON logs or a configured level: the frame type carries the record's level."""

    def __init__(self, log_sink: _StdoutSink | _FramedSink) -> None:
        super().__init__()
        self.log_sink = log_sink

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        # JsonFormatter leaves the JSON frame type on the record; any other formatter gets text types.
        frame_type = getattr(record, "_frame_type", None) or _TEXT_FRAME_TYPES[_level_index(record.levelno)]
        self.log_sink.log(message, frame_type)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, laid out as the stock runtime's `AWS_LAMBDA_LOG_FORMAT=JSON` logs.

    Side effect kept for compatibility: the record's `levelno` and `levelname` are rewritten to the
    clamped standard level, which other handlers then see.
    """

    def __init__(self) -> None:
        super().__init__(datefmt=_JSON_DATEFMT)
        import json

        # default=str: an extra value that is not JSON-serialisable is printed, not fatal.
        self._encode = json.JSONEncoder(ensure_ascii=False, default=str).encode

    def format(self, record: logging.LogRecord) -> str:
        index = _level_index(record.levelno)
        record.levelno = index * 10
        record.levelname = logging.getLevelName(record.levelno)
        record._frame_type = _JSON_FRAME_TYPES[index]

        exc_info = record.exc_info
        msg = record.msg
        # All fixed keys go in first, even when None, so that an extra attribute named like one of
        # them can never take its place; the None values are dropped at the end.
        document: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": msg if isinstance(msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
            "errorType": exc_info[0].__name__ if exc_info else None,  # type: ignore[union-attr]
            "errorMessage": str(exc_info[1]) if exc_info else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc_info else None,
        }
        tenant_id = getattr(record, "tenant_id", None)
        if tenant_id is not None:
            document["tenantId"] = tenant_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED_ATTRIBUTES and key not in document:
                document[key] = value
        return self._encode({key: value for key, value in document.items() if value is not None}) + "\n"


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
    global _sink, _json_format, _configured
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
    level = _level_from_env(os.environ.get("AWS_LAMBDA_LOG_LEVEL"))

    logging.Formatter.converter = time.gmtime  # type: ignore[assignment]
    # An unknown level name still selects per-level frame types, as in the stock runtime.
    framed_by_level = _json_format or bool(level)
    handler = LambdaLoggerHandlerWithFrameType(_sink) if framed_by_level else LambdaLoggerHandler(_sink)
    if _json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, _TEXT_DATEFMT))
    handler.addFilter(LambdaLoggerFilter())

    root = logging.getLogger()
    # getLevelName maps a registered level name to its number; anything else leaves the level alone.
    if isinstance(logging.getLevelName(level), int):
        root.setLevel(level)
    root.addHandler(handler)


def teardown() -> None:
    """Undo `setup`: remove the runtime's root handler and close the telemetry descriptor.

    Used before forking workers, each of which sets logging up again for itself.
    """
    global _sink, _configured
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, (LambdaLoggerHandler, LambdaLoggerHandlerWithFrameType)):
            root.removeHandler(handler)
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
        "timestamp": time.strftime(_JSON_DATEFMT, logging.Formatter.converter(time.time())),
        "level": "ERROR",
        "errorMessage": error_message,
        "errorType": error_type,
        "requestId": _request_id,
        "stackTrace": stack_trace,
    }
    return encoder.encode(document)


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
    logging.warning(_UNHANDLED_WARNING)


def context_log(message: str) -> None:
    """Write `message` as `LambdaContext.log` does: raw, as one default frame, no newline added.

    It goes through the runtime's root handler while that handler is installed, else to stdout.
    """
    text = str(message)
    for handler in logging.getLogger().handlers:
        if hasattr(handler, "log_sink"):
            handler.log_sink.log(text)
            return
    sys.stdout.write(text)
