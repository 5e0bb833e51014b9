"""Local mode: run a handler behind a built-in Runtime API and an emulator-compatible invoke endpoint.

``python -m fastric app.handler`` without ``AWS_LAMBDA_RUNTIME_API`` calls :func:`serve`, so the function can be
invoked with curl the way AWS's runtime interface emulator (RIE) allows::

    curl -s -d '{"name": "world"}' http://127.0.0.1:8080/2015-03-31/functions/function/invocations

The parent process serves two HTTP endpoints: a Runtime API on an ephemeral loopback port, and the invoke endpoint
``POST /2015-03-31/functions/function/invocations`` on ``host:port``. The runtime itself is a child process,
``python -m fastric HANDLER`` with ``AWS_LAMBDA_RUNTIME_API`` pointing at the parent; its output goes straight to
the terminal. Behaviour, and where it differs from the emulator:

- Init is eager: the runtime starts with the server, so import errors show at once. An init error answers the
  waiting invoke (or the next one to arrive); after the runtime exits, the next invoke starts a fresh one.
- A runtime that exits during an invocation answers it with ``Runtime.ExitError`` and is replaced on the next
  invoke (the emulator needs a restart).
- Concurrent invokes wait in a queue and run one at a time in arrival order (the emulator rejects them).
- The function timeout (``AWS_LAMBDA_FUNCTION_TIMEOUT``, seconds, default 300) is enforced: the invoke is answered
  with ``Sandbox.Timedout`` and the runtime is stopped, as Lambda does (the emulator answers with plain text).
- Function errors carry the ``X-Amz-Function-Error: Unhandled`` header, as Lambda's Invoke API does.
- Request bodies over 6 MB get 413 ``RequestTooLargeException``; responses over 6 MB + 100 bytes are answered
  with ``Function.ResponseSizeTooLarge``.
- Only ``X-Amz-Invocation-Type: RequestResponse`` is accepted; the endpoint also answers under the function's
  own name (``/2015-03-31/functions/<AWS_LAMBDA_FUNCTION_NAME>/invocations``) so SDK clients can use it.

The runtime gets the emulator's environment defaults where unset (function name ``test_function``, version
``$LATEST``, memory 3008, log group ``/aws/lambda/Functions``, log stream ``$LATEST``, region ``us-east-1``).

``FASTRIC_LOCAL_RUNTIME_CMD`` is a testing and diagnostic knob: a shell-style command prefix that replaces
``python -m fastric`` as the runtime process, the handler being appended. For instance
``FASTRIC_LOCAL_RUNTIME_CMD="python -m awslambdaric"`` runs the stock runtime client behind the same endpoints.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MAX_REQUEST_BYTES = 6 * 1024 * 1024
"""Invoke API quota on a synchronous request body."""

MAX_RESPONSE_BYTES = MAX_REQUEST_BYTES + 100
"""Largest response the Runtime API accepts (the emulator's constant)."""

RUNTIME_CMD_ENV = "FASTRIC_LOCAL_RUNTIME_CMD"

_RUNTIME_API_PREFIX = "/2018-06-01/runtime"
_INVOKE_PATH = "/2015-03-31/functions/{}/invocations"
_FAKE_ARN = "arn:aws:lambda:us-east-1:012345678912:function:{}"
_ENV_DEFAULTS = {
    "AWS_LAMBDA_FUNCTION_NAME": "test_function",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/Functions",
    "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_DEFAULT_TIMEOUT_S = 300
_STOP_GRACE_S = 3.0
_SIGNAL_CHECK_S = 0.1
_CLIENT_CONTEXT_ERROR = "Client context must be a valid Base64-encoded JSON object."


@dataclass(frozen=True)
class FunctionConfig:
    """What the invoke endpoint and the runtime's environment need to know about the function."""

    handler: str
    name: str
    version: str
    timeout_ms: int

    @classmethod
    def from_environ(cls, handler: str, environ: Mapping[str, str]) -> FunctionConfig:
        return cls(
            handler=handler,
            name=environ.get("AWS_LAMBDA_FUNCTION_NAME") or _ENV_DEFAULTS["AWS_LAMBDA_FUNCTION_NAME"],
            version=environ.get("AWS_LAMBDA_FUNCTION_VERSION") or _ENV_DEFAULTS["AWS_LAMBDA_FUNCTION_VERSION"],
            timeout_ms=_timeout_ms(environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "")),
        )

    @property
    def arn(self) -> str:
        return _FAKE_ARN.format(self.name)

    @property
    def invoke_paths(self) -> tuple[str, str]:
        return _INVOKE_PATH.format("function"), _INVOKE_PATH.format(self.name)

    def runtime_command(self, environ: Mapping[str, str]) -> list[str]:
        prefix = environ.get(RUNTIME_CMD_ENV)
        command = shlex.split(prefix) if prefix else [sys.executable, "-m", "fastric"]
        return [*command, self.handler]

    def runtime_environment(self, environ: Mapping[str, str], runtime_api: str) -> dict[str, str]:
        env = dict(environ)
        for key, default in _ENV_DEFAULTS.items():
            if not env.get(key):
                env[key] = default
        env["AWS_LAMBDA_RUNTIME_API"] = runtime_api
        env["_HANDLER"] = self.handler
        # Local mode serves one invocation at a time; a multi-concurrency runtime would race for /next.
        env.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)
        return env


def _timeout_ms(value: str) -> int:
    try:
        seconds = float(value or _DEFAULT_TIMEOUT_S)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        print(f"fastric: AWS_LAMBDA_FUNCTION_TIMEOUT={value!r} is not a number of seconds, using 300", file=sys.stderr)
        seconds = _DEFAULT_TIMEOUT_S
    return int(seconds * 1000)


@dataclass(frozen=True)
class InvokeResult:
    """The answer to one invoke: a body and whether it is a function error document."""

    body: bytes
    content_type: str = "application/json"
    function_error: bool = False

    @classmethod
    def error(cls, document: bytes) -> InvokeResult:
        return cls(document, "application/json", function_error=True)


@dataclass(eq=False)
class Invocation:
    """One invoke on its way through the queue, the runtime and back."""

    request_id: str
    payload: bytes
    headers: dict[str, str]
    """Headers for the runtime's /next besides the request id and deadline."""

    deadline: float | None = None
    """Monotonic deadline, set when the runtime receives the invocation."""

    deadline_ms: int = 0
    result: InvokeResult | None = None


class RuntimeApiError(Exception):
    """A Runtime API request the current state does not allow; rendered as Lambda's error JSON."""

    def __init__(self, status: HTTPStatus, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def _error_document(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def _exit_error(request_id: str, status: str) -> bytes:
    return _error_document("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with error: {status}")


def _exit_status(returncode: int) -> str:
    """Describe an exit the way Lambda's messages do (Go's process state wording)."""
    if returncode >= 0:
        return f"exit status {returncode}"
    description = signal.strsignal(-returncode) or f"signal {-returncode}"
    return f"signal: {description.lower()}"


class InvocationQueue:
    """Invocation state shared by the invoke endpoint and the Runtime API.

    Invokes wait in arrival order; the runtime takes them one at a time through /next and answers each before it
    may take the next. A failed init answers the oldest waiting invoke, or is kept for the next one to arrive.
    """

    def __init__(self, timeout_ms: int) -> None:
        self._cond = threading.Condition()
        self._timeout_ms = timeout_ms
        self._pending: deque[Invocation] = deque()
        self._in_flight: Invocation | None = None
        self._init_failure: Callable[[str], bytes] | None = None
        # Each /next takes a new number; a waiting /next whose number is no longer current gives up, so a poll
        # left behind by an exited runtime (or replaced by a newer one) never swallows an invocation.
        self._poll = 0
        # Per runtime process: whether it finished init (called /next) and whether it reported an init error.
        self._ready = False
        self._init_reported = False

    def submit(self, invocation: Invocation) -> bool:
        """Queue an invocation; returns False when a kept init failure answered it at once."""
        with self._cond:
            if self._init_failure is not None:
                self._finish(invocation, InvokeResult.error(self._init_failure(invocation.request_id)))
                self._init_failure = None
                return False
            self._pending.append(invocation)
            self._cond.notify_all()
            return True

    def has_pending(self) -> bool:
        with self._cond:
            return bool(self._pending)

    def wait(self, invocation: Invocation) -> InvokeResult | None:
        """Block until the invocation is answered; None when its deadline passes first."""
        with self._cond:
            while invocation.result is None:
                if invocation.deadline is None:
                    self._cond.wait()
                    continue
                remaining = invocation.deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return invocation.result

    def time_out(self, invocation: Invocation) -> bool:
        """Answer an in-flight invocation with a timeout error; False if it was answered meanwhile."""
        with self._cond:
            if invocation is not self._in_flight:
                return False
            self._in_flight = None
            seconds = self._timeout_ms / 1000
            message = f"RequestId: {invocation.request_id} Error: Task timed out after {seconds:.2f} seconds"
            self._finish(invocation, InvokeResult.error(_error_document("Sandbox.Timedout", message)))
            return True

    def next_invocation(self) -> Invocation:
        """Long-poll for the runtime's next invocation (GET /invocation/next)."""
        with self._cond:
            if self._in_flight is not None:
                message = f"invocation {self._in_flight.request_id} must be answered before the next one"
                raise RuntimeApiError(HTTPStatus.FORBIDDEN, "InvalidStateTransition", message)
            self._ready = True
            self._poll += 1
            poll = self._poll
            while poll == self._poll and not self._pending:
                self._cond.wait()
            if poll != self._poll:
                message = "this /next was replaced by a newer one or its runtime exited"
                raise RuntimeApiError(HTTPStatus.FORBIDDEN, "InvalidStateTransition", message)

            invocation = self._pending.popleft()
            self._in_flight = invocation
            invocation.deadline = time.monotonic() + self._timeout_ms / 1000
            invocation.deadline_ms = int(time.time() * 1000) + self._timeout_ms
            # The invoke waiting on this invocation starts counting down to the deadline.
            self._cond.notify_all()
            return invocation

    def complete(self, request_id: str, result: InvokeResult) -> None:
        """Answer the in-flight invocation (POST /invocation/{id}/response or /error)."""
        with self._cond:
            invocation = self._in_flight
            if invocation is None or invocation.request_id != request_id:
                raise RuntimeApiError(HTTPStatus.BAD_REQUEST, "InvalidRequestID", "Invalid request ID")
            self._in_flight = None
            self._finish(invocation, result)

    def init_error(self, document: bytes) -> None:
        """Record an init error (POST /init/error) reported before the runtime's first /next."""
        with self._cond:
            if self._ready:
                message = "init/error is only accepted before the runtime's first /next"
                raise RuntimeApiError(HTTPStatus.FORBIDDEN, "InvalidStateTransition", message)
            self._init_reported = True
            self._fail_init(lambda _request_id: document)

    def runtime_started(self) -> None:
        with self._cond:
            self._ready = False
            self._init_reported = False
            self._init_failure = None

    def runtime_exited(self, status: str) -> None:
        """Account for the runtime process having exited: whatever it owed gets an ExitError."""
        with self._cond:
            self._poll += 1
            self._cond.notify_all()
            if self._in_flight is not None:
                invocation, self._in_flight = self._in_flight, None
                self._finish(invocation, InvokeResult.error(_exit_error(invocation.request_id, status)))
            elif not self._ready and not self._init_reported:
                # Died during init without reporting it: Lambda reports such an init as Runtime.ExitError.
                self._fail_init(lambda request_id: _exit_error(request_id, status))

    def fail_pending(self, document: Callable[[str], bytes]) -> None:
        """Answer every waiting invocation with an error document (no runtime can be started)."""
        with self._cond:
            while self._pending:
                invocation = self._pending.popleft()
                self._finish(invocation, InvokeResult.error(document(invocation.request_id)))

    def _fail_init(self, document: Callable[[str], bytes]) -> None:
        if self._pending:
            invocation = self._pending.popleft()
            self._finish(invocation, InvokeResult.error(document(invocation.request_id)))
        else:
            self._init_failure = document

    def _finish(self, invocation: Invocation, result: InvokeResult) -> None:
        invocation.result = result
        self._cond.notify_all()


class RuntimeSupervisor:
    """Runs the runtime child process and carries each invoke through the queue.

    The runtime starts with the server, is replaced by the next invoke after it exits, and is stopped at an
    invocation's deadline and at shutdown.
    """

    def __init__(self, command: list[str], env: dict[str, str], queue: InvocationQueue) -> None:
        self._command = command
        self._env = env
        self._queue = queue
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def start(self) -> None:
        """Start the runtime now (eager init); raises OSError when the command cannot be run."""
        with self._lock:
            self._spawn_locked()

    def invoke(self, invocation: Invocation) -> InvokeResult:
        """Run one invocation and return its answer, starting a runtime if none is running."""
        if self._queue.submit(invocation):
            with self._lock:
                self._ensure_running_locked()
        result = self._queue.wait(invocation)
        while result is None:
            self._time_out(invocation)
            result = self._queue.wait(invocation)
        return result

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            process = self._process
        if process is None:
            return
        process.terminate()
        try:
            process.wait(_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _time_out(self, invocation: Invocation) -> None:
        # Under the lock so that the process killed is the one that received the invocation.
        with self._lock:
            if self._queue.time_out(invocation) and self._process is not None:
                self._process.kill()

    def _spawn_locked(self) -> None:
        if self._process is not None or self._stopping:
            return
        self._queue.runtime_started()
        process = subprocess.Popen(self._command, env=self._env)
        self._process = process
        threading.Thread(target=self._watch, args=(process,), name="fastric-runtime-watch", daemon=True).start()

    def _ensure_running_locked(self) -> None:
        try:
            self._spawn_locked()
        except OSError as exc:
            message = f"cannot start the runtime ({shlex.join(self._command)}): {exc}"
            self._queue.fail_pending(lambda request_id: _error_document("Runtime.InvalidEntrypoint", message))

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        status = _exit_status(process.wait())
        # The exit is accounted for before any replacement starts, so the new runtime's /next cannot be taken
        # for the old one's.
        with self._lock:
            self._process = None
            self._queue.runtime_exited(status)
            if self._stopping:
                return
            print(f"fastric: the runtime exited ({status}); the next invoke starts a new one", file=sys.stderr)
            if self._queue.has_pending():
                self._ensure_running_locked()


class _Server(ThreadingHTTPServer):
    """A threading HTTP server whose handler threads never hold up shutdown."""

    daemon_threads = True
    # A handler thread may sit in a /next long poll or on an idle keep-alive connection: nothing to wait for.
    block_on_close = False
    # The stdlib's backlog of 5 drops connection attempts from a burst of concurrent invokes, which then wait a
    # second for the client's SYN retry.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler_class: type[BaseHTTPRequestHandler]) -> None:
        # Read by TCPServer.__init__ when it creates the socket.
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler_class)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up is routine (curl interrupted, runtime killed); anything else is a bug worth a trace.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class RuntimeApiServer(_Server):
    """The Runtime API on an ephemeral loopback port."""

    def __init__(self, queue: InvocationQueue) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.queue = queue

    @property
    def address(self) -> str:
        """The value for the runtime's ``AWS_LAMBDA_RUNTIME_API``."""
        return f"127.0.0.1:{self.server_address[1]}"


class InvokeServer(_Server):
    """The invoke endpoint on the user's host and port."""

    def __init__(self, address: tuple[str, int], function: FunctionConfig, supervisor: RuntimeSupervisor) -> None:
        super().__init__(address, InvokeHandler)
        self.function = function
        self.supervisor = supervisor


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive plumbing shared by both endpoints."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, the second waits for a delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "fastric"

    def log_message(self, *args: object) -> None:
        # The terminal belongs to the function's own output.
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib answers protocol errors (unsupported method, malformed request) with an HTML page.
        status = HTTPStatus(code)
        self.close_connection = True
        document = _error_document(status.phrase.replace(" ", ""), message or status.phrase)
        self._send(code, document, headers={"Connection": "close"})

    def _content_length(self) -> int:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return length

    def _read_body(self, limit: int) -> bytes | None:
        """Read the whole request body; None when it exceeds limit.

        An oversized body is still read to its end, so that the client, which may be sending it before it reads
        anything, gets the refusal rather than a reset connection. Raises ValueError on malformed framing.
        """
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked(limit)
        length = self._content_length()
        if length <= limit:
            return self.rfile.read(length)
        while length > 0:
            discarded = len(self.rfile.read(min(length, 1 << 16)))
            if not discarded:
                break
            length -= discarded
        return None

    def _read_chunked(self, limit: int) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";", 1)[0], 16)
            if size == 0:
                break
            chunk = self.rfile.read(size)
            self.rfile.readline(1024)
            total += len(chunk)
            if total <= limit:
                chunks.append(chunk)
        # Trailers (ignored) end with an empty line.
        while self.rfile.readline(65536).strip():
            pass
        return b"".join(chunks) if total <= limit else None

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class RuntimeApiHandler(_Handler):
    """The Runtime API (``/2018-06-01/runtime/...``) the runtime child talks to."""

    server: RuntimeApiServer

    def do_GET(self) -> None:
        if self.path != f"{_RUNTIME_API_PREFIX}/invocation/next":
            self._send_not_found()
            return
        try:
            invocation = self.server.queue.next_invocation()
        except RuntimeApiError as exc:
            self._send_error(exc)
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            **invocation.headers,
        }
        self._send(HTTPStatus.OK, invocation.payload, "application/json", headers)

    def do_POST(self) -> None:
        try:
            body = self._read_body(MAX_RESPONSE_BYTES)
        except ValueError:
            self.close_connection = True
            self._send_error(RuntimeApiError(HTTPStatus.BAD_REQUEST, "TruncatedHTTPRequest", "malformed request body"))
            return
        parts = self.path.split("/") if self.path.startswith(_RUNTIME_API_PREFIX + "/") else []
        try:
            if parts[3:] == ["init", "error"]:
                self.server.queue.init_error(body or b"")
            elif len(parts) == 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
                self._answer_invocation(parts[4], parts[5], body)
            else:
                self._send_not_found()
                return
        except RuntimeApiError as exc:
            self._send_error(exc)
            return
        if body is None:
            message = f"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
            self._send_error(RuntimeApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestEntityTooLarge", message))
            return
        self._send(HTTPStatus.ACCEPTED, b'{"status":"OK"}')

    def _answer_invocation(self, request_id: str, action: str, body: bytes | None) -> None:
        if body is None:
            message = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
            result = InvokeResult.error(_error_document("Function.ResponseSizeTooLarge", message))
        elif action == "error":
            result = InvokeResult.error(body)
        else:
            result = InvokeResult(body, self.headers.get("Content-Type") or "application/json")
        self.server.queue.complete(request_id, result)

    def _send_not_found(self) -> None:
        message = f"unknown Runtime API endpoint: {self.command} {self.path}"
        self._send_error(RuntimeApiError(HTTPStatus.NOT_FOUND, "UnknownEndpoint", message))

    def _send_error(self, exc: RuntimeApiError) -> None:
        self._send(exc.status, _error_document(exc.error_type, exc.message))


class InvokeHandler(_Handler):
    """The emulator-compatible invoke endpoint, answering as Lambda's Invoke API does."""

    server: InvokeServer

    def handle_expect_100(self) -> bool:
        # Refuse an oversized body before the client sends it (curl asks first for large bodies).
        try:
            too_large = self._content_length() > MAX_REQUEST_BYTES
        except ValueError:
            too_large = False
        if too_large:
            self.close_connection = True
            self._send_request_too_large()
            return False
        return super().handle_expect_100()

    def do_POST(self) -> None:
        try:
            body = self._read_body(MAX_REQUEST_BYTES)
        except ValueError:
            self.close_connection = True
            self._send_client_error(HTTPStatus.BAD_REQUEST, "InvalidRequestContentException", "malformed request body")
            return
        if body is None:
            self._send_request_too_large()
            return

        path = urlsplit(self.path).path
        if path not in self.server.function.invoke_paths:
            message = f"Function not found: {path}; invoke POST {_INVOKE_PATH.format('function')}"
            self._send_client_error(HTTPStatus.NOT_FOUND, "ResourceNotFoundException", message, message_key="Message")
            return

        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type != "RequestResponse":
            message = f"invocation type {invocation_type!r} is not supported in local mode; use RequestResponse"
            self._send_client_error(HTTPStatus.BAD_REQUEST, "InvalidParameterValueException", message)
            return

        try:
            headers = self._runtime_headers()
        except ValueError:
            self._send_client_error(HTTPStatus.BAD_REQUEST, "InvalidRequestContentException", _CLIENT_CONTEXT_ERROR)
            return

        invocation = Invocation(str(uuid.uuid4()), body, headers)
        result = self.server.supervisor.invoke(invocation)
        response_headers = {
            "X-Amzn-RequestId": invocation.request_id,
            "X-Amz-Executed-Version": self.server.function.version,
        }
        if result.function_error:
            response_headers["X-Amz-Function-Error"] = "Unhandled"
        self._send(HTTPStatus.OK, result.body, result.content_type, response_headers)

    def _runtime_headers(self) -> dict[str, str]:
        """The /next headers carried over from the invoke request; raises ValueError on a bad client context."""
        headers = {"Lambda-Runtime-Invoked-Function-Arn": self.server.function.arn}
        trace_id = self.headers.get("X-Amzn-Trace-Id")
        if trace_id:
            headers["Lambda-Runtime-Trace-Id"] = trace_id
        tenant_id = self.headers.get("X-Amz-Tenant-Id")
        if tenant_id:
            headers["Lambda-Runtime-Aws-Tenant-Id"] = tenant_id
        client_context = self.headers.get("X-Amz-Client-Context")
        if client_context:
            # Re-encoded compactly: pretty-printed JSON has newlines, which cannot travel in a header.
            decoded = json.loads(base64.b64decode(client_context, validate=True))
            headers["Lambda-Runtime-Client-Context"] = json.dumps(decoded, separators=(",", ":"))
        return headers

    def _send_request_too_large(self) -> None:
        message = f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"
        self._send_client_error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLargeException", message)

    def _send_client_error(
        self, status: HTTPStatus, error_type: str, message: str, *, message_key: str = "message"
    ) -> None:
        body = json.dumps({"Type": "User", message_key: message}).encode()
        self._send(status, body, headers={"X-Amzn-ErrorType": error_type})


def _url_host(host: str) -> str:
    """The host to show in URLs: a wildcard bind address is reached through loopback."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class _StopSignals:
    """SIGINT and SIGTERM handlers that only record that a stop was asked for.

    The handler takes no lock: it runs in the main thread between any two bytecodes, possibly while the main
    thread holds the very lock it would need. Waiting is a polling sleep because a signal taken by another thread
    does not wake a main thread blocked on a lock.
    """

    def __init__(self) -> None:
        self._requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        # Only the main thread may set handlers; serve() called elsewhere runs until the process ends.
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._record) for sig in (signal.SIGINT, signal.SIGTERM)}

    def wait(self) -> None:
        while not self._requested:
            time.sleep(_SIGNAL_CHECK_S)

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def _record(self, _signum: int, _frame: object) -> None:
        self._requested = True


def serve(handler: str, *, host: str = "127.0.0.1", port: int = 8080) -> int:
    """Serve a handler locally until SIGINT or SIGTERM.

    Args:
        handler: The handler string, as given to the runtime (``module.function``).
        host: Address the invoke endpoint listens on.
        port: Port of the invoke endpoint (0 picks a free one).

    Returns:
        The process exit code: 0 after a clean stop, 1 when the servers or the runtime cannot start.
    """
    function = FunctionConfig.from_environ(handler, os.environ)
    queue = InvocationQueue(function.timeout_ms)
    try:
        runtime_api = RuntimeApiServer(queue)
    except OSError as exc:
        print(f"fastric: cannot open the local Runtime API: {exc}", file=sys.stderr)
        return 1
    command = function.runtime_command(os.environ)
    supervisor = RuntimeSupervisor(command, function.runtime_environment(os.environ, runtime_api.address), queue)
    try:
        invoke_server = InvokeServer((host, port), function, supervisor)
    except OSError as exc:
        runtime_api.server_close()
        print(f"fastric: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    stop_signals = _StopSignals()
    stop_signals.install()
    try:
        for server in (runtime_api, invoke_server):
            threading.Thread(target=server.serve_forever, args=(0.1,), name="fastric-http", daemon=True).start()

        url = f"http://{_url_host(host)}:{invoke_server.server_address[1]}{_INVOKE_PATH.format('function')}"
        print(f"fastric: serving {handler} locally at {url}\n  curl -s -d '{{}}' {url}", file=sys.stderr, flush=True)
        try:
            supervisor.start()
        except OSError as exc:
            print(f"fastric: cannot start the runtime ({shlex.join(command)}): {exc}", file=sys.stderr)
            return 1
        stop_signals.wait()
        return 0
    finally:
        stop_signals.restore()
        supervisor.stop()
        for server in (invoke_server, runtime_api):
            server.shutdown()
            server.server_close()
