"""The history's download pool: a few threads and a bounded queue that never holds up exit.

``concurrent.futures`` runs every queued job before its threads let the interpreter exit,
so a server listing thousands of images made ``close()`` and exit wait for all of them.
This pool's queue is bounded (a job that does not fit is refused: its URL is recorded, and
``History.resume()`` downloads it later), its threads are daemons, and :meth:`close` drops
what has not started and waits a bounded time for what has.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_QUEUED", "DownloadPool"]

logger = logging.getLogger("nanobanana_widgets.history")

MAX_QUEUED = 256
"""Jobs (one record's images each) waiting at most; more are refused."""
WORKERS = 4
IDLE_EXIT = 10.0
"""Seconds a worker waits for a job before it exits."""


EXIT_WAIT = 5.0
"""Seconds interpreter exit waits, at most, for the downloads running then."""


class DownloadPool:
    """Runs ``fn(*args)`` jobs on up to :data:`WORKERS` daemon threads (made on first use).

    At interpreter exit (before ``atexit`` callbacks and finalizers run) every pool is
    closed: queued jobs are dropped and running ones get up to :data:`EXIT_WAIT` seconds,
    so no job runs on while the interpreter tears down what it uses.
    """

    def __init__(self, name: str = "nanobanana-history", *, workers: int = WORKERS,
                 max_queued: int = MAX_QUEUED) -> None:
        self._name = name
        self._workers = workers
        self._jobs: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.Queue(maxsize=max_queued)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._queued = 0
        self._closed = False
        _LIVE.add(self)

    def submit(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Queue a job; ``False`` when the pool is closed or its queue is full."""
        with self._lock:
            if self._closed:
                return False
            try:
                self._jobs.put_nowait((fn, args))
            except queue.Full:
                return False
            self._queued += 1
            if len(self._threads) < self._workers and self._queued > self._idle_workers():
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"{self._name}-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
        return True

    def _idle_workers(self) -> int:
        return len(self._threads) - self._active

    def _work(self) -> None:
        while True:
            try:
                item = self._jobs.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():  # idle: the thread goes (a new job makes one)
                        self._threads.remove(threading.current_thread())
                        return
                continue
            if item is None:
                return
            with self._lock:
                self._queued -= 1
                self._active += 1
            fn, args = item
            try:
                fn(*args)
            except Exception:
                logger.exception("history: a download job failed")
            finally:
                with self._lock:
                    self._active -= 1
                    self._idle.notify_all()

    def pending(self) -> int:
        """Jobs queued or running."""
        with self._lock:
            return self._queued + self._active

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait until no job is queued or running (at most ``timeout`` seconds);
        ``True`` when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queued + self._active:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> int:
        """Take no more jobs, drop the queued ones and wait up to ``timeout`` seconds for
        those running (daemon threads: a download still running then is abandoned, and
        ``History.resume()`` fetches its image later). Returns how many were dropped."""
        dropped = 0
        with self._lock:
            self._closed = True
            while True:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    dropped += 1
                    self._queued -= 1
            for _ in self._threads:
                self._jobs.put_nowait(None)
            self._idle.notify_all()
        self.flush(timeout)
        return dropped


_LIVE: weakref.WeakSet[DownloadPool] = weakref.WeakSet()


def _close_all() -> None:  # pragma: no cover - runs at interpreter exit
    pools = list(_LIVE)
    deadline = time.monotonic() + EXIT_WAIT
    for pool in pools:
        pool.close(timeout=0)
    for pool in pools:
        pool.flush(max(0.0, deadline - time.monotonic()))


# threading's exit hooks run before atexit callbacks and weakref finalizers (which close
# the history's database): the hook concurrent.futures uses for the same reason.
getattr(threading, "_register_atexit", atexit.register)(_close_all)
