"""One run of the prompt panel: a background job with a progress row and a handle, and the
box of rows.

A :class:`PanelRun` normalises the inputs, submits through the client, waits with
progress, downloads thumbnails of the images and reports back, all in a worker thread.
Every exception ends up in ``run.error`` and, through the panel, in its status area.
The run holds no HTTP code: it calls ``client.submit(...)`` and ``task.wait(...)``.

Its stage only moves forward (a late progress report from the client's poller never takes
a run that is downloading back to "waiting"), and its row is painted through a
:class:`~nanobanana_widgets.widgets._ui.Painter` with the stage's rank and a revision taken
with the state it shows, so the row never goes back to an older state either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

from nanobanana_widgets.images import thumbnail, to_image_url
from nanobanana_widgets.render.panel import activity_html, run_row_html
from nanobanana_widgets.service.errors import (
    CancelledError,
    TaskFailedError,
    WaitTimeoutError,
    describe_error,
)
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.widgets._ui import Painter, close_deep, guarded
from nanobanana_widgets.widgets.panel.runs import (
    FINISHED_STAGES,
    STAGE_RANK,
    RunSpec,
    RunStage,
    Thumb,
    cancelled_after_sending,
)

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Progress, Task

__all__ = ["RESULT_THUMB_SIDE", "PanelRun", "RowModels", "RunRows", "RunSpec", "RunStage",
           "Thumb", "describe_error"]

_log = logging.getLogger(__name__)

RESULT_THUMB_SIDE = 256
"""Longest side, in pixels, of the result thumbnails kept in widget state."""

MAX_FINISHED_ROWS = 3
"""Finished runs whose progress rows stay visible (runs in flight always are)."""


class RowModels:
    """The layout and style models every run row shares (a row's own widgets are few)."""

    def __init__(self) -> None:
        self.label_layout = w.Layout(flex="1 1 auto", min_width="0")
        self.html_style = HTMLStyle()
        self.button_style = w.ButtonStyle()
        self.row_layout = w.Layout(width="100%", align_items="center", padding="2px 0")
        self.models = (self.label_layout, self.html_style, self.button_style, self.row_layout)

    @property
    def closed(self) -> bool:
        """Whether the models were closed (with their panel)."""
        return any(model.comm is None for model in self.models)


class PanelRun:
    """Handle on one panel run: ``wait(timeout)``, ``cancel()``, ``status``, ``result``.

    ``status`` goes queued → preparing → sending → submitted → waiting → downloading →
    done (or failed, or cancelled). ``wait()`` returns the :class:`Result` (``None`` when
    the run failed or was cancelled; the reason is in ``error`` and in the panel's status
    area). It never raises the run's error; it raises :class:`WaitTimeoutError` only when
    the run is still going at ``timeout``.
    """

    def __init__(
        self,
        number: int,
        spec: RunSpec,
        *,
        on_finish: Callable[[PanelRun], None] | None = None,
        thumb_side: int = RESULT_THUMB_SIDE,
        painter: Painter | None = None,
        shared: RowModels | None = None,
    ) -> None:
        self.number = number
        self.spec = spec
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.task: Task | None = None
        self.thumbs: list[Thumb] = []
        self.created_at = time.time()
        self._t0 = time.monotonic()
        self._t_end: float | None = None
        self._stage: RunStage = "queued"
        self._lock = threading.RLock()
        self._cancel_requested = False
        self._finished = threading.Event()
        self._on_finish = on_finish
        self._thumb_side = thumb_side
        self._painter = painter if painter is not None else Painter()
        self._revision = 0
        self._fraction: float | None = None
        self._closed = False

        if shared is None or shared.closed:  # alone, or its panel was closed
            shared = RowModels()
        self._shared = shared
        self.label = w.HTML(layout=self._shared.label_layout, style=self._shared.html_style)
        self.cancel_button = w.Button(
            description="Cancel",
            icon="times",
            tooltip="Stop waiting for this run (the service may still finish and bill it)",
            layout=w.Layout(width="auto", flex="0 0 auto"),  # its own: hidden when done
            style=self._shared.button_style,
        )
        self.cancel_button.on_click(guarded(lambda _b: self.cancel(), self._log_error))
        self.row = w.HBox([self.label, self.cancel_button], layout=self._shared.row_layout)
        self.row.add_class("nbw-run")
        self._render()

    # --- public handle -----------------------------------------------------------------

    @property
    def status(self) -> RunStage:
        """Where the run is: queued, preparing, sending, submitted, waiting, downloading,
        done, failed or cancelled."""
        return self._stage

    @property
    def task_id(self) -> str | None:
        """The service's task id, once submitted."""
        return self.task.id if self.task is not None else None

    @property
    def elapsed(self) -> float:
        """Seconds since the click (frozen once the run has finished)."""
        return self.elapsed_at(time.monotonic())

    def elapsed_at(self, now: float) -> float:
        """Seconds from the click to ``now`` (a ``time.monotonic()`` reading), or to the
        end once the run has finished."""
        end = self._t_end if self._t_end is not None else now
        return max(0.0, end - self._t0)

    @property
    def progress(self) -> float | None:
        """The service's progress figure (0–1) from its last report, when it gives one."""
        return self._fraction

    def done(self) -> bool:
        """Whether the run has finished (done, failed or cancelled)."""
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> Result | None:
        """Block until the run finishes; the result, or ``None`` if it failed or was cancelled."""
        if not self._finished.wait(timeout):
            raise WaitTimeoutError(
                f"Run #{self.number} is still {self._stage} after {timeout} s; "
                "it goes on in the background."
            )
        return self.result

    def cancel(self) -> None:
        """Stop this run: before sending nothing is sent; after, local waiting stops.

        A task that already reached the service may still finish there and be billed.
        """
        with self._lock:
            if self._finished.is_set():
                return
            self._cancel_requested = True
            task = self.task
        if task is not None:
            task.cancel()
        self._render()

    def refuse(self, error: BaseException) -> None:
        """End a run that is not sent (a mistake found first): failed with ``error``."""
        self._finish("failed", error)

    # --- the background job ------------------------------------------------------------

    def execute(self, client: Client | Callable[[], Client]) -> None:
        """Run to the end in the calling (worker) thread; never raises."""
        try:
            self._execute(client)
        except CancelledError as exc:
            self._finish("cancelled", exc)
        except BaseException as exc:  # every failure is reported, none vanishes
            _log.debug("panel run #%d failed", self.number, exc_info=True)
            self._finish("failed", exc)

    def _execute(self, client_or_factory: Client | Callable[[], Client]) -> None:
        spec = self.spec
        if self._should_stop():
            raise CancelledError("Cancelled before it was sent; nothing was billed.")
        self._advance("preparing")
        image_urls: list[str] | None = None
        if spec.inputs:
            image_urls = [to_image_url(source, name=label) for label, source in spec.inputs]
        client = (
            client_or_factory() if callable(client_or_factory) else client_or_factory
        )
        with self._lock:
            if self._should_stop():
                raise CancelledError("Cancelled before it was sent; nothing was billed.")
            self._stage = "sending"
        self._render()
        task = client.submit(
            spec.prompt,
            action=spec.action,
            images=image_urls,
            model=spec.model,
            count=spec.count,
            aspect_ratio=spec.aspect_ratio,
            resolution=spec.resolution,
        )
        with self._lock:
            self.task = task
            cancel_now = self._should_stop()
            self._stage = "submitted"
        self._render()
        if cancel_now:
            task.cancel()
        result = task.wait(on_progress=self._on_progress)
        self.result = result
        if not result.images:
            raise result.error or TaskFailedError(
                "The task finished without images.", task_id=result.task_id,
                trace_id=result.trace_id,
            )
        self._advance("downloading")
        self.thumbs = [self._thumb(image) for image in result.images]
        self._finish("done", None)

    def _thumb(self, image: GeneratedImage) -> Thumb:
        trace_id = self.result.trace_id if self.result is not None else None
        try:
            jpeg = thumbnail(image.bytes(), max_side=self._thumb_side, format="JPEG", quality=80)
        except Exception as exc:
            return Thumb(image=image, jpeg=None, error=describe_error(exc),
                         run_number=self.number, trace_id=trace_id)
        return Thumb(image=image, jpeg=jpeg, run_number=self.number, trace_id=trace_id)

    def _on_progress(self, progress: Progress) -> None:
        """The client's poller reports (never blocks it, never raises into it)."""
        try:
            figure = getattr(progress, "progress", None)
            changed = False
            if (isinstance(figure, (int, float)) and not isinstance(figure, bool)
                    and 0.0 <= figure <= 1.0):
                with self._lock:
                    changed = self._fraction != float(figure)
                    self._fraction = float(figure)
            if (progress.stage in ("submitted", "waiting") and not self._advance("waiting")
                    and changed):
                self._render()  # the same stage with a new figure (the clock does the rest)
        except Exception:
            _log.debug("progress update failed", exc_info=True)

    def _should_stop(self) -> bool:
        with self._lock:
            return self._cancel_requested

    def _advance(self, stage: RunStage) -> bool:
        """Move to ``stage`` unless the run is there or further already; whether it moved."""
        with self._lock:
            if STAGE_RANK[stage] <= STAGE_RANK[self._stage]:
                return False
            self._stage = stage
        self._render()
        return True

    def _finish(self, stage: RunStage, error: BaseException | None) -> None:
        with self._lock:
            if self._finished.is_set() or self._stage in FINISHED_STAGES:
                return
            self._stage = stage
            self.error = error
            self._t_end = time.monotonic()
        try:
            self._render()
            if self._on_finish is not None:
                self._on_finish(self)
        except Exception:
            _log.exception("panel run #%d: reporting the outcome failed", self.number)
        finally:
            self._finished.set()

    # --- the progress row --------------------------------------------------------------

    def _log_error(self, exc: BaseException) -> None:
        _log.error("panel run #%d: cancel failed: %s", self.number, exc)

    def refresh(self, now: float | None = None) -> None:
        """Redraw the progress row (the elapsed seconds move on while waiting), with the
        elapsed time at ``now`` (``time.monotonic()``; the panel's clock passes one
        reading to every row and its header, so they agree)."""
        self._render(now)

    def _render(self, now: float | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._revision += 1
            version = (STAGE_RANK[self._stage], self._revision)
            stage = self._stage
            cancel_requested = self._cancel_requested
            cancelling = cancel_requested and stage not in FINISHED_STAGES
            result, error, task = self.result, self.error, self.task
            elapsed = self.elapsed_at(time.monotonic() if now is None else now)
            fraction = self._fraction
        spec = self.spec
        markup = run_row_html(
            number=self.number, stage=stage, cancelling=cancelling, prompt=spec.prompt,
            elapsed=elapsed,
            images=len(result.images) if stage == "done" and result is not None else None,
            action=spec.action, model=spec.model, count=spec.count,
            task_id=task.id if task is not None else None,
            error=self._error_text(stage, error, task), fraction=fraction,
        )

        def apply() -> None:
            self.label.value = markup
            for name in FINISHED_STAGES:
                self.row.remove_class(f"nbw-run-{name}")
            if stage in FINISHED_STAGES:
                self.row.add_class(f"nbw-run-{stage}")
            self.cancel_button.disabled = stage == "downloading" or cancel_requested
            self.cancel_button.layout.display = "none" if stage in FINISHED_STAGES else None

        self._painter.paint(("run", self.number), version, apply)

    @staticmethod
    def _error_text(stage: str, error: BaseException | None, task: Task | None) -> str | None:
        """What the row says under a run that failed or was cancelled."""
        if stage == "cancelled" and task is not None:
            return cancelled_after_sending(task.id)
        if stage in ("failed", "cancelled") and error is not None:
            return describe_error(error)
        return None

    @property
    def closed(self) -> bool:
        """Whether the row's widgets were closed (the run is no longer shown)."""
        return self._closed

    def close(self) -> None:
        """Close the row's widgets (the run keeps its result; its row is not shown again)."""
        with self._lock:
            self._closed = True
        close_deep(self.row, keep=self._shared.models)

    def __repr__(self) -> str:
        return (
            f"PanelRun(#{self.number}, status={self._stage!r}, task_id={self.task_id!r}, "
            f"prompt={self.spec.prompt[:40]!r})"
        )


class RunRows:
    """The box of progress rows, newest first: every run in flight and the last few
    finished ones. A finished run that drops out has its row's widgets closed (a long
    session keeps a bounded number of widgets)."""

    KEY = ("runs",)

    def __init__(self, painter: Painter, runs: Callable[[], list[PanelRun]]) -> None:
        self._painter = painter
        self._runs = runs
        self._lock = threading.Lock()
        self._revision = 0
        self.box = w.VBox(layout=w.Layout(width="100%"))
        self.box.add_class("nbw-runs")
        self.activity = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        """The header's summary of the runs in flight (``2 running · 12 s``)."""
        self.activity.add_class("nbw-activity-box")
        self._activity_revision = 0

    def tick(self, now: float | None = None) -> bool:
        """The panel's clock: the rows in flight and the header's summary move on together,
        from one reading of the time (``time.monotonic()``). Returns whether a run is in
        flight."""
        now = time.monotonic() if now is None else now
        running = self.in_flight()
        for run in running:
            run.refresh(now)
        oldest = max((run.elapsed_at(now) for run in running), default=None)
        markup = activity_html(len(running), oldest)
        with self._lock:
            self._activity_revision += 1
            revision = self._activity_revision
        self._painter.paint(("activity",), (revision,),
                            lambda: setattr(self.activity, "value", markup))
        return bool(running)

    def in_flight(self) -> list[PanelRun]:
        """The runs not finished yet, oldest first."""
        return [run for run in self._runs() if run.status not in FINISHED_STAGES]

    def show(self) -> None:
        """Show the rows as the runs are now (read with the revision they are painted at)."""
        with self._lock:
            shown: list[PanelRun] = []
            dropped: list[PanelRun] = []
            finished = 0
            for run in reversed(self._runs()):
                if run.status in FINISHED_STAGES:
                    finished += 1
                    if finished > MAX_FINISHED_ROWS:
                        if not run.closed:
                            dropped.append(run)
                        continue
                shown.append(run)
            self._revision += 1
            revision = self._revision
        rows = tuple(run.row for run in shown)
        if self._painter.paint(self.KEY, (revision,),
                               lambda: setattr(self.box, "children", rows)):
            for run in dropped:
                run.close()
