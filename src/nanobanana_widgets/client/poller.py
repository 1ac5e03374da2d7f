"""The one batched poller of a client, and the waiting on it.

All waiting on one client shares a single daemon poller thread: every ``interval`` seconds
it looks up every task being waited on with one ``retrieve_batch`` request per 50 tasks
(never one request per task), updates the :class:`~nanobanana_widgets.client.task.Task`
handles and hands each outcome to the listeners' delivery, without waiting for it. A task
is *settled* once its listeners have handled the outcome; only then do its waiters return.
Every wait has a deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from nanobanana_widgets.client.task import Progress, ProgressCallback, Task
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    CancelledError,
    MalformedResponseError,
    NanoBananaError,
    RateLimitError,
    ServerError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.protocol import BATCH_SIZE
from nanobanana_widgets.service.types import Result, TaskRecord

__all__ = ["POLLER_IDLE_EXIT", "Poller"]

logger = logging.getLogger("nanobanana_widgets.client")

POLLER_IDLE_EXIT = 5.0
"""Seconds the poller thread idles with nothing to look up before it exits."""

Outcome = Result | NanoBananaError


class Poller:
    """Looks up the tasks being waited on, settles them, and wakes their waiters.

    ``lookup(ids)`` is one ``retrieve_batch``; ``outcome_of(task, record)`` the outcome of a
    final record; ``deliver(task, outcome)`` tells the listeners; ``dispatch(job)`` runs a
    job off the poller thread. ``cond`` guards every task's outcome and the poller's state.
    """

    def __init__(
        self,
        *,
        lookup: Callable[[Sequence[str]], list[TaskRecord]],
        outcome_of: Callable[[Task, TaskRecord], Outcome],
        deliver: Callable[[Task, Outcome], None],
        dispatch: Callable[[Callable[[], None]], None],
        interval: float,
        stop: threading.Event,
        name: str,
    ) -> None:
        self.cond = threading.Condition()
        self.interval = interval
        self._lookup = lookup
        self._outcome_of = outcome_of
        self._deliver = deliver
        self._dispatch = dispatch
        self._stop = stop
        self._name = name
        self._watched: dict[Task, int] = {}
        self._tick = 0
        self._poll_error: NanoBananaError | None = None
        self._thread: threading.Thread | None = None
        self.closed = False

    @property
    def thread(self) -> threading.Thread | None:
        """The poller thread, if one is running or ran last."""
        return self._thread

    # -- settling -------------------------------------------------------------------------

    def apply(self, task: Task, record: TaskRecord, *, background: bool = False) -> None:
        """Take a fresh record of ``task``; when it is final, deliver the outcome to the
        listeners (in this thread, or off it when ``background``) and then settle it."""
        with self.cond:
            if not task._take(record):
                return
            outcome = self._outcome_of(task, record)
            task._outcome = outcome
        if background:
            self._dispatch(lambda: self._deliver_and_settle(task, outcome))
        else:
            self._deliver_and_settle(task, outcome)

    def settle_now(self, task: Task, outcome: Outcome) -> None:
        """Mark ``task`` finished with ``outcome`` without telling listeners (replays)."""
        with self.cond:
            task._outcome = outcome
            task.status = outcome.status if isinstance(outcome, Result) else "failed"
            task._settled = True
            self.cond.notify_all()

    def _deliver_and_settle(self, task: Task, outcome: Outcome) -> None:
        try:
            self._deliver(task, outcome)
        finally:
            with self.cond:
                task._settled = True
                self.cond.notify_all()

    # -- waiting --------------------------------------------------------------------------

    def wait(self, tasks: list[Task], limit: float,
             on_progress: ProgressCallback | None) -> NanoBananaError | None:
        """Block until every task settled or was cancelled, or the deadline, or a fatal
        lookup error (returned)."""
        deadline = time.monotonic() + max(0.0, limit)
        reported: dict[Task, str] = {}

        def report() -> None:
            if on_progress is not None:
                _report(tasks, reported, on_progress)

        with self.cond:
            pending = [t for t in tasks if not _finished(t)]
            for t in pending:
                self._watched[t] = self._watched.get(t, 0) + 1
            if pending:
                self._ensure_thread()
            seen_tick = self._tick
        poll_error: NanoBananaError | None = None
        try:
            report()
            while True:
                with self.cond:
                    while True:
                        if self.closed or all(_finished(t) for t in tasks):
                            break
                        if self._tick != seen_tick:
                            break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self.cond.wait(remaining)
                    ticked = self._tick != seen_tick
                    seen_tick = self._tick
                    all_done = all(_finished(t) for t in tasks)
                    poll_error = self._poll_error if ticked else None
                    # An outcome being delivered is not lost to a refused lookup of others.
                    looking_up = any(_unclaimed(t) for t in tasks)
                    closed = self.closed
                report()
                if all_done or closed or (poll_error is not None and looking_up):
                    break
                if time.monotonic() >= deadline:
                    break
        finally:
            with self.cond:
                for t in pending:
                    left = self._watched.get(t, 0) - 1
                    if left > 0:
                        self._watched[t] = left
                    else:
                        self._watched.pop(t, None)
        return poll_error

    def outcome_for_waiter(self, task: Task, limit: float,
                           poll_error: NanoBananaError | None) -> Outcome:
        """What a wait on ``task`` that ended (see :meth:`wait`) gives back."""
        with self.cond:
            outcome = task._outcome if task._settled else None
            cancelled = task._cancelled
            closed = self.closed
        if outcome is not None:
            return outcome
        if cancelled:
            return CancelledError(
                "Stopped waiting (cancelled). The task may still run and be billed; "
                "look it up later with client.task(task_id).",
                task_id=task.id, trace_id=task.trace_id,
            )
        if closed:
            return CancelledError(
                "The client was closed while waiting. The task may still run and be billed.",
                task_id=task.id, trace_id=task.trace_id,
            )
        if poll_error is not None:
            return poll_error
        return WaitTimeoutError(
            f"The task was still running after {limit:g} s. It may still finish (and be "
            "billed): wait again with task.wait(), or look it up later with "
            "client.task(task_id).",
            task_id=task.id, trace_id=task.trace_id,
        )

    def cancel(self, task: Task) -> None:
        """Stop waiting for ``task``: its waiters wake and raise ``CancelledError``."""
        with self.cond:
            if task._cancelled:
                return
            task._cancelled = True
            self._watched.pop(task, None)
            self.cond.notify_all()
        logger.info("Stopped waiting for task %s (cancelled; it may still run).", task.id)

    def close(self) -> None:
        """Stop the thread; every waiter wakes (and raises ``CancelledError``)."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    # -- the thread -----------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the poller thread if it is not running (call with ``cond`` held)."""
        if self.closed:
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()
        else:
            self.cond.notify_all()

    def _loop(self) -> None:
        me = threading.current_thread()
        fresh = True
        while True:
            with self.cond:
                idle_since = time.monotonic()
                while not self.closed and not self._pending_ids():
                    fresh = True
                    left = POLLER_IDLE_EXIT - (time.monotonic() - idle_since)
                    if left <= 0:
                        if self._thread is me:
                            self._thread = None
                        return
                    self.cond.wait(left)
                if self.closed:
                    return
                if fresh:  # just woken with new tasks: none can have finished yet
                    fresh = False
                    if not self._wait_first_lookup():
                        return
                ids = self._pending_ids()
                by_id: dict[str, list[Task]] = {}
                for t in self._watched:
                    if _unclaimed(t):
                        by_id.setdefault(t.id, []).append(t)
            error = self._look_up(ids, by_id)
            with self.cond:
                self._poll_error = error
                self._tick += 1
                self.cond.notify_all()
            if self._stop.wait(self.interval):
                return

    def _look_up(self, ids: list[str], by_id: dict[str, list[Task]]) -> NanoBananaError | None:
        """One round of batched lookups; the refusal that ends the waits, if any."""
        error: NanoBananaError | None = None
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = ids[start:start + BATCH_SIZE]
            try:
                records = self._lookup(chunk)
            except (APIConnectionError, ServerError, RateLimitError,
                    MalformedResponseError) as exc:
                logger.warning("Task lookup failed, trying again next tick: %s", exc)
                continue
            except NanoBananaError as exc:
                logger.warning("Task lookup refused: %s", exc)
                error = exc
                continue
            except Exception:
                logger.exception("Unexpected error in the poller; trying again next tick.")
                continue
            for record in records:
                for t in by_id.get(record.id, ()):
                    try:
                        self.apply(t, record, background=True)
                    except Exception:
                        logger.exception("Could not apply the record of task %s.", t.id)
        return error

    def _wait_first_lookup(self) -> bool:
        """Wait (``cond`` held) until the first lookup is worth it; ``False`` if closed."""
        first_at = time.monotonic() + self._first_lookup_in()
        while not self.closed and (left := first_at - time.monotonic()) > 0:
            self.cond.wait(left)
        return not self.closed

    def _first_lookup_in(self) -> float:
        """Seconds until the tasks just handed to an idle poller are one ``interval`` old
        (call with ``cond`` held). Looking a task up the moment it was submitted costs a
        request that cannot find it finished: N seconds of waiting would cost N + 1."""
        pending = [t for t in self._watched if _unclaimed(t)]
        if not pending or any(not t._submitted_known for t in pending):
            return 0.0  # e.g. re-attached after a restart: look it up at once
        youngest = max(t.submitted_at for t in pending)
        return min(self.interval, max(0.0, self.interval - (time.time() - youngest)))

    def _pending_ids(self) -> list[str]:
        return list(dict.fromkeys(t.id for t in self._watched if _unclaimed(t)))


def _finished(task: Task) -> bool:
    """Settled (its listeners have handled the outcome) or cancelled."""
    return task._settled or task._cancelled


def _unclaimed(task: Task) -> bool:
    """Still to be looked up: no final record seen yet, and not cancelled."""
    return task._outcome is None and not task._cancelled


def _report(tasks: list[Task], reported: dict[Task, str], on_progress: ProgressCallback) -> None:
    """Call ``on_progress`` for each task whose stage is worth reporting."""
    now = time.time()
    for t in tasks:
        if t._settled:
            stage = "done" if t.status == "succeeded" else "failed"
        elif t._cancelled:
            continue
        else:
            stage = "submitted" if t not in reported else "waiting"
        if reported.get(t) in ("done", "failed"):
            continue
        reported[t] = stage
        progress = Progress(task_id=t.id, status=t.status, stage=stage,
                            elapsed=max(0.0, now - t.submitted_at), progress=t.progress)
        try:
            on_progress(progress)
        except Exception:
            logger.exception("on_progress callback raised; ignored.")
