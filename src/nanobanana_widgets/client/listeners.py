"""Who observes a client, and how they are called.

:class:`ClientListener` is what the history (and anything else) implements;
:class:`Listeners` is a client's list of them. Listener callbacks never block the poller:
the outcomes the poller finds are handed to a :class:`Dispatcher`, whose threads call the
listeners while the poller goes on looking up the other tasks. A waiter still returns only
once the listeners have handled its task's outcome (the poller settles a task after its
delivery), so a history holds a result by the time ``generate()`` returns it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from nanobanana_widgets.service.errors import NanoBananaError
from nanobanana_widgets.service.types import ImageRequest, Result

if TYPE_CHECKING:
    from nanobanana_widgets.client.task import Task

__all__ = ["ClientListener", "Dispatcher", "Listeners"]

logger = logging.getLogger("nanobanana_widgets.client")

DISPATCH_WORKERS = 4
"""Most threads delivering outcomes at once for one client (a slow listener holds one)."""
DISPATCH_IDLE_EXIT = 5.0
"""Seconds a delivery thread idles with nothing to deliver before it exits."""


class ClientListener(Protocol):
    """What the history and the panel implement to observe every request of a client.

    Every method is optional (a listener may define any subset); exceptions raised by a
    listener are logged and never reach the caller.

    - ``on_submitted(task)``: right after the service accepted a submit (task id known).
    - ``on_finished(task, result)``: once per task, when it succeeded.
    - ``on_failed(request, error, task)``: once per task when it failed, and when a submit
      itself failed (then ``task`` is ``None``).
    - ``replay(request) -> Result | None``: asked before sending; returning a ``Result``
      answers the request with it and nothing is sent.

    ``on_submitted`` and a failed submit's ``on_failed`` are called in the submitting
    thread; outcomes found by the poller are called on the client's delivery threads.
    """

    def on_submitted(self, task: Task) -> None: ...
    def on_finished(self, task: Task, result: Result) -> None: ...
    def on_failed(
        self, request: ImageRequest, error: NanoBananaError, task: Task | None
    ) -> None: ...


class Listeners:
    """A client's listeners: added once each, called in the order they were added."""

    def __init__(self) -> None:
        self._items: list[object] = []
        self._lock = threading.Lock()

    def add(self, listener: object) -> None:
        """Observe every request (no effect if ``listener`` was added already)."""
        with self._lock:
            if listener not in self._items:
                self._items.append(listener)

    def remove(self, listener: object) -> None:
        """Stop notifying ``listener`` (no error if it was not added)."""
        with self._lock:
            if listener in self._items:
                self._items.remove(listener)

    def call(self, method: str, *args: Any) -> None:
        """Call ``method`` on every listener that has it; errors are logged, not raised."""
        for listener in self._snapshot():
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                logger.exception("Listener %r raised in %s; ignored.", listener, method)

    def tell_outcome(self, task: Task, outcome: Result | NanoBananaError) -> None:
        """``on_finished`` or ``on_failed`` for a task that finished."""
        if isinstance(outcome, Result):
            logger.info("Task %s finished with %d image(s).", task.id, len(outcome.images))
            self.call("on_finished", task, outcome)
        else:
            logger.info("Task %s failed: %s", task.id, outcome)
            self.call("on_failed", task.request, outcome, task)

    def replay(self, request: ImageRequest) -> Result | None:
        """The first ``Result`` a listener's ``replay(request)`` offers, else ``None``."""
        for listener in self._snapshot():
            fn = getattr(listener, "replay", None)
            if fn is None:
                continue
            try:
                found = fn(request)
            except Exception:
                logger.exception("Listener %r raised in replay; ignored.", listener)
                continue
            if isinstance(found, Result):
                return found
        return None

    def _snapshot(self) -> list[object]:
        with self._lock:
            return list(self._items)


class Dispatcher:
    """Runs deliveries off the poller thread: started in the order they arrive, on up to
    ``workers`` daemon threads that exit after ``idle_exit`` seconds without work.

    One slow delivery holds one thread; the others go on. After :meth:`close`, the
    deliveries already queued still run, and new ones run in the calling thread.
    """

    def __init__(self, name: str, *, workers: int = DISPATCH_WORKERS,
                 idle_exit: float = DISPATCH_IDLE_EXIT) -> None:
        self._name = name
        self._workers = workers
        self._idle_exit = idle_exit
        self._cond = threading.Condition()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count()
        self._idle = 0
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on a delivery thread (its exceptions are logged)."""
        with self._cond:
            if not self._closed:
                self._jobs.append(job)
                if self._idle:
                    self._cond.notify()
                elif len(self._threads) < self._workers:
                    thread = threading.Thread(target=self._work, daemon=True,
                                              name=f"{self._name}-{next(self._numbers)}")
                    self._threads.append(thread)
                    thread.start()
                return
        _run(job)

    def close(self, timeout: float = 5.0) -> None:
        """Take no more work; wait up to ``timeout`` s for the queued deliveries."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                self._idle += 1
                idle_until = time.monotonic() + self._idle_exit
                while not self._jobs:
                    left = idle_until - time.monotonic()
                    if self._closed or left <= 0:
                        self._idle -= 1
                        self._threads.remove(me)
                        return
                    self._cond.wait(left)
                self._idle -= 1
                job = self._jobs.popleft()
            _run(job)


def _run(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:
        logger.exception("A listener delivery raised; ignored.")
