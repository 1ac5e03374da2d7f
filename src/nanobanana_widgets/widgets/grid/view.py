"""``Grid``: the matrix widget of a prompt grid, filling in as its cells finish.

It states the number of paid generations before anything is sent; above ``max_calls``
nothing is spent until the "Run N paid generations" button is clicked or
``grid.confirm()`` is called. A :class:`~nanobanana_widgets.widgets.grid.runner.GridRunner`
does the work; this view shows it. Cells, the status line and the buttons change from the
runner's threads and the client's poller, always through one
:class:`~nanobanana_widgets.widgets._ui.Painter`: a cell's version is its stage's rank
(queued, sending, waiting with its seconds, finished), so a late "waiting" never covers a
finished cell. ``Grid.open(grid_id)`` rebuilds the matrix from the history, without network.

While waiting, a cell keeps the room its images will take (from the aspect ratio), so the
page does not jump when they arrive; one clock (a
:class:`~nanobanana_widgets.widgets._ui.Ticker`) moves the status line and the waiting
cells on together. A failed cell that may be sent again shows "Retry"; ``grid.retry()``
retries every such cell, each as a new attempt tagged with the same cell in the history.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nanobanana_widgets.render.grid import (
    CellImage,
    budget_html,
    cell_error_html,
    cell_images_html,
    column_head_html,
    column_label,
    corner_html,
    grid_status_text,
    grid_styles,
    grid_title_html,
    not_resent_note,
    plan_html,
    repeat_head_html,
    row_head_html,
    status_line_html,
)
from nanobanana_widgets.render.parts import seconds
from nanobanana_widgets.render.results import thumbnail_data_uri
from nanobanana_widgets.render.static import static_frame, static_styles
from nanobanana_widgets.service.errors import (
    NanoBananaError,
    WaitTimeoutError,
    describe_error,
    not_confirmed_error,
)
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.session import default_client, default_history
from nanobanana_widgets.store import History, HistoryProblem, Record
from nanobanana_widgets.widgets._static import StaticRendition, image_link
from nanobanana_widgets.widgets._ui import (
    Painter,
    Ticker,
    ViewSync,
    close_view,
    guarded,
    weak_callback,
)
from nanobanana_widgets.widgets.grid.cells import (
    CELL_THUMB_SIDE,
    CellSlots,
    recorded_cell,
    thumb_side,
    waiting_html,
)
from nanobanana_widgets.widgets.grid.plan import (
    DEFAULT_MAX_CALLS,
    Cell,
    GridPlan,
    Slot,
    check_max_calls,
    latest_by_cell,
    plan_from_records,
)
from nanobanana_widgets.widgets.grid.report import grid_static_body, write_grid_report
from nanobanana_widgets.widgets.grid.runner import GridRunner, Outcome, resendable

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client

__all__ = ["CELL_THUMB_SIDE", "Grid"]

_QUEUED, _SENDING, _WAITING, _FINISHED = 1, 2, 3, 9
"""Ranks of a cell's stages: the first number of its painted version."""


def _failed(outcome: Outcome) -> bool:
    """Whether a finished cell has no image to show."""
    return not (isinstance(outcome, Result) and outcome.images)


class _ClassOrWidgetOpen:
    """``Grid.open(grid_id)`` reopens a grid from the history; ``widget.open()`` (which
    ipywidgets calls on every instance to open its comm) keeps its meaning."""

    def __get__(self, obj: Any, owner: type[Grid]) -> Callable[..., Any]:
        if obj is None:
            return owner._from_history
        return functools.partial(w.Widget.open, obj)


class Grid(w.VBox):  # type: ignore[misc]
    """A prompt × parameter matrix widget (made by :func:`grid` or :meth:`Grid.open`).

    ``id``, ``plan``, ``cells`` (matrix order), ``results`` (finished cells → ``Result`` or
    error), ``done()``, ``wait(timeout)``, ``confirm()``, ``cancel()``, ``state``
    (``"awaiting confirmation"``, ``"running"``, ``"done"``, ``"cancelled"``,
    ``"reopened"``), ``summary``, ``cell_widget(cell)``, ``runner`` (the work).
    """

    def __init__(self, plan: GridPlan, *, client: Client | None = None,
                 history: History | None = None, max_calls: int = DEFAULT_MAX_CALLS,
                 confirm: bool = False, records: Mapping[str, Record] | None = None) -> None:
        self.plan = plan
        self.id = plan.grid_id
        self.max_calls = check_max_calls(max_calls)
        self._client = client
        self._history = history
        self.runner = GridRunner(plan, client=self._client_now, history=history,
                                 on_progress=self._on_progress, on_outcome=self._on_outcome,
                                 on_end=self._on_end)
        self._slots = self.runner.slots
        self._lock = threading.RLock()
        self._painter = Painter()
        self._revision = 0
        self._finished = threading.Event()
        self._started_at: float | None = None
        self._thumbs: concurrent.futures.ThreadPoolExecutor | None = None
        self._thumbs_closed = False
        self._note = ""
        self._reopened = records is not None
        self.state = "reopened" if self._reopened else "ready"

        self.title = w.HTML(grid_title_html(self.id, reopened=self._reopened))
        replay = not self._reopened and history is not None and bool(history.replay)
        self.plan_line = w.HTML(plan_html(plan, reopened=self._reopened, replay=replay))
        self.confirm_button = w.Button(
            description=f"Run {plan.paid} paid generations", button_style="warning",
            icon="play", tooltip="Start the grid: every image is billed",
            layout=w.Layout(width="auto", min_width="max-content"))
        self.confirm_button.on_click(guarded(lambda _b: self.confirm(), self._report_start))
        self.budget_line = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.budget_row = w.HBox([self.budget_line, self.confirm_button], layout=w.Layout(
            width="100%", display="none", align_items="center", flex_flow="row wrap"))
        self.status_line = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.cancel_button = w.Button(description="Cancel", icon="times",
                                      tooltip="Stop waiting (submitted tasks may still run "
                                              "and be billed)",
                                      layout=w.Layout(width="auto", display="none"))
        self.cancel_button.on_click(guarded(lambda _b: self.cancel(), self._report))
        self.status_row = w.HBox([self.status_line, self.cancel_button],
                                 layout=w.Layout(width="100%", align_items="center"))
        self._cell_widgets: dict[Cell, w.HTML] = {}
        self._waiting_since: dict[Cell, float] = {}
        self._clock = Ticker(self._tick, interval=1.0, name=f"nbw-grid-{self.id}-clock")
        self.matrix = self._build_matrix()
        self._slots_ui = CellSlots(self.matrix, self._cell_widgets, self._report)
        super().__init__(
            [w.HTML(grid_styles(), layout=w.Layout(display="none")), ViewSync(self),
             self.title, self.plan_line, self.budget_row, self.status_row, self.matrix],
            layout=w.Layout(width="100%", max_width="100%", overflow="hidden"))
        self.add_class("nbw-matrix")
        self.static = StaticRendition(self, self.static_html)
        if history is not None:  # what the history could not do is said here too
            history.on_problem(weak_callback(self._on_history_problem))
        """The copy of the grid a saved notebook shows (:meth:`static_html`)."""

        if records is not None:
            self._fill_from_records(records)
            self._finished.set()
            self._paint_status()
        elif plan.paid > max_calls and not confirm:
            self.state = "awaiting confirmation"
            self.budget_line.value = budget_html(plan.paid, max_calls)
            self._paint_buttons(0, budget=True, cancel=False)
            self._paint_status()
        else:
            self._start()

    def _build_matrix(self) -> w.GridBox:
        p = self.plan
        n = len(p.columns) * p.repeats
        # Up to 4 columns fit a ~470 px output area (a 900 px window with the sidebar open);
        # wider grids scroll inside the matrix, never the page.
        first_col, min_px = ("minmax(60px, 0.6fr)", 80) if n <= 4 else ("minmax(90px, 0.7fr)", 120)
        children: list[w.Widget] = [w.HTML(corner_html())]
        for column in p.columns:
            children.append(w.HTML(column_head_html(column),
                                   layout=w.Layout(grid_column=f"span {p.repeats}",
                                                   min_width="0")))
        if p.repeats > 1:
            children.append(w.HTML(""))
            for _column in p.columns:
                for rep in range(p.repeats):
                    children.append(w.HTML(repeat_head_html(rep),
                                           layout=w.Layout(min_width="0")))
        for row, prompt in enumerate(p.prompts):
            children.append(w.HTML(row_head_html(prompt, row), layout=w.Layout(min_width="0")))
            for slot in self._slots[row * n:(row + 1) * n]:
                cell_widget = w.HTML(self._waiting_html(slot, "not started", spin=False),
                                     layout=w.Layout(min_width="0", padding="4px"))
                cell_widget.add_class("nbw-matrix-cell")
                self._cell_widgets[slot.cell] = cell_widget
                children.append(cell_widget)
        return w.GridBox(children, layout=w.Layout(
            width="100%", max_width="100%", overflow="auto",
            grid_template_columns=f"{first_col} repeat({n}, minmax({min_px}px, 1fr))",
            grid_gap="6px", align_items="flex-start", padding="4px 0"))

    # --- public API --------------------------------------------------------------------

    @property
    def cells(self) -> list[Cell]:
        """Every cell, row by row (repeats of a column side by side)."""
        return [s.cell for s in self._slots]

    @property
    def results(self) -> dict[Cell, Outcome]:
        """Finished cells (in matrix order) → their ``Result`` or error."""
        outcomes = self.runner.outcomes
        return {s.cell: outcomes[s.cell] for s in self._slots if s.cell in outcomes}

    @property
    def history(self) -> History | None:
        """The history the grid's tasks are tagged in (``None`` if recording is off)."""
        return self._history

    def cell_widget(self, cell: Cell) -> w.HTML:
        """The HTML widget showing ``cell``."""
        return self._cell_widgets[cell]

    def done(self) -> bool:
        """Whether every cell has finished (succeeded, failed or been cancelled)."""
        return self._finished.is_set()

    @property
    def summary(self) -> str:
        """One line: how many cells are done, succeeded and failed."""
        outcomes = list(self.runner.outcomes.values())
        replayed = len(self.runner.replayed)
        ok = sum(isinstance(o, Result) for o in outcomes)
        text = (f"{len(outcomes)} of {len(self._slots)} cells done: {ok} succeeded, "
                f"{len(outcomes) - ok} failed")
        return text + (f", {replayed} replayed from the history" if replayed else "")

    def retry_button(self, cell: Cell) -> w.Button | None:
        """The "Retry" button under a failed ``cell`` (``None`` when it has none)."""
        return self._slots_ui.retry_button(cell)

    def retry(self, cells: list[Cell] | None = None) -> list[Cell]:
        """Send failed cells again (all of them by default), each as a new attempt tagged
        with the same cell in the history; returns the cells sent again.

        A cell whose task was sent and may still finish (and be billed) is not sent again;
        the status line says so (``grid.history.resume()`` looks those up)."""
        if self.state == "awaiting confirmation":
            raise NanoBananaError("This grid has not started: confirm it first "
                                  "(grid.confirm()).", code="not_confirmed")
        outcomes = self.runner.outcomes
        wanted = set(cells) if cells is not None else None
        failed = [s for s in self._slots if s.cell in outcomes
                  and _failed(outcomes[s.cell]) and (wanted is None or s.cell in wanted)]
        chosen = [s for s in failed if resendable(outcomes[s.cell])]
        kept = len(failed) - len(chosen)
        if chosen:
            now = time.monotonic()
            with self._lock:
                self.state = "running"
                self._finished.clear()
                self._started_at = self._started_at or now
            for slot in chosen:
                self._painter.forget(("cell", slot.tag))
                self._waiting_since[slot.cell] = now
                self._paint_cell(slot, (_QUEUED,), self._waiting_html(slot, "queued again",
                                                                      spin=False))
            self._ensure_thumbs()
            self._paint_buttons(budget=False, cancel=True)
            self.runner.retry(chosen)
            self._clock.start()
        with self._lock:
            self._note = not_resent_note(kept)
        self._paint_status()
        return [s.cell for s in chosen]

    def confirm(self) -> Grid:
        """Start a grid that waits for confirmation (no effect once started)."""
        if self.state == "awaiting confirmation":
            self._start()
        return self

    def cancel(self) -> None:
        """Stop: no further submits, stop waiting for submitted tasks (they may still run
        and be billed; look them up later with ``history.resume()``)."""
        self.runner.cancel()
        with self._lock:
            if self.state == "awaiting confirmation":
                self.state = "cancelled"
                self._paint_buttons(budget=False, cancel=False)
                self._finished.set()
        self._paint_status()

    def wait(self, timeout: float | None = None) -> dict[Cell, Outcome]:
        """Block until every cell is done; returns :attr:`results`.

        ``timeout`` defaults to the client's ``wait_timeout`` plus a minute. Raises
        :class:`WaitTimeoutError` when cells are still running at the deadline, and
        :class:`NanoBananaError` when the grid waits for confirmation (nothing would end).
        """
        if self.state == "awaiting confirmation":
            raise not_confirmed_error("grid", "grid", self.plan.paid, self.max_calls)
        if timeout is None:
            timeout = float(getattr(self._client, "wait_timeout", 600.0)) + 60.0
        if not self._finished.wait(timeout):
            raise WaitTimeoutError(
                f"The grid was still running after {timeout:g} s ({self.summary}). Wait "
                "again with grid.wait(), or cancel it with grid.cancel().")
        return self.results

    @classmethod
    def _from_history(cls, grid_id: str, history: History | None = None) -> Grid:
        """``Grid.open(grid_id, history=None)``: the matrix of a grid run, rebuilt from the
        history without network (default: the package's default history). Each cell shows
        its latest recorded run; cells never recorded say so; an unknown id raises
        ``KeyError``."""
        if history is None:
            history = default_history()
        latest = latest_by_cell(history.grid(grid_id))
        if not latest:
            raise KeyError(f"No grid {grid_id!r} in the history at {history.folder}: no "
                           "record is tagged with this grid id.")
        return cls(plan_from_records(grid_id, latest), history=history, records=latest)

    open = _ClassOrWidgetOpen()
    """``Grid.open(grid_id, history=None)`` reopens a grid from the history; on an instance,
    ``open()`` stays the ipywidgets method that opens the widget's comm."""

    def _on_history_problem(self, problem: HistoryProblem) -> None:
        """A history problem (a record not saved yet, an image not kept) goes on the status."""
        self._paint_status(note=f"History: {problem.message}")

    def close(self) -> None:
        """Close the view and its widgets; cells still running go on into the history."""
        if "_clock" in self.__dict__:  # not when __init__ refused its arguments
            self._clock.stop()
        close_view(self, super().close)

    def __repr__(self) -> str:
        return (f"<Grid {self.id}: {self.plan.calls} cells, {self.plan.paid} paid generations, "
                f"{self.state}; {self.summary}>")

    # --- running -----------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self.state not in ("ready", "awaiting confirmation"):
                return
            self.state = "running"
            self._started_at = time.monotonic()
        self._paint_buttons(1, budget=False, cancel=True)
        for slot in self._slots:
            self._waiting_since[slot.cell] = self._started_at
            self._paint_cell(slot, (_QUEUED,), self._waiting_html(slot, "queued", spin=False))
        self._paint_status()
        self._ensure_thumbs()
        self.runner.start()
        self._clock.start()

    def _ensure_thumbs(self) -> None:
        with self._lock:
            if self._thumbs is None or self._thumbs_closed:
                self._thumbs, self._thumbs_closed = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix=f"nbw-grid-{self.id}-thumbs"), False

    def _waiting_html(self, slot: Slot, text: str, *, spin: bool = True) -> str:
        return waiting_html(slot.cell, self.plan.count, text, spin=spin)

    def _tick(self) -> bool:
        """The grid's clock: the status line and the waiting cells, from one reading."""
        now = time.monotonic()
        outcomes = self.runner.outcomes
        for slot in self._slots:
            since = self._waiting_since.get(slot.cell)
            if since is None or slot.cell in outcomes:
                continue
            version = self._painter.version(("cell", slot.tag))
            if version is not None and version[0] >= _WAITING:
                self._paint_waiting(slot, now - since)
        self._paint_status(now=now)
        return self.runner.running

    def _client_now(self) -> Client:
        if self._client is None:
            self._client = default_client()
        if self._history is not None:
            self._history.attach(self._client)
        return self._client

    def _on_progress(self, slot: Slot, stage: str, secs: int) -> None:
        if stage == "sending":
            self._paint_cell(slot, (_SENDING,), self._waiting_html(slot, "sending…"))
            return
        version = self._painter.version(("cell", slot.tag))
        if version is not None and version[0] >= _WAITING:
            return  # waiting already: the grid's clock moves it on, with the status line
        since = self._waiting_since.get(slot.cell)
        self._paint_waiting(slot, time.monotonic() - since if since is not None else secs)

    def _paint_waiting(self, slot: Slot, elapsed: float) -> None:
        """A waiting cell with the grid's clock (the status line shows the same time)."""
        tenths = int(elapsed * 10)
        self._paint_cell(slot, (_WAITING, tenths),
                         self._waiting_html(slot, f"waiting {seconds(tenths / 10)}"))

    def _on_outcome(self, slot: Slot, outcome: Outcome) -> None:
        if isinstance(outcome, Result) and outcome.images:
            pool = self._thumbs
            try:
                if pool is None:
                    raise RuntimeError("no thumbnail pool")
                pool.submit(self._paint_result, slot, outcome)
            except RuntimeError:  # shut down: paint here
                self._paint_result(slot, outcome)
        else:
            reason = outcome if not isinstance(outcome, Result) else (
                outcome.error or NanoBananaError(f"No image (status {outcome.status})."))
            self._paint_cell(slot, (_FINISHED,), cell_error_html(reason, self._title(slot)),
                             retry=resendable(outcome))
        self._paint_status()

    def _on_end(self) -> None:
        with self._lock:
            pool, self._thumbs_closed = self._thumbs, True
        if pool is not None:
            pool.shutdown(wait=True)  # every thumbnail is painted before wait() returns
        with self._lock:
            self.state = "cancelled" if self.runner.cancelled else "done"
        self._paint_buttons(budget=False, cancel=False)
        self._paint_status()
        self._finished.set()

    def _paint_result(self, slot: Slot, result: Result) -> None:
        side = thumb_side(len(result.images))
        images: list[CellImage] = []
        for image in result.images:
            try:
                images.append((thumbnail_data_uri(image, max_side=side), image_link(image),
                               None))
            except Exception as exc:
                images.append((None, image_link(image),
                               f"Image not shown: {describe_error(exc)}"))
        bits = []
        elapsed = result.timings.elapsed
        if slot.cell in self.runner.replayed:
            bits.append("replayed from the history")
        elif elapsed is not None:
            bits.append(seconds(elapsed))
        if len(result.images) < self.plan.count:
            bits.append(f"{len(result.images)} of {self.plan.count} images")
        self._paint_cell(slot, (_FINISHED,), cell_images_html(images, " · ".join(bits),
                                                              self._title(slot, result)))

    def _title(self, slot: Slot, result: Result | None = None) -> str:
        c = slot.cell
        parts = [c.prompt, column_label((c.model, c.aspect_ratio, c.resolution))]
        if self.plan.repeats > 1:
            parts.append(f"repeat {c.repeat + 1}")
        task = self.runner.task(c)
        task_id = result.task_id if result is not None else (task.id if task else None)
        if task_id:
            parts.append(f"task {task_id}")
        trace = result.trace_id if result is not None else (task.trace_id if task else None)
        if trace:
            parts.append(f"trace id {trace}")
        parts.append(f"cell {slot.tag}")
        return "\n".join(parts)

    # --- painting ----------------------------------------------------------------------

    def _paint_cell(self, slot: Slot, version: tuple[int, ...], markup: str, *,
                    retry: bool = False) -> None:
        """Paint a cell (with a "Retry" button under it when ``retry``)."""
        widget = self._cell_widgets[slot.cell]
        cell = slot.cell

        def apply() -> None:
            widget.value = markup
            if retry:
                self._slots_ui.show_retry(cell, lambda: self.retry([cell]))
            else:
                self._slots_ui.hide_retry(cell)

        self._painter.paint(("cell", slot.tag), version, apply)

    def _paint_buttons(self, _phase: int = 0, *, budget: bool, cancel: bool) -> None:
        """Show the budget row and the Cancel button (each call a newer state)."""
        def apply() -> None:
            self.budget_row.layout.display = "flex" if budget else "none"
            self.cancel_button.layout.display = "flex" if cancel else "none"

        with self._lock:
            self._revision += 1
            revision = self._revision
        self._painter.paint(("buttons",), (revision,), apply)

    def _paint_status(self, problem: str | None = None, *, note: str | None = None,
                      now: float | None = None) -> None:
        """Paint the status line as the grid is now (or ``problem``), at a new revision;
        ``note`` is said after it until the next change of state."""
        with self._lock:
            self._revision += 1
            revision = self._revision
            if note is not None:
                self._note = note
            text = problem if problem is not None else self._status_text(now)
            if problem is None and self._note:
                text += " " + self._note
        markup = status_line_html(text, error=problem is not None)
        self._painter.paint(("status",), (revision,),
                            lambda: setattr(self.status_line, "value", markup))
        if now is None:  # a change of state, not the clock: the saved copy follows it
            self.static.update()

    def static_html(self) -> str:
        """The grid as a saved notebook shows it: title, plan, status and the matrix with
        every cell as painted (thumbnails linked to full-size copies, errors, waiting)."""
        return static_frame(self.static.view_id, "matrix", grid_static_body(self),
                            styles=static_styles("frame", "grid"))

    def to_html(self, path: str | os.PathLike[str], *, embed: bool = False) -> Path:
        """Write the grid as one HTML page readable offline (see
        :func:`~nanobanana_widgets.widgets.grid.report.write_grid_report`); returns its path."""
        return write_grid_report(self, path, embed=embed)

    def _status_text(self, now: float | None = None) -> str:
        elapsed = None
        if self._started_at is not None:
            elapsed = (time.monotonic() if now is None else now) - self._started_at
        return grid_status_text(self.state, self.summary, elapsed=elapsed,
                                sent=self.runner.sent)

    def _report_start(self, exc: BaseException) -> None:
        self._paint_status(f"Could not start: {describe_error(exc)}")

    def _report(self, exc: BaseException) -> None:
        self._paint_status(describe_error(exc))

    # --- reopening ---------------------------------------------------------------------

    def _fill_from_records(self, records: Mapping[str, Record]) -> None:
        outcomes: dict[Cell, Outcome] = {}
        for slot in self._slots:
            outcome, markup, retry = recorded_cell(records.get(slot.tag), slot.tag)
            if outcome is not None:
                outcomes[slot.cell] = outcome
            self._paint_cell(slot, (_FINISHED,), markup, retry=retry)
        self.runner.restore(outcomes)
