"""Running a batch job's rows, without widgets: paced submits, one batched wait, every state
in the history before anything waits.

Two threads per run. The **dispatcher** takes queued rows in order, waits for a slot from the
adaptive :class:`~nanobanana_widgets.jobs.aimd.Pacer`, writes the row ``sending`` and hands it
to a small submit pool; an accepted submit is written ``submitted`` with its task id at once.
A 429 (never billed) puts the row back at the head of the queue and slows the pacer; it is
the only submit failure sent again (see :mod:`.sending` for what each answer means). The
**waiter** waits for every task in flight through the client's one batched poller
and writes each row's end.

After a crash, :meth:`JobRunner.reconcile` makes the rows whole again before anything is sent:
a ``sending`` row is matched with the record the history wrote for its submit (then it is
``submitted``), else it is ``uncertain``; a ``submitted`` row the history already holds the end
of is finished from it, the others are waited for again. Callbacks (``on_change``) run in the
runner's threads and must not block.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.jobs.aimd import Pacer
from nanobanana_widgets.jobs.rows import RowSpec
from nanobanana_widgets.jobs.sending import request_of, send
from nanobanana_widgets.jobs.summary import JobSummary, RowError, pace_of, summarise
from nanobanana_widgets.service.errors import (
    CancelledError,
    NanoBananaError,
    PossiblyBilledError,
    TaskFailedError,
    WaitTimeoutError,
    describe_error,
)
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store.records import ErrorInfo, error_info, request_fingerprint

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Task
    from nanobanana_widgets.store import History

__all__ = ["FINAL_STATES", "JobRunner", "RowStatus", "error_of_row"]

_log = logging.getLogger(__name__)

FINAL_STATES = frozenset({"succeeded", "failed", "uncertain", "cancelled"})
_SUBMIT_WORKERS = 8
_WAIT_TICK = 0.5
_HEARTBEAT_EVERY = 5.0
_RATE_WINDOW = 30.0
_UNFINISHED = ("queued", "sending", "submitted")
_STALL_AFTER = 600.0
"""Seconds of nothing but 429s after which a job pauses itself."""
_KEPT_ERRORS = 5


@dataclass
class RowStatus:
    """What the runner knows of one row (mirrors its ``job_rows`` row)."""

    spec: RowSpec
    state: str = "queued"
    task_id: str | None = None
    trace_id: str | None = None
    sent_at: float | None = None
    images: int = 0
    error: NanoBananaError | None = None

    @property
    def number(self) -> int:
        """The row's number, from 1."""
        return self.spec.position + 1


def error_of_row(row: dict[str, Any]) -> NanoBananaError | None:
    """The error a ``job_rows`` row recorded, as an exception (``None`` if none)."""
    if not row.get("error_class"):
        return None
    info = ErrorInfo(row["error_class"], row["error_code"], row["error_message"] or "",
                     row["error_trace_id"])
    return info.to_exception(row.get("task_id"))


def _outcome_of(task: Task) -> Result | NanoBananaError:
    try:
        return task.result()
    except NanoBananaError as exc:
        return exc


def _row_error(row: RowStatus, err: NanoBananaError) -> RowError:
    return RowError(row.number, row.spec.prompt, type(err).__name__, err.message, err.trace_id)


class JobRunner:
    """Runs the rows of job ``name`` (their statuses from the history's ``job_rows``).

    ``client()`` gives the client when a run starts; ``concurrency`` caps the rows in flight
    (``None``: only the pacing limits them); ``on_change()`` is called after every change,
    ``on_end()`` when a run has ended (every row finished, or cancelled), before
    :attr:`stopped` is set.
    """

    def __init__(self, name: str, rows: Sequence[RowStatus], *, history: History,
                 client: Callable[[], Client], concurrency: int | None,
                 pacer: Pacer, owner: str, on_change: Callable[[], object],
                 on_end: Callable[[], object]) -> None:
        self.name = name
        self.rows = list(rows)
        self._history = history
        self._book = history.jobs
        self._client_factory = client
        self._client: Client | None = None
        self.concurrency = concurrency
        self.pacer = pacer
        self._owner = owner
        self._on_change = on_change
        self._on_end = on_end
        self._ended = False
        self._cond = threading.Condition(threading.RLock())
        self._queue: collections.deque[int] = collections.deque(
            r.spec.position for r in self.rows if r.state == "queued")
        self._inflight: dict[int, Task] = {}
        self._sending = 0
        self.paused = False
        self.cancelled = False
        self.reason: str | None = None
        self._errors: collections.deque[RowError] = collections.deque(maxlen=_KEPT_ERRORS)
        self._finishes: collections.deque[float] = collections.deque()
        self._started: float | None = None
        self._last_accept = time.monotonic()
        self._threads: list[threading.Thread] = []
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._dispatch_done = threading.Event()
        self.stopped = threading.Event()
        """Set while nothing runs: done, cancelled, or paused with nothing in flight."""
        self.stopped.set()
        for r in self.rows:
            if r.state in ("failed", "uncertain") and r.error is not None:
                self._errors.append(_row_error(r, r.error))

    # --- starting and stopping -----------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the runner's threads are working (or waiting while paused)."""
        return any(t.is_alive() for t in self._threads)

    def _still_running(self) -> bool:
        """Whether the current run goes on (its threads alive, not ending)."""
        with self._cond:
            alive = [t.is_alive() for t in self._threads]
            return bool(alive) and all(alive) and not self._dispatch_done.is_set() \
                and not self._ended and not self.cancelled  # a cancelled run is ending

    def end_previous(self) -> None:
        """Let a run that is ending end first (its ``on_end`` included), unless it goes on:
        a caller that changes the job's state before :meth:`start` is then never undone by
        the old run's ending."""
        if self._still_running():
            return
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def start(self) -> None:
        """Run the queued and submitted rows in background threads; returns at once."""
        if self._still_running():
            with self._cond:
                self.stopped.clear()
                self._cond.notify_all()
            return
        self.end_previous()
        with self._cond:
            self.cancelled = False
            self._ended = False
            self._dispatch_done.clear()
            self.stopped.clear()
            self._started = time.monotonic()
            self._last_accept = time.monotonic()
            self._threads = [
                threading.Thread(target=self._dispatch, name=f"nbw-job-{self.name}-dispatch",
                                 daemon=True),
                threading.Thread(target=self._wait_loop, name=f"nbw-job-{self.name}-wait",
                                 daemon=True),
            ]
            for t in self._threads:
                t.start()

    def pause(self, reason: str | None = None) -> None:
        """Send nothing more until :meth:`resume`; rows in flight are still waited for."""
        with self._cond:
            self.paused = True
            self.reason = reason
            self._cond.notify_all()
        self.pacer.wake()
        self._changed()

    def resume(self) -> None:
        """Send the queued rows again (after :meth:`pause`)."""
        with self._cond:
            self.paused = False
            self.reason = None
            self.stopped.clear()
            self._cond.notify_all()
        self.pacer.wake()

    def cancel(self) -> None:
        """Send nothing more and stop waiting (tasks sent may still run and be billed; the
        history keeps their task ids)."""
        with self._cond:
            self.cancelled = True
            tasks = list(self._inflight.values())
            queued = list(self._queue)
            self._queue.clear()
            for pos in queued:
                self.rows[pos].state = "cancelled"
            self._cond.notify_all()
        self._book.cancel_unsent(self.name)
        self.pacer.wake()
        for task in tasks:
            task.cancel()
        self._changed()

    def requeue(self, positions: Sequence[int], *, wait_again: Sequence[int] = ()) -> None:
        """Queue rows to be sent again (their old task ids forgotten), and rows whose task
        should be waited for again (``wait_again``: they keep their task ids)."""
        self._book.requeue(self.name, positions)
        for pos in wait_again:
            self._book.update_row(self.name, pos, state="submitted", error_class=None,
                                  error_code=None, error_message=None, error_trace_id=None)
        with self._cond:
            for pos in positions:
                row = self.rows[pos]
                row.state, row.task_id, row.trace_id, row.error = "queued", None, None, None
                row.images = 0
                self._queue.append(pos)
            for pos in wait_again:
                row = self.rows[pos]
                row.state, row.error = "submitted", None
            self._cond.notify_all()

    def uncancel(self) -> None:
        """Rows left unsent by a cancel are queued again."""
        self._book.uncancel(self.name)
        with self._cond:
            for row in self.rows:
                if row.state == "cancelled":
                    row.state = "queued"
                    self._queue.append(row.spec.position)

    # --- after a crash -------------------------------------------------------------------

    def reconcile(self) -> None:
        """Make the rows whole after a process died mid-job (see the module docstring);
        sends nothing."""
        for row in self.rows:
            if row.state != "sending":
                continue
            found = self._book.submitted_record(
                self.name, request_fingerprint(row.spec.bare_request(), row.spec.input_hashes()),
                row.sent_at or 0.0)
            if found is not None:
                row.state, row.task_id = "submitted", str(found["task_id"])
                row.trace_id = found.get("trace_id")
                self._book.mark_submitted(self.name, row.spec.position, row.task_id,
                                          row.trace_id)
            else:
                self._finish(row, "uncertain", PossiblyBilledError(
                    "The process stopped while this row was being sent, before its task id "
                    "was known: it may have been accepted and billed, so it was not sent "
                    "again. job.retry_failed(possibly_billed=True) sends it (it may be paid "
                    "twice)."), notify=False)
        ids = [r.task_id for r in self.rows if r.state == "submitted" and r.task_id]
        records = self._book.records_for_tasks(ids)
        for row in self.rows:
            rec = records.get(row.task_id or "")
            if row.state != "submitted" or rec is None:
                continue
            if rec.status == "succeeded" and rec.results:
                self._finish(row, "succeeded", images=len(rec.results), notify=False)
            elif rec.status == "failed":
                err = rec.error.to_exception(rec.task_id) if rec.error else TaskFailedError(
                    "The task finished without images.", task_id=rec.task_id)
                self._finish(row, "failed", err, notify=False)

    # --- the dispatcher ------------------------------------------------------------------

    def _stop_sending(self) -> bool:
        return self.cancelled or self.paused

    def _dispatch(self) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=_SUBMIT_WORKERS, thread_name_prefix=f"nbw-job-{self.name}-submit")
        self._pool = pool
        try:
            client = self._client_now()
            while True:
                with self._cond:
                    while True:
                        if self.cancelled or self._ended:
                            return
                        busy = len(self._inflight) + self._sending
                        if not self._queue:
                            if busy == 0:
                                return
                        elif not self.paused and (
                                self.concurrency is None or busy < self.concurrency):
                            break
                        self._cond.wait(0.5)
                if not self.pacer.acquire(self._stop_sending):
                    continue
                with self._cond:
                    if self._stop_sending() or not self._queue:
                        continue
                    pos = self._queue.popleft()
                    row = self.rows[pos]
                    row.state, row.sent_at = "sending", time.time()
                    self._sending += 1
                pool.submit(self._send, client, row)
                self._stall_check()
        except Exception as exc:
            _log.exception("batch job %s: the dispatcher failed", self.name)
            self.pause(f"The job stopped: {describe_error(exc)}")
        finally:
            pool.shutdown(wait=True)
            self._dispatch_done.set()
            with self._cond:
                self._cond.notify_all()

    def _client_now(self) -> Client:
        if self._client is None:
            self._client = self._client_factory()
            self._history.attach(self._client)
        return self._client

    def _stall_check(self) -> None:
        if self.pacer.rate_limited_count and (
                time.monotonic() - self._last_accept > _STALL_AFTER):
            self.pause(f"The service refused every submit with 429 for {_STALL_AFTER:.0f} s; "
                       "paused. job.resume() tries again.")

    def _send(self, client: Client, row: RowStatus) -> None:
        try:
            self._send_one(client, row)
        except Exception as exc:  # never lose a row to a bug: it may have been sent
            _log.exception("batch job %s: row %s failed unexpectedly", self.name, row.number)
            self._finish(row, "uncertain", NanoBananaError(
                f"Unexpected error while sending: {describe_error(exc)}. It may have reached "
                "the service, so it was not sent again."))
        finally:
            with self._cond:
                self._sending -= 1
                self._cond.notify_all()
            self._update_stopped()

    def _send_one(self, client: Client, row: RowStatus) -> None:
        try:
            request = request_of(row.spec, self._book.image_path)
        except Exception as exc:
            self._finish(row, "failed", exc if isinstance(exc, NanoBananaError) else
                         NanoBananaError(f"Could not read the row's input image: "
                                         f"{describe_error(exc)}"))
            return
        row.sent_at = time.time()
        try:  # written last thing before the request goes: a crash before it leaves "queued"
            self._book.update_row(self.name, row.spec.position, state="sending",
                                  sent_at=row.sent_at)
        except Exception as exc:  # the history cannot be written: do not send
            self._put_back(row, front=True)
            self.pause(f"The history could not be written ({describe_error(exc)}); nothing "
                       "more is sent.")
            return
        sent = send(client, request)
        if sent.verdict == "rate_limited":
            self.pacer.rate_limited(sent.sent_at, sent.retry_after)
            self._put_back(row, front=True)
        elif sent.verdict == "pause":
            self._put_back(row, front=True)
            self.pause(sent.error.message if sent.error else "Paused.")
        elif sent.verdict in ("uncertain", "failed"):
            self._finish(row, sent.verdict, sent.error)
        else:
            if sent.task is not None:
                self.pacer.accepted(sent.sent_at)
                self._last_accept = time.monotonic()
            assert sent.task_id is not None
            self._accepted(row, sent.task_id, sent.trace_id, sent.task)

    def _accepted(self, row: RowStatus, task_id: str, trace_id: str | None,
                  task: Task | None) -> None:
        self._book.mark_submitted(self.name, row.spec.position, task_id, trace_id)
        if task is None:
            task = self._client_now().attach(task_id, row.spec.bare_request(), time.time())
        with self._cond:
            row.state, row.task_id, row.trace_id = "submitted", task_id, trace_id
            if self.cancelled:  # accepted after the cancel: recorded, not waited for
                task.cancel()
                task = None
            elif not task.done():
                self._inflight[row.spec.position] = task
                self._cond.notify_all()
                task = None
        if task is not None:  # answered at once (the history's replay mode)
            self._settle(row, _outcome_of(task))
        self._changed()

    def _put_back(self, row: RowStatus, *, front: bool = False) -> None:
        self._book.update_row(self.name, row.spec.position, state="queued", sent_at=None)
        with self._cond:
            row.state, row.sent_at = "queued", None
            if front:
                self._queue.appendleft(row.spec.position)
            else:
                self._queue.append(row.spec.position)
            self._cond.notify_all()

    # --- the waiter ----------------------------------------------------------------------

    def _attach_submitted(self) -> None:
        client = self._client_now()
        with self._cond:
            for row in self.rows:
                pos = row.spec.position
                if row.state == "submitted" and row.task_id and pos not in self._inflight:
                    self._inflight[pos] = client.attach(row.task_id, row.spec.bare_request(),
                                                        row.sent_at)

    def _wait_loop(self) -> None:
        beat = 0.0
        try:
            self._attach_submitted()
            client = self._client_now()
            while True:
                now = time.monotonic()
                if now - beat > _HEARTBEAT_EVERY:
                    beat = now
                    self._book.heartbeat(self.name, self._owner)
                with self._cond:
                    if self.cancelled:  # end after the submits under way are answered
                        self._inflight.clear()
                        if self._dispatch_done.is_set():
                            break
                        self._cond.wait(_WAIT_TICK)
                        continue
                    waiting = dict(self._inflight)
                    if not waiting:
                        if self._dispatch_done.is_set():
                            break
                        self._cond.wait(_WAIT_TICK)
                        continue
                tasks = list(waiting.values())
                outcomes = client.wait_all(tasks, timeout=_WAIT_TICK, return_exceptions=True)
                for (pos, task), outcome in zip(waiting.items(), outcomes, strict=True):
                    self._after_wait(self.rows[pos], task, outcome, client.wait_timeout)
        except Exception as exc:
            _log.exception("batch job %s: the waiter failed", self.name)
            with self._cond:
                self._ended = True  # the dispatcher stops too; resume() starts afresh
                self._cond.notify_all()
            self.pause(f"The job stopped waiting: {describe_error(exc)}")
            return
        try:
            self._on_end()
        except Exception:
            _log.exception("batch job %s: ending the run failed", self.name)
        finally:
            with self._cond:
                self._ended = True
            self._changed()

    def _after_wait(self, row: RowStatus, task: Task, outcome: Any, deadline: float) -> None:
        if isinstance(outcome, Result):
            self._settle(row, outcome)
        elif isinstance(outcome, CancelledError):
            with self._cond:
                self._inflight.pop(row.spec.position, None)
        elif isinstance(outcome, WaitTimeoutError):
            if time.time() - (row.sent_at or task.submitted_at) > deadline:
                self._settle(row, WaitTimeoutError(
                    f"The task was still running after {deadline:g} s. It may still finish: "
                    "job.retry_failed() waits for it again (it is not sent again).",
                    task_id=row.task_id, trace_id=row.trace_id))
        elif isinstance(outcome, NanoBananaError):
            if task.done():
                self._settle(row, outcome)
            else:  # the lookup failed; the poller tries again next tick
                with self._cond:
                    self.reason = f"Looking tasks up failed: {describe_error(outcome)}"
                time.sleep(_WAIT_TICK)

    def _settle(self, row: RowStatus, outcome: Result | NanoBananaError) -> None:
        with self._cond:
            self._inflight.pop(row.spec.position, None)
        if isinstance(outcome, Result) and outcome.images:
            self._finish(row, "succeeded", images=len(outcome.images))
        elif isinstance(outcome, Result):
            self._finish(row, "failed", outcome.error or TaskFailedError(
                "The task finished without images.", task_id=outcome.task_id,
                trace_id=outcome.trace_id))
        else:
            self._finish(row, "failed", outcome)

    # --- ends ----------------------------------------------------------------------------

    def _finish(self, row: RowStatus, state: str, error: BaseException | None = None, *,
                images: int = 0, notify: bool = True) -> None:
        err: NanoBananaError | None = None
        fields: dict[str, Any] = {"state": state, "finished_at": time.time(), "images": images}
        if error is not None:
            err = error if isinstance(error, NanoBananaError) else NanoBananaError(
                describe_error(error))
            info = error_info(err)
            fields.update(error_class=info.type, error_code=info.code,
                          error_message=info.message, error_trace_id=info.trace_id)
        self._book.update_row(self.name, row.spec.position, **fields)
        with self._cond:
            row.state, row.images, row.error = state, images, err
            self._finishes.append(time.monotonic())
            if err is not None:
                self._errors.append(_row_error(row, err))
            self._cond.notify_all()
        if notify:
            self._changed()

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            _log.exception("batch job %s: a progress callback failed", self.name)
        self._update_stopped()

    def _update_stopped(self) -> None:
        with self._cond:
            busy = bool(self._inflight) or self._sending > 0
            if self._ended or (self.paused and not busy):
                self.stopped.set()

    # --- what it shows -------------------------------------------------------------------

    def summary(self, state: str, paid: int) -> JobSummary:
        """A snapshot of the rows (see :class:`JobSummary`); ``state`` is the job's."""
        with self._cond:
            rows = [(r.state, r.images) for r in self.rows]
            left = sum(1 for row_state, _ in rows if row_state in _UNFINISHED)
            pace = pace_of(self._finishes, self._started, left, running=state == "running",
                           window=_RATE_WINDOW)
            errors, reason = tuple(self._errors), self.reason
        return summarise(self.name, state, rows, paid=paid, pace=pace, pacer=self.pacer,
                         reason=reason, errors=errors)
