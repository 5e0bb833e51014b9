"""The reference codec and the error documents.

The native codecs handle the common values; whatever they step aside from comes here, where
simplejson, configured as the stock runtime configures it, decides. Error documents are built here
too, so every byte the runtime posts follows one set of rules.
"""

from __future__ import annotations

import os

from . import _fastric

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, Optional

__all__ = [
    "ENSURE_ASCII",
    "FaultError",
    "decode_reference",
    "encode_reference",
    "error_document",
    "to_json",
    "xray_cause",
]

# The stock runtime writes raw UTF-8 only on the managed runtimes where it was switched on; container
# images and older runtimes get `\uXXXX` escapes.
_RAW_UTF8_ENVIRONMENTS = frozenset(f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15))
ENSURE_ASCII = os.environ.get("AWS_EXECUTION_ENV") not in _RAW_UTF8_ENVIRONMENTS

_ASYNCIO_DIR = os.path.join(os.path.dirname(os.__file__), "asyncio", "")

# awslambdaric stops sending the X-Ray cause at this size; so does fastric.
_XRAY_CAUSE_LIMIT = 1024 * 1024


class FaultError(Exception):
    """An error of the runtime's own making, reported with a `Runtime.*` error type."""

    def __init__(self, error_type: str, message: str, stack_trace: Optional[list[str]] = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.stack_trace = stack_trace


def _encoder() -> Any:
    import decimal
    import math

    import simplejson

    class Encoder(simplejson.JSONEncoder):
        def default(self, o: Any) -> Any:
            # Decimals are written digit for digit, except NaN, which the platform could not parse.
            if isinstance(o, decimal.Decimal):
                return math.nan if o.is_nan() else simplejson.RawJSON(str(o))
            return super().default(o)

    return Encoder(use_decimal=False, allow_nan=True, ensure_ascii=ENSURE_ASCII)


def to_json(value: Any) -> bytes:
    """Encodes `value` as the stock runtime does, natively when the value allows it."""
    encoded = _fastric.encode_json(value, ensure_ascii=ENSURE_ASCII)
    if encoded is not None:
        return encoded
    return _encode_with_surrogates(_encoder().encode(value))


def _encode_with_surrogates(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate cannot be UTF-8, where the stock runtime crashes; it is written as the
        # escape that a JSON reader turns back into the same string.
        escaped = "".join(f"\\u{ord(char):04x}" if 0xD800 <= ord(char) <= 0xDFFF else char for char in text)
        return escaped.encode("utf-8")


def encode_reference(value: Any) -> bytes:
    """Encodes a result the native encoder stepped aside from; raises FaultError if it cannot."""
    try:
        text = _encoder().encode(value)
    except Exception as error:
        raise FaultError("Runtime.MarshalError", f"Unable to marshal response: {error}") from None
    return _encode_with_surrogates(text)


def decode_reference(body: bytes) -> Any:
    """Decodes an event the native decoder could not; raises FaultError if it is not JSON."""
    import simplejson

    try:
        return simplejson.loads(body)
    except Exception as error:
        raise FaultError("Runtime.UnmarshalError", f"Unable to unmarshal input: {error}") from None


def error_document(message: str, error_type: str, stack_trace: Optional[list[str]], request_id: str) -> dict[str, Any]:
    """The body of an error post, keys in the order the platform and tools expect."""
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id,
        "stackTrace": stack_trace or [],
    }


def user_frames(tb: Optional[TracebackType]) -> list[tuple[str, int, str, Optional[str]]]:
    """The traceback's frames without the runtime's own leading ones (and, for an async handler,
    the event loop's)."""
    import traceback  # only errors need it, and it costs a cold start milliseconds

    frames = [(frame.filename, frame.lineno or 0, frame.name, frame.line) for frame in traceback.extract_tb(tb)]
    for index, (filename, *_rest) in enumerate(frames):
        if "/bootstrap.py" not in filename and not filename.startswith(_ASYNCIO_DIR):
            return frames[index:]
    return frames


def format_frames(frames: list[tuple[str, int, str, Optional[str]]]) -> list[str]:
    import traceback

    return traceback.format_list(frames)


def xray_cause(error_type: str, message: str, frames: list[tuple[str, int, str, Optional[str]]]) -> Optional[str]:
    """The X-Ray error cause header value, or None when it would be too large to send."""
    cause = {
        "working_directory": os.getcwd(),
        "exceptions": [
            {
                "message": message,
                "type": error_type,
                "stack": [{"label": name, "path": path, "line": line} for path, line, name, _source in frames],
            }
        ],
        "paths": list({path for path, *_rest in frames}),
    }
    encoded = to_json(cause)
    if len(encoded) >= _XRAY_CAUSE_LIMIT:
        return None
    return encoded.decode("utf-8")
