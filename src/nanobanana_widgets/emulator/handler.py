"""The emulator's HTTP plumbing: the threading server and the request handler.

The handler reads bodies (sized or chunked, bounded), reads the bearer token, answers
with JSON or raw bytes, and can drop a connection with an RST. What to answer is decided
by the endpoints (:mod:`nanobanana_widgets.emulator.endpoints`), which the server calls
for every request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from nanobanana_widgets.emulator.state import new_trace_id

__all__ = [
    "MAX_BODY_BYTES",
    "BadBody",
    "BodyTooLarge",
    "EmulatorHTTPServer",
    "Handler",
    "error_body",
]

logger = logging.getLogger("nanobanana_widgets.emulator")

MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""Largest request body accepted; larger ones get 413 ``request_too_large``."""


class BodyTooLarge(Exception):
    """The request body is over :data:`MAX_BODY_BYTES`."""


class BadBody(Exception):
    """The request body cannot be read (a bad Content-Length or chunked encoding)."""


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The service's error answer: ``success: false``, the error and a fresh trace id."""
    body: dict[str, Any] = {
        "success": False,
        "error": {"code": code, "message": message},
        "trace_id": new_trace_id(),
    }
    body.update(extra)
    return body


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading server that passes each request to ``respond`` and remembers its
    connections, so stopping can end them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops SYNs when 16 clients connect at once

    def __init__(self, address: tuple[str, int], respond: Callable[[Handler], None]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.respond = respond
        self.connections: dict[threading.Thread, socket.socket] = {}
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve one connection, remembering it while it is open."""
        me = threading.current_thread()
        with self.connections_lock:
            self.connections[me] = request
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.pop(me, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a broken connection at debug level (clients hang up; that is no error)."""
        logger.debug("emulator connection error", exc_info=True)

    def hang_up_all(self) -> list[threading.Thread]:
        """Shut down every open connection; returns the threads serving them, for joining."""
        with self.connections_lock:
            connections = dict(self.connections)
        for sock in connections.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return list(connections)


class Handler(BaseHTTPRequestHandler):
    """One connection: every method goes to the server's ``respond``."""

    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "NanoBananaEmulator/0.1"
    sys_version = ""
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms) on every kept-alive request. Real servers do not stall like that.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the emulator logs through ``logging`` only, and never headers."""

    def do_GET(self) -> None:
        """Answer any method through the endpoints."""
        self.server.respond(self)

    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET
    do_PATCH = do_GET
    do_HEAD = do_GET
    do_OPTIONS = do_GET

    # --- reading -------------------------------------------------------------------------

    def read_body(self) -> bytes:
        """The request body (chunked or sized), at most ``MAX_BODY_BYTES``."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            self.close_connection = True
            raise BadBody("invalid Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise BadBody("invalid Content-Length")
        if length > MAX_BODY_BYTES:
            self._drain(length)
            raise BodyTooLarge
        return self.rfile.read(length)

    def _drain(self, length: int) -> None:
        # read (and drop) an oversized body so the client sees the 413 rather than a reset
        if length > 16 * MAX_BODY_BYTES:
            self.close_connection = True
            return
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                self.close_connection = True
                return
            remaining -= len(chunk)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        too_large = False
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise BadBody("invalid chunked encoding") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunk = self.rfile.read(size)
            self.rfile.readline(8)
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                too_large = True
                parts.clear()
            elif not too_large:
                parts.append(chunk)
        if too_large:
            raise BodyTooLarge
        return b"".join(parts)

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return token

    # --- answering -----------------------------------------------------------------------

    def send(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str | None = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer with a Content-Length (keep-alive unless the connection must close)."""
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, payload: Any, *,
                  headers: Mapping[str, str] | None = None) -> None:
        """Answer with ``payload`` as JSON."""
        self.send(status, json.dumps(payload).encode("utf-8"), headers=headers)

    def send_error_json(self, status: int, code: str, message: str, **extra: Any) -> None:
        """Answer with the service's error body."""
        self.send_json(status, error_body(code, message, **extra))

    def reset(self) -> None:
        """Drop the connection with an RST (SO_LINGER on, zero timeout, then close)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        self.connection.close()
