"""Bytes over the wire: the one place in ``client/`` that uses requests.

A :class:`Transport` sends one ``POST`` and returns the whole :class:`Response` by a
deadline, or raises :class:`TransportError` saying how far the request got (a
``service.retry.Failure``): never sent, TLS, timed out or broken after sending, or an
answer that cannot be read (too large). It retries nothing and maps no status: that is
:mod:`nanobanana_widgets.client.calls`, on the shared retry policy. Like httpx's
``transport=``, ``Client(transport=...)`` takes any object with this shape, so tests can
stand a fake in below the socket.

:class:`RequestsTransport` is the default, on the package's one HTTP exchange
(:class:`nanobanana_widgets.images.Wire`): a total deadline that holds whatever the server
does (headers or body one byte at a time, a body that never ends), answers read up to
``max_answer_bytes`` after decompression. A request asked for on a ``fresh_connection``
(every submit) is sent with ``Connection: close`` after the idle pooled connections to its
host were closed, so a kept-alive connection the server is closing at that very moment can
never make a paid request ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from nanobanana_widgets.images import AnswerTooLarge, Wire, WireError
from nanobanana_widgets.service.protocol import MAX_ANSWER_BYTES
from nanobanana_widgets.service.retry import Failure

if TYPE_CHECKING:
    import requests

__all__ = ["RequestsTransport", "Response", "Transport", "TransportError"]


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
        try:
            return self.content.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")


class TransportError(Exception):
    """A request that got no whole HTTP answer. Its ``__cause__`` is the library's exception.

    ``failure`` says how far it got: ``"not_sent"`` (certainly never left this machine),
    ``"tls"``, ``"timeout"`` (sent, no answer in time), ``"broken"`` (the connection broke
    after sending) or ``"malformed"`` (an answer arrived but cannot be read: ``too_large``,
    or in an encoding not asked for). ``timed_out`` is true for connect and read timeouts
    and for the deadline; ``deadline`` when the call's total deadline passed;
    ``status_code`` when the status line had arrived; ``head`` the first bytes of an answer
    too large to read (where a task id may still be found).
    """

    def __init__(self, failure: Failure, *, timed_out: bool = False, detail: str = "",
                 deadline: bool = False, status_code: int | None = None,
                 too_large: bool = False, head: bytes = b"") -> None:
        super().__init__(f"{failure}: {detail}" if detail else failure)
        self.failure: Failure = failure
        self.timed_out = timed_out or deadline
        self.detail = detail
        self.deadline = deadline
        self.status_code = status_code
        self.too_large = too_large
        self.head = head


class Transport(Protocol):
    """What the client needs from the wire."""

    def post(self, url: str, body: bytes, *, headers: Mapping[str, str],
             timeout: tuple[float, float], deadline: float,
             fresh_connection: bool = False) -> Response:
        """Send one ``POST`` (redirects not followed) and return the whole answer.

        ``timeout`` is (connect, read) seconds per socket operation; ``deadline`` the
        ``time.monotonic()`` instant by which the whole exchange, headers and body, ends.
        ``fresh_connection``: on a connection no other request used or will use.
        Raises :class:`TransportError` when no whole answer arrived.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class RequestsTransport:
    """The default transport: the package's HTTP exchange with a total deadline, with the
    settings (headers, proxies, TLS) of ``session`` if one is given (only a session made
    here is closed by :meth:`close`). Answers are read up to ``max_answer_bytes``."""

    def __init__(self, session: requests.Session | None = None, *,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        self._wire = Wire(session)
        self.session = self._wire.session
        self.max_answer_bytes = max_answer_bytes

    def post(self, url: str, body: bytes, *, headers: Mapping[str, str],
             timeout: tuple[float, float], deadline: float,
             fresh_connection: bool = False) -> Response:
        """See :meth:`Transport.post`."""
        try:
            answer = self._wire.exchange(
                "POST", url, body=body, headers=headers, timeout=timeout, deadline=deadline,
                max_bytes=self.max_answer_bytes, fresh_connection=fresh_connection)
        except AnswerTooLarge as exc:
            raise TransportError("malformed", status_code=exc.status_code, too_large=True,
                                 detail=str(exc), head=exc.head) from exc
        except WireError as exc:
            raise TransportError(exc.failure, timed_out=exc.timed_out, detail=exc.detail,
                                 deadline=exc.deadline, status_code=exc.status_code) \
                from (exc.__cause__ or exc)
        return Response(status_code=answer.status_code, headers=dict(answer.headers),
                        content=answer.content, encoding=answer.encoding)

    def close(self) -> None:
        """Close the connections (and the session if this transport made it)."""
        self._wire.close()
