"""The users API example against a real moto server, called in-process and through fastric's local mode.

Every scenario runs twice: `in_process` imports the handler and calls it directly, `local_mode` POSTs
the event to `python -m fastric` serving the example over HTTP, as a developer would with curl.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError

from services import LocalFunction, MotoServer, free_port, post_event

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "api_backend"
EVENTS = Path(__file__).resolve().parent / "fixtures" / "events"
TABLE = "users"

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


def fixture_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"example-{name}.json").read_text())


def v1_event(
    method: str, path: str = "/users", body: str | None = None, query: dict[str, str] | None = None
) -> dict[str, Any]:
    event = fixture_event("apigw-v1-get-users")
    event.update(httpMethod=method, path=path, resource=path, body=body, queryStringParameters=query)
    event["requestContext"].update(httpMethod=method, path=f"/prod{path}", resourcePath=path)
    return event


def minimal_v2_event(method: str, path: str = "/users", body: str | None = None) -> dict[str, Any]:
    """The smallest HTTP API event the handler serves, as in the example's README."""
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "requestContext": {"http": {"method": method, "path": path}},
    }
    if body is not None:
        event["body"] = body
    return event


def post_user(invoke: Invoke, name: str, email: str) -> dict[str, Any]:
    return invoke(v1_event("POST", body=json.dumps({"name": name, "email": email})))


def json_body(response: dict[str, Any]) -> Any:
    assert response["headers"]["Content-Type"] == "application/json"
    return json.loads(response["body"])


def readme_curl_lines() -> list[str]:
    return [line for line in (EXAMPLE / "README.md").read_text().splitlines() if line.startswith("curl ")]


def readme_events() -> list[dict[str, Any]]:
    """The events the README's curl lines send (`-d '<event>'`)."""
    return [json.loads(line.split(" -d ", 1)[1].strip("'")) for line in readme_curl_lines()]


def wait_until_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode} before listening on {port}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def table(moto: MotoServer) -> Any:
    """An empty users table; returns a DynamoDB client to look at it directly."""
    moto.reset()
    dynamodb = moto.client("dynamodb")
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "email", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return dynamodb


@pytest.fixture(scope="module")
def app(moto: MotoServer) -> Iterator[ModuleType]:
    """The example module, imported the way Lambda would, with boto3 pointed at moto by environment."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**moto.env(), "USERS_TABLE": TABLE}.items():
            patch.setenv(key, value)
        # A unique module name keeps the example's generic `app` out of the test session's namespace.
        spec = importlib.util.spec_from_file_location("api_backend_app", EXAMPLE / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@pytest.fixture(scope="module")
def local_function(moto: MotoServer) -> Iterator[LocalFunction]:
    with LocalFunction("app.handler", cwd=EXAMPLE, env={**moto.env(), "USERS_TABLE": TABLE}) as function:
        yield function


@pytest.fixture(params=["in_process", "local_mode"])
def invoke(request: pytest.FixtureRequest, table: Any) -> Invoke:
    if request.param == "in_process":
        app: ModuleType = request.getfixturevalue("app")
        return lambda event: app.handler(event, None)

    function: LocalFunction = request.getfixturevalue("local_function")

    def over_http(event: dict[str, Any]) -> dict[str, Any]:
        status, response = function.invoke(event)
        assert status == 200, f"invoke failed with HTTP {status}: {response}\n{function.output()}"
        return response

    return over_http


def test_created_user_is_listed(invoke: Invoke) -> None:
    created = invoke(fixture_event("apigw-v1-post-users"))
    assert created["statusCode"] == 201
    user = json_body(created)
    assert user["name"] == "Ada Lovelace"
    assert user["email"] == "ada@example.com"

    listed = invoke(fixture_event("apigw-v1-get-users"))
    assert listed["statusCode"] == 200
    assert json_body(listed) == {"users": [user]}


def test_created_at_is_iso8601_utc(invoke: Invoke) -> None:
    user = json_body(post_user(invoke, "Ada Lovelace", "ada@example.com"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", user["created_at"])
    created_at = datetime.fromisoformat(user["created_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - created_at) < timedelta(minutes=1)


@pytest.mark.parametrize("duplicate_email", ["ada@example.com", "Ada@Example.COM"])
def test_existing_email_is_409_and_keeps_the_original(invoke: Invoke, table: Any, duplicate_email: str) -> None:
    original = json_body(post_user(invoke, "Ada Lovelace", "ada@example.com"))

    response = post_user(invoke, "Someone Else", duplicate_email)

    assert response["statusCode"] == 409
    assert json_body(response) == {"error": "a user with email ada@example.com already exists"}
    item = table.get_item(TableName=TABLE, Key={"email": {"S": "ada@example.com"}})["Item"]
    assert item == {key: {"S": value} for key, value in original.items()}


def test_malformed_body_is_400(invoke: Invoke) -> None:
    response = invoke(fixture_event("apigw-v1-post-malformed-body"))
    assert response["statusCode"] == 400
    assert json_body(response) == {"error": "request body is not valid JSON"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (None, "request body is required"),
        ("", "request body is required"),
        ("{'name': 'Ada'}", "request body is not valid JSON"),
        ("[" * 100_000, "request body is not valid JSON"),
        ("[1, 2]", "request body must be a JSON object"),
        ('"ada@example.com"', "request body must be a JSON object"),
        ("null", "request body must be a JSON object"),
        ('{"email": "ada@example.com"}', "name must be a non-empty string"),
        ('{"name": "   ", "email": "ada@example.com"}', "name must be a non-empty string"),
        ('{"name": 42, "email": "ada@example.com"}', "name must be a non-empty string"),
        ('{"name": "Ada"}', "email must be a valid email address"),
        ('{"name": "Ada", "email": "ada.example.com"}', "email must be a valid email address"),
        ('{"name": "Ada", "email": ["ada@example.com"]}', "email must be a valid email address"),
    ],
)
def test_invalid_body_is_400(invoke: Invoke, table: Any, body: str | None, error: str) -> None:
    response = invoke(v1_event("POST", body=body))
    assert response["statusCode"] == 400
    assert json_body(response)["error"].startswith(error)
    assert table.scan(TableName=TABLE)["Count"] == 0


@pytest.mark.parametrize(("method", "path"), [("GET", "/"), ("GET", "/users/ada@example.com"), ("POST", "/orders")])
def test_unknown_route_is_404(invoke: Invoke, method: str, path: str) -> None:
    response = invoke(v1_event(method, path=path))
    assert response["statusCode"] == 404
    assert json_body(response) == {"error": f"no route for {method} {path}"}


def test_other_method_on_users_is_405(invoke: Invoke) -> None:
    response = invoke(v1_event("DELETE"))
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "GET, POST"
    assert json_body(response) == {"error": "method DELETE not allowed on /users"}


def test_http_api_v2_payload(invoke: Invoke) -> None:
    created = invoke(fixture_event("apigw-v2-post-users"))
    assert created["statusCode"] == 201

    listed = json_body(invoke(fixture_event("apigw-v2-get-users")))
    assert [user["email"] for user in listed["users"]] == ["grace@example.com"]


def test_base64_encoded_body_is_decoded(invoke: Invoke) -> None:
    response = invoke(fixture_event("apigw-v2-post-users-base64"))
    assert response["statusCode"] == 201
    assert json_body(response)["email"] == "katherine@example.com"


@pytest.mark.parametrize("body", ["not base64!", "w6k=é", base64.b64encode(b'{"name": "\xff"}').decode()])
def test_invalid_base64_body_is_400(invoke: Invoke, body: str) -> None:
    event = fixture_event("apigw-v2-post-users-base64")
    event["body"] = body
    response = invoke(event)
    assert response["statusCode"] == 400
    assert json_body(response) == {"error": "request body is not valid base64-encoded UTF-8"}


def test_minimal_v2_events(invoke: Invoke) -> None:
    body = json.dumps({"name": "Ada", "email": "ada@example.com"})
    assert invoke(minimal_v2_event("POST", body=body))["statusCode"] == 201

    listed = json_body(invoke(minimal_v2_event("GET")))
    assert [user["name"] for user in listed["users"]] == ["Ada"]


def test_v2_named_stage_is_not_part_of_the_route(invoke: Invoke) -> None:
    event = fixture_event("apigw-v2-get-users")
    event["rawPath"] = "/prod/users"
    event["requestContext"]["stage"] = "prod"
    assert invoke(event)["statusCode"] == 200


def test_numbers_stored_in_dynamodb_are_json_numbers(invoke: Invoke, table: Any) -> None:
    table.put_item(
        TableName=TABLE,
        Item={"email": {"S": "ada@example.com"}, "name": {"S": "Ada"}, "logins": {"N": "3"}, "score": {"N": "2.5"}},
    )

    [user] = json_body(invoke(v1_event("GET")))["users"]

    assert type(user["logins"]) is int and user["logins"] == 3
    assert type(user["score"]) is float and user["score"] == 2.5


def test_list_is_paginated(invoke: Invoke) -> None:
    emails = {f"user{number}@example.com" for number in range(5)}
    for email in emails:
        assert post_user(invoke, "User", email)["statusCode"] == 201

    seen: list[str] = []
    query = {"limit": "2"}
    for _ in range(len(emails)):
        page = json_body(invoke(v1_event("GET", query=query)))
        assert len(page["users"]) <= 2
        seen += [user["email"] for user in page["users"]]
        if "next" not in page:
            break
        query = {"limit": "2", "next": page["next"]}

    assert sorted(seen) == sorted(emails)


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"limit": "0"}, "limit must be an integer from 1 to 100"),
        ({"limit": "101"}, "limit must be an integer from 1 to 100"),
        ({"limit": "ten"}, "limit must be an integer from 1 to 100"),
        ({"next": "%%%"}, "next is not a valid page token"),
        ({"next": base64.urlsafe_b64encode(b"\xff\xfe").decode()}, "next is not a valid page token"),
    ],
)
def test_invalid_list_parameters_are_400(invoke: Invoke, query: dict[str, str], error: str) -> None:
    response = invoke(v1_event("GET", query=query))
    assert response["statusCode"] == 400
    assert json_body(response) == {"error": error}


def test_dynamodb_failures_reach_the_runtime(app: ModuleType, moto: MotoServer) -> None:
    moto.reset()  # no table: DynamoDB answers ResourceNotFoundException
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        app.handler(fixture_event("apigw-v1-get-users"), None)


def test_readme_curl_lines_are_the_demo_ones() -> None:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    assert readme_curl_lines() == demo.curl_lines(8080)


def test_readme_curl_lines_create_and_list_a_user(invoke: Invoke) -> None:
    create, list_users = readme_events()

    assert invoke(create)["statusCode"] == 201
    assert json_body(invoke(list_users))["users"][0]["name"] == "Ada"
    assert invoke(create)["statusCode"] == 409


def test_demo_serves_the_readme_requests_and_stops_moto_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    # Holding moto's preferred port keeps the test off a fixed port and checks the demo's fallback.
    with socket.socket() as blocker, (tmp_path / "demo.out").open("w+") as output:
        with contextlib.suppress(OSError):  # already taken by another process: just as good
            blocker.bind(("127.0.0.1", 5000))
        # A session of its own stands in for the terminal's process group, which Ctrl-C signals as a whole.
        demo = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={key: value for key, value in os.environ.items() if key != "AWS_LAMBDA_RUNTIME_API"},
        )
        try:
            wait_until_listening(demo, port)
            url = f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
            create, list_users = readme_events()
            assert post_event(url, create)[1]["statusCode"] == 201
            assert json.loads(post_event(url, list_users)[1]["body"])["users"][0]["email"] == "ada@example.com"
        finally:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                returncode = demo.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
                raise
        output.seek(0)
        printed = output.read()

    assert returncode == 128 + signal.SIGINT, printed
    moto_port = re.search(r"port 5000 is taken, so moto uses port (\d+)", printed)
    assert moto_port is not None, printed
    assert f"moto server (DynamoDB, table 'users') on http://127.0.0.1:{moto_port[1]}" in printed
    with pytest.raises(ConnectionRefusedError, match="Connection refused"):
        socket.create_connection(("127.0.0.1", int(moto_port[1])), timeout=2).close()


def test_every_event_fixture_is_valid_json_and_has_its_source() -> None:
    sources = (EVENTS / "SOURCES.md").read_text()
    listed = set(re.findall(r"`(example-[\w-]+\.json)`", sources))
    fixtures = {path.name for path in EVENTS.glob("example-*.json")}
    assert listed == fixtures
    for name in fixtures:
        assert isinstance(json.loads((EVENTS / name).read_text()), dict), name
