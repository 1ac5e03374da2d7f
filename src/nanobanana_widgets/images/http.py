"""HTTP with a total deadline that holds whatever the server does: the one exchange under
image downloads (:mod:`.fetch`) and the client's transport (``client/transport.py``).

``requests`` bounds each socket read (``timeout``), never a whole request: a server that
sends one byte every half second, of its headers or of its body, or a chunked body that
never ends, keeps a plain ``requests`` call running forever. Here every exchange has a
**deadline**, an instant on the monotonic clock, and ends by it:

- a watch is armed for the exchange before anything is sent, and the watchdog of
  :mod:`.deadlines` shuts the exchange's sockets down at the deadline, so a read blocked
  in the kernel, on headers or body, returns at once; the exchange then raises
  :class:`WireError` with ``deadline=True``;
- connect and read timeouts are clamped to the time left, and the body is read in bounded
  chunks and decompressed here, with a cap on the decompressed size (a deflate bomb stops
  at the cap, :class:`AnswerTooLarge`).

:class:`Wire` is the exchange: a ``requests.Session`` supplies headers, auth, cookies,
proxies and TLS settings (the caller's, or a private one that keeps no cookies); the
connections are always the package's own.
"""

from __future__ import annotations

import http.cookiejar
import queue
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from nanobanana_widgets.images.deadlines import DeadlineAdapter, Watch, watching
from nanobanana_widgets.service.retry import Failure

__all__ = ["Answer", "AnswerTooLarge", "Wire", "WireError", "failure_of"]

CHUNK: Final = 64 * 1024
"""Bytes read from the socket at a time."""
BLOCK: Final = 1024 * 1024
"""Bytes of a body kept per block while it arrives."""
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
        resp: requests.Response | None = None
        try:
            with watching(deadline) as watch:
                try:
                    resp = self.adapter.send(
                        prepared, stream=True,
                        timeout=(max(0.001, min(timeout[0], left)),
                                 max(0.001, min(timeout[1], left))),
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
                answer = Answer(status, {k.lower(): v for k, v in resp.headers.items()},
                                content, resp.encoding)
        finally:
            # Only once the watch is finished (it can no longer shut the socket) does the
            # connection go back to the pool, for another exchange.
            if resp is not None:
                resp.close()
        return answer

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
