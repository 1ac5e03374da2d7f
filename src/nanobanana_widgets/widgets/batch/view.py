"""``BatchView``: a batch job's progress, tqdm-like, with Pause, Resume and Cancel.

Everything it shows is made by :mod:`nanobanana_widgets.render.batch` from the job's
:class:`~nanobanana_widgets.jobs.JobSummary`, so the static rendition says the same. The job
calls :meth:`BatchView.refresh` from its threads after every change; repaints are throttled
(at most one per :data:`REPAINT_EVERY` seconds, the last change always painted) and go
through one :class:`~nanobanana_widgets.widgets._ui.Painter` at a growing revision, so a
slow thread never puts back an older state. The buttons act on the job at once (no network
in the kernel's thread); what goes wrong shows in the status line.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nanobanana_widgets.render.batch import (
    batch_styles,
    budget_html,
    errors_html,
    job_html,
    notice_html,
    plan_html,
    progress_html,
    title_html,
)
from nanobanana_widgets.render.grid import status_line_html
from nanobanana_widgets.render.static import static_frame, static_styles
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.widgets._static import StaticRendition
from nanobanana_widgets.widgets._ui import Painter, ViewSync, close_view, guarded

if TYPE_CHECKING:
    from nanobanana_widgets.jobs import BatchJob, JobSummary

__all__ = ["REPAINT_EVERY", "BatchView"]

REPAINT_EVERY = 0.25
"""Shortest time, in seconds, between two repaints of the progress."""


def _models(job: BatchJob) -> list[str]:
    return sorted({s.model for s in job.specs})


class BatchView(w.VBox):  # type: ignore[misc]
    """The progress view of ``job`` (a :class:`~nanobanana_widgets.jobs.BatchJob`)."""

    def __init__(self, job: BatchJob) -> None:
        self.job = job
        self._painter = Painter()
        self._lock = threading.Lock()
        self._revision = 0
        self._last_paint = 0.0
        self._timer: threading.Timer | None = None
        self._static_state: str | None = None
        self.title = w.HTML()
        self.plan_line = w.HTML(plan_html(job.total, job.paid, _models(job)))
        self.budget_line = w.HTML()
        self.confirm_button = w.Button(description=f"Run {job.paid:,} paid generations",
                                       button_style="warning",
                                       layout=w.Layout(width="auto"))
        self.budget_row = w.VBox([self.budget_line, self.confirm_button],
                                 layout=w.Layout(display="none"))
        self.progress = w.HTML()
        self.notice = w.HTML()
        self.pause_button = w.Button(description="Pause",
                                     tooltip="Send nothing more; rows sent are still waited for",
                                     layout=w.Layout(width="auto"))
        self.resume_button = w.Button(description="Resume",
                                      tooltip="Send the rows left", layout=w.Layout(width="auto"))
        self.cancel_button = w.Button(description="Cancel", button_style="danger",
                                      tooltip="Send nothing more and stop waiting (tasks sent "
                                              "may still run and be billed)",
                                      layout=w.Layout(width="auto"))
        self.buttons = w.HBox([self.pause_button, self.resume_button, self.cancel_button],
                              layout=w.Layout(flex_flow="row wrap"))
        self.errors = w.HTML()
        self.status_line = w.HTML()
        for button, action in ((self.pause_button, job.pause),
                               (self.resume_button, job.resume),
                               (self.cancel_button, job.cancel),
                               (self.confirm_button, job.confirm)):
            button.on_click(guarded(self._acting(action), self._report))
        super().__init__(
            [w.HTML(batch_styles(), layout=w.Layout(display="none")), ViewSync(self),
             self.title, self.plan_line, self.budget_row, self.progress, self.notice,
             self.buttons, self.errors, self.status_line],
            layout=w.Layout(width="100%", max_width="100%", overflow="hidden"))
        self.add_class("nbw-batch")
        self.static = StaticRendition(self, self.static_html)
        """The copy of the progress a saved notebook shows (:meth:`static_html`)."""
        job.add_observer(self.refresh)
        self.paint_now()

    # --- painting ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Repaint soon (throttled; safe from any thread)."""
        with self._lock:
            wait = self._last_paint + REPAINT_EVERY - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._paint_from_timer)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._last_paint = time.monotonic()
        self.paint_now()

    def _paint_from_timer(self) -> None:
        with self._lock:
            self._timer = None
            self._last_paint = time.monotonic()
        self.paint_now()

    def paint_now(self) -> None:
        """Paint the job as it is now (at a new revision)."""
        with self._lock:
            self._revision += 1
            revision = self._revision
            summary = self.job.summary
        self._painter.paint(("view",), (revision,), lambda: self._apply(summary))
        static = getattr(self, "static", None)
        if static is not None and summary.state != self._static_state:
            self._static_state = summary.state  # the saved copy follows each change of state
            static.update()

    def static_html(self) -> str:
        """The job as a saved notebook shows it (the same render functions as the view)."""
        job = self.job
        spec = job.history.jobs.get(job.name) or {}
        body = job_html(job.summary, models=_models(job),
                        source=str((spec.get("spec") or {}).get("source", "")),
                        max_calls=job.max_calls)
        return static_frame(self.static.view_id, "batch", body,
                            styles=static_styles("frame", "batch"))

    def _apply(self, s: JobSummary) -> None:
        state = s.state
        self.title.value = title_html(s.name, state)
        waiting = state == "awaiting confirmation"
        self.budget_row.layout.display = "flex" if waiting else "none"
        if waiting:
            self.budget_line.value = budget_html(s.paid, self.job.max_calls)
        self.progress.value = progress_html(s)
        notice = s.reason or ""
        if state == "cancelled" and s.running:
            notice = notice or (f"Cancelled: {s.running:,} rows were sent and may still run "
                                "and be billed; job.resume() (or nb.Job.open) looks them up.")
        self.notice.value = notice_html(notice) if notice else ""
        self.errors.value = errors_html(s.errors)
        self.pause_button.layout.display = "flex" if state == "running" else "none"
        self.resume_button.layout.display = (
            "flex" if state in ("paused", "cancelled") and (s.queued or s.cancelled or s.running)
            else "none")
        self.cancel_button.layout.display = (
            "flex" if state in ("running", "paused", "awaiting confirmation") else "none")

    # --- buttons -------------------------------------------------------------------------

    def _acting(self, action: Any) -> Any:
        def act(_button: Any) -> None:
            self.status_line.value = ""
            action()
            self.paint_now()

        return act

    def _report(self, exc: BaseException) -> None:
        self.status_line.value = status_line_html(describe_error(exc), error=True)

    def close(self) -> None:
        """Close the view and every widget in it (the job goes on: ``job.view`` makes a new
        view)."""
        job = getattr(self, "job", None)
        if job is not None:
            job.remove_observer(self.refresh)
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        close_view(self, super().close)

    def __repr__(self) -> str:
        return f"<BatchView of {self.job.name!r}>"
