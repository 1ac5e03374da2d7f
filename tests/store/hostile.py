"""A small hostile server on loopback for the store's tests: it answers the images and tasks
endpoints with whatever a test scripts, including answers that never come.

Every handler ends when the server stops (at the latest ``lifetime`` seconds after it
started), so a test never leaves a thread or a socket behind.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support import png, png_data_uri

__all__ = ["HostileServer", "finished_record"]

Answer = Callable[["Handler", dict[str, Any]], None]
"""What a scripted endpoint does with a request (its decoded JSON body)."""


def finished_record(task_id: str, prompt: str, urls: list[str], *,
                    echoed: str | None = None) -> dict[str, Any]:
    """A finished task record as the tasks endpoint describes it."""
    return {
        "id": task_id, "trace_id": f"trace-{task_id}", "created_at": 100.0,
        "finished_at": 101.0, "request": {"action": "generate", "prompt": prompt},
        "response": {"success": True, "task_id": task_id, "data": [
            {"image_url": url, "prompt": prompt if echoed is None else echoed}
            for url in urls]},
    }


class Handler(BaseHTTPRequestHandler):
    """Reads the JSON body and hands it to the server's script for the path."""

    server: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        self.server.record(self.path, body, self.headers.get("authorization"))
        self.server.answer_for(self.path)(self, body if isinstance(body, dict) else {})

    def do_GET(self) -> None:
        self.server.record(self.path, {}, self.headers.get("authorization"))
        self.server.answer_for(self.path)(self, {})

    # --- what a script can do -------------------------------------------------------

    def send_json(self, value: Any, status: int = 200) -> None:
        """Answer with ``value`` as JSON (a ``str`` is sent as it is)."""
        data = value.encode() if isinstance(value, str) else json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_png(self) -> None:
        data = png()
        self.send_response(200)
        self.send_header("content-type", "image/png")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def hold(self) -> None:
        """Never answer: keep the connection open, silent, until the server stops."""
        self.server.stopping.wait(self.server.remaining())

    def trickle(self) -> None:
        """Send headers, then one byte of a body that never ends, every half second."""
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "1000000")
        self.end_headers()
        try:
            self.wfile.write(b"{")
            while not self.server.stopping.wait(0.5) and self.server.remaining() > 0:
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:
            pass


class HostileServer(ThreadingHTTPServer):
    """Scripted endpoints on ``127.0.0.1``: ``server.on("/nano-banana/images", answer)``.

    Unscripted paths answer 404. ``requests`` lists ``(path, body, authorization)`` of
    every request. Use as a context manager; it stops itself after ``lifetime`` seconds.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, lifetime: float = 60.0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.stopping = threading.Event()
        self._started = time.monotonic()
        self._lifetime = lifetime
        self._answers: dict[str, Answer] = {}
        self._prefixes: list[tuple[str, Answer]] = []
        self.requests: list[tuple[str, dict[str, Any], str | None]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="hostile-server")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def on(self, path: str, answer: Answer) -> None:
        """Answer requests to ``path`` with ``answer``."""
        self._answers[path] = answer

    def on_prefix(self, prefix: str, answer: Answer) -> None:
        """Answer requests to every path starting with ``prefix`` with ``answer``."""
        self._prefixes.append((prefix, answer))

    def answer_for(self, path: str) -> Answer:
        path = path.split("?", 1)[0]
        if path in self._answers:
            return self._answers[path]
        for prefix, answer in self._prefixes:
            if path.startswith(prefix):
                return answer
        return lambda h, body: h.send_json(
            {"success": False, "error": {"code": "no_api", "message": "not scripted"}}, 404)

    def record(self, path: str, body: dict[str, Any], authorization: str | None) -> None:
        with self._lock:
            self.requests.append((path, body, authorization))

    def paths(self) -> list[str]:
        with self._lock:
            return [p for p, _b, _a in self.requests]

    def remaining(self) -> float:
        return max(0.0, self._lifetime - (time.monotonic() - self._started))

    def _serve(self) -> None:
        timer = threading.Timer(self._lifetime, self.stop)
        timer.daemon = True
        timer.start()
        try:
            self.serve_forever(poll_interval=0.05)
        finally:
            timer.cancel()

    def start(self) -> HostileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self.shutdown()
        self.server_close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(lifetime: float = 60.0) -> Iterator[HostileServer]:
    """A started server, stopped after the test (for a fixture)."""
    with HostileServer(lifetime) as server:
        yield server


def data_image_url(color: str = "teal") -> str:
    """A result image as a ``data:`` URL (nothing to download)."""
    return png_data_uri(png(color))
