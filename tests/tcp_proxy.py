"""A TCP forwarder on loopback that can drop its connections, the way a database proxy does.

RDS Proxy closes client connections that stay idle past its idle client timeout, and any proxy or
NAT on the path may drop a connection at will. `TcpProxy` plays that part in front of a local
server: every accepted connection is forwarded to the upstream address, and tests close them on
demand (`drop_all`, `drop_idle`) or automatically after `idle_timeout` seconds without traffic.
Dropping closes both sides, so the client sees its connection end and the server sees a
disconnect, as with a real proxy.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Self

HOST = "127.0.0.1"
BUFFER_SIZE = 65_536
# How often the idle reaper looks at the connections; small next to any timeout a test sets.
REAP_INTERVAL = 0.02


class _Link:
    """One client connection and its upstream connection, pumped by two threads."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.last_activity = time.monotonic()
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._pumps_running = 2

    def start(self) -> None:
        for source, target in ((self.client, self.upstream), (self.upstream, self.client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def close(self) -> None:
        """Ends both connections; the pumps notice, exit and release the sockets."""
        self.closed.set()
        for sock in (self.client, self.upstream):
            # shutdown, unlike close, wakes a thread blocked in recv on the same socket; it fails
            # only if the socket is already disconnected.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER_SIZE):
                self.last_activity = time.monotonic()
                target.sendall(data)
        except OSError:
            pass  # either side went away: the link ends below
        finally:
            self.close()
            with self._lock:
                self._pumps_running -= 1
                last = self._pumps_running == 0
            if last:
                self.client.close()
                self.upstream.close()


class TcpProxy:
    """Forwards connections from 127.0.0.1:`port` to `upstream_host`:`upstream_port`.

    Started by `with`, which closes everything at its end.

    Args:
        upstream_port: port of the server behind the proxy.
        upstream_host: its address.
        idle_timeout: seconds without traffic after which a connection is dropped; None keeps
            connections open until dropped by hand. Can be changed while the proxy runs.

    Example:
        with TcpProxy(server_port) as proxy:
            ...  # the client connects to proxy.port
            proxy.drop_all()
    """

    def __init__(self, upstream_port: int, *, upstream_host: str = HOST, idle_timeout: float | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.idle_timeout = idle_timeout
        self.port = 0
        self._listener: socket.socket | None = None
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepted = 0
        self._dropped = 0

    @property
    def accepted(self) -> int:
        """Client connections accepted since the start."""
        with self._lock:
            return self._accepted

    @property
    def dropped(self) -> int:
        """Connections the proxy closed by `drop_all`, `drop_idle` or the idle timeout."""
        with self._lock:
            return self._dropped

    @property
    def active(self) -> int:
        """Connections open right now."""
        with self._lock:
            return sum(not link.closed.is_set() for link in self._links)

    def __enter__(self) -> Self:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(64)
        self._listener = listener
        self.port = listener.getsockname()[1]
        for target in (self._accept_loop, self._reap_loop):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopping.set()
        if self._listener is not None:
            # Wakes the accept loop, which then closes the listener.
            self._listener.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)
        for link in self._open_links():
            link.close()

    def drop_all(self) -> int:
        """Closes every open connection; returns how many there were."""
        return self._drop(self._open_links())

    def drop_idle(self, idle_for: float) -> int:
        """Closes the connections without traffic for `idle_for` seconds or more; returns how many."""
        now = time.monotonic()
        return self._drop([link for link in self._open_links() if now - link.last_activity >= idle_for])

    def _drop(self, links: list[_Link]) -> int:
        for link in links:
            link.close()
        with self._lock:
            self._dropped += len(links)
        return len(links)

    def _open_links(self) -> list[_Link]:
        with self._lock:
            self._links = [link for link in self._links if not link.closed.is_set()]
            return list(self._links)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with self._listener:
            while not self._stopping.is_set():
                try:
                    client, _ = self._listener.accept()
                except OSError:
                    return  # the listener was shut down
                try:
                    upstream = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()  # as a proxy does when its target is down
                    continue
                upstream.settimeout(None)
                link = _Link(client, upstream)
                with self._lock:
                    self._accepted += 1
                    self._links.append(link)
                link.start()

    def _reap_loop(self) -> None:
        while not self._stopping.wait(REAP_INTERVAL):
            if self.idle_timeout is not None:
                self.drop_idle(self.idle_timeout)
