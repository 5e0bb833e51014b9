"""A bare ASGI application served through Mangum's Lambda adapter."""

from __future__ import annotations

import json
from typing import Any, Callable

from mangum import Mangum

_calls = 0


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    """Answer every HTTP request with a JSON description of it."""
    global _calls
    assert scope["type"] == "http"
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    _calls += 1
    described = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "body": body.decode(),
        "calls": _calls,
        "request_id": scope["aws.context"].aws_request_id,
    }
    status = 201 if scope["method"] == "POST" else 200
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(described).encode()})


handler = Mangum(app, lifespan="off")
