"""HTTP with a total deadline that holds whatever the server does: the one exchange under
image downloads (:mod:`.fetch`) and the client's transport (``client/transport.py``).

``requests`` bounds each socket read (``timeout``), never a whole request: a server that
sends one byte every half second, of its headers or of its body, or a chunked body that
never ends, keeps a plain ``requests`` call running forever. Here every exchange has a
**deadline**, an instant on the monotonic clock, and ends by it:

- a :class:`Watch` is armed for the exchange, in the calling thread, before anything is
  sent; the package's own connection classes (mounted by :class:`DeadlineAdapter`) register
  every socket they open and every connection they send a request on with the watch of the
  thread using them;
- one watchdog thread shuts down (``shutdown(SHUT_RDWR)``) the sockets of every watch whose
  deadline has passed, so a read blocked in the kernel, on headers or body, returns at once;
  the exchange then raises :class:`WireError` with ``deadline=True``;
- connect and read timeouts are clamped to the time left, and the body is read in bounded
  chunks and decompressed here, with a cap on the decompressed size (a deflate bomb stops
  at the cap, :class:`AnswerTooLarge`).

:class:`Wire` is the exchange: a ``requests.Session`` supplies headers, auth, cookies,
proxies and TLS settings (the caller's, or a private one that keeps no cookies); the
connections are always the package's own.
"""

from __future__ import annotations

import heapq
import http.cookiejar
import itertools
import queue
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager

from nanobanana_widgets.service.retry import Failure

__all__ = ["Answer", "AnswerTooLarge", "DeadlineAdapter", "Watch", "Wire", "WireError",
           "failure_of"]

CHUNK: Final = 64 * 1024
"""Bytes read from the socket at a time."""
BLOCK: Final = 1024 * 1024
"""Bytes of a body kept per block while it arrives."""
WATCHDOG_IDLE_EXIT: Final = 5.0
"""Seconds the watchdog thread idles with nothing to watch before it exits."""
ACCEPT_ENCODING: Final = "gzip, deflate"
"""The encodings asked for (and the only ones decoded: :class:`Wire` decodes itself)."""


# --- what an exchange gives or raises ----------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A whole HTTP answer: status, headers (names in lower case), decoded body."""

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    encoding: str | None = None


class WireError(Exception):
    """An exchange that got no whole answer; its ``__cause__`` is the library's exception.

    ``failure`` says how far it got (``service.retry.Failure``): ``"not_sent"`` (certainly
    never left this machine), ``"tls"``, ``"timeout"`` (sent, no whole answer in time),
    ``"broken"`` (the connection broke after sending) or ``"malformed"`` (an answer in an
    encoding that cannot be read). ``timed_out`` is true for connect and read timeouts and
    for the deadline; ``deadline`` only when the total deadline passed. ``status_code`` is
    set when the status line had arrived; ``unusable`` when the request could not even be
    built (a URL requests refuses: nothing was sent, and trying again cannot help).
    """

    def __init__(self, failure: Failure, *, timed_out: bool = False, deadline: bool = False,
                 status_code: int | None = None, detail: str = "",
                 unusable: bool = False) -> None:
        super().__init__(f"{failure}: {detail}" if detail else failure)
        self.failure: Failure = failure
        self.timed_out = timed_out or deadline
        self.deadline = deadline
        self.status_code = status_code
        self.detail = detail
        self.unusable = unusable


class AnswerTooLarge(Exception):
    """An answer whose body (declared, sent, or once decompressed) passes ``limit`` bytes;
    nothing more of it was read. ``head`` holds its first bytes (at most 64 KiB), where a
    task id may still be found."""

    def __init__(self, status_code: int, limit: int, declared: int | None = None,
                 head: bytes = b"") -> None:
        what = f"declares {declared} bytes" if declared is not None else "sends more"
        super().__init__(f"HTTP {status_code} answer {what}, over the limit of {limit} bytes")
        self.status_code = status_code
        self.limit = limit
        self.declared = declared
        self.head = head


# --- the watch and its watchdog ----------------------------------------------------------


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


class _WatchedHTTPSConnection(HTTPSConnection):
    """As :class:`_WatchedHTTPConnection`, over TLS (the handshake is watched too)."""

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


# --- the exchange ------------------------------------------------------------------------


def _quiet_session() -> requests.Session:
    """A session that keeps no cookies (an image host's cookie never reaches another)."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


class Wire:
    """Sends one request at a time per call, through the package's own connections, and
    reads the whole answer by a deadline (see the module).

    ``session`` supplies headers, auth, cookies, proxies and TLS settings; without one a
    private session is used, which keeps no cookies. Only a session made here is closed by
    :meth:`close`. Thread-safe: calls from many threads share the connection pool.
    """

    def __init__(self, session: requests.Session | None = None, *,
                 pool_size: int = 10) -> None:
        self._own = session is None
        self.session = session if session is not None else _quiet_session()
        self.adapter = DeadlineAdapter(pool_connections=pool_size, pool_maxsize=pool_size)

    def close(self) -> None:
        """Close the connections (and the session, if this wire made it)."""
        self.adapter.close()
        if self._own:
            self.session.close()

    def exchange(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: tuple[float, float],
        deadline: float,
        max_bytes: int,
        body: bytes | None = None,
        read_body: Callable[[int], bool] | bool = True,
        fresh_connection: bool = False,
        strip_authorization: bool = False,
    ) -> Answer:
        """Send one request (redirects not followed) and read the whole answer.

        ``timeout`` is (connect, read) seconds per socket operation, each clamped to what
        is left before ``deadline`` (a ``time.monotonic()`` instant), which bounds the whole
        exchange. At most ``max_bytes`` of body are read, before or after decompression
        (:class:`AnswerTooLarge`); ``read_body(status)`` false: the body is not read.
        ``fresh_connection``: on a connection no other request used or will use.
        ``strip_authorization``: never send an ``Authorization`` header (not even the
        session's). Raises :class:`WireError` when no whole answer arrived in time.
        """
        left = deadline - time.monotonic()
        if left <= 0:
            raise WireError("not_sent", deadline=True, detail="the deadline passed first")
        sent_headers = {"Accept-Encoding": ACCEPT_ENCODING, **headers}
        if fresh_connection:
            self.drop_idle_connections(url)
            sent_headers["Connection"] = "close"
        try:
            prepared = self.session.prepare_request(
                requests.Request(method, url, data=body, headers=sent_headers))
            if strip_authorization:
                prepared.headers.pop("Authorization", None)
            settings = self.session.merge_environment_settings(prepared.url, {}, None, None,
                                                               None)
        except Exception as exc:  # a URL requests cannot even prepare
            raise WireError("not_sent", detail=type(exc).__name__, unusable=True) from exc
        watch = Watch(deadline)
        _WATCHDOG.arm(watch)
        previous = _current()
        _local.watch = watch
        resp: requests.Response | None = None
        try:
            try:
                resp = self.adapter.send(
                    prepared, stream=True,
                    timeout=(max(0.001, min(timeout[0], left)), max(0.001, min(timeout[1], left))),
                    verify=True if settings["verify"] is None else settings["verify"],
                    cert=settings["cert"], proxies=settings["proxies"],
                )
            except Exception as exc:
                raise _send_error(exc, watch) from exc
            status = resp.status_code
            wanted = read_body(status) if callable(read_body) else read_body
            content = _read_body(resp, watch, max_bytes) if wanted else b""
            if watch.fired:
                raise WireError("timeout", deadline=True, status_code=status,
                                detail="the deadline passed while the answer arrived")
            return Answer(status, {k.lower(): v for k, v in resp.headers.items()}, content,
                          resp.encoding)
        finally:
            _local.watch = previous
            watch.finish()
            if resp is not None:
                resp.close()

    def drop_idle_connections(self, url: str) -> None:
        """Close idle pooled connections to ``url``'s host, so that the next request opens
        a fresh one (best effort: housekeeping never breaks a request)."""
        try:
            host = (urlsplit(url).hostname or "").lower()
            managers = [self.adapter.poolmanager, *self.adapter.proxy_manager.values()]
            for manager in managers:
                pools = getattr(manager, "pools", None)
                if pools is None:
                    continue
                for key in list(pools.keys()):
                    try:
                        pool = pools[key]
                    except KeyError:
                        continue
                    if str(getattr(pool, "host", "")).strip("[]").lower() == host:
                        _drain_idle(pool)
        except Exception:  # housekeeping only
            return


def _drain_idle(pool: Any) -> None:
    """Close the idle connections of one urllib3 pool (leaving empty slots behind)."""
    slots = getattr(pool, "pool", None)
    if slots is None:
        return
    idle: list[Any] = []
    while True:
        try:
            idle.append(slots.get(block=False))
        except queue.Empty:
            break
    for conn in idle:
        if conn is not None:
            conn.close()
        try:
            slots.put(None, block=False)
        except queue.Full:
            break


def _send_error(exc: BaseException, watch: Watch) -> WireError:
    """The :class:`WireError` of a request that raised ``exc`` before its status arrived."""
    failure = failure_of(exc)
    if not watch.sent and failure in ("broken", "timeout"):
        failure = "not_sent"  # no connection was ever asked to send it
    if watch.fired and failure != "not_sent":
        return WireError("timeout" if watch.sent else "not_sent", deadline=True,
                         detail="the deadline passed before the answer's headers arrived")
    timed_out = isinstance(exc, requests.exceptions.Timeout)
    return WireError(failure, timed_out=timed_out or watch.fired, deadline=watch.fired,
                     detail=type(exc).__name__)


def failure_of(exc: BaseException) -> Failure:
    """How far a request that raised ``exc`` got."""
    if _never_sent(exc):
        return "not_sent"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    return "broken"


def _never_sent(exc: BaseException) -> bool:
    """Whether a requests failure certainly happened before the request left this machine."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (urllib3.exceptions.NewConnectionError,
                             urllib3.exceptions.ClosedPoolError)):
            return True
        if isinstance(item, urllib3.exceptions.MaxRetryError):
            stack.append(item.reason)
        if isinstance(item, BaseException):
            stack.extend(a for a in item.args if isinstance(a, BaseException))
            stack.append(item.__cause__)
            stack.append(item.__context__)
    return False


# --- reading a body ----------------------------------------------------------------------


class _Inflater:
    """Decodes a ``Content-Encoding`` (identity, gzip, deflate) with a cap on the output."""

    def __init__(self, encoding: str | None, status: int) -> None:
        kind = (encoding or "identity").strip().lower()
        self._status = status
        self._kind = kind
        self._decoder: Any = None
        if kind in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif kind not in ("identity", "", "deflate"):
            raise WireError("malformed", status_code=status,
                            detail=f"an answer in the {kind!r} encoding, which was not asked for")

    def feed(self, data: bytes, buf: _Body, limit: int) -> None:
        """Append ``data``, decoded, to ``buf``; :class:`AnswerTooLarge` when ``buf`` would
        pass ``limit`` bytes. Decoded in pieces of at most :data:`CHUNK` bytes, so a bomb
        never holds more than ``limit`` plus one piece."""
        if self._kind == "deflate" and self._decoder is None:
            # RFC 9110 deflate is zlib-wrapped; some servers send it raw.
            wbits = zlib.MAX_WBITS if data[:1] == b"\x78" else -zlib.MAX_WBITS
            self._decoder = zlib.decompressobj(wbits)
        if self._decoder is None:
            if buf.size + len(data) > limit:
                raise AnswerTooLarge(self._status, limit, head=bytes(data[:CHUNK]))
            buf.add(data)
            return
        pending = data
        while pending:
            try:
                out = self._decoder.decompress(pending, CHUNK)
            except zlib.error as exc:
                raise WireError("malformed", status_code=self._status,
                                detail="a damaged compressed body") from exc
            if buf.size + len(out) > limit:
                raise AnswerTooLarge(self._status, limit, head=out[:CHUNK])
            buf.add(out)
            pending = self._decoder.unconsumed_tail
            if not out and pending:  # no progress: damaged
                raise WireError("malformed", status_code=self._status,
                                detail="a damaged compressed body")

    def finish(self, buf: _Body, limit: int) -> None:
        """Append what the decoder still holds to ``buf`` (within ``limit``)."""
        if self._decoder is None:
            return
        try:
            out = self._decoder.flush()
        except zlib.error as exc:
            raise WireError("malformed", status_code=self._status,
                            detail="a damaged compressed body") from exc
        if buf.size + len(out) > limit:
            raise AnswerTooLarge(self._status, limit)
        buf.add(out)


class _Body:
    """A body kept in blocks of about :data:`BLOCK` bytes, joined once at the end.

    One buffer regrown for a whole body is copied as it grows (twice the memory at the
    end); a list of the pieces as they arrive costs an object per piece (a server sending
    tiny segments would multiply the memory by tens). Blocks cost neither: each grows to
    about a megabyte, then the next one starts.
    """

    __slots__ = ("_block", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytearray] = []
        self._block = bytearray()
        self.size = 0

    def add(self, piece: bytes) -> None:
        self._block += piece
        self.size += len(piece)
        if len(self._block) >= BLOCK:
            self.parts.append(self._block)
            self._block = bytearray()

    def head(self) -> bytes:
        first = self.parts[0] if self.parts else self._block
        return bytes(first[:CHUNK])

    def clear(self) -> None:
        self.parts = []
        self._block = bytearray()
        self.size = 0

    def join(self) -> bytes:
        data = bytes(self._block) if not self.parts else b"".join([*self.parts, self._block])
        self.clear()
        return data


def _read_body(resp: requests.Response, watch: Watch, max_bytes: int) -> bytes:
    """The whole body, decoded, at most ``max_bytes``; ends when ``watch`` fires."""
    status = resp.status_code
    declared = resp.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerTooLarge(status, max_bytes, int(declared))
    inflater = _Inflater(resp.headers.get("Content-Encoding"), status)
    buf = _Body()
    received = 0
    raw = resp.raw
    try:
        while True:
            chunk = raw.read(CHUNK, decode_content=False)
            if not chunk:
                break
            received += len(chunk)
            if received > max_bytes:
                raise AnswerTooLarge(status, max_bytes)
            inflater.feed(chunk, buf, max_bytes)
        inflater.finish(buf, max_bytes)
    except AnswerTooLarge as exc:
        if buf.size:
            exc.head = buf.head()
        buf.clear()  # the traceback keeps this frame: never the body with it
        raise
    except WireError:
        buf.clear()
        raise
    except Exception as exc:
        buf.clear()
        if watch.fired:
            raise WireError("timeout", deadline=True, status_code=status,
                            detail="the deadline passed while the body arrived") from exc
        timed_out = isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError,
                                     requests.exceptions.Timeout)) \
            or "timed out" in str(exc).lower()
        raise WireError("timeout" if timed_out else "broken", timed_out=timed_out,
                        status_code=status, detail=type(exc).__name__) from exc
    return buf.join()
