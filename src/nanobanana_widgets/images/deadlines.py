"""The deadline of one HTTP exchange, held whatever the server does: a :class:`Watch` per
exchange and one watchdog thread that shuts the exchange's sockets at its deadline.

``requests`` bounds each socket read, never a whole request. :func:`watching` arms a watch
in the calling thread; the package's own urllib3 connection classes (mounted by
:class:`DeadlineAdapter`) register every socket they open, and every connection they send
a request on, with the watch of the thread using them; at the deadline the watchdog shuts
those sockets down (``shutdown(SHUT_RDWR)``, not ``close``), so a read blocked in the kernel
on headers, body or a TLS handshake returns at once. :mod:`.http` builds the exchange on it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager

__all__ = ["WATCHDOG_IDLE_EXIT", "DeadlineAdapter", "Watch", "watching"]

WATCHDOG_IDLE_EXIT: Final = 5.0
"""Seconds the watchdog thread idles with nothing to watch before it exits."""


def _shut(sock: Any) -> bool:
    """Shut a socket down for reading and writing (not closed: its owner closes it, and the
    file descriptor is never reused under it). ``True`` when it was connected."""
    if sock is None:
        return False
    try:
        if isinstance(sock, socket.socket):
            # The plain socket's method, also for an SSLSocket (whose own shutdown would
            # unwrap it under the thread reading from it).
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, ValueError, AttributeError):
        return False
    return True


class Watch:
    """One exchange's deadline and the sockets it uses; :meth:`fire` shuts them all."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.fired = False
        self.sent = False
        """Whether a connection was asked to send the request (it may not have yet)."""
        self.finished = False
        self._lock = threading.Lock()
        self._sockets: list[Any] = []
        self._connections: list[Any] = []

    def add_socket(self, sock: Any) -> None:
        """Watch a socket just opened (shut at once if the deadline passed already)."""
        with self._lock:
            if not self.fired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def add_connection(self, conn: Any) -> None:
        """Watch a connection about to send this exchange's request."""
        with self._lock:
            self.sent = True
            if not self.fired:
                self._connections.append(conn)
                return
        _shut(getattr(conn, "sock", None))

    def fire(self) -> None:
        """The deadline passed: shut every socket of the exchange (once).

        Under the lock, so that a connection is never shut after :meth:`finish` gave it
        back to the pool for another exchange (``shutdown`` does not block)."""
        with self._lock:
            if self.fired or self.finished:
                return
            self.fired = True
            for sock in [*self._sockets, *(getattr(c, "sock", None) for c in self._connections)]:
                _shut(sock)

    def finish(self) -> None:
        """The exchange is over: firing no longer does anything."""
        with self._lock:
            self.finished = True
            self._sockets.clear()
            self._connections.clear()


class _Watchdog:
    """One daemon thread firing every armed :class:`Watch` at its deadline.

    Arming costs a heap push; the thread is woken only when the new deadline comes before
    the time it is sleeping until (so a run of calls with the same deadline never wakes
    it), and it exits after :data:`WATCHDOG_IDLE_EXIT` seconds with nothing to watch.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._numbers = itertools.count()
        self._thread: threading.Thread | None = None
        self._wake_at = float("inf")

    def arm(self, watch: Watch) -> None:
        with self._cond:
            if len(self._heap) > 256:  # drop finished watches with far deadlines
                self._heap = [item for item in self._heap if not item[2].finished]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (watch.deadline, next(self._numbers), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="nanobanana-deadlines")
                self._thread.start()
            elif watch.deadline < self._wake_at:
                self._cond.notify()

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            due: list[Watch] = []
            with self._cond:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or self._heap[0][2].finished):
                    _deadline, _n, watch = heapq.heappop(self._heap)
                    if not watch.finished:
                        due.append(watch)
                if not due:
                    if self._heap:
                        idle_since = None
                        self._wake_at = self._heap[0][0]
                        self._cond.wait(self._wake_at - now)
                        continue
                    if idle_since is None:
                        idle_since = now
                    if now - idle_since >= WATCHDOG_IDLE_EXIT:
                        self._thread = None
                        self._wake_at = float("inf")
                        return
                    self._wake_at = idle_since + WATCHDOG_IDLE_EXIT
                    self._cond.wait(self._wake_at - now)
                    continue
                self._wake_at = now
            for watch in due:
                watch.fire()


_WATCHDOG = _Watchdog()
_local = threading.local()


def _current() -> Watch | None:
    watch: Watch | None = getattr(_local, "watch", None)
    return watch


class _WatchedHTTPConnection(HTTPConnection):
    """urllib3's connection, registering its socket and requests with the thread's watch."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        watch = _current()
        if watch is not None:
            watch.add_socket(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = _current()
        if watch is not None:
            watch.add_connection(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """As :class:`_WatchedHTTPConnection`, over TLS (the handshake is watched too): its
    methods come first in the order, then call on to urllib3's TLS connection."""


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedTLSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS: Final = {"http": _WatchedPool, "https": _WatchedTLSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, on connections that the deadline watchdog can shut."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                         **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
        manager: PoolManager = self.poolmanager
        manager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:  # a SOCKS manager keeps its own pools
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


@contextlib.contextmanager
def watching(deadline: float) -> Iterator[Watch]:
    """Arm a :class:`Watch` for ``deadline`` (a ``time.monotonic()`` instant) in this
    thread for the block; it is finished (firing does nothing) when the block ends."""
    watch = Watch(deadline)
    _WATCHDOG.arm(watch)
    previous = _current()
    _local.watch = watch
    try:
        yield watch
    finally:
        _local.watch = previous
        watch.finish()
