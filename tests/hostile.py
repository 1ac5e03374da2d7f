"""A hostile HTTP server for tests: it answers on 127.0.0.1 whatever a broken or malicious
server could send (a body 100,000 levels deep, one byte every half second, a chunked body
that never ends, a deflate bomb, a redirect to a malformed URL ...).

Raw sockets, so nothing about the answer is tidied up by an HTTP library. Every loop is
bounded: the server stops itself after ``lifetime`` seconds, and every slow answer stops as
soon as the server is stopped or its client hangs up.

    with HostileServer() as server:
        server.on("POST", "/nano-banana/tasks", trickle(json_body({...}), interval=0.5))
        Client(..., base_url=server.base_url).task("t-1")
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "HostileServer",
    "Request",
    "answer",
    "deflate_bomb",
    "endless_chunks",
    "huge_json",
    "json_body",
    "nested_json",
    "redirect",
    "trickle",
]


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Behaviour = Callable[["Connection"], None]


@dataclass
class Connection:
    """What a behaviour gets: the socket, the request, and whether to go on."""

    sock: socket.socket
    request: Request
    server: HostileServer

    def alive(self) -> bool:
        """False once the server is stopping (behaviours end their loops then)."""
        return not self.server.stopping.is_set()

    def send(self, data: bytes) -> bool:
        """Send ``data``; False when the client hung up."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def pause(self, seconds: float) -> bool:
        """Sleep, waking early when the server stops; False when it stopped."""
        return not self.server.stopping.wait(seconds)


@dataclass
class HostileServer:
    """An HTTP/1.1 server on loopback that answers each route with a scripted behaviour.

    Routes are matched on (method, path) with the query string removed; anything else gets a
    404. ``requests`` lists what arrived. Stops itself after ``lifetime`` seconds. With
    ``tls`` (a server-side context) it speaks HTTPS.
    """

    lifetime: float = 120.0
    tls: ssl.SSLContext | None = None
    routes: dict[tuple[str, str], Behaviour] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _sock: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def on(self, method: str, path: str, behaviour: Behaviour) -> HostileServer:
        self.routes[(method.upper(), path)] = behaviour
        return self

    def start(self) -> HostileServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.1)
        self._sock = sock
        started = time.monotonic()
        thread = threading.Thread(target=self._accept_loop, args=(started,), daemon=True,
                                  name="hostile-server")
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------

    def _accept_loop(self, started: float) -> None:
        assert self._sock is not None
        while not self.stopping.is_set():
            if time.monotonic() - started > self.lifetime:
                self.stopping.set()
                break
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                      name="hostile-connection")
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            conn.settimeout(5)
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # a client that gave up or did not trust us
                conn.close()
                return
        conn.settimeout(0.2)
        buf = b""
        with contextlib.closing(conn):
            while not self.stopping.is_set():
                request, buf = self._read_request(conn, buf)
                if request is None:
                    return
                self.requests.append(request)
                behaviour = self.routes.get((request.method, request.path.split("?")[0]))
                handle = behaviour or answer(404, b'{"success": false}')
                try:
                    handle(Connection(conn, request, self))
                except OSError:
                    return
                if request.headers.get("connection", "").lower() == "close":
                    return

    def _read_request(self, conn: socket.socket, buf: bytes) -> tuple[Request | None, bytes]:
        while b"\r\n\r\n" not in buf:
            chunk = self._recv(conn)
            if not chunk:
                return None, buf
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        while len(rest) < length:
            chunk = self._recv(conn)
            if not chunk:
                return None, b""
            rest += chunk
        return Request(method.upper(), path, headers, rest[:length]), rest[length:]

    def _recv(self, conn: socket.socket) -> bytes:
        while not self.stopping.is_set():
            try:
                return conn.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return b""
        return b""


# --- behaviours ------------------------------------------------------------------------


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def json_body(value: Any) -> bytes:
    """``value`` as JSON bytes (``ensure_ascii``, so lone surrogates travel as escapes)."""
    return json.dumps(value).encode()


def answer(status: int, body: bytes | str, *, content_type: str | None = "application/json",
           headers: dict[str, str] | None = None) -> Behaviour:
    """A whole, well-formed answer."""
    data = body.encode() if isinstance(body, str) else body

    def behave(c: Connection) -> None:
        head = {"Content-Length": str(len(data)), **(headers or {})}
        if content_type:
            head["Content-Type"] = content_type
        c.send(_head(status, head) + data)

    return behave


def redirect(location: str, status: int = 302) -> Behaviour:
    """A redirect to ``location`` (sent exactly as given)."""
    return answer(status, b"", content_type=None, headers={"Location": location})


def trickle(body: bytes, *, status: int = 200, interval: float = 0.5, slow_headers: bool = True,
            content_type: str = "application/json") -> Behaviour:
    """The answer one byte every ``interval`` seconds: the headers too when
    ``slow_headers``, else headers at once and then the body byte by byte."""

    def behave(c: Connection) -> None:
        head = _head(status, {"Content-Type": content_type, "Content-Length": str(len(body))})
        data = head + body
        if not slow_headers:
            if not c.send(head):
                return
            data = body
        for i in range(len(data)):
            if not c.send(data[i:i + 1]) or not c.pause(interval):
                return

    return behave


def endless_chunks(*, status: int = 200, interval: float = 0.2,
                   content_type: str = "application/json") -> Behaviour:
    """Headers at once, then a chunked body whose chunks never stop coming."""

    def behave(c: Connection) -> None:
        if not c.send(_head(status, {"Content-Type": content_type,
                                     "Transfer-Encoding": "chunked"})):
            return
        if not c.send(b"1\r\n[\r\n"):
            return
        while c.alive():
            if not c.send(b"2\r\n1,\r\n") or not c.pause(interval):
                return

    return behave


def nested_json(levels: int = 100_000, *, prefix: bytes = b"") -> bytes:
    """``[[[[...]]]]`` ``levels`` deep (valid JSON), after ``prefix`` (e.g. an object head)."""
    return prefix + b"[" * levels + b"]" * levels


def huge_json(size: int, *, status: int = 200, chunk: int = 1 << 20,
              declare_length: bool = False) -> Behaviour:
    """A JSON answer of ``size`` bytes (one long string), streamed fast, with or without a
    ``Content-Length`` (a liar can leave it out)."""
    head_part = b'{"success": true, "task_id": "t-huge", "pad": "'
    tail = b'"}'
    filler = size - len(head_part) - len(tail)

    def behave(c: Connection) -> None:
        headers = {"Content-Type": "application/json", "Connection": "close"}
        if declare_length:
            headers["Content-Length"] = str(size)
        if not c.send(_head(status, headers) + head_part):
            return
        block = b"a" * chunk
        left = filler
        while left > 0 and c.alive():
            piece = block if left >= chunk else block[:left]
            if not c.send(piece):
                return
            left -= len(piece)
        c.send(tail)
        with contextlib.suppress(OSError):
            c.sock.shutdown(socket.SHUT_WR)

    return behave


@functools.lru_cache(maxsize=4)
def _bomb(size: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [squeeze.compress(b'{"success": true, "task_id": "t-bomb", "pad": "')]
    block = b" " * (1 << 20)
    for _ in range(size // len(block)):
        parts.append(squeeze.compress(block))
    parts.append(squeeze.compress(b'"}'))
    parts.append(squeeze.flush())
    return b"".join(parts)


def deflate_bomb(size: int = 1 << 30, *, status: int = 200,
                 content_type: str = "application/json") -> Behaviour:
    """A gzip answer (about ``size / 1000`` bytes) that inflates to ``size`` bytes of spaces
    inside a JSON string."""
    return answer(status, _bomb(size), content_type=content_type,
                  headers={"Content-Encoding": "gzip"})
