"""The root logger's handler, filter and JSON formatter, as the stock runtime installs them.

This module imports `logging`, so it is loaded only once something else has imported it (see
`_logging.setup`).
"""

from __future__ import annotations

import logging
import time
import traceback

from . import _logging
from ._logging import _JSON_DATEFMT, _JSON_FRAME_TYPES, _RESERVED_ATTRIBUTES, _TEXT_FRAME_TYPES, _level_index

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._logging import _FramedSink, _StdoutSink

_TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
_TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"


def configure_root(sink: _StdoutSink | _FramedSink, *, json_format: bool, level: str) -> None:
    """Switch log timestamps to UTC and add the runtime's one handler to the root logger (which
    also makes a later `logging.basicConfig()` a no-op)."""
    logging.Formatter.converter = time.gmtime  # type: ignore[assignment]
    # An unknown level name still selects per-level frame types, as in the stock runtime.
    framed_by_level = json_format or bool(level)
    handler = LambdaLoggerHandlerWithFrameType(sink) if framed_by_level else LambdaLoggerHandler(sink)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, _TEXT_DATEFMT))
    handler.addFilter(LambdaLoggerFilter())

    root = logging.getLogger()
    # getLevelName maps a registered level name to its number; anything else leaves the level alone.
    if isinstance(logging.getLevelName(level), int):
        root.setLevel(level)
    root.addHandler(handler)


def remove_root_handler() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, (LambdaLoggerHandler, LambdaLoggerHandlerWithFrameType)):
            root.removeHandler(handler)


class LambdaLoggerFilter(logging.Filter):
    """Stamps `aws_request_id` and `tenant_id` of the current invocation on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _logging._request_id
        record.tenant_id = _logging._tenant_id
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
