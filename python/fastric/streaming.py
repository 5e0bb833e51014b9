"""Response streaming: send a handler's output as it is produced instead of after it returns.

A handler opts in by returning a generator (or an async generator) of `bytes` or `str` chunks, or
one of the objects made here, which also set the content type or, for function URLs and API
Gateway, the HTTP status, headers and cookies::

    from fastric import streaming

    def handler(event, context):
        def chunks():
            for token in generate(event["prompt"]):
                yield token
        return streaming.http_stream(chunks(), headers={"Content-Type": "text/event-stream"})

Each chunk is written to the Runtime API as soon as it is yielded. Lambda buffers a streamed
response for callers that do not stream (a plain synchronous Invoke), and the 6 MB limit then
applies. An exception raised part-way is reported in the response's trailers, as Lambda's own
streaming runtimes report it.
"""

from __future__ import annotations

import json

from ._fastric import ResponseStream

# `typing` costs milliseconds at a cold start; annotations here are only read by type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
    from typing import Optional, Union

    Chunk = Union[bytes, bytearray, memoryview, str]
    Chunks = Union[Iterable[Chunk], AsyncIterable[Chunk]]

__all__ = ["HTTP_INTEGRATION_CONTENT_TYPE", "ResponseStream", "http_stream", "stream"]

HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"


def stream(chunks: Chunks, *, content_type: str = "application/octet-stream") -> ResponseStream:
    """A streamed response of `chunks`, sent with `content_type`."""
    return ResponseStream(chunks, content_type=content_type)


def http_stream(
    chunks: Chunks,
    *,
    status_code: int = 200,
    headers: Optional[Mapping[str, str]] = None,
    cookies: Optional[Sequence[str]] = None,
    multi_value_headers: Optional[Mapping[str, Sequence[str]]] = None,
) -> ResponseStream:
    """A streamed HTTP response for a function URL or API Gateway: the status, headers and cookies
    go first, in the JSON prelude Lambda reads before the body."""
    prelude: dict[str, object] = {"statusCode": status_code}
    if headers:
        prelude["headers"] = dict(headers)
    if multi_value_headers:
        prelude["multiValueHeaders"] = {name: list(values) for name, values in multi_value_headers.items()}
    if cookies:
        prelude["cookies"] = list(cookies)
    encoded = json.dumps(prelude, separators=(",", ":")).encode()
    return ResponseStream(chunks, content_type=HTTP_INTEGRATION_CONTENT_TYPE, prelude=encoded)
