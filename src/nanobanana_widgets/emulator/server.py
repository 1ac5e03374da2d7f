"""A real HTTP server on loopback that speaks the Nano Banana protocol of API.md.

Used by the tests, the benchmarks and the offline demo. It validates requests like the
service, keeps task records, answers synchronously, asynchronously or by callback, draws
real PNGs on demand, and can inject every failure the client must survive.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import json
import logging
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

from PIL import Image

from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.service.models import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_MODEL,
    DEFAULT_RESOLUTION,
    MAX_IMAGE_BYTES,
    pixel_size,
    validate_request,
)

from .drawing import (
    InputImage,
    data_uri_size,
    decode_data_uri,
    encode_png,
    nearest_aspect_ratio,
    render_edit,
    render_generate,
)

__all__ = ["DEFAULT_FAULT_KINDS", "ENDPOINTS", "FAULT_KINDS", "Emulator"]

logger = logging.getLogger("nanobanana_widgets.emulator")

FAULT_KINDS: Final[tuple[str, ...]] = (
    "rate_limit",
    "server_error",
    "forbidden",
    "used_up",
    "unauthorized",
    "slow_headers",
    "reset",
    "malformed_json",
    "html_error",
    "empty_body",
    "task_forbidden",
    "task_error",
    "partial",
)
"""Every fault :meth:`Emulator.inject` knows."""

_TASK_FAULTS: Final = frozenset({"task_forbidden", "task_error", "partial"})

DEFAULT_FAULT_KINDS: Final[tuple[str, ...]] = (
    "rate_limit",
    "server_error",
    "forbidden",
    "reset",
    "malformed_json",
    "html_error",
    "empty_body",
    "task_forbidden",
    "task_error",
    "partial",
)
"""Faults drawn at random when ``fault_rate`` > 0: every kind that can happen to one images
request on a healthy account (not ``used_up``/``unauthorized``, not the slow ``slow_headers``)."""

ENDPOINTS: Final[tuple[str, ...]] = ("images", "tasks", "files", "any")

MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""Largest request body accepted; larger ones get 413 ``request_too_large``."""

MAX_BATCH: Final = 50

_IMAGES_PATHS: Final = frozenset({"/nano-banana/images", "/gemini/images"})
_TASKS_PATH: Final = "/nano-banana/tasks"
_FILE_RE: Final = re.compile(r"^/files/(?P<task>[A-Za-z0-9_-]+)-(?P<index>\d+)\.png$")

# Fixed identities that make records look like the service's (never a real account).
_API_ID: Final = "a1b2c3d4-0000-4000-8000-000000000000"
_APPLICATION_ID: Final = "e5f6a7b8-0000-4000-8000-000000000001"
_CREDENTIAL_ID: Final = "c9d0e1f2-0000-4000-8000-000000000002"
_USER_ID: Final = "emulator-user"

_CACHE_MAX_ENTRIES: Final = 64
_CACHE_MAX_BYTES: Final = 192 * 1024 * 1024
_CALLBACK_TIMEOUT: Final = 5.0

Latency = float | tuple[float, float]


def _trace_id() -> str:
    return str(uuid.uuid4())


def _error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "success": False,
        "error": {"code": code, "message": message},
        "trace_id": _trace_id(),
    }
    body.update(extra)
    return body


def _parse_latency(latency: Any) -> tuple[float, float]:
    """``latency`` as a ``(low, high)`` pair of non-negative seconds; ``ValueError`` if bad."""
    if isinstance(latency, bool):
        raise ValueError(f"latency must be seconds or a (low, high) pair, not {latency!r}")
    if isinstance(latency, (int, float)):
        low = high = float(latency)
    elif isinstance(latency, (tuple, list)) and len(latency) == 2:
        low, high = (float(v) for v in latency)
    else:
        raise ValueError(f"latency must be seconds or a (low, high) pair, not {latency!r}")
    if math.isnan(low) or math.isnan(high) or low < 0 or high < low:
        raise ValueError(
            f"latency range must satisfy 0 <= low <= high, got ({low}, {high})"
        )
    return low, high


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` is a loopback name or address (127.0.0.0/8, ``localhost``, ``::1``)."""
    if not host:
        return False
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Fault:
    kind: str
    endpoint: str
    retry_after: float
    delay: float
    drawn: bool = False  # drawn at random by fault_rate, not injected


@dataclass
class _Task:
    id: str
    record_id: str
    trace_id: str
    request: dict[str, Any]
    created_at: float
    finish_at: float
    fault: str | None
    done: threading.Event = field(default_factory=threading.Event)
    settled: bool = False

    @property
    def count(self) -> int:
        count = self.request.get("count")
        return count if isinstance(count, int) and not isinstance(count, bool) else 1

    @property
    def succeeded_images(self) -> int:
        if self.fault in ("task_forbidden", "task_error"):
            return 0
        if self.fault == "partial":
            return 1
        return self.count

    def finished(self, now: float) -> bool:
        return now >= self.finish_at

    def response(self, base_url: str) -> dict[str, Any]:
        """The finished task's response: a success with ``data`` or a failure."""
        if self.fault == "task_forbidden":
            return {
                "success": False,
                "error": {
                    "code": "forbidden",
                    "message": "The image provider refused this content.",
                },
                "trace_id": self.trace_id,
                "task_id": self.id,
            }
        if self.fault == "task_error":
            return {
                "success": False,
                "error": {"code": "api_error", "message": "Internal server error."},
                "trace_id": self.trace_id,
                "task_id": self.id,
            }
        prompt = self.request.get("prompt", "")
        return {
            "success": True,
            "task_id": self.id,
            "trace_id": self.trace_id,
            "data": [
                {"prompt": prompt, "image_url": f"{base_url}/files/{self.id}-{i}.png"}
                for i in range(self.succeeded_images)
            ],
        }


class _TooLarge(Exception):
    pass


class _BadBody(Exception):
    pass


class _Server(ThreadingHTTPServer):
    """A threading server that remembers its connections so ``stop()`` can end them."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops SYNs when 16 clients connect at once

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.emulator = emulator
        self.connections: dict[threading.Thread, socket.socket] = {}
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        me = threading.current_thread()
        with self.connections_lock:
            self.connections[me] = request
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.pop(me, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("emulator connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "NanoBananaEmulator/0.1"
    sys_version = ""
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms) on every kept-alive request. Real servers do not stall like that.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the emulator logs through ``logging`` only, and never headers."""

    def do_GET(self) -> None:
        self.server.emulator._dispatch(self)

    do_POST = do_GET
    do_PUT = do_GET
    do_DELETE = do_GET
    do_PATCH = do_GET
    do_HEAD = do_GET
    do_OPTIONS = do_GET

    # --- plumbing used by the emulator -------------------------------------------------

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
            raise _BadBody("invalid Content-Length") from None
        if length < 0:
            self.close_connection = True
            raise _BadBody("invalid Content-Length")
        if length > MAX_BODY_BYTES:
            self._drain(length)
            raise _TooLarge
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
                raise _BadBody("invalid chunked encoding") from None
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
            raise _TooLarge
        return b"".join(parts)

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
        self.send(status, json.dumps(payload).encode("utf-8"), headers=headers)

    def send_error_json(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.send_json(status, _error_body(code, message, **extra))

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

    def bearer_token(self) -> str | None:
        value = self.headers.get("Authorization", "")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return token


class Emulator:
    """The Nano Banana service on a loopback port, for tests, benchmarks and offline demos.

    ``latency`` is seconds per task (or a ``(low, high)`` range drawn per task from a RNG
    seeded with ``seed``; ``float("inf")``: tasks never finish). ``tokens=None`` accepts any
    non-empty bearer token; a set accepts only those. Use as a context manager::

        with Emulator(latency=0.2) as emu:
            requests.post(emu.base_url + "/nano-banana/images", ...)
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: Latency = 0.0,
        tokens: Iterable[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self._latency = _parse_latency(latency)
        self._tokens: frozenset[str] | None = None if tokens is None else frozenset(tokens)
        self.seed = seed
        self._latency_rng = random.Random(f"latency-{seed}")
        self._fault_rng = random.Random(f"faults-{seed}")
        self.fault_rate: float = 0.0
        """Probability (0..1) that an images request gets a random fault from ``fault_kinds``."""
        self.fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
        self.requests_log: list[tuple[str, Any]] = []
        """``(path, parsed JSON body or None)`` of every request received (never headers)."""

        self._lock = threading.RLock()
        self._tasks: dict[str, _Task] = {}
        self._pending: dict[str, _Task] = {}
        self._faults: list[_Fault] = []
        self._timers: set[threading.Timer] = set()
        self._callback_urls: dict[str, str] = {}
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = 0
        self._submissions = 0
        self._lookups = 0
        self._downloads = 0
        self._billed_images = 0
        self._callbacks = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind the port and serve in a background thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("This emulator is already started; make a new one instead.")
        self._stopping.clear()
        server = _Server((self.host, self.port), self)
        self._server = server
        self.port = server.server_address[1]
        url_host = self.host
        if url_host in ("", "0.0.0.0"):
            url_host = "127.0.0.1"
        elif url_host == "::":
            url_host = "::1"
        if ":" in url_host:
            url_host = f"[{url_host}]"
        self.base_url = f"http://{url_host}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"nanobanana-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        logger.info("emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, end open connections, cancel pending callbacks and join threads."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            timers = list(self._timers)
            self._timers.clear()
            for task in self._pending.values():
                task.done.set()  # wake synchronous waiters: they see _stopping and hang up
        for timer in timers:
            timer.cancel()
        with server.connections_lock:
            connections = dict(server.connections)
        for sock in connections.values():
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 2.0  # generous: under load a handler may be slow to run
        for thread in [*connections, *timers]:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread is not None:
            self._thread.join(5.0)
        self._server = None
        self._thread = None
        logger.info("emulator on %s stopped", self.base_url)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._server is not None else "stopped"
        return f"Emulator({self.base_url or 'not started'!r}, {state})"

    # --- knobs ---------------------------------------------------------------------------

    def set_latency(self, latency: Latency) -> None:
        """Change the latency of tasks submitted from now on (seconds or ``(low, high)``)."""
        parsed = _parse_latency(latency)
        with self._lock:
            self._latency = parsed

    @property
    def latency(self) -> Latency:
        """The current latency: seconds, or the ``(low, high)`` range."""
        low, high = self._latency
        return low if low == high else (low, high)

    def inject(
        self,
        kind: str,
        *,
        times: int = 1,
        retry_after: float = 1.0,
        delay: float = 5.0,
        endpoint: str = "images",
    ) -> None:
        """Queue ``times`` faults of ``kind`` for the next matching requests (FIFO).

        ``endpoint`` is ``"images"``, ``"tasks"``, ``"files"`` or ``"any"``. See
        :data:`FAULT_KINDS` and the module contract for what each kind does.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; known kinds: {', '.join(FAULT_KINDS)}")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"Unknown endpoint {endpoint!r}; use one of {', '.join(ENDPOINTS)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a positive integer, not {times!r}")
        fault = _Fault(kind, endpoint, float(retry_after), float(delay))
        with self._lock:
            self._faults.extend(_Fault(**vars(fault)) for _ in range(times))

    def clear_faults(self) -> None:
        """Drop every queued fault (``fault_rate`` is left as it is)."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many injected faults are still queued."""
        with self._lock:
            return len(self._faults)

    def finish_all(self) -> None:
        """Make every pending task finish now (their callbacks are sent at once)."""
        now = time.time()
        with self._lock:
            pending = list(self._pending.values())
            for task in pending:
                task.finish_at = min(task.finish_at, now)
            self._settle(now)
            for task in pending:
                if task.id in self._callback_urls:
                    self._schedule_callback(task, 0.0)

    # --- counters ------------------------------------------------------------------------

    @property
    def submissions(self) -> int:
        """Requests received on the images endpoints (faulted or not)."""
        with self._lock:
            return self._submissions

    @property
    def lookups(self) -> int:
        """Requests received on the tasks endpoint."""
        with self._lock:
            return self._lookups

    @property
    def downloads(self) -> int:
        """``GET`` requests for ``/files/...``."""
        with self._lock:
            return self._downloads

    @property
    def billed_images(self) -> int:
        """Images of tasks that have succeeded (what the service would bill)."""
        with self._lock:
            self._settle(time.time())
            return self._billed_images

    @property
    def callbacks(self) -> int:
        """Callbacks POSTed successfully."""
        with self._lock:
            return self._callbacks

    @property
    def pending(self) -> int:
        """Tasks not finished yet."""
        with self._lock:
            self._settle(time.time())
            return len(self._pending)

    def reset_counters(self) -> None:
        """Zero every counter and clear ``requests_log`` (tasks and faults stay)."""
        with self._lock:
            self._settle(time.time())
            self._submissions = self._lookups = self._downloads = 0
            self._billed_images = self._callbacks = 0
            self.requests_log.clear()

    def task_ids(self) -> list[str]:
        """Ids of every task made so far, oldest first."""
        with self._lock:
            return list(self._tasks)

    # --- bookkeeping ---------------------------------------------------------------------

    def _settle(self, now: float) -> None:
        """Move tasks whose time has come out of ``_pending`` and bill them (lock held)."""
        for task_id, task in list(self._pending.items()):
            if task.finished(now):
                del self._pending[task_id]
                task.settled = True
                self._billed_images += task.succeeded_images
                task.done.set()

    def _new_task(self, request: dict[str, Any], fault: str | None) -> _Task:
        now = time.time()
        with self._lock:
            low, high = self._latency
            latency = low if low == high else self._latency_rng.uniform(low, high)
            task = _Task(
                id=str(uuid.uuid4()),
                record_id=uuid.uuid4().hex[:24],
                trace_id=_trace_id(),
                request=request,
                created_at=now,
                finish_at=now + latency,
                fault=fault,
            )
            self._tasks[task.id] = task
            self._pending[task.id] = task
            self._settle(now)
        return task

    def _record(self, task: _Task, now: float) -> dict[str, Any]:
        record: dict[str, Any] = {
            "_id": task.record_id,
            "id": task.id,
            "api_id": _API_ID,
            "application_id": _APPLICATION_ID,
            "credential_id": _CREDENTIAL_ID,
            "user_id": _USER_ID,
            "type": "images",
            "trace_id": task.trace_id,
            "created_at": round(task.created_at, 3),
            "started_at": round(task.created_at + min(0.01, task.finish_at - task.created_at), 3),
        }
        if task.finished(now):
            record["finished_at"] = round(task.finish_at, 3)
            record["elapsed"] = round(task.finish_at - task.created_at, 3)
        record["request"] = task.request
        if task.finished(now):
            record["response"] = task.response(self.base_url)
        return record

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.endpoint in (endpoint, "any"):
                    return self._faults.pop(i)
            if (
                endpoint == "images"
                and self.fault_rate > 0
                and self.fault_kinds
                and self._fault_rng.random() < self.fault_rate
            ):
                kind = self._fault_rng.choice(self.fault_kinds)
                return _Fault(kind, "images", retry_after=0.05, delay=0.05, drawn=True)
        return None

    def _put_back(self, fault: _Fault) -> None:
        """Return an unused injected fault to the front of the queue (random ones vanish)."""
        if fault.drawn:
            return
        with self._lock:
            self._faults.insert(0, fault)

    # --- request handling ----------------------------------------------------------------

    def _dispatch(self, h: _Handler) -> None:
        path = urlsplit(h.path).path
        if len(path) > 1:
            path = path.rstrip("/")
        try:
            body = h.read_body()
        except _TooLarge:
            h.close_connection = True
            if path in _IMAGES_PATHS and h.command == "POST":
                with self._lock:
                    self._submissions += 1
            h.send_error_json(413, "request_too_large",
                              "The request body is larger than 64 MB.")
            return
        except _BadBody as exc:
            h.send_error_json(400, "bad_request", f"Unreadable request body: {exc}.")
            return
        if h.command == "POST" and path in _IMAGES_PATHS:
            self._images(h, path, body)
        elif h.command == "POST" and path == _TASKS_PATH:
            self._tasks_endpoint(h, path, body)
        elif h.command in ("GET", "HEAD") and path.startswith("/files/"):
            self._files(h, path)
        else:
            h.send_error_json(404, "no_api", f"No API at {h.command} {path}.")

    @staticmethod
    def _parse_json(body: bytes) -> tuple[Any, str | None]:
        try:
            return json.loads(body.decode("utf-8")), None
        except (UnicodeDecodeError, ValueError) as exc:
            return None, str(exc)

    def _check_auth(self, h: _Handler) -> bool:
        token = h.bearer_token()
        if token is None:
            h.send_error_json(
                401, "invalid_token",
                "Missing token: send an 'authorization: Bearer <token>' header.",
            )
            return False
        if self._tokens is not None and token not in self._tokens:
            h.send_error_json(401, "invalid_token", "The token is invalid.")
            return False
        return True

    def _apply_transport_fault(self, h: _Handler, fault: _Fault) -> bool:
        """Answer (or break) the request as ``fault`` says; ``True`` if it is done with."""
        kind = fault.kind
        logger.debug("injecting fault %s", kind)
        if kind == "slow_headers":
            self._stopping.wait(fault.delay)
            if self._stopping.is_set():
                h.close_connection = True
                return True
            return False
        if kind == "reset":
            h.reset()
        elif kind == "rate_limit":
            h.send_json(
                429,
                _error_body("too_many_requests", "Too many requests; slow down."),
                headers={"Retry-After": f"{fault.retry_after:g}"},
            )
        elif kind == "server_error":
            h.send_error_json(500, "api_error", "Internal server error.")
        elif kind == "forbidden":
            h.send_error_json(403, "forbidden", "The image provider refused this content.")
        elif kind == "used_up":
            h.send_error_json(403, "used_up", "Your balance is used up; top it up.")
        elif kind == "unauthorized":
            h.send_error_json(401, "invalid_token", "The token is invalid.")
        elif kind == "malformed_json":
            h.send(200, b'{"success": true, "task_id": "trunc')
        elif kind == "html_error":
            page = (
                b"<html><head><title>502 Bad Gateway</title></head><body>"
                b"<center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
                b"</body></html>\n"
            )
            h.send(502, page, content_type="text/html")
        elif kind == "empty_body":
            h.send(502, b"", content_type=None)
        else:  # a task-level fault on an endpoint without tasks: nothing to do
            return False
        return True

    def _images(self, h: _Handler, path: str, raw: bytes) -> None:
        payload, json_error = self._parse_json(raw)
        with self._lock:
            self._submissions += 1
            self.requests_log.append((path, payload))
        if not self._check_auth(h):
            return
        fault = self._take_fault("images")
        task_fault: _Fault | None = None
        if fault is not None:
            if fault.kind in _TASK_FAULTS:
                task_fault = fault
            elif self._apply_transport_fault(h, fault):
                return
        if json_error is not None or not isinstance(payload, dict):
            if task_fault is not None:
                self._put_back(task_fault)
            reason = json_error or "the body must be a JSON object"
            h.send_error_json(400, "bad_request", f"Invalid JSON body: {reason}.")
            return
        problem = self._validate(payload)
        if problem is not None:
            if task_fault is not None:
                self._put_back(task_fault)
            status, code, message = problem
            h.send_error_json(status, code, message)
            return

        task = self._new_task(payload, task_fault.kind if task_fault else None)
        callback_url = payload.get("callback_url")
        if isinstance(callback_url, str):
            with self._lock:
                self._callback_urls[task.id] = callback_url
                if math.isfinite(task.finish_at):
                    self._schedule_callback(task, task.finish_at - time.time())
        if payload.get("async") is True or isinstance(callback_url, str):
            h.send_json(200, {"success": True, "task_id": task.id, "trace_id": task.trace_id})
            return
        self._answer_synchronously(h, task)

    def _validate(self, payload: dict[str, Any]) -> tuple[int, str, str] | None:
        """``(status, code, message)`` of the first problem of an images request, else None."""
        if "async" in payload and not isinstance(payload["async"], bool):
            return 400, "bad_request", f"Invalid async: {payload['async']!r}. Expected a boolean."
        image_urls = payload.get("image_urls")
        if image_urls is not None and not isinstance(image_urls, list):
            return 400, "bad_request", "Invalid image_urls: expected a list of URLs."
        model = payload.get("model")
        count = payload.get("count")
        try:
            validate_request(
                action=payload.get("action"),  # type: ignore[arg-type]  # checked inside
                prompt=payload.get("prompt"),
                model=DEFAULT_MODEL if model is None else model,
                count=1 if count is None else count,
                aspect_ratio=payload.get("aspect_ratio"),
                resolution=payload.get("resolution"),
                image_urls=image_urls,
                callback_url=payload.get("callback_url"),
            )
        except InvalidParameterError as exc:
            return 400, "bad_request", exc.message
        for i, url in enumerate(image_urls or []):
            if url.startswith("data:") and data_uri_size(url) > MAX_IMAGE_BYTES:
                return (
                    413,
                    "request_too_large",
                    f"image_urls[{i}] is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB.",
                )
        return None

    def _answer_synchronously(self, h: _Handler, task: _Task) -> None:
        while True:
            now = time.time()
            if task.finished(now):
                break
            if self._stopping.is_set():
                h.close_connection = True  # the server is stopping: hang up without a word
                return
            remaining = task.finish_at - now
            task.done.wait(min(remaining, 0.5) if math.isfinite(remaining) else 0.5)
        with self._lock:
            self._settle(time.time())
        response = task.response(self.base_url)
        if response.get("success"):
            h.send_json(200, response)
            return
        code = response["error"]["code"]
        h.send_json(403 if code == "forbidden" else 500, response)

    def _tasks_endpoint(self, h: _Handler, path: str, raw: bytes) -> None:
        payload, json_error = self._parse_json(raw)
        with self._lock:
            self._lookups += 1
            self.requests_log.append((path, payload))
        if not self._check_auth(h):
            return
        fault = self._take_fault("tasks")
        if fault is not None and self._apply_transport_fault(h, fault):
            return
        if json_error is not None or not isinstance(payload, dict):
            problem = json_error or "the body must be a JSON object"
            h.send_error_json(400, "bad_request", f"Invalid JSON body: {problem}.")
            return
        action = payload.get("action")
        now = time.time()
        if action == "retrieve":
            task_id = payload.get("id")
            if not isinstance(task_id, str) or not task_id:
                h.send_error_json(400, "bad_request", "Invalid id: expected a task id string.")
                return
            with self._lock:
                self._settle(now)
                task = self._tasks.get(task_id)
                record = self._record(task, now) if task is not None else None
            if record is None:
                h.send_error_json(404, "not_found", f"No task with id {task_id!r}.")
                return
            h.send_json(200, record)
        elif action == "retrieve_batch":
            ids = payload.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                h.send_error_json(400, "bad_request",
                                  "Invalid ids: expected a list of task id strings.")
                return
            if len(ids) > MAX_BATCH:
                h.send_error_json(400, "bad_request",
                                  f"Too many ids: {len(ids)}; at most {MAX_BATCH} per request.")
                return
            with self._lock:
                self._settle(now)
                items = [self._record(self._tasks[i], now) for i in ids if i in self._tasks]
            h.send_json(200, {"items": items, "count": len(items)})
        else:
            h.send_error_json(
                400, "bad_request",
                f"Invalid action: {action!r}. Allowed values: retrieve, retrieve_batch.",
            )

    def _files(self, h: _Handler, path: str) -> None:
        with self._lock:
            if h.command == "GET":
                self._downloads += 1
        fault = self._take_fault("files")
        if fault is not None and self._apply_transport_fault(h, fault):
            return
        data = self._file_bytes(path)
        if data is None:
            h.send_error_json(404, "not_found", f"No file at {path}.")
            return
        h.send(200, data, content_type="image/png",
               headers={"Cache-Control": "public, max-age=86400"})

    # --- images --------------------------------------------------------------------------

    def _file_bytes(self, path: str, depth: int = 0) -> bytes | None:
        """PNG bytes for ``/files/<task>-<i>.png``, rendered on first use and cached."""
        match = _FILE_RE.match(path)
        if match is None:
            return None
        index = int(match["index"])
        now = time.time()
        with self._lock:
            self._settle(now)
            task = self._tasks.get(match["task"])
            if task is None or not task.finished(now) or index >= task.succeeded_images:
                return None
            cached = self._cache.get(path)
            if cached is not None:
                self._cache.move_to_end(path)
                return cached
        data = encode_png(self._render(task, index, depth))
        with self._lock:
            if path not in self._cache:
                self._cache[path] = data
                self._cache_bytes += len(data)
                while self._cache and (
                    len(self._cache) > _CACHE_MAX_ENTRIES or self._cache_bytes > _CACHE_MAX_BYTES
                ):
                    _, old = self._cache.popitem(last=False)
                    self._cache_bytes -= len(old)
        return data

    def _render(self, task: _Task, index: int, depth: int) -> Image.Image:
        req = task.request
        prompt = str(req.get("prompt", ""))
        resolution = req.get("resolution") or DEFAULT_RESOLUTION
        key = json.dumps(
            {k: req.get(k) for k in ("action", "model", "aspect_ratio", "resolution", "count")},
            sort_keys=True,
        )
        if req.get("action") != "edit":
            size = pixel_size(req.get("aspect_ratio") or DEFAULT_ASPECT_RATIO, resolution)
            return render_generate(prompt, size, index=index, count=task.count, key=key)
        urls = [u for u in req.get("image_urls") or [] if isinstance(u, str)]
        inputs = [self._load_input(u, depth) for u in urls]
        ratio = req.get("aspect_ratio")
        if not ratio:
            first = inputs[0].image if inputs else None
            ratio = nearest_aspect_ratio(*first.size) if first is not None else "1:1"
        size = pixel_size(ratio, resolution)
        key += "|" + "|".join(u if len(u) < 256 else f"{len(u)}:{u[-200:]}" for u in urls)
        return render_edit(prompt, inputs, size, index=index, count=task.count, key=key)

    def _load_input(self, url: str, depth: int) -> InputImage:
        """An input image: a decoded data URI, one of our own files, or a placeholder."""
        if url.startswith("data:"):
            try:
                data = decode_data_uri(url)
            except ValueError:
                return InputImage(None, "unreadable data URI")
            return self._open(data, "unreadable image")
        parts = urlsplit(url)
        own = urlsplit(self.base_url)
        if (
            depth < 4
            and parts.scheme == "http"
            and parts.port == own.port
            and is_loopback_host(parts.hostname)
            and is_loopback_host(own.hostname)
        ):
            own_file = self._file_bytes(parts.path, depth + 1)
            if own_file is not None:
                return self._open(own_file, "unreadable image")
            return InputImage(None, f"{parts.hostname}: not found")
        return InputImage(None, f"image from {parts.hostname or 'unknown host'}")

    @staticmethod
    def _open(data: bytes, problem: str) -> InputImage:
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.draft("RGB", (2048, 2048))
                img.load()
                copy = img.convert("RGB")
            copy.thumbnail((2048, 2048))
            return InputImage(copy)
        except Exception:  # any undecodable input becomes a visible placeholder
            return InputImage(None, problem)

    # --- callbacks -----------------------------------------------------------------------

    def _schedule_callback(self, task: _Task, delay: float) -> None:
        """POST the task's result to its callback URL after ``delay`` s (lock held)."""
        url = self._callback_urls.get(task.id)
        if url is None or self._stopping.is_set():
            return
        for timer in list(self._timers):
            if getattr(timer, "task_id", None) == task.id:
                timer.cancel()
                self._timers.discard(timer)
        timer = threading.Timer(max(0.0, delay), self._send_callback, args=(task,))
        timer.daemon = True
        timer.name = f"nanobanana-emulator-callback-{task.id}"
        timer.task_id = task.id  # type: ignore[attr-defined]
        self._timers.add(timer)
        timer.start()

    def _send_callback(self, task: _Task) -> None:
        with self._lock:
            url = self._callback_urls.pop(task.id, None)
            current = threading.current_thread()
            if isinstance(current, threading.Timer):
                self._timers.discard(current)
            self._settle(time.time())
        if url is None or self._stopping.is_set():
            return
        parts = urlsplit(url)
        if not is_loopback_host(parts.hostname):
            logger.warning(
                "callback for task %s skipped: %s is not a loopback host "
                "(the emulator only calls back to this machine)",
                task.id, parts.hostname,
            )
            return
        body = json.dumps(task.response(self.base_url)).encode("utf-8")
        conn_cls: type[http.client.HTTPConnection] = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=_CALLBACK_TIMEOUT)
        try:
            conn.request("POST", target, body=body,
                         headers={"Content-Type": "application/json", "Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            with self._lock:
                self._callbacks += 1
            logger.debug("callback for task %s answered %s", task.id, resp.status)
        except OSError as exc:
            logger.warning("callback for task %s to %s failed: %s", task.id, parts.netloc, exc)
        finally:
            conn.close()
