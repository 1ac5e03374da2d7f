"""Running a grid's cells, without widgets: concurrent submits, one batched wait, history tags.

:class:`GridRunner` submits every cell from a small pool (a replayed cell is settled the
moment it is sent), then waits for all tasks together through the client's one batched
poller (``client.wait_all``), in a background thread. Every task is tagged in the history
with the grid's id and its cell (``History.tag_cell``); a submit the service refused is
tagged through the record the history wrote for it. Outcomes and progress are reported
through callbacks, each cell's outcome exactly once per attempt; ``cancel()`` stops
submitting and waiting (the service has no cancel: tasks already sent may still run and be
billed). ``retry(slots)`` sends failed cells again, as new attempts tagged with the same
cells, in a batch of their own; :func:`resendable` tells which outcomes may be resent
without risking a second bill.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from nanobanana_widgets.service.errors import (
    CancelledError,
    NanoBananaError,
    PossiblyBilledError,
    WaitTimeoutError,
    describe_error,
)
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid.plan import Cell, GridPlan, Slot

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Progress, Task

__all__ = ["GridRunner", "Outcome", "resendable"]

_log = logging.getLogger(__name__)

Outcome = Result | NanoBananaError
"""What a finished cell holds: its result, or the error it ended with."""

_SUBMIT_WORKERS = 8


def resendable(outcome: Outcome) -> bool:
    """Whether a cell that ended with ``outcome`` may be sent again without risking a
    second bill: it failed, and no task of it may still be running at the service (a
    task cancelled or timed out after it was sent, or a submit that may have reached the
    service, is not resent)."""
    if isinstance(outcome, Result):
        return not outcome.images
    if isinstance(outcome, (PossiblyBilledError, WaitTimeoutError)):
        return False
    if isinstance(outcome, CancelledError):
        return outcome.task_id is None  # cancelled before it was sent
    return True


class GridRunner:
    """Runs the cells of ``plan`` once.

    ``client()`` gives the client when the run starts. ``on_progress(slot, stage,
    seconds)`` reports ``"sending"`` and ``"waiting"`` (with whole seconds) for a cell
    that has no outcome yet; ``on_outcome(slot, outcome)`` reports each cell's end once;
    ``on_end()`` is called when every cell has ended (or the run broke), after the first
    run and after each retry once no other batch runs. Callbacks run in the runner's
    threads and in the client's poller: they must not block.
    """

    def __init__(self, plan: GridPlan, *, client: Callable[[], Client],
                 history: History | None,
                 on_progress: Callable[[Slot, str, int], object],
                 on_outcome: Callable[[Slot, Outcome], object],
                 on_end: Callable[[], object]) -> None:
        self.plan = plan
        self.slots = plan.slots()
        self._client = client
        self._history = history
        self._on_progress = on_progress
        self._on_outcome = on_outcome
        self._on_end = on_end
        self._lock = threading.RLock()
        self._outcomes: dict[Cell, Outcome] = {}
        self._tasks: dict[Cell, Task] = {}
        self._task_slots: dict[str, list[Slot]] = {}
        self._shown_seconds: dict[Cell, int] = {}
        self._replayed: set[Cell] = set()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._active = 0
        self._sent: set[Cell] = set()

    # --- what it knows -----------------------------------------------------------------

    @property
    def outcomes(self) -> dict[Cell, Outcome]:
        """Finished cells → their outcome (a copy)."""
        with self._lock:
            return dict(self._outcomes)

    @property
    def replayed(self) -> set[Cell]:
        """Cells the history answered (replay mode), sending nothing."""
        with self._lock:
            return set(self._replayed)

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called (and no retry began since)."""
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        """Whether a batch (the first run or a retry) is still going."""
        with self._lock:
            return self._active > 0

    @property
    def sent(self) -> int:
        """How many cells were sent to the service (replayed ones included)."""
        with self._lock:
            return len(self._sent)

    def task(self, cell: Cell) -> Task | None:
        """The task a cell was sent as (``None`` before it was sent)."""
        with self._lock:
            return self._tasks.get(cell)

    def restore(self, outcomes: Mapping[Cell, Outcome]) -> None:
        """Take outcomes known already (a grid reopened from the history); reports none."""
        with self._lock:
            self._outcomes.update(outcomes)

    # --- running -----------------------------------------------------------------------

    def start(self) -> None:
        """Run every cell in a background thread; returns at once."""
        self._launch(self.slots)

    def retry(self, slots: list[Slot]) -> None:
        """Send ``slots`` again in a background thread (a new attempt of each cell, tagged
        with the same cell); returns at once. Their earlier outcomes are forgotten."""
        with self._lock:
            if self._active == 0:
                self._cancel.clear()
            for slot in slots:
                self._outcomes.pop(slot.cell, None)
                self._tasks.pop(slot.cell, None)
                self._shown_seconds.pop(slot.cell, None)
                self._replayed.discard(slot.cell)
        self._launch(slots)

    def _launch(self, slots: list[Slot]) -> None:
        with self._lock:
            self._active += 1
        self._thread = threading.Thread(target=self._run, args=(slots,),
                                        name=f"nbw-grid-{self.plan.grid_id}", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """No further submits; stop waiting for the tasks sent."""
        with self._lock:
            self._cancel.set()
            tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()

    def _run(self, slots: list[Slot]) -> None:
        try:
            client = self._client()
            workers = max(1, min(_SUBMIT_WORKERS, len(slots)))
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=workers,
                    thread_name_prefix=f"nbw-grid-{self.plan.grid_id}-submit") as pool:
                list(pool.map(lambda s: self._submit(client, s), slots))
            cells = {slot.cell for slot in slots}
            with self._lock:
                waiting = [t for c, t in self._tasks.items()
                           if c in cells and c not in self._outcomes]
            tasks = list(dict.fromkeys(waiting))
            if tasks:
                outcomes = client.wait_all(tasks, return_exceptions=True,
                                           on_progress=self.on_progress)
                for task, outcome in zip(tasks, outcomes, strict=True):
                    for slot in self._slots_of(task.id):
                        self._finish(slot, outcome)
        except Exception as exc:
            _log.exception("grid %s failed", self.plan.grid_id)
            err = exc if isinstance(exc, NanoBananaError) else NanoBananaError(
                describe_error(exc))
            for slot in slots:
                self._finish(slot, err)
        finally:
            with self._lock:
                self._active -= 1
                last = self._active == 0
            if last:
                self._on_end()

    def _slots_of(self, task_id: str) -> list[Slot]:
        with self._lock:
            return list(self._task_slots.get(task_id, []))

    def _submit(self, client: Client, slot: Slot) -> None:
        cell = slot.cell
        if self._cancel.is_set():
            self._finish(slot, CancelledError("Not sent: the grid was cancelled first."))
            return
        self._on_progress(slot, "sending", 0)
        try:
            task = client.submit(
                cell.prompt, action=self.plan.action,
                images=list(self.plan.images) if self.plan.images else None,
                model=cell.model, count=self.plan.count, aspect_ratio=cell.aspect_ratio,
                resolution=cell.resolution)
        except NanoBananaError as exc:
            if isinstance(exc, PossiblyBilledError):
                with self._lock:
                    self._sent.add(cell)
            self._tag_failure(slot, exc)
            self._finish(slot, exc)
            return
        except Exception as exc:
            self._finish(slot, NanoBananaError(describe_error(exc)))
            return
        replayed = task.done()  # only a replayed task is settled the moment it is sent
        with self._lock:
            self._sent.add(cell)
            self._tasks[cell] = task
            self._task_slots.setdefault(task.id, []).append(slot)
            if replayed:
                self._replayed.add(cell)
        self._tag(task, slot)
        if self._cancel.is_set():
            task.cancel()
        if replayed:
            self._finish(slot, self._outcome_of(task))
        else:
            self._on_progress(slot, "waiting", 0)

    @staticmethod
    def _outcome_of(task: Task) -> Outcome:
        try:
            return task.result()
        except NanoBananaError as exc:
            return exc

    def _tag(self, task: Task, slot: Slot) -> None:
        if self._history is None:
            return
        try:
            self._history.tag_cell(self.plan.grid_id, slot.tag, task_id=task.id)
        except Exception as exc:  # the grid still runs; only reopening loses the cell
            _log.warning("grid %s: could not tag task %s in the history: %s",
                         self.plan.grid_id, task.id, exc)

    def _tag_failure(self, slot: Slot, error: NanoBananaError) -> None:
        """Tag the record the history wrote for a submit that failed (no task handle)."""
        if self._history is None:
            return
        try:
            self._history.tag_cell(self.plan.grid_id, slot.tag, task_id=error.task_id,
                                   request=self.plan.request(slot.cell))
        except Exception as exc:
            _log.warning("grid %s: could not tag a failed submit in the history: %s",
                         self.plan.grid_id, exc)

    def on_progress(self, progress: Progress) -> None:
        """The client's progress callback (in its poller): a task's cells wait, or end."""
        for slot in self._slots_of(progress.task_id):
            cell = slot.cell
            with self._lock:
                if cell in self._outcomes:
                    continue
                task = self._tasks.get(cell)
            if progress.stage in ("done", "failed"):
                if task is not None:
                    self._finish(slot, self._outcome_of(task))
                continue
            seconds = int(progress.elapsed)
            with self._lock:
                if self._shown_seconds.get(cell) == seconds:
                    continue
                self._shown_seconds[cell] = seconds
            self._on_progress(slot, "waiting", seconds)

    def _finish(self, slot: Slot, outcome: Outcome) -> None:
        with self._lock:
            if slot.cell in self._outcomes:
                return
            self._outcomes[slot.cell] = outcome
        self._on_outcome(slot, outcome)
