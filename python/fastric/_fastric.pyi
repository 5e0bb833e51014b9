"""The native core of fastric. Private: import what you need from `fastric` instead."""

from typing import Any, Literal, Optional, Union

from fastric.errors import ImageError

__version__: str
DEFAULT_MAX_PIXELS: int

class ErrorResponse:
    """An invocation error to post to the Runtime API's `/error` endpoint.

    Args:
        error_type: the `Lambda-Runtime-Function-Error-Type` header value, e.g. `Runtime.MarshalError`.
        body: the error document, already encoded.
        xray_cause: the `Lambda-Runtime-Function-XRay-Error-Cause` header value, if any.
    """

    def __init__(self, error_type: str, body: bytes, *, xray_cause: Optional[str] = None) -> None: ...
    @property
    def error_type(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def xray_cause(self) -> Optional[str]: ...

class ResponseStream:
    """A response streamed to the Runtime API chunk by chunk; see `fastric.streaming`.

    Args:
        chunks: an iterable (or async iterable) of `bytes`, `bytearray`, `memoryview` or `str` chunks.
        content_type: the response's content type.
        prelude: for HTTP integrations, the JSON prelude sent (with eight NUL bytes) before the body.
    """

    def __init__(
        self, chunks: Any, *, content_type: str = "application/octet-stream", prelude: Optional[bytes] = None
    ) -> None: ...
    @property
    def chunks(self) -> Any: ...
    @property
    def content_type(self) -> str: ...
    @property
    def prelude(self) -> Optional[bytes]: ...

class Invocation:
    """The Runtime API headers of one invocation."""

    @property
    def request_id(self) -> str: ...
    @property
    def deadline_ms(self) -> int:
        """The deadline in milliseconds since the epoch (0 when the header is missing)."""
    @property
    def invoked_function_arn(self) -> str: ...
    @property
    def trace_id(self) -> Optional[str]: ...
    @property
    def client_context(self) -> Optional[str]:
        """The client context header, raw JSON text."""
    @property
    def cognito_identity(self) -> Optional[str]:
        """The Cognito identity header, raw JSON text."""
    @property
    def tenant_id(self) -> Optional[str]: ...
    @property
    def invocation_id(self) -> Optional[str]: ...
    @property
    def content_type(self) -> Optional[str]: ...

class RuntimeClient:
    """A client of the Lambda Runtime API on one kept-alive connection.

    Args:
        address: `host:port` of the Runtime API, as in `AWS_LAMBDA_RUNTIME_API`.
        user_agent: the `User-Agent` header to send.
    """

    def __init__(self, address: str, user_agent: str) -> None: ...
    @property
    def address(self) -> str: ...
    def run(self, contract: Any, *, ensure_ascii: bool) -> None:
        """Serves invocations until the Runtime API fails or the contract raises.

        `contract` is an object with the methods of `fastric.bootstrap.HandlerContract`. Each event
        is decoded natively (or by `contract.decode_fallback`, which returns the event or an
        `ErrorResponse`), passed to `contract.invoke`, and what that returns is posted: an
        `ErrorResponse` to `/error`, a `ResponseStream` chunk by chunk, `bytes` as
        `application/unknown`, anything else as JSON, encoded natively or by
        `contract.encode_fallback`. A response over the 6 MB limit is replaced by
        `contract.response_too_large`; failures go to `contract.next_failed`,
        `contract.post_failed` and `contract.stream_failed`. The GIL is released while waiting for
        events and while posting.

        Raises:
            fastric.RuntimeApiError: the Runtime API could not be reached or refused a request.
        """
    def post_init_error(self, error_type: str, body: bytes) -> None:
        """Posts an init error document to `/runtime/init/error`.

        Raises:
            fastric.RuntimeApiError: the post failed or was not accepted with 202.
        """
    def restore_next(self) -> None:
        """Waits on `/runtime/restore/next` for a snapshotted function's restore.

        Raises:
            fastric.RuntimeApiError: the request failed or was not answered with 200.
        """
    def post_restore_error(self, error_type: str, body: bytes) -> None:
        """Posts an error document to `/runtime/restore/error`.

        Raises:
            fastric.RuntimeApiError: the post failed or was not accepted with 202.
        """

def encode_json(value: Any, *, ensure_ascii: bool) -> Optional[bytes]:
    """Encodes `value` as the stock runtime's encoder would, or returns None when the value needs
    the reference encoder (types other than exact built-in JSON types, lone surrogates, deep nesting).
    """

def decode_json(data: bytes) -> Optional[Any]:
    """Decodes JSON `data`, or returns None when the reference decoder must decide."""

def thumbnail(
    data: bytes,
    size: tuple[int, int] = (200, 200),
    *,
    format: Literal["JPEG", "PNG"] = "JPEG",
    quality: int = 85,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: Optional[int] = 89478485,
    shrink_on_load: bool = True,
) -> tuple[bytes, int, int, str]:
    """Makes one thumbnail without holding the GIL (see `fastric.image.thumbnail`).

    Returns:
        `(data, width, height, content_type)`.

    Raises:
        fastric.errors.ImageError: or one of its subclasses, when the image or an option is bad.
    """

def thumbnails(
    images: list[bytes],
    size: tuple[int, int] = (200, 200),
    *,
    format: Literal["JPEG", "PNG"] = "JPEG",
    quality: int = 85,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: Optional[int] = 89478485,
    shrink_on_load: bool = True,
    workers: Optional[int] = None,
) -> list[Union[tuple[bytes, int, int, str], ImageError]]:
    """Makes thumbnails of `images` on `workers` native threads (default: the CPUs available).

    Returns:
        Per image, in order, the tuple `thumbnail` returns or the exception it would have raised.

    Raises:
        fastric.errors.ImageError: when an option is bad.
    """

def dynamodb_image(image: dict[str, Any]) -> dict[str, Any]:
    """Decodes a DynamoDB image (attribute names to attribute values, as stream records carry
    them) into Python values.

    `S` becomes `str` (the same object), `N` `Decimal`, `B` `bytes` (decoded from base64 text, or
    kept when already bytes), `BOOL` `bool`, `NULL` None, `L` `list`, `M` `dict`, and `SS`, `NS`
    and `BS` `set`s of those. Runs with the GIL held: it builds Python objects throughout.

    Args:
        image: the `Keys`, `NewImage` or `OldImage` of a stream record.

    Returns:
        A new dict from the attribute names to their values.

    Raises:
        fastric.EventDecodeError: an attribute value does not have a documented shape; the message
            names the path to it, e.g. `address.floors[1]: N value 'x' is not a number`.
    """

def dynamodb_value(value: dict[str, Any]) -> Any:
    """Decodes one DynamoDB attribute value, such as `{"N": "42"}`, as `dynamodb_image` does.

    Raises:
        fastric.EventDecodeError: the value does not have a documented shape.
    """

def b64decode(text: str) -> bytes:
    """Decodes standard base64 text (Kinesis data, API Gateway bodies).

    Characters outside the alphabet are refused rather than skipped; missing padding is accepted.

    Raises:
        fastric.EventDecodeError: the text is not base64; the message names the first bad byte.
    """

def unquote_plus(key: str) -> str:
    """Decodes an S3 object key from an event notification as `urllib.parse.unquote_plus` does:
    `+` is a space, `%xx` a byte, the bytes UTF-8 (invalid sequences become U+FFFD).

    Returns:
        The decoded key; `key` itself when there is nothing to decode.
    """

def lower_keys(headers: dict[str, Any]) -> dict[str, Any]:
    """Copies a dict of HTTP headers with the names in lower case (ASCII letters only, as HTTP
    header names are ASCII); names already in lower case are reused, not copied."""
