"""Real service processes for tests: a moto server standing in for AWS, and fastric's local mode.

Both bind 127.0.0.1 on a free port, are ready once their port accepts connections, and are stopped
on exit. Their output goes to a temporary file that is quoted if they fail to start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

HOST = "127.0.0.1"
REGION = "us-east-1"

# What boto3 needs to talk to moto, none of which can reach a real account.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def free_port() -> int:
    """Returns a loopback port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class ServiceProcess:
    """A child process serving on 127.0.0.1:`port`, started by `with` and stopped at its end."""

    name = "service"

    def __init__(self, port: int | None = None, *, startup_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # Lives as long as the process, closed by stop().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._final_output = ""

    def command(self) -> list[str]:
        """The command line that starts the service."""
        raise NotImplementedError

    def start_options(self) -> dict[str, Any]:
        """Extra `subprocess.Popen` arguments (cwd, env)."""
        return {}

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, **self.start_options()
        )
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode} on start:\n{self.output()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name} not listening on port {self.port} after {self.startup_timeout}s:\n{self.output()}"
                )
            time.sleep(0.05)

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self._log.closed:
            return self._final_output
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if not self._log.closed:
            self._final_output = self.output()
            self._log.close()


class MotoServer(ServiceProcess):
    """A `moto` server (`moto[server]`) playing every AWS service on one local endpoint.

    Example:
        with MotoServer() as moto:
            dynamodb = moto.client("dynamodb")
    """

    name = "moto server"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)]

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 in a child process at this server."""
        return {**DUMMY_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint_url}

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this server, whatever the current environment says."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
        )

    def reset(self) -> None:
        """Forgets every resource, so the next test starts from an empty account."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


class LocalFunction(ServiceProcess):
    """A handler served by fastric's local mode (`python -m fastric --port P HANDLER`).

    Args:
        handler: the handler string, e.g. ``app.handler``.
        cwd: the directory the handler module is imported from.
        env: variables added to this process's environment for the child.
    """

    name = "fastric local mode"

    def __init__(self, handler: str, *, cwd: Path, env: dict[str, str] | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self.handler = handler
        self.cwd = cwd
        self.extra_env = env or {}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "fastric", "--host", HOST, "--port", str(self.port), self.handler]

    def start_options(self) -> dict[str, Any]:
        env = {key: value for key, value in os.environ.items() if key != "AWS_LAMBDA_RUNTIME_API"}
        return {"cwd": self.cwd, "env": {**env, **self.extra_env}}

    @property
    def invoke_url(self) -> str:
        return f"http://{HOST}:{self.port}/2015-03-31/functions/function/invocations"

    def invoke(self, event: Any) -> tuple[int, Any]:
        """POSTs `event` to the invoke endpoint; returns the HTTP status and the decoded JSON body."""
        return post_event(self.invoke_url, event)


def post_event(url: str, event: Any) -> tuple[int, Any]:
    """POSTs `event` as JSON to a local invoke endpoint; returns the HTTP status and the decoded JSON body."""
    request = urllib.request.Request(url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")
