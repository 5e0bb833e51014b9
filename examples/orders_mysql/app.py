"""A customer's latest orders, read from MySQL through RDS Proxy.

Event: ``{"customer_id": 42}``, optionally with ``"limit"`` (1 to 100, default 20). Result:
``{"customer_id": 42, "orders": [...]}``, newest first, each order with ``id``, ``status``, ``total``
(a JSON number with the column's exact digits) and ``placed_at`` (ISO 8601). The table is in
``schema.sql``.

Environment:
    DB_HOST: the proxy endpoint (or the database host).
    DB_PORT: its port. Defaults to 3306.
    DB_USER, DB_PASSWORD: the account the function logs in with.
    DB_NAME: the database holding the ``orders`` table.
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import date
from typing import Any

import pymysql
import pymysql.cursors

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

# Error codes meaning the connection is gone, not that the statement is wrong: the client's
# "server has gone away" and "lost connection", MariaDB's "connection was killed" and MySQL's
# "disconnected because of inactivity".
CONNECTION_LOST = frozenset({2006, 2013, 1927, 4031})

logger = logging.getLogger(__name__)


class InvalidEventError(ValueError):
    """The event does not say which orders to read."""


class Database:
    """One connection, kept across invocations and replaced when the server or the proxy has closed it.

    Args:
        connect_args: keyword arguments for `pymysql.connect`.
    """

    def __init__(self, **connect_args: Any) -> None:
        self._connect_args = connect_args
        self._connection: pymysql.connections.Connection | None = None

    def connect(self) -> pymysql.connections.Connection:
        """Returns the current connection, opening one if there is none."""
        if self._connection is None:
            self._connection = pymysql.connect(**self._connect_args)
        return self._connection

    def read(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        """Runs a query and returns its rows, on a new connection if the kept one turns out to be dead.

        The query may run twice, so it must not change anything: a write could have been applied
        before the connection dropped.
        """
        try:
            return self._fetch(self.connect(), sql, args)
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as error:
            # InterfaceError: the client already knows the connection is closed.
            if isinstance(error, pymysql.err.OperationalError) and error.args[0] not in CONNECTION_LOST:
                raise
            logger.warning("database connection lost (%s); reconnecting", error)
            self.close()
        return self._fetch(self.connect(), sql, args)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.open:
            # Closing a broken connection may fail; it is discarded either way.
            with contextlib.suppress(pymysql.err.Error):
                connection.close()

    @staticmethod
    def _fetch(connection: pymysql.connections.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())


def _port(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 65_536):
        raise ValueError(f"DB_PORT must be a TCP port number, not {raw!r}")
    return int(raw)


# Opened during init and kept while the execution environment lives, so that warm invocations skip
# the connection handshake.
database = Database(
    host=os.environ["DB_HOST"],
    port=_port(os.environ.get("DB_PORT", "3306")),
    user=os.environ["DB_USER"],
    password=os.environ["DB_PASSWORD"],
    database=os.environ["DB_NAME"],
    charset="utf8mb4",
    # Each statement commits at once. Without it the first SELECT opens a transaction that stays
    # open across invocations, and REPEATABLE READ keeps showing the rows of that first snapshot.
    autocommit=True,
    cursorclass=pymysql.cursors.DictCursor,
    connect_timeout=5,
    # A connection that went silent (no close, no reset) fails here instead of at the function timeout.
    read_timeout=10,
    write_timeout=10,
)
database.connect()


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """Returns the latest orders of the customer named in the event."""
    if not isinstance(event, dict):
        raise InvalidEventError(f"the event must be a JSON object, not {type(event).__name__}")
    customer_id = _positive_int(event, "customer_id")
    limit = _positive_int(event, "limit", default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    rows = database.read(
        "SELECT id, status, total, placed_at FROM orders WHERE customer_id = %s"
        " ORDER BY placed_at DESC, id DESC LIMIT %s",
        (customer_id, limit),
    )
    return {"customer_id": customer_id, "orders": [_json_ready(row) for row in rows]}


def _positive_int(event: dict[str, Any], key: str, *, default: int | None = None, maximum: int | None = None) -> int:
    value = event.get(key, default)
    # bool is an int subclass, and `true` is no customer id.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (maximum and value > maximum):
        expected = f"an integer from 1 to {maximum}" if maximum else "a positive integer"
        raise InvalidEventError(f"{key} must be {expected}, not {value!r}")
    return value


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    """Turns DATE and DATETIME values into ISO 8601 strings.

    DECIMAL values stay `Decimal`: the Python runtime writes them as JSON numbers with exactly their
    digits (``19.90``), where `float` could round and `str` would make them strings.
    """
    return {key: value.isoformat() if isinstance(value, date) else value for key, value in row.items()}
