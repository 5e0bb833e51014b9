"""Local mode: run a handler behind a built-in Runtime API and an invoke endpoint that answers as Lambda's does.

``python -m fastric app.handler`` without ``AWS_LAMBDA_RUNTIME_API`` calls :func:`serve`, so the function can be
invoked with curl or an SDK, as with AWS's runtime interface emulator (RIE)::

    curl -s -d '{"name": "world"}' http://127.0.0.1:8080/2015-03-31/functions/function/invocations

``python -m fastric --invoke event.json app.handler`` calls :func:`invoke_once` instead: one invocation, the result
on stdout, the logs on stderr, exit status 1 on a function error.

The parent process serves the invoke endpoint ``POST /2015-03-31/functions/function/invocations`` on
``host:port`` (loopback unless told otherwise). Each execution environment is a child process,
``python -m fastric HANDLER``, with a Runtime API of its own on an ephemeral loopback port. The parent reads the
child's stdout and stderr through pipes, passes them on to its own at once and keeps each invocation's share for
``X-Amz-Log-Type: Tail``. What Lambda does and the emulator does not:

- Init is eager: the runtime starts with the server, so import errors show at once. An init error answers the
  waiting invoke (or the next one to arrive); after the runtime exits, the next invoke starts a fresh one.
- A runtime that exits or is killed during an invocation answers it with ``Runtime.ExitError``; the next invoke
  starts a fresh one, running init again. Processes the runtime started end with it.
- Concurrent invokes wait in one queue, in arrival order. One environment serves them by default; up to
  ``concurrency`` environments start when invokes wait and every running one is busy.
- The function timeout (``AWS_LAMBDA_FUNCTION_TIMEOUT``, seconds, default 300) is enforced: the invoke is answered
  with ``Sandbox.Timedout`` and the environment is killed, as Lambda replaces it.
- Function errors carry ``X-Amz-Function-Error: Unhandled``. ``X-Amz-Invocation-Type`` may be
  ``RequestResponse``, ``Event`` (202 at once, run in the background) or ``DryRun`` (204, nothing runs).
  ``X-Amz-Log-Type: Tail`` returns the last 4 KB of the invocation's log, base64-encoded, in
  ``X-Amz-Log-Result``. ``X-Amz-Client-Context`` (base64 JSON) reaches the handler's context.
- Each invocation's log is framed by Lambda's ``START``, ``END`` and ``REPORT`` lines, with measured values:
  duration, billed duration, memory size, the process's peak resident memory, and the init duration (from the
  process's start to its first ``/next``) on an environment's first invocation.
- Request bodies over 6 MB get 413 ``RequestTooLargeException``; responses over 6 MB + 100 bytes are answered
  with ``Function.ResponseSizeTooLarge``. The endpoint also answers under the function's own name
  (``/2015-03-31/functions/<AWS_LAMBDA_FUNCTION_NAME>/invocations``) so SDK clients can use it.
- A streamed response (``Lambda-Runtime-Function-Response-Mode: streaming``) reaches the invoker as it is
  produced, in a chunked response (``curl -N`` shows each chunk as it comes), with no 6 MB limit. At most
  ``STREAM_BUFFER_BYTES`` wait between the runtime and a slow invoker; beyond that the runtime waits. An HTTP
  integration response (``application/vnd.awslambda.http-integration-response``) is answered as a function URL
  answers it: the prelude's ``statusCode``, ``headers``, ``multiValueHeaders`` and ``cookies`` become the
  response's status and headers, and the body follows the eight NUL bytes. As the status line has left by then,
  an error part-way (the runtime's error trailers, a timeout, a crash) ends the body with the trailers
  ``X-Amz-Function-Error: Unhandled``, ``Lambda-Runtime-Function-Error-Type`` and
  ``Lambda-Runtime-Function-Error-Body`` (the error document, base64-encoded); ``X-Amz-Log-Type: Tail`` puts
  ``X-Amz-Log-Result`` in the trailers too.

``AWS_LAMBDA_FUNCTION_MEMORY_SIZE`` (default 3008, the emulator's) is what the context reports. It limits nothing
unless ``memory_limit`` is set, which caps each runtime's address space (``RLIMIT_AS``): virtual memory, a cruder
measure than the resident memory Lambda limits. The startup line says which applies.

The runtime gets the emulator's environment defaults where unset (function name ``test_function``, version
``$LATEST``, memory 3008, log group ``/aws/lambda/Functions``, log stream ``$LATEST``, region ``us-east-1``).

``FASTRIC_LOCAL_RUNTIME_CMD`` is a testing and diagnostic knob: a shell-style command prefix that replaces
``python -m fastric`` as the runtime process, the handler being appended. For instance
``FASTRIC_LOCAL_RUNTIME_CMD="python -m awslambdaric"`` runs the stock runtime client behind the same endpoints.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import json
import math
import os
import select
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MAX_REQUEST_BYTES = 6 * 1024 * 1024
"""Invoke API quota on a synchronous request body."""

MAX_RESPONSE_BYTES = MAX_REQUEST_BYTES + 100
"""Largest response the Runtime API accepts (the emulator's constant)."""

LOG_TAIL_BYTES = 4096
"""How much of an invocation's log ``X-Amz-Log-Type: Tail`` returns, as Lambda does."""

RUNTIME_CMD_ENV = "FASTRIC_LOCAL_RUNTIME_CMD"

STREAM_BUFFER_BYTES = 1024 * 1024
"""How much of a streamed response may wait for a slow invoker before the runtime is made to wait."""

HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
"""The content type of a streamed response that opens with a JSON prelude (status, headers, cookies)."""

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
_DEFAULT_MEMORY_MB = 3008
_INVOCATION_TYPES = ("Event", "RequestResponse", "DryRun")
_LOG_TYPES = ("None", "Tail")
_STOP_GRACE_S = 3.0
_SIGNAL_CHECK_S = 0.1
# How long an exited runtime's last requests may take to be read before its invocation is settled.
_DRAIN_S = 2.0
_CLIENT_CONTEXT_ERROR = "Client context must be a valid Base64-encoded JSON object."
_RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
_ERROR_TYPE_TRAILER = "Lambda-Runtime-Function-Error-Type"
_ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
_INVOKE_TRAILERS = ("X-Amz-Function-Error", _ERROR_TYPE_TRAILER, _ERROR_BODY_TRAILER, "X-Amz-Log-Result")
_PRELUDE_DELIMITER = b"\0" * 8
# A prelude is a few headers; API Gateway wants it within the first 16 KB. Past this, the bytes are not one.
_MAX_PRELUDE_BYTES = 64 * 1024
# Headers of a prelude that would contradict the framing of the response they are put on.
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "trailer", "keep-alive"})
_READ_PIECE = 64 * 1024
# ru_maxrss is in kilobytes on Linux and in bytes on macOS.
_MAXRSS_UNIT_KB = 1 / 1024 if sys.platform == "darwin" else 1


@dataclass(frozen=True)
class FunctionConfig:
    """What the invoke endpoint and the runtime's environment need to know about the function."""

    handler: str
    name: str
    version: str
    timeout_ms: int
    memory_mb: int

    @classmethod
    def from_environ(cls, handler: str, environ: Mapping[str, str]) -> FunctionConfig:
        return cls(
            handler=handler,
            name=environ.get("AWS_LAMBDA_FUNCTION_NAME") or _ENV_DEFAULTS["AWS_LAMBDA_FUNCTION_NAME"],
            version=environ.get("AWS_LAMBDA_FUNCTION_VERSION") or _ENV_DEFAULTS["AWS_LAMBDA_FUNCTION_VERSION"],
            timeout_ms=_timeout_ms(environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "")),
            memory_mb=_memory_mb(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")),
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

    def runtime_environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The runtime's environment, but for ``AWS_LAMBDA_RUNTIME_API``, which each environment sets."""
        env = dict(environ)
        for key, default in _ENV_DEFAULTS.items():
            if not env.get(key):
                env[key] = default
        env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(self.memory_mb)
        env["_HANDLER"] = self.handler
        # Each environment serves one invocation at a time; a multi-concurrency runtime would race for /next.
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


def _memory_mb(value: str) -> int:
    try:
        memory = int(value or _DEFAULT_MEMORY_MB)
    except ValueError:
        memory = 0
    if memory <= 0:
        print(f"fastric: AWS_LAMBDA_FUNCTION_MEMORY_SIZE={value!r} is not a number of MB, using 3008", file=sys.stderr)
        memory = _DEFAULT_MEMORY_MB
    return memory


@dataclass(frozen=True)
class InvokeResult:
    """The answer to one invoke: a body, whether it is a function error document, and the invocation's log."""

    body: bytes
    content_type: str = "application/json"
    function_error: bool = False
    log: bytes = b""
    """The end of the invocation's log, at most ``LOG_TAIL_BYTES``."""

    stream: StreamRelay | None = None
    """A streamed response's chunks, on their way; the body is empty and the invocation still runs."""

    @classmethod
    def error(cls, document: bytes) -> InvokeResult:
        return cls(document, "application/json", function_error=True)


@dataclass(eq=False)
class Invocation:
    """One invoke on its way through the queue, an environment and back."""

    request_id: str
    payload: bytes
    headers: dict[str, str]
    """Headers for the runtime's /next besides the request id and deadline."""

    submitted: float = dataclasses.field(default_factory=time.monotonic)
    started: float = 0.0
    """Monotonic time the runtime received the invocation."""

    deadline: float | None = None
    """Monotonic deadline, set when the runtime receives the invocation."""

    deadline_ms: int = 0
    environment: Environment | None = None
    result: InvokeResult | None = None
    stream: InvokeResult | None = None
    """The answer of a streamed response, set when its stream begins; ``result`` is set when it ends."""

    finished: bool = False
    """Whether the invocation is over: a streamed one is answered before."""


class StreamRelay:
    """The chunks of a streamed response between the runtime's request and the invoker's response.

    The runtime's side blocks once ``limit`` bytes wait, so a slow invoker slows the runtime down instead of
    filling memory. An invoker that goes away abandons the relay: what comes after is dropped, and the runtime
    finishes its invocation undisturbed.
    """

    def __init__(self, limit: int = STREAM_BUFFER_BYTES) -> None:
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit
        self._ended = False
        self._abandoned = False

    def put(self, data: bytes) -> None:
        """Pass a chunk on, waiting while the invoker is ``limit`` bytes behind."""
        with self._cond:
            while self._size >= self._limit and not self._abandoned:
                self._cond.wait()
            if self._abandoned:
                return
            self._chunks.append(data)
            self._size += len(data)
            self._cond.notify_all()

    def end(self) -> None:
        """No more chunks: the stream ended, or broke off."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def abandon(self) -> None:
        """Nobody reads any more; drop what waits and what comes."""
        with self._cond:
            self._abandoned = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    def get(self, timeout: float) -> bytes | None:
        """The next chunk, or None once the stream is over; raises TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._chunks and not self._ended:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._cond.wait(remaining)
            if not self._chunks:
                return None
            data = self._chunks.popleft()
            self._size -= len(data)
            self._cond.notify_all()
            return data


class RuntimeApiError(Exception):
    """A Runtime API request the current state does not allow; rendered as Lambda's error JSON."""

    def __init__(self, status: HTTPStatus, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def _error_document(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def _exit_message(request_id: str, status: str) -> str:
    return f"RequestId: {request_id} Error: Runtime exited with error: {status}"


def _exit_status(returncode: int) -> str:
    """Describe an exit the way Lambda's messages do (Go's process state wording)."""
    if returncode >= 0:
        return f"exit status {returncode}"
    description = signal.strsignal(-returncode) or f"signal {-returncode}"
    return f"signal: {description.lower()}"


def _timestamp() -> str:
    """UTC time as Lambda stamps its own log lines (``2024-01-02T03:04:05.678Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _report_line(
    request_id: str,
    *,
    duration_ms: float,
    memory_mb: int,
    max_memory_kb: int,
    init_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    """Lambda's REPORT line, as CloudWatch Logs shows it.

    Each field ends with a tab, the last one included::

        REPORT RequestId: <id>\\tDuration: 12.34 ms\\tBilled Duration: 13 ms\\tMemory Size: 128 MB\\t
        Max Memory Used: 45 MB\\tInit Duration: 123.45 ms\\t

    (one line). ``Init Duration`` appears on an environment's first invocation only. Billing is by the
    millisecond, rounded up, and counts the init phase too (Lambda bills it since August 2025). ``Status`` and
    ``Error Type`` appear when the platform, not the function, ended the invocation: ``Status: timeout``, or
    ``Status: error`` with ``Error Type: Runtime.ExitError``. Memory is in MB of 2**20 bytes, rounded up.
    """
    billed_ms = math.ceil(duration_ms + (init_ms or 0.0))
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_ms} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {math.ceil(max_memory_kb / 1024)} MB",
    ]
    if init_ms is not None:
        fields.append(f"Init Duration: {init_ms:.2f} ms")
    if status is not None:
        fields.append(f"Status: {status}")
    if error_type is not None:
        fields.append(f"Error Type: {error_type}")
    return "".join(f"{field}\t" for field in fields)


def _peak_rss_kb(pid: int) -> int | None:
    """A live process's peak resident set size (``VmHWM``), where ``/proc`` has it."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class _Output:
    """One of the parent's standard streams, written without buffering from any thread.

    It remembers whether the last write ended a line, so that Lambda's own lines always start on one.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._at_line_start = True

    def write(self, data: bytes) -> None:
        with self._lock:
            self._write_locked(data)

    def write_lines(self, text: str) -> None:
        with self._lock:
            self._write_locked(text.encode() if self._at_line_start else b"\n" + text.encode())

    def _write_locked(self, data: bytes) -> None:
        if not data:
            return
        view = memoryview(data)
        try:
            while view:
                try:
                    view = view[os.write(self._fd, view) :]
                except BlockingIOError:
                    # A descriptor the parent inherited in non-blocking mode: wait until it takes more.
                    select.select([], [self._fd], [])
        except OSError:
            # A closed terminal must not take the server down; the output is lost either way.
            return
        self._at_line_start = data.endswith(b"\n")


class _LogPump:
    """Passes a runtime's stdout and stderr on to the parent's, keeping the current invocation's share.

    A thread reads whatever the pipes hold as soon as it arrives. Before Lambda's own lines are written,
    :meth:`begin` and :meth:`end` read the pipes dry themselves: the runtime wrote its output before it called the
    Runtime API, so everything it printed for an invocation is in the log before that invocation's END line.
    """

    def __init__(self, process: subprocess.Popen[bytes], stdout: _Output, stderr: _Output) -> None:
        assert process.stdout is not None and process.stderr is not None
        self._lock = threading.Lock()
        self._platform = stdout
        self._streams = {process.stdout.fileno(): stdout, process.stderr.fileno(): stderr}
        self._files = [process.stdout, process.stderr]
        for fd in self._streams:
            os.set_blocking(fd, False)
        self._open = set(self._streams)
        self._wake_read, self._wake_write = os.pipe()
        self._closed = False
        self._capture = bytearray()
        threading.Thread(target=self._run, name="fastric-runtime-output", daemon=True).start()

    def begin(self, line: str) -> None:
        """Write an invocation's first line (START) and start keeping its log."""
        with self._lock:
            self._drain_locked()
            self._capture = bytearray()
            self._emit_locked(line)

    def end(self, lines: list[str]) -> bytes:
        """Write an invocation's last lines (END, REPORT) and return the tail of its log."""
        with self._lock:
            self._drain_locked()
            for line in lines:
                self._emit_locked(line)
            captured = bytes(self._capture[-LOG_TAIL_BYTES:])
            self._capture = bytearray()
            return captured

    def take(self) -> bytes:
        """The tail of what the runtime printed since the last invocation (its init output, before the first)."""
        with self._lock:
            self._drain_locked()
            captured = bytes(self._capture[-LOG_TAIL_BYTES:])
            self._capture = bytearray()
            return captured

    def close(self) -> None:
        """Read what is left and stop; a pipe kept open by the runtime's own children is not waited for."""
        with self._lock:
            if self._closed:
                return
            self._drain_locked()
            self._closed = True
            os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for fd in self._open:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                selector.select()
                with self._lock:
                    if self._closed:
                        break
                    self._drain_locked()
                    for fd in set(self._streams) - self._open:
                        if fd in selector.get_map():
                            selector.unregister(fd)
                    if not self._open:
                        self._closed = True
                        break
        # Nothing else touches the descriptors once closed is set.
        for file in self._files:
            file.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _drain_locked(self) -> None:
        if self._closed:
            return
        for fd in list(self._open):
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self._open.discard(fd)
                    break
                self._streams[fd].write(data)
                self._keep(data)

    def _emit_locked(self, line: str) -> None:
        self._platform.write_lines(line + "\n")
        if self._capture and not self._capture.endswith(b"\n"):
            self._capture += b"\n"
        self._keep((line + "\n").encode())

    def _keep(self, data: bytes) -> None:
        self._capture += data
        # Only the tail is ever returned; trimming in large steps keeps appends cheap.
        if len(self._capture) > 4 * LOG_TAIL_BYTES:
            del self._capture[:-LOG_TAIL_BYTES]


@dataclass(frozen=True)
class _InitFailure:
    """An init that failed, kept to answer the invocation it falls to."""

    document: Callable[[str], bytes]
    """The error document for a request id."""

    error_type: str
    log: bytes
    peak_kb: int


class Environment:
    """One execution environment: a runtime process, the Runtime API it talks to, and its output.

    Its state is guarded by the pool's lock.
    """

    def __init__(self, pool: FunctionPool) -> None:
        self.pool = pool
        self.server = RuntimeApiServer(self)
        self.process: subprocess.Popen[bytes] | None = None
        self.pump: _LogPump | None = None
        self.spawned = 0.0
        # From the process's start to its first /next, reported with the environment's first invocation.
        self.init_ms: float | None = None
        self.init_reported = False
        self.init_failed = False
        self.ready = False
        self.timed_out = False
        self.exited = False
        self.in_flight: Invocation | None = None
        # Each /next takes a new number; a waiting /next whose number is no longer current gives up, so a poll
        # left behind by an exited runtime never takes an invocation.
        self.poll = 0
        self.peak_kb = 0
        self.over_memory_warned = False

    @property
    def free(self) -> bool:
        """Whether it is, or will be once its init is done, waiting for an invocation."""
        return not (self.exited or self.timed_out or self.init_failed or self.in_flight is not None)

    def signal(self, signum: int) -> None:
        """Signal the runtime and whatever it started: they go together, as with Lambda's environment."""
        # The process is reaped under the pool's lock (see FunctionPool._watch), so its pid is still its own.
        if self.process is not None and not self.exited:
            _signal_group(self.process.pid, signum)

    def measure_memory(self) -> None:
        if self.process is not None and not self.exited:
            self.peak_kb = max(self.peak_kb, _peak_rss_kb(self.process.pid) or 0)


class FunctionPool:
    """The function's invocation queue and the environments that serve it.

    Invokes wait in arrival order. An environment's runtime takes one at a time through /next and answers it
    before it may take the next. An environment starts when invokes wait and no running one is free, up to
    ``concurrency``. A failed init answers the oldest waiting invoke, or is kept for the next one to arrive.
    """

    def __init__(
        self,
        function: FunctionConfig,
        command: list[str],
        env: dict[str, str],
        *,
        stdout: _Output,
        stderr: _Output,
        concurrency: int = 1,
        memory_limit: bool = False,
        announce_exits: bool = True,
    ) -> None:
        self.function = function
        self._command = command
        self._env = env
        self._stdout = stdout
        self._stderr = stderr
        self._concurrency = concurrency
        self._memory_limit = memory_limit
        self._announce_exits = announce_exits
        self._cond = threading.Condition()
        self._pending: deque[Invocation] = deque()
        self._environments: list[Environment] = []
        self._init_failure: _InitFailure | None = None
        self._stopping = False

    # ---- The invoke side ----

    def start(self) -> None:
        """Start an environment now (eager init); raises OSError when the runtime cannot be run."""
        with self._cond:
            self._spawn_locked()

    def invoke(self, invocation: Invocation) -> InvokeResult:
        """Run one invocation and return its answer, starting an environment if none is free.

        A streamed answer (one with ``stream``) returns as soon as the stream begins; read it with
        :meth:`stream_chunks`, then :meth:`wait_finished` gives how the invocation ended.
        """
        with self._cond:
            if self._init_failure is not None:
                self._answer_init_failure_locked(invocation, self._init_failure)
                self._init_failure = None
            else:
                self._pending.append(invocation)
                self._cond.notify_all()
                self._scale_locked()

            while invocation.result is None and invocation.stream is None:
                if invocation.deadline is None:
                    self._cond.wait()
                    continue
                remaining = invocation.deadline - time.monotonic()
                if remaining <= 0:
                    self._time_out_locked(invocation)
                else:
                    self._cond.wait(remaining)
            # A stream that began is the answer, even if it has ended since.
            return invocation.stream or invocation.result

    def invoke_in_background(self, invocation: Invocation) -> None:
        """Run an invocation without waiting for it (``X-Amz-Invocation-Type: Event``)."""
        threading.Thread(target=self._invoke_unread, args=(invocation,), name="fastric-event", daemon=True).start()

    def _invoke_unread(self, invocation: Invocation) -> None:
        result = self.invoke(invocation)
        # Nobody reads the answer, a streamed one included.
        if result.stream is not None:
            result.stream.abandon()

    def stream_chunks(self, invocation: Invocation, relay: StreamRelay) -> Iterator[bytes]:
        """The chunks of an invocation's streamed response as they come, until it ends or times out."""
        assert invocation.deadline is not None
        try:
            while True:
                remaining = invocation.deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                data = relay.get(remaining)
                if data is None:
                    return
                yield data
        except TimeoutError:
            with self._cond:
                self._time_out_locked(invocation)
        finally:
            # Whatever ended the reading (the end, a timeout, an invoker gone), the runtime must not wait on it.
            relay.abandon()

    def wait_finished(self, invocation: Invocation) -> InvokeResult:
        """Wait for a streamed invocation to end (timing it out at its deadline) and return its final result."""
        assert invocation.deadline is not None
        with self._cond:
            while not invocation.finished:
                remaining = invocation.deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._time_out_locked(invocation)
                if not invocation.finished:
                    self._cond.wait(_SIGNAL_CHECK_S)
            assert invocation.result is not None
            return invocation.result

    def stop(self) -> None:
        """Stop every environment: SIGTERM, then SIGKILL after a grace period."""
        with self._cond:
            self._stopping = True
            for signum, grace in ((signal.SIGTERM, _STOP_GRACE_S), (signal.SIGKILL, _STOP_GRACE_S)):
                for environment in self._environments:
                    environment.signal(signum)
                if self._cond.wait_for(lambda: not self._environments, grace):
                    return

    # ---- The Runtime API side ----

    def next_invocation(self, environment: Environment) -> Invocation:
        """Long-poll for an environment's next invocation (GET /invocation/next)."""
        with self._cond:
            if environment.in_flight is not None:
                message = f"invocation {environment.in_flight.request_id} must be answered before the next one"
                raise RuntimeApiError(HTTPStatus.FORBIDDEN, "InvalidStateTransition", message)
            if not environment.ready:
                environment.ready = True
                environment.init_ms = (time.monotonic() - environment.spawned) * 1000
            environment.poll += 1
            poll = environment.poll
            while poll == environment.poll and not self._pending:
                self._cond.wait()
            if poll != environment.poll:
                message = "this /next was replaced by a newer one or its runtime exited"
                raise RuntimeApiError(HTTPStatus.FORBIDDEN, "InvalidStateTransition", message)

            invocation = self._pending.popleft()
            environment.in_flight = invocation
            invocation.environment = environment
            invocation.started = time.monotonic()
            invocation.deadline = invocation.started + self.function.timeout_ms / 1000
            invocation.deadline_ms = int(time.time() * 1000) + self.function.timeout_ms
            assert environment.pump is not None
            environment.pump.begin(f"START RequestId: {invocation.request_id} Version: {self.function.version}")
            # The invoke waiting on this invocation starts counting down to the deadline.
            self._cond.notify_all()
            return invocation

    def begin_stream(self, environment: Environment, request_id: str, result: InvokeResult) -> None:
        """Answer an environment's invocation with a stream that is still coming (a streamed POST /response)."""
        with self._cond:
            invocation = environment.in_flight
            if invocation is None or invocation.request_id != request_id or invocation.stream is not None:
                raise RuntimeApiError(HTTPStatus.BAD_REQUEST, "InvalidRequestID", "Invalid request ID")
            invocation.stream = result
            self._cond.notify_all()

    def complete(self, environment: Environment, request_id: str, result: InvokeResult) -> None:
        """Answer an environment's invocation (POST /invocation/{id}/response or /error)."""
        with self._cond:
            invocation = environment.in_flight
            if invocation is None or invocation.request_id != request_id:
                raise RuntimeApiError(HTTPStatus.BAD_REQUEST, "InvalidRequestID", "Invalid request ID")
            environment.in_flight = None
            environment.measure_memory()
            self._finish_locked(environment, invocation, result)

    def init_error(self, environment: Environment, document: bytes, error_type: str | None) -> None:
        """Record an init error (POST /init/error) reported before the runtime's first /next."""
        with self._cond:
            if environment.ready:
                message = "init/error is only accepted before the runtime's first /next"
                raise RuntimeApiError(HTTPStatus.FORBIDDEN, "InvalidStateTransition", message)
            environment.init_failed = True
            environment.measure_memory()
            assert environment.pump is not None
            failure = _InitFailure(
                lambda _request_id: document,
                error_type or _error_type_of(document),
                environment.pump.take(),
                environment.peak_kb,
            )
            self._fail_init_locked(failure)

    # ---- Environments ----

    def _scale_locked(self) -> None:
        free = sum(environment.free for environment in self._environments)
        while len(self._pending) > free and len(self._environments) < self._concurrency and not self._stopping:
            try:
                self._spawn_locked()
            except OSError as exc:
                message = f"cannot start the runtime ({shlex.join(self._command)}): {exc}"
                self._fail_pending_locked(_error_document("Runtime.InvalidEntrypoint", message))
                return
            free += 1

    def _spawn_locked(self) -> None:
        environment = Environment(self)
        server = environment.server
        threading.Thread(target=server.serve_forever, args=(0.1,), name="fastric-runtime-api", daemon=True).start()
        env = {**self._env, "AWS_LAMBDA_RUNTIME_API": server.address}
        environment.spawned = time.monotonic()
        try:
            # A session of its own: the terminal's Ctrl-C reaches the parent only, which stops the runtime, and the
            # runtime's own children can be ended with it.
            process = subprocess.Popen(
                self._command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError:
            _close_server(server)
            raise
        if self._memory_limit:
            self._limit_memory(process.pid)
        environment.process = process
        environment.pump = _LogPump(process, self._stdout, self._stderr)
        self._environments.append(environment)
        threading.Thread(target=self._watch, args=(environment,), name="fastric-runtime-watch", daemon=True).start()

    def _limit_memory(self, pid: int) -> None:
        import resource

        limit = self.function.memory_mb * 1024 * 1024
        try:
            # Set from outside once the runtime runs: unlike a preexec_fn, this is safe in a threaded parent.
            resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))
        except (OSError, AttributeError) as exc:
            print(f"fastric: cannot limit the runtime's memory: {exc}", file=sys.stderr)

    def _watch(self, environment: Environment) -> None:
        assert environment.process is not None
        pid = environment.process.pid
        # Wait for the exit without reaping, then reap under the lock: the pid cannot be reused while a timeout or
        # a stop may still signal it.
        if hasattr(os, "waitid"):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            environment.server.wait_drained(_DRAIN_S)
            with self._cond:
                # Processes the runtime left behind end with it, as Lambda ends its execution environment.
                _signal_group(pid, signal.SIGKILL)
                self._exited_locked(environment, *os.wait4(pid, 0)[1:])
        else:
            _, wait_status, usage = os.wait4(pid, 0)
            environment.server.wait_drained(_DRAIN_S)
            with self._cond:
                self._exited_locked(environment, wait_status, usage)
        _close_server(environment.server)

    def _exited_locked(self, environment: Environment, wait_status: int, usage: Any) -> None:
        assert environment.process is not None and environment.pump is not None
        returncode = os.waitstatus_to_exitcode(wait_status)
        environment.process.returncode = returncode
        status = _exit_status(returncode)
        environment.exited = True
        environment.peak_kb = max(environment.peak_kb, int(usage.ru_maxrss * _MAXRSS_UNIT_KB))
        environment.poll += 1
        self._environments.remove(environment)
        self._cond.notify_all()

        invocation = environment.in_flight
        if invocation is not None:
            environment.in_flight = None
            message = _exit_message(invocation.request_id, status)
            result = InvokeResult.error(_error_document("Runtime.ExitError", message))
            lines = [message, "Runtime.ExitError"]
            self._finish_locked(environment, invocation, result, lines, status="error", error_type="Runtime.ExitError")
        elif not environment.ready and not environment.init_failed and not self._stopping:
            # Died during init without reporting it: Lambda reports such an init as Runtime.ExitError.
            failure = _InitFailure(
                lambda request_id: _error_document("Runtime.ExitError", _exit_message(request_id, status)),
                "Runtime.ExitError",
                environment.pump.take(),
                environment.peak_kb,
            )
            self._fail_init_locked(failure)
        environment.pump.close()

        if self._stopping:
            return
        if self._announce_exits:
            print(f"fastric: the runtime exited ({status}); the next invoke starts a new one", file=sys.stderr)
        self._scale_locked()

    # ---- Answers ----

    def _finish_locked(
        self,
        environment: Environment,
        invocation: Invocation,
        result: InvokeResult,
        lines: Sequence[str] = (),
        *,
        status: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """Answer an invocation an environment received, writing its END and REPORT lines."""
        assert environment.pump is not None
        init_ms = None if environment.init_reported else environment.init_ms
        environment.init_reported = True
        report = _report_line(
            invocation.request_id,
            duration_ms=(time.monotonic() - invocation.started) * 1000,
            memory_mb=self.function.memory_mb,
            max_memory_kb=environment.peak_kb,
            init_ms=init_ms,
            status=status,
            error_type=error_type,
        )
        log = environment.pump.end([*lines, f"END RequestId: {invocation.request_id}", report])
        self._warn_over_memory_locked(environment)
        invocation.result = dataclasses.replace(result, log=log)
        invocation.finished = True
        self._cond.notify_all()

    def _time_out_locked(self, invocation: Invocation) -> None:
        """Answer an in-flight invocation past its deadline with Lambda's timeout error and kill its runtime."""
        environment = invocation.environment
        if environment is None or environment.in_flight is not invocation:
            return
        environment.in_flight = None
        environment.timed_out = True
        environment.measure_memory()
        seconds = self.function.timeout_ms / 1000
        message = f"Task timed out after {seconds:.2f} seconds"
        document = _error_document("Sandbox.Timedout", f"RequestId: {invocation.request_id} Error: {message}")
        lines = [f"{_timestamp()} {invocation.request_id} {message}"]
        self._finish_locked(environment, invocation, InvokeResult.error(document), lines, status="timeout")
        environment.signal(signal.SIGKILL)

    def _fail_init_locked(self, failure: _InitFailure) -> None:
        if self._pending:
            self._answer_init_failure_locked(self._pending.popleft(), failure)
        else:
            self._init_failure = failure

    def _answer_init_failure_locked(self, invocation: Invocation, failure: _InitFailure) -> None:
        """Answer an invocation that no runtime received with an init failure, logging it as Lambda would."""
        request_id = invocation.request_id
        report = _report_line(
            request_id,
            duration_ms=(time.monotonic() - invocation.submitted) * 1000,
            memory_mb=self.function.memory_mb,
            max_memory_kb=failure.peak_kb,
            status="error",
            error_type=failure.error_type,
        )
        lines = f"START RequestId: {request_id} Version: {self.function.version}\nEND RequestId: {request_id}\n"
        lines += f"{report}\n"
        self._stdout.write_lines(lines)
        log = failure.log + (b"" if not failure.log or failure.log.endswith(b"\n") else b"\n") + lines.encode()
        invocation.result = InvokeResult(failure.document(request_id), function_error=True, log=log[-LOG_TAIL_BYTES:])
        invocation.finished = True
        self._cond.notify_all()

    def _fail_pending_locked(self, document: bytes) -> None:
        while self._pending:
            invocation = self._pending.popleft()
            invocation.result = InvokeResult.error(document)
            invocation.finished = True
        self._cond.notify_all()

    def _warn_over_memory_locked(self, environment: Environment) -> None:
        used_mb = math.ceil(environment.peak_kb / 1024)
        if self._memory_limit or environment.over_memory_warned or used_mb <= self.function.memory_mb:
            return
        environment.over_memory_warned = True
        print(
            f"fastric: the runtime used {used_mb} MB, more than the memory size of {self.function.memory_mb} MB;"
            " on Lambda it would have been stopped (Runtime.OutOfMemory)",
            file=sys.stderr,
        )


def _signal_group(pid: int, signum: int) -> None:
    """Signal a runtime's process group, or the runtime alone if it left the group it leads."""
    try:
        os.killpg(pid, signum)
    except OSError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _trailer_document(error_type: str, encoded: str) -> bytes:
    """The error document of a stream's error trailers, made from the type alone when the body is unreadable."""
    try:
        document = base64.b64decode(encoded, validate=True)
        json.loads(document)
    except ValueError:
        return _error_document(error_type, "")
    return document


def _error_type_of(document: bytes) -> str:
    try:
        error_type = json.loads(document).get("errorType")
    except (ValueError, AttributeError):
        error_type = None
    return error_type if isinstance(error_type, str) else "Runtime.Unknown"


def _close_server(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


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
    """An environment's Runtime API, on an ephemeral loopback port."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(("127.0.0.1", 0), RuntimeApiHandler)
        self.environment = environment
        # Connections whose handler may still have requests of the runtime's to read: all of them but those
        # waiting in a /next long poll.
        self._busy = 0
        self._activity = threading.Condition()

    def note_busy(self, change: int) -> None:
        with self._activity:
            self._busy += change
            self._activity.notify_all()

    def wait_drained(self, timeout: float) -> None:
        """Wait until every request a runtime sent before it died has been read, or ``timeout`` has passed.

        A runtime that sends a request and exits at once leaves it in the socket: a streamed response's first
        chunk, say, whose invocation must end as a stream with the exit in its trailers, not as a plain error.
        """
        deadline = time.monotonic() + timeout
        with self._activity:
            while self._busy > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._activity.wait(remaining)

    @property
    def address(self) -> str:
        """The value for the runtime's ``AWS_LAMBDA_RUNTIME_API``."""
        return f"127.0.0.1:{self.server_address[1]}"


class InvokeServer(_Server):
    """The invoke endpoint on the user's host and port."""

    def __init__(self, address: tuple[str, int], pool: FunctionPool) -> None:
        super().__init__(address, InvokeHandler)
        self.pool = pool


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
        content_type: str | None = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        # A 204 has no body and, per RFC 9110, no Content-Length either.
        if status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class RuntimeApiHandler(_Handler):
    """The Runtime API (``/2018-06-01/runtime/...``) an environment's runtime talks to."""

    server: RuntimeApiServer

    def setup(self) -> None:
        super().setup()
        self.server.note_busy(+1)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.note_busy(-1)

    def do_GET(self) -> None:
        if self.path != f"{_RUNTIME_API_PREFIX}/invocation/next":
            self._send_not_found()
            return
        environment = self.server.environment
        # A long poll has read its request; the runtime's exit is what it waits for, not the other way round.
        self.server.note_busy(-1)
        try:
            invocation = environment.pool.next_invocation(environment)
        except RuntimeApiError as exc:
            self._send_error(exc)
            return
        finally:
            self.server.note_busy(+1)
        headers = {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            **invocation.headers,
        }
        self._send(HTTPStatus.OK, invocation.payload, "application/json", headers)

    def do_POST(self) -> None:
        parts = self.path.split("/") if self.path.startswith(_RUNTIME_API_PREFIX + "/") else []
        mode = self.headers.get(_RESPONSE_MODE_HEADER)
        if mode is not None and len(parts) == 6 and parts[3] == "invocation" and parts[5] == "response":
            self._take_stream(parts[4], mode)
            return
        try:
            body = self._read_body(MAX_RESPONSE_BYTES)
        except ValueError:
            self.close_connection = True
            self._send_error(RuntimeApiError(HTTPStatus.BAD_REQUEST, "TruncatedHTTPRequest", "malformed request body"))
            return
        environment = self.server.environment
        try:
            if parts[3:] == ["init", "error"]:
                error_type = self.headers.get("Lambda-Runtime-Function-Error-Type")
                environment.pool.init_error(environment, body or b"", error_type)
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
        environment = self.server.environment
        environment.pool.complete(environment, request_id, result)

    def _take_stream(self, request_id: str, mode: str) -> None:
        """Pass a streamed response on to the invoke waiting for it, chunk by chunk, as it arrives."""
        environment = self.server.environment
        if mode != "streaming":
            # The only mode there is; Lambda refuses any other value.
            message = f"invalid response mode {mode!r}: only 'streaming' is accepted"
            self._refuse_stream(RuntimeApiError(HTTPStatus.BAD_REQUEST, "Runtime.InvalidResponseModeHeader", message))
            return
        relay = StreamRelay()
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        try:
            environment.pool.begin_stream(environment, request_id, InvokeResult(b"", content_type, stream=relay))
        except RuntimeApiError as exc:
            self._refuse_stream(exc)
            return

        try:
            trailers = self._relay_body(relay)
        except (OSError, ValueError):
            # The runtime broke off (its exit answers the invocation) or broke the framing: nothing to answer.
            self.close_connection = True
            return
        finally:
            relay.end()

        # A failure part-way comes in the trailers, as the error document base64-encoded.
        error_type = trailers.get(_ERROR_TYPE_TRAILER.lower())
        if error_type:
            document = _trailer_document(error_type, trailers.get(_ERROR_BODY_TRAILER.lower(), ""))
            result = InvokeResult.error(document)
        else:
            result = InvokeResult(b"", content_type)
        try:
            environment.pool.complete(environment, request_id, result)
        except RuntimeApiError as exc:
            self._send_error(exc)
            return
        self._send(HTTPStatus.ACCEPTED, b'{"status":"OK"}')

    def _relay_body(self, relay: StreamRelay) -> dict[str, str]:
        """Pass the request body on as it arrives and return its trailers, names lower-cased."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            self._relay_bytes(relay, self._content_length())
            return {}
        while True:
            size = int(self._read_line().split(b";", 1)[0], 16)
            if size == 0:
                break
            self._relay_bytes(relay, size)
            if self._read_line().strip():
                raise ValueError("a chunk runs past its size")
        trailers = {}
        while line := self._read_line().strip():
            name, _, value = line.decode("latin-1").partition(":")
            trailers[name.strip().lower()] = value.strip()
        return trailers

    def _relay_bytes(self, relay: StreamRelay, size: int) -> None:
        # A large chunk is passed on in pieces, each as soon as it is in.
        while size > 0:
            data = self.rfile.read(min(size, _READ_PIECE))
            if not data:
                raise ConnectionError("the runtime closed the connection part-way")
            relay.put(data)
            size -= len(data)

    def _read_line(self) -> bytes:
        line = self.rfile.readline(65537)
        if not line.endswith(b"\n"):
            raise ConnectionError("the runtime closed the connection part-way")
        return line

    def _refuse_stream(self, error: RuntimeApiError) -> None:
        # The body is read first: the runtime sends it all before it reads the answer.
        relay = StreamRelay()
        relay.abandon()
        try:
            self._relay_body(relay)
        except (OSError, ValueError):
            self.close_connection = True
            return
        self._send_error(error)

    def _send_not_found(self) -> None:
        message = f"unknown Runtime API endpoint: {self.command} {self.path}"
        self._send_error(RuntimeApiError(HTTPStatus.NOT_FOUND, "UnknownEndpoint", message))

    def _send_error(self, exc: RuntimeApiError) -> None:
        self._send(exc.status, _error_document(exc.error_type, exc.message))


class InvokeHandler(_Handler):
    """The invoke endpoint, answering as Lambda's Invoke API does."""

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

        pool = self.server.pool
        path = urlsplit(self.path).path
        if path not in pool.function.invoke_paths:
            message = f"Function not found: {path}; invoke POST {_INVOKE_PATH.format('function')}"
            self._send_client_error(HTTPStatus.NOT_FOUND, "ResourceNotFoundException", message, message_key="Message")
            return

        invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
        log_type = self.headers.get("X-Amz-Log-Type") or "None"
        for value, field, allowed in (
            (invocation_type, "invocationType", _INVOCATION_TYPES),
            (log_type, "logType", _LOG_TYPES),
        ):
            if value not in allowed:
                self._send_validation_error(value, field, allowed)
                return

        try:
            headers = self._runtime_headers()
        except ValueError:
            self._send_client_error(HTTPStatus.BAD_REQUEST, "InvalidRequestContentException", _CLIENT_CONTEXT_ERROR)
            return

        invocation = Invocation(str(uuid.uuid4()), body, headers)
        response_headers = {"X-Amzn-RequestId": invocation.request_id}
        if invocation_type == "DryRun":
            self._send(HTTPStatus.NO_CONTENT, b"", None, response_headers)
            return
        if invocation_type == "Event":
            pool.invoke_in_background(invocation)
            self._send(HTTPStatus.ACCEPTED, b"", None, response_headers)
            return

        result = pool.invoke(invocation)
        response_headers["X-Amz-Executed-Version"] = pool.function.version
        if result.stream is not None:
            self._send_stream(invocation, result, result.stream, response_headers, tail=log_type == "Tail")
            return
        if result.function_error:
            response_headers["X-Amz-Function-Error"] = "Unhandled"
        if log_type == "Tail":
            response_headers["X-Amz-Log-Result"] = base64.b64encode(result.log[-LOG_TAIL_BYTES:]).decode()
        self._send(HTTPStatus.OK, result.body, result.content_type, response_headers)

    def _send_stream(
        self,
        invocation: Invocation,
        result: InvokeResult,
        relay: StreamRelay,
        headers: dict[str, str],
        *,
        tail: bool,
    ) -> None:
        """Answer with a streamed response, each chunk sent as it comes; how it ended goes in the trailers."""
        pool = self.server.pool
        with contextlib.closing(pool.stream_chunks(invocation, relay)) as chunks:
            status, content_type, extra_headers, first = HTTPStatus.OK, result.content_type, [], b""
            if content_type.split(";")[0].strip().lower() == HTTP_INTEGRATION_CONTENT_TYPE:
                status, content_type, extra_headers, first = _take_prelude(chunks, content_type)

            # HTTP/1.0 has no chunked framing: the body then runs to the end of the connection, without trailers.
            chunked = self.request_version != "HTTP/1.0"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in [*headers.items(), *extra_headers]:
                self.send_header(name, value)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Trailer", ", ".join(_INVOKE_TRAILERS))
            else:
                self.close_connection = True
                self.send_header("Connection", "close")
            self.end_headers()
            try:
                for data in itertools.chain((first,), chunks):
                    if data:
                        self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data) if chunked else data)
            except OSError:
                # The invoker went away; the invocation runs on to its end regardless.
                self.close_connection = True
                return

        final = pool.wait_finished(invocation)
        if not chunked:
            return
        trailers = []
        if final.function_error:
            trailers += [
                ("X-Amz-Function-Error", "Unhandled"),
                (_ERROR_TYPE_TRAILER, _error_type_of(final.body)),
                (_ERROR_BODY_TRAILER, base64.b64encode(final.body).decode()),
            ]
        if tail:
            trailers.append(("X-Amz-Log-Result", base64.b64encode(final.log[-LOG_TAIL_BYTES:]).decode()))
        ending = "0\r\n" + "".join(f"{name}: {value}\r\n" for name, value in trailers) + "\r\n"
        try:
            self.wfile.write(ending.encode())
        except OSError:
            self.close_connection = True

    def _runtime_headers(self) -> dict[str, str]:
        """The /next headers carried over from the invoke request; raises ValueError on a bad client context."""
        headers = {"Lambda-Runtime-Invoked-Function-Arn": self.server.pool.function.arn}
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

    def _send_validation_error(self, value: str, field: str, allowed: tuple[str, ...]) -> None:
        # The wording of the service's request validation, which answers before Lambda itself does.
        message = (
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
        body = json.dumps({"message": message}).encode()
        self._send(HTTPStatus.BAD_REQUEST, body, headers={"X-Amzn-ErrorType": "ValidationException"})

    def _send_client_error(
        self, status: HTTPStatus, error_type: str, message: str, *, message_key: str = "message"
    ) -> None:
        body = json.dumps({"Type": "User", message_key: message}).encode()
        self._send(status, body, headers={"X-Amzn-ErrorType": error_type})


def _take_prelude(chunks: Iterator[bytes], content_type: str) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """Read an HTTP integration response's prelude off the stream, as a function URL does.

    Returns the status, content type and headers it gives, and the body bytes read along with it. Bytes that do not
    start with a JSON prelude and its eight NUL bytes are passed on as they are, under ``content_type``.
    """
    received = bytearray()
    for data in chunks:
        received += data
        end = received.find(_PRELUDE_DELIMITER)
        if end >= 0:
            parsed = _parse_prelude(bytes(received[:end]))
            if parsed is not None:
                return (*parsed, bytes(received[end + len(_PRELUDE_DELIMITER) :]))
            break
        if len(received) > _MAX_PRELUDE_BYTES:
            break
    else:
        if not received:
            # Nothing came at all, not even a prelude.
            return HTTPStatus.OK, content_type, [], b""
    print("fastric: a streamed HTTP integration response had no valid prelude; passed on as is", file=sys.stderr)
    return HTTPStatus.OK, content_type, [], bytes(received)


def _parse_prelude(data: bytes) -> tuple[int, str, list[tuple[str, str]]] | None:
    """Status, content type and headers from a prelude's JSON, or None if it is not a prelude."""
    try:
        prelude = json.loads(data)
    except ValueError:
        return None
    if not isinstance(prelude, dict):
        return None
    status = prelude.get("statusCode", HTTPStatus.OK)
    single, multiple = prelude.get("headers") or {}, prelude.get("multiValueHeaders") or {}
    cookies = prelude.get("cookies") or []
    if not isinstance(status, int) or not 100 <= status <= 599:
        return None
    if not (isinstance(single, dict) and isinstance(multiple, dict) and isinstance(cookies, list)):
        return None
    fields: list[tuple[object, object]] = list(single.items())
    for name, values in multiple.items():
        fields += [(name, value) for value in (values if isinstance(values, list) else [values])]
    fields += [("Set-Cookie", cookie) for cookie in cookies]
    content_type = "application/octet-stream"
    headers = []
    for name, value in fields:
        text = str(value)
        # A header that would break the response apart, or its framing, is left out.
        if not isinstance(name, str) or not name or any(c in name + text for c in "\r\n") or ":" in name:
            continue
        if name.lower() == "content-type":
            content_type = text
        elif name.lower() not in _FRAMING_HEADERS:
            headers.append((name, text))
    return status, content_type, headers


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


def _memory_line(function: FunctionConfig, memory_limit: bool) -> str:
    if memory_limit:
        return f"memory size {function.memory_mb} MB, enforced as an address-space limit (RLIMIT_AS)"
    return f"memory size {function.memory_mb} MB, reported to the function but not enforced (see --limit-memory)"


def _new_pool(handler: str, *, stdout: _Output, stderr: _Output, **options: Any) -> FunctionPool:
    function = FunctionConfig.from_environ(handler, os.environ)
    command = function.runtime_command(os.environ)
    env = function.runtime_environment(os.environ)
    return FunctionPool(function, command, env, stdout=stdout, stderr=stderr, **options)


def serve(
    handler: str, *, host: str = "127.0.0.1", port: int = 8080, concurrency: int = 1, memory_limit: bool = False
) -> int:
    """Serve a handler locally until SIGINT or SIGTERM.

    Args:
        handler: The handler string, as given to the runtime (``module.function``).
        host: Address the invoke endpoint listens on.
        port: Port of the invoke endpoint (0 picks a free one).
        concurrency: How many environments may serve invocations at once.
        memory_limit: Cap each runtime's address space at the function's memory size.

    Returns:
        The process exit code: 0 after a clean stop, 1 when the server or the runtime cannot start.
    """
    pool = _new_pool(
        handler,
        stdout=_Output(sys.stdout.fileno()),
        stderr=_Output(sys.stderr.fileno()),
        concurrency=concurrency,
        memory_limit=memory_limit,
    )
    try:
        invoke_server = InvokeServer((host, port), pool)
    except OSError as exc:
        print(f"fastric: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1

    stop_signals = _StopSignals()
    stop_signals.install()
    try:
        threading.Thread(target=invoke_server.serve_forever, args=(0.1,), name="fastric-http", daemon=True).start()
        function = pool.function
        url = f"http://{_url_host(host)}:{invoke_server.server_address[1]}{_INVOKE_PATH.format('function')}"
        print(f"fastric: serving {handler} locally at {url}\n  curl -s -d '{{}}' {url}", file=sys.stderr)
        timeout = f"timeout {function.timeout_ms / 1000:g} s"
        print(f"fastric: {timeout}, {_memory_line(function, memory_limit)}, concurrency {concurrency}", file=sys.stderr)
        sys.stderr.flush()
        try:
            pool.start()
        except OSError as exc:
            command = shlex.join(function.runtime_command(os.environ))
            print(f"fastric: cannot start the runtime ({command}): {exc}", file=sys.stderr)
            return 1
        stop_signals.wait()
        return 0
    finally:
        stop_signals.restore()
        pool.stop()
        _close_server(invoke_server)


def invoke_once(handler: str, event: bytes, *, memory_limit: bool = False) -> int:
    """Invoke a handler once, as a script or CI step would.

    The result (or the error document) goes to stdout, followed by a newline; the function's output and Lambda's
    START, END and REPORT lines go to stderr. A streamed response goes to stdout as it is produced, as it is (an
    HTTP integration response's prelude included); if it fails part-way, its error document goes to stderr.

    Args:
        handler: The handler string, as given to the runtime (``module.function``).
        event: The event, JSON as the Invoke API takes it.
        memory_limit: Cap the runtime's address space at the function's memory size.

    Returns:
        The process exit code: 0 on success, 1 on a function error or when the runtime cannot start, 2 when the
        event is refused, 130 when interrupted.
    """
    if len(event) > MAX_REQUEST_BYTES:
        message = f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation"
        print(f"fastric: RequestTooLargeException: {message}", file=sys.stderr)
        return 2
    logs = _Output(sys.stderr.fileno())
    pool = _new_pool(handler, stdout=logs, stderr=logs, memory_limit=memory_limit, announce_exits=False)
    invocation = Invocation(str(uuid.uuid4()), event, {"Lambda-Runtime-Invoked-Function-Arn": pool.function.arn})
    try:
        result = pool.invoke(invocation)
        if result.stream is not None:
            with contextlib.closing(pool.stream_chunks(invocation, result.stream)) as chunks:
                for data in chunks:
                    sys.stdout.buffer.write(data)
                    sys.stdout.flush()
            result = pool.wait_finished(invocation)
            if result.function_error:
                print(
                    f"\nfastric: the response stream failed part-way: {result.body.decode(errors='replace')}",
                    file=sys.stderr,
                )
            # The error document went to stderr: what stdout holds is the stream.
            result = dataclasses.replace(result, body=b"")
    except KeyboardInterrupt:
        return 130
    finally:
        pool.stop()
    sys.stdout.buffer.write(result.body + b"\n")
    sys.stdout.flush()
    return 1 if result.function_error else 0
