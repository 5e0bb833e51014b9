"""Runs the users API example on this machine, with no AWS account.

A moto server plays DynamoDB on 127.0.0.1:5000 (or a free port if 5000 is taken), the `users` table
is created in it, and `examples/api_backend` is served by fastric's local mode until Ctrl-C. Needs
fastric, boto3 and `moto[server]` installed.

Usage: python scripts/demo.py [--port 8080]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "api_backend"
HOST = "127.0.0.1"
MOTO_PORT = 5000
TABLE = "users"

# moto accepts any credentials; fixed dummy ones keep a real profile on this machine out of the way.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def curl_lines(port: int) -> list[str]:
    """Shell commands that create a user and list users through the local invoke endpoint."""
    url = f"http://{HOST}:{port}/2015-03-31/functions/function/invocations"
    user = json.dumps({"name": "Ada", "email": "ada@example.com"}, separators=(",", ":"))
    events = [_http_api_event("POST", body=user), _http_api_event("GET")]
    return [f"curl -s {url} -d '{json.dumps(event, separators=(',', ':'))}'" for event in events]


def _http_api_event(method: str, body: str | None = None) -> dict[str, object]:
    """The smallest HTTP API (payload 2.0) event the example routes."""
    event: dict[str, object] = {
        "version": "2.0",
        "routeKey": f"{method} /users",
        "rawPath": "/users",
        "requestContext": {"http": {"method": method, "path": "/users"}},
    }
    if body is not None:
        event["body"] = body
    return event


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _start_moto(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and moto.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return moto
        except OSError:
            time.sleep(0.05)
    _stop(moto)
    log.seek(0)
    raise RuntimeError(f"moto server did not start on port {port}:\n{log.read().decode(errors='replace')}")


def _create_table(endpoint_url: str) -> None:
    import boto3

    dynamodb = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name=AWS_ENV["AWS_REGION"])
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "email", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the users API example with a local moto server.")
    parser.add_argument("--port", type=int, default=8080, help="port of the local invoke endpoint (default 8080)")
    args = parser.parse_args()

    moto_port = MOTO_PORT
    if not _port_is_free(moto_port):
        moto_port = _free_port()
        print(f"port {MOTO_PORT} is taken, so moto uses port {moto_port}", flush=True)
    endpoint_url = f"http://{HOST}:{moto_port}"
    os.environ.update(AWS_ENV)

    with tempfile.TemporaryFile() as moto_log:
        moto = _start_moto(moto_port, moto_log)
        try:
            _create_table(endpoint_url)
            print(f"moto server (DynamoDB, table {TABLE!r}) on {endpoint_url}", flush=True)
            print("create a user, then list users:", *curl_lines(args.port), sep="\n", flush=True)
            return _serve(endpoint_url, args.port)
        finally:
            _stop(moto)


def _serve(endpoint_url: str, port: int) -> int:
    """Runs the example in fastric's local mode until it exits or Ctrl-C."""
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint_url, "USERS_TABLE": TABLE}
    # With a Runtime API address fastric would poll it instead of serving locally.
    env.pop("AWS_LAMBDA_RUNTIME_API", None)
    command = [sys.executable, "-m", "fastric", "--host", HOST, "--port", str(port), "app.handler"]
    function = subprocess.Popen(command, cwd=EXAMPLE, env=env)
    try:
        returncode = function.wait()
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches the whole process group: give fastric time to stop by itself.
        try:
            function.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _stop(function)
        return 128 + signal.SIGINT
    # A child killed by a signal reports -N; a shell reports 128 + N.
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
