"""examples/orders_mysql run by fastric against a real MariaDB server behind a TCP proxy that drops connections."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest
from pymysql.cursors import Cursor

from conftest import RuntimeRunner
from mariadb import MariaDB, find_binaries
from runtime_api import Invocation
from services import HOST, LocalFunction
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.skipif(
    find_binaries() is None, reason="no MariaDB server installed (Debian package mariadb-server)"
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "orders_mysql"
DATABASE = "shop"
CUSTOMER = 42
PLACED_AT = datetime(2026, 12, 3, 12, 0, 0)


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDB]:
    with MariaDB(database=DATABASE) as server:
        with server.admin(database=DATABASE) as connection, connection.cursor() as cursor:
            cursor.execute((EXAMPLE / "schema.sql").read_text())
        yield server


@pytest.fixture(scope="module")
def proxy(server: MariaDB) -> Iterator[TcpProxy]:
    """Stands in for RDS Proxy between the function and the server."""
    with TcpProxy(server.port) as proxy:
        yield proxy


def function_env(server: MariaDB, port: int) -> dict[str, str]:
    return {
        "DB_HOST": HOST,
        "DB_PORT": str(port),
        "DB_USER": server.user,
        "DB_PASSWORD": server.password,
        "DB_NAME": server.database,
    }


@pytest.fixture(scope="module")
def function(server: MariaDB, proxy: TcpProxy) -> Iterator[LocalFunction]:
    with LocalFunction("app.handler", cwd=EXAMPLE, env=function_env(server, proxy.port)) as function:
        yield function


@pytest.fixture
def db(server: MariaDB, proxy: TcpProxy) -> Iterator[Cursor]:
    """A root cursor in autocommit mode on an empty orders table, reaching the server without the proxy."""
    with server.admin(database=DATABASE) as connection, connection.cursor() as cursor:
        cursor.execute("DELETE FROM orders")
        yield cursor
    proxy.idle_timeout = None


def add_order(db: Cursor, total: str, *, status: str = "paid", placed_at: datetime = PLACED_AT) -> int:
    db.execute(
        "INSERT INTO orders (customer_id, status, total, placed_at) VALUES (%s, %s, %s, %s)",
        (CUSTOMER, status, total, placed_at),
    )
    return db.lastrowid


def post(function: LocalFunction, event: Any) -> tuple[bool, Any]:
    """Invokes the function; returns whether it failed and its JSON answer, numbers with their exact digits."""
    request = urllib.request.Request(function.invoke_url, data=json.dumps(event).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        failed = response.headers.get("X-Amz-Function-Error") is not None
        return failed, json.loads(response.read(), parse_float=Decimal)


def invoke(function: LocalFunction, event: Any) -> Any:
    failed, answer = post(function, event)
    assert not failed, f"{answer}\n{function.output()}"
    return answer


def list_orders(function: LocalFunction, **fields: Any) -> list[dict[str, Any]]:
    answer = invoke(function, {"customer_id": CUSTOMER, **fields})
    assert answer["customer_id"] == CUSTOMER
    return answer["orders"]


def app_connections(server: MariaDB, db: Cursor) -> set[int]:
    """Ids of the server connections open for the function's account."""
    db.execute("SELECT id FROM information_schema.processlist WHERE user = %s", (server.user,))
    return {row[0] for row in db.fetchall()}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def function_connection(function: LocalFunction, server: MariaDB, proxy: TcpProxy, db: Cursor) -> int:
    """Makes sure the function has its connection open; returns its server-side id.

    Waits until connections of runtimes that earlier tests stopped are gone, so that the function's
    is the only one through the proxy.
    """
    list_orders(function)
    wait_for(lambda: proxy.active == 1 and len(app_connections(server, db)) == 1, "only the function is connected")
    [connection] = app_connections(server, db)
    return connection


def test_decimal_and_datetime_columns_are_json_numbers_and_iso_strings(function: LocalFunction, db: Cursor) -> None:
    first = add_order(db, "19.90", placed_at=datetime(2026, 12, 3, 9, 30, 5))
    second = add_order(db, "1234567890.05", status="shipped", placed_at=datetime(2026, 12, 3, 12, 0, 0))

    orders = list_orders(function)

    assert orders == [
        {"id": second, "status": "shipped", "total": Decimal("1234567890.05"), "placed_at": "2026-12-03T12:00:00"},
        {"id": first, "status": "paid", "total": Decimal("19.90"), "placed_at": "2026-12-03T09:30:05"},
    ]
    # Parsed with parse_float=Decimal, so the digits are the ones in the JSON text: 19.90, not 19.9.
    assert str(orders[1]["total"]) == "19.90"


def test_each_invocation_sees_rows_committed_since_the_last(function: LocalFunction, db: Cursor) -> None:
    assert list_orders(function) == []

    first = add_order(db, "10.00")
    assert [order["id"] for order in list_orders(function)] == [first]

    db.execute("UPDATE orders SET status = 'refunded' WHERE id = %s", (first,))
    second = add_order(db, "5.50", placed_at=datetime(2026, 12, 4, 8, 0, 0))
    orders = list_orders(function)
    assert [(order["id"], order["status"]) for order in orders] == [(second, "paid"), (first, "refunded")]


def test_limit_keeps_the_newest_orders(function: LocalFunction, db: Cursor) -> None:
    ids = [add_order(db, "1.00", placed_at=datetime(2026, 12, day, 12, 0, 0)) for day in (1, 2, 3)]
    assert [order["id"] for order in list_orders(function, limit=2)] == [ids[2], ids[1]]


def test_connection_is_reused_across_invocations(
    function: LocalFunction, server: MariaDB, proxy: TcpProxy, db: Cursor
) -> None:
    connection = function_connection(function, server, proxy, db)
    accepted = proxy.accepted

    for _ in range(3):
        list_orders(function)

    assert proxy.accepted == accepted
    assert app_connections(server, db) == {connection}


def test_reconnects_after_the_proxy_drops_the_connection(
    function: LocalFunction, server: MariaDB, proxy: TcpProxy, db: Cursor
) -> None:
    order = add_order(db, "7.25")
    function_connection(function, server, proxy, db)
    accepted = proxy.accepted

    assert proxy.drop_all() == 1
    wait_for(lambda: not app_connections(server, db), "the server sees the connection closed")

    assert [found["id"] for found in list_orders(function)] == [order]
    assert proxy.accepted == accepted + 1


def test_reconnects_after_the_proxy_closes_the_idle_connection(
    function: LocalFunction, server: MariaDB, proxy: TcpProxy, db: Cursor
) -> None:
    order = add_order(db, "7.25")
    function_connection(function, server, proxy, db)
    accepted, dropped = proxy.accepted, proxy.dropped

    # As RDS Proxy does once a client connection has been idle for its IdleClientTimeout.
    proxy.idle_timeout = 0.2
    wait_for(lambda: proxy.active == 0, "the proxy drops the idle connection")
    proxy.idle_timeout = None
    assert proxy.dropped == dropped + 1

    assert [found["id"] for found in list_orders(function)] == [order]
    assert proxy.accepted == accepted + 1


def test_reconnects_after_the_server_kills_the_connection(
    function: LocalFunction, server: MariaDB, proxy: TcpProxy, db: Cursor
) -> None:
    order = add_order(db, "3.00")
    killed = function_connection(function, server, proxy, db)
    accepted = proxy.accepted

    db.execute(f"KILL CONNECTION {killed:d}")
    wait_for(lambda: proxy.active == 0, "the proxy passes the server's close on")

    assert [found["id"] for found in list_orders(function)] == [order]
    assert proxy.accepted == accepted + 1
    [current] = app_connections(server, db)
    assert current != killed


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "customer_id must be a positive integer, not None"),
        ({"customer_id": "42"}, "customer_id must be a positive integer, not '42'"),
        ({"customer_id": True}, "customer_id must be a positive integer, not True"),
        ({"customer_id": 0}, "customer_id must be a positive integer, not 0"),
        ({"customer_id": 42, "limit": 101}, "limit must be an integer from 1 to 100, not 101"),
        ([42], "the event must be a JSON object, not list"),
    ],
)
def test_invalid_event_fails_the_invocation(function: LocalFunction, event: Any, message: str) -> None:
    failed, answer = post(function, event)
    assert failed
    assert answer["errorType"] == "InvalidEventError"
    assert answer["errorMessage"] == message


def test_runtime_loop_reuses_one_connection_and_matches_awslambdaric(
    run_runtime: RuntimeRunner, server: MariaDB, proxy: TcpProxy, db: Cursor
) -> None:
    order = add_order(db, "42.10")
    event = json.dumps({"customer_id": CUSTOMER}).encode()
    bodies = {}
    for impl in ("awslambdaric", "fastric"):
        accepted = proxy.accepted
        result = run_runtime(
            impl,
            "app.handler",
            [Invocation(body=event)] * 3,
            env=function_env(server, proxy.port),
            cwd=EXAMPLE,
            cache=False,
        )
        bodies[impl] = [post.body for post in result.posts]
        assert [post.kind for post in result.posts] == ["response"] * 3, result.describe()
        assert proxy.accepted == accepted + 1, "one connection for the whole process"

    expected = {
        "customer_id": CUSTOMER,
        "orders": [{"id": order, "status": "paid", "total": Decimal("42.10"), "placed_at": "2026-12-03T12:00:00"}],
    }
    assert [json.loads(body, parse_float=Decimal) for body in bodies["fastric"]] == [expected] * 3
    assert bodies["fastric"] == bodies["awslambdaric"]


def test_bad_port_setting_is_an_init_error(run_runtime: RuntimeRunner, server: MariaDB) -> None:
    result = run_runtime(
        "fastric", "app.handler", [Invocation()], env={**function_env(server, 0), "DB_PORT": "db"}, cwd=EXAMPLE
    )
    [init_error] = result.of_kind("init_error")
    assert json.loads(init_error.body)["errorMessage"] == "DB_PORT must be a TCP port number, not 'db'"


def test_readme_request_lists_the_orders(function: LocalFunction, db: Cursor) -> None:
    [curl] = [line for line in (EXAMPLE / "README.md").read_text().splitlines() if line.startswith("curl ")]
    event = json.loads(curl.split(" -d ", 1)[1].strip("'"))
    order = add_order(db, "19.90")

    assert invoke(function, event) == {
        "customer_id": CUSTOMER,
        "orders": [{"id": order, "status": "paid", "total": Decimal("19.90"), "placed_at": "2026-12-03T12:00:00"}],
    }
