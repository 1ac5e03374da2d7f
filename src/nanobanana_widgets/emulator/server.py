"""The :class:`Emulator`: a real HTTP server on loopback that speaks API.md's protocol.

Used by the tests, the benchmarks and the offline demo. It validates requests like the
service, keeps task records, answers synchronously, asynchronously or by callback, draws
real PNGs on demand, and can inject every failure the client must survive. This module is
the façade: starting and stopping, the knobs and the counters; the state, the endpoints,
the HTTP plumbing, the files and the callbacks live in their own modules.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from nanobanana_widgets.emulator.addresses import base_url, is_loopback_host
from nanobanana_widgets.emulator.callbacks import Callbacks
from nanobanana_widgets.emulator.endpoints import Endpoints
from nanobanana_widgets.emulator.files import ImageFiles
from nanobanana_widgets.emulator.handler import EmulatorHTTPServer
from nanobanana_widgets.emulator.ratelimit import RateLimiter
from nanobanana_widgets.emulator.state import (
    DEFAULT_FAULT_KINDS,
    ENDPOINTS,
    FAULT_KINDS,
    EmulatorState,
    Fault,
    Latency,
)

__all__ = [
    "DEFAULT_FAULT_KINDS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "Emulator",
    "Latency",
    "is_loopback_host",
]

logger = logging.getLogger("nanobanana_widgets.emulator")


class Emulator:
    """The Nano Banana service on a loopback port, for tests, benchmarks and offline demos.

    ``latency`` is seconds per task (or a ``(low, high)`` range drawn per task from a RNG
    seeded with ``seed``; ``float("inf")``: tasks never finish). ``tokens=None`` accepts any
    non-empty bearer token; a set accepts only those. ``rate_limit`` (submits per second,
    ``burst`` at once; default one second's worth) and ``max_concurrency`` (tasks running at
    once) are the account's limits: a submit beyond them gets 429 with ``Retry-After``, as
    the service answers, and nothing is billed (see
    :mod:`nanobanana_widgets.emulator.ratelimit`). Use as a context manager::

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
        rate_limit: float | None = None,
        burst: float | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self._state = EmulatorState(latency, seed)
        self._state.limiter = RateLimiter(rate_limit, burst, max_concurrency)
        self._callbacks = Callbacks(self._state)
        self._endpoints = self._make_endpoints(self._state, self._callbacks, tokens)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _make_endpoints(
        self, state: EmulatorState, callbacks: Callbacks, tokens: Iterable[str] | None
    ) -> Endpoints:
        """The endpoints that answer this emulator's requests (a subclass may record more)."""
        return Endpoints(state, ImageFiles(state), callbacks, tokens)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind the port and serve in a background thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("This emulator is already started; make a new one instead.")
        self._state.stopping.clear()
        server = EmulatorHTTPServer((self.host, self.port), self._endpoints.respond)
        self._server = server
        self.port = server.server_address[1]
        self._state.base_url = base_url(self.host, self.port)
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
        self._state.stopping.set()
        server.shutdown()
        server.server_close()
        timers = self._callbacks.cancel_all()
        self._state.wake_pending()  # synchronous waiters see `stopping` and hang up
        connections = server.hang_up_all()
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

    @property
    def base_url(self) -> str:
        """``http://host:port`` once started (a wildcard host shows as loopback), else ``""``."""
        return self._state.base_url

    # --- knobs ---------------------------------------------------------------------------

    def set_latency(self, latency: Latency) -> None:
        """Change the latency of tasks submitted from now on (seconds or ``(low, high)``)."""
        self._state.set_latency(latency)

    @property
    def latency(self) -> Latency:
        """The current latency: seconds, or the ``(low, high)`` range."""
        low, high = self._state.latency
        return low if low == high else (low, high)

    @property
    def fault_rate(self) -> float:
        """Probability (0..1) that an images request gets a random fault from ``fault_kinds``."""
        return self._state.fault_rate

    @fault_rate.setter
    def fault_rate(self, rate: float) -> None:
        self._state.fault_rate = rate

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        """The kinds random faults are drawn from (default :data:`DEFAULT_FAULT_KINDS`)."""
        return self._state.fault_kinds

    @fault_kinds.setter
    def fault_kinds(self, kinds: tuple[str, ...]) -> None:
        self._state.fault_kinds = kinds

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
        self._state.queue_faults(Fault(kind, endpoint, float(retry_after), float(delay)), times)

    def clear_faults(self) -> None:
        """Drop every queued fault (``fault_rate`` is left as it is)."""
        self._state.clear_faults()

    @property
    def pending_faults(self) -> int:
        """How many injected faults are still queued."""
        return self._state.queued_faults()

    def finish_all(self) -> None:
        """Make every pending task finish now (their callbacks are sent at once)."""
        with self._state.lock:
            self._callbacks.send_now(self._state.finish_all())

    # --- counters ------------------------------------------------------------------------

    @property
    def requests_log(self) -> list[tuple[str, Any]]:
        """``(path, parsed JSON body or None)`` of every request received (never headers)."""
        return self._state.requests_log

    @property
    def submissions(self) -> int:
        """Requests received on the images endpoints (faulted or not)."""
        with self._state.lock:
            return self._state.submissions

    @property
    def accepted(self) -> int:
        """Submits accepted (tasks made): what the service may bill for."""
        with self._state.lock:
            return self._state.accepted

    @property
    def rate_limited(self) -> int:
        """Submits refused with 429 by the account's limits (not injected faults)."""
        return self._state.limiter.refused

    @property
    def rate_limit(self) -> float | None:
        """Submits per second the account may make (``None``: no limit)."""
        return self._state.limiter.rate_limit

    @property
    def burst(self) -> float | None:
        """Submits the account may make at once (``None`` without a rate limit)."""
        return self._state.limiter.burst

    @property
    def max_concurrency(self) -> int | None:
        """Tasks the account may have running at once (``None``: no limit)."""
        return self._state.limiter.max_concurrency

    @property
    def lookups(self) -> int:
        """Requests received on the tasks endpoint."""
        with self._state.lock:
            return self._state.lookups

    @property
    def downloads(self) -> int:
        """``GET`` requests for ``/files/...``."""
        with self._state.lock:
            return self._state.downloads

    @property
    def billed_images(self) -> int:
        """Images of tasks that have succeeded (what the service would bill)."""
        return self._state.billed()

    @property
    def callbacks(self) -> int:
        """Callbacks POSTed successfully."""
        with self._state.lock:
            return self._state.callbacks

    @property
    def pending(self) -> int:
        """Tasks not finished yet."""
        return self._state.pending_count()

    def reset_counters(self) -> None:
        """Zero every counter and clear ``requests_log`` (tasks and faults stay)."""
        self._state.reset_counters()

    def task_ids(self) -> list[str]:
        """Ids of every task made so far, oldest first."""
        return self._state.task_ids()
