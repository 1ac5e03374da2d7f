"""Bytes over the wire: the one place in ``client/`` that uses requests and urllib3.

A :class:`Transport` sends one ``POST`` and returns the whole :class:`Response`, or raises
:class:`TransportError` saying how far the request got (a ``service.retry.Failure``): never
sent, TLS, timed out or broken after sending. It retries nothing and maps no status:
that is :mod:`nanobanana_widgets.client.calls`, on the shared retry policy. Like httpx's
``transport=``, ``Client(transport=...)`` takes any object with this shape, so tests can
stand a fake in below the socket.

:class:`RequestsTransport` is the default. A request asked for on a ``fresh_connection``
(every submit) is sent with ``Connection: close`` after the idle pooled connections to its
host were closed, so a kept-alive connection the server is closing at that very moment can
never make a paid request ambiguous.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from nanobanana_widgets.service.retry import Failure

__all__ = ["RequestsTransport", "Response", "Transport", "TransportError"]

logger = logging.getLogger("nanobanana_widgets.client")


@dataclass(frozen=True)
class Response:
    """A whole HTTP answer: status, headers (names in lower case) and body."""

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    encoding: str | None = None

    @property
    def text(self) -> str:
        """The body decoded (its declared charset, else UTF-8; bad bytes replaced)."""
        if not self.content:
            return ""
        return self.content.decode(self.encoding or "utf-8", errors="replace")


class TransportError(Exception):
    """A request that got no HTTP answer. Its ``__cause__`` is the library's exception.

    ``failure`` says how far it got: ``"not_sent"`` (certainly never left this machine),
    ``"tls"``, ``"timeout"`` (sent, no answer in time) or ``"broken"`` (the connection
    broke after sending). ``timed_out`` is true for connect and read timeouts alike.
    """

    def __init__(self, failure: Failure, *, timed_out: bool = False, detail: str = "") -> None:
        super().__init__(f"{failure}: {detail}" if detail else failure)
        self.failure: Failure = failure
        self.timed_out = timed_out
        self.detail = detail


class Transport(Protocol):
    """What the client needs from the wire."""

    def post(self, url: str, body: bytes, *, headers: Mapping[str, str],
             timeout: tuple[float, float], fresh_connection: bool = False) -> Response:
        """Send one ``POST`` (redirects not followed); ``timeout`` is (connect, read).

        ``fresh_connection``: on a connection no other request used or will use.
        Raises :class:`TransportError` when no answer arrived.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class RequestsTransport:
    """The default transport, on a ``requests.Session`` (its own unless one is given;
    only its own is closed by :meth:`close`)."""

    def __init__(self, session: requests.Session | None = None) -> None:
        self._own = session is None
        self.session = session if session is not None else requests.Session()

    def post(self, url: str, body: bytes, *, headers: Mapping[str, str],
             timeout: tuple[float, float], fresh_connection: bool = False) -> Response:
        """See :meth:`Transport.post`."""
        sent_headers = dict(headers)
        if fresh_connection:
            self._drop_idle_connections(url)
            sent_headers["connection"] = "close"
        try:
            resp = self.session.post(url, data=body, headers=sent_headers, timeout=timeout,
                                     allow_redirects=False)
            content = resp.content
        except requests.exceptions.RequestException as exc:
            raise TransportError(
                _failure_of(exc), timed_out=isinstance(exc, requests.exceptions.Timeout),
                detail=type(exc).__name__,
            ) from exc
        return Response(status_code=resp.status_code,
                        headers={k.lower(): v for k, v in resp.headers.items()},
                        content=content or b"", encoding=resp.encoding)

    def close(self) -> None:
        """Close the session if this transport made it."""
        if self._own:
            self.session.close()

    def _drop_idle_connections(self, url: str) -> None:
        """Close idle pooled connections to ``url``'s host, so the next request opens a
        fresh one (best effort: housekeeping never breaks a request)."""
        host = (urlsplit(url).hostname or "").lower()
        try:
            adapter = self.session.get_adapter(url)
            managers = [getattr(adapter, "poolmanager", None),
                        *getattr(adapter, "proxy_manager", {}).values()]
            for manager in managers:
                pools = getattr(manager, "pools", None)
                if pools is None:
                    continue
                for key in list(pools.keys()):
                    try:
                        pool = pools[key]
                    except KeyError:
                        continue
                    if str(getattr(pool, "host", "")).strip("[]").lower() != host:
                        continue
                    _drain_idle(pool)
        except Exception:
            logger.debug("Could not drop idle connections.", exc_info=True)


def _failure_of(exc: requests.exceptions.RequestException) -> Failure:
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
