"""A private MariaDB server for tests, started from Debian's `mariadb-server` binaries without a service manager.

`MariaDB` creates a throwaway data directory with `mariadb-install-db`, starts `mariadbd` on it with
its own socket and a free loopback port, and creates a database and a password-protected user that
may use it over TCP. The server is stopped and its files removed at the end of the `with` block.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pymysql

from services import HOST, ServiceProcess

if TYPE_CHECKING:
    from typing_extensions import Self

# Debian installs the server outside an ordinary user's PATH.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"])

# A test database is small and disposable: small InnoDB files, no flushing to disk, no
# host name lookups.
SERVER_OPTIONS = (
    "--skip-name-resolve",
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
)


def find_binaries() -> tuple[str, str] | None:
    """Returns the paths of the server and of its data directory initialiser, or None if not installed."""
    server = shutil.which("mariadbd", path=SEARCH_PATH) or shutil.which("mysqld", path=SEARCH_PATH)
    installer = shutil.which("mariadb-install-db", path=SEARCH_PATH) or shutil.which(
        "mysql_install_db", path=SEARCH_PATH
    )
    if server is None or installer is None:
        return None
    return server, installer


class MariaDB(ServiceProcess):
    """A MariaDB server on 127.0.0.1:`port`, with `database` and `user` ready for an application.

    Args:
        database: the database created for the application.
        user: an account allowed everything on `database`, from 127.0.0.1, with `password`.

    Example:
        with MariaDB() as server:
            connection = pymysql.connect(host=server.host, port=server.port, user=server.user,
                                         password=server.password, database=server.database)
    """

    name = "mariadbd"

    def __init__(self, *, database: str = "app", user: str = "app", startup_timeout: float = 30.0) -> None:
        super().__init__(startup_timeout=startup_timeout)
        binaries = find_binaries()
        if binaries is None:
            raise FileNotFoundError("mariadbd or mariadb-install-db not found; install the mariadb-server package")
        self.server_binary, self.installer = binaries
        self.host = HOST
        self.database = database
        self.user = user
        self.password = secrets.token_urlsafe(16)
        # Short on purpose: a Unix socket path must fit in 107 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="mariadb-"))
        self.socket = self.directory / "mariadbd.sock"

    def _as_user(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; any other user runs it as itself.
        return ["--user=root"] if os.geteuid() == 0 else []

    def command(self) -> list[str]:
        return [
            self.server_binary,
            "--no-defaults",  # must come first; keeps /etc/mysql out of it
            f"--datadir={self.directory / 'data'}",
            f"--socket={self.socket}",
            f"--pid-file={self.directory / 'mariadbd.pid'}",
            f"--port={self.port}",
            f"--bind-address={HOST}",
            *self._as_user(),
            *SERVER_OPTIONS,
        ]

    def __enter__(self) -> Self:
        try:
            self._install()
            super().__enter__()
            self._provision()
        except BaseException:
            self.stop()
            raise
        return self

    def _install(self) -> None:
        installed = subprocess.run(
            [
                self.installer,
                "--no-defaults",
                f"--datadir={self.directory / 'data'}",
                # A root account without password, reachable only through the private socket.
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._as_user(),
                *SERVER_OPTIONS,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if installed.returncode != 0:
            raise RuntimeError(
                f"{self.installer} failed with {installed.returncode}:\n{installed.stdout}{installed.stderr}"
            )

    def _provision(self) -> None:
        with self.admin() as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.database}`")
            cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (self.user, HOST, self.password))
            cursor.execute(f"GRANT ALL PRIVILEGES ON `{self.database}`.* TO %s@%s", (self.user, HOST))

    def admin(self, *, database: str | None = None, timeout: float = 10.0) -> pymysql.connections.Connection:
        """A root connection through the socket, in autocommit mode; retried until the server accepts it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return pymysql.connect(
                    unix_socket=str(self.socket), user="root", database=database, autocommit=True, connect_timeout=5
                )
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        # The data is thrown away, so a clean shutdown would only cost time.
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)
