"""The panel's runs without their widgets: what a run asks for, the checks made before
sending, the pool the work runs in, every run started, and the words for each outcome.

:class:`RunController` starts a run (a :class:`~nanobanana_widgets.widgets.panel.run.PanelRun`
made by the factory it is given) after :func:`check_spec`, runs it and every other
background job (uploads, saves) in one thread pool, tracks the runs and their results, and
reports through callbacks: it builds no widget.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nanobanana_widgets.service.errors import NanoBananaError, WaitTimeoutError, describe_error
from nanobanana_widgets.service.models import MAX_IMAGES, MODELS
from nanobanana_widgets.service.types import GeneratedImage, Result

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client
    from nanobanana_widgets.widgets.panel.run import PanelRun

__all__ = [
    "FINISHED_STAGES",
    "STAGE_RANK",
    "Level",
    "PanelMistake",
    "RunController",
    "RunSpec",
    "RunStage",
    "Thumb",
    "cancelled_after_sending",
    "check_spec",
    "outcome_messages",
    "problem_with",
    "still_wrong",
]

_log = logging.getLogger(__name__)

Level = Literal["info", "success", "warning", "error"]
"""How a status message reads: plain, good news, a warning or an error."""

RunStage = Literal[
    "queued", "preparing", "sending", "submitted", "waiting", "downloading",
    "done", "failed", "cancelled",
]
FINISHED_STAGES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
STAGE_RANK: dict[str, int] = {
    "queued": 0, "preparing": 1, "sending": 2, "submitted": 3, "waiting": 4,
    "downloading": 5, "done": 9, "failed": 9, "cancelled": 9,
}
"""A run only moves forward: a stage never follows one of a higher rank."""


@dataclass(frozen=True)
class RunSpec:
    """What one run asks for: the panel's controls at the moment of the click."""

    prompt: str
    action: str = "generate"
    model: str = "nano-banana"
    count: int = 1
    aspect_ratio: str | None = None
    resolution: str | None = None
    inputs: tuple[tuple[str, Any], ...] = ()
    """``(label, source)`` pairs; sources go through ``images.to_image_url``."""

    @classmethod
    def of(cls, result: Result) -> RunSpec:
        """The request of an earlier result, to send again."""
        req = result.request
        return cls(prompt=req.prompt, action=req.action, model=req.model, count=req.count,
                   aspect_ratio=req.aspect_ratio, resolution=req.resolution,
                   inputs=tuple((f"input {i + 1}", url) for i, url in enumerate(req.image_urls)))


@dataclass(frozen=True)
class Thumb:
    """One result image with its small JPEG thumbnail (or why there is none)."""

    image: GeneratedImage
    jpeg: bytes | None
    error: str | None = None
    run_number: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    trace_id: str | None = None


class PanelMistake(NanoBananaError, ValueError):
    """A mistake caught before sending (empty prompt, edit without inputs); nothing sent.

    ``cause`` names what is wrong (``"prompt"``, ``"inputs"``, ``"too-many-inputs"``,
    ``"resolution"``, ``"closed"``): the panel folds the message away once it is fixed.
    """

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message, code="invalid_request")
        self.cause = cause

    def __str__(self) -> str:
        return self.message


def problem_with(spec: RunSpec) -> tuple[str, str] | None:
    """``(cause, words)``: why ``spec`` cannot be sent, or ``None`` when it can."""
    if not spec.prompt.strip():
        return "prompt", "Type a prompt first: the prompt box is empty."
    if spec.action == "edit" and not spec.inputs:
        return "inputs", ("Edit needs at least one input image: drop or paste images here, "
                          "use “Add images”, set panel.inputs, or switch to Text to image.")
    if len(spec.inputs) > MAX_IMAGES:
        return "too-many-inputs", (f"Too many input images ({len(spec.inputs)}): the service "
                                   f"takes at most {MAX_IMAGES}. Remove some.")
    if spec.resolution is not None and spec.resolution not in MODELS.get(spec.model, ()):
        return "resolution", f"{spec.model} cannot make {spec.resolution} images."
    return None


def still_wrong(cause: str, spec: RunSpec) -> bool:
    """Whether the problem ``cause`` (see :class:`PanelMistake`) is still there in ``spec``
    (the panel's controls now); an unknown cause is."""
    if cause == "prompt":
        return not spec.prompt.strip()
    if cause == "inputs":
        return spec.action == "edit" and not spec.inputs
    if cause == "too-many-inputs":
        return spec.action == "edit" and len(spec.inputs) > MAX_IMAGES
    if cause == "resolution":
        return spec.resolution is not None and spec.resolution not in MODELS.get(spec.model, ())
    return True


def check_spec(spec: RunSpec) -> str | None:
    """Why ``spec`` cannot be sent (in words for the status area), or ``None``."""
    problem = problem_with(spec)
    return problem[1] if problem is not None else None


def cancelled_after_sending(task_id: str) -> str:
    """What a run cancelled after it was sent means, naming what the user can call."""
    return (f"Stopped waiting. Task {task_id} had already been sent: the service may still "
            "finish it and bill it. Its record in the history strip is looked up again by "
            f"Refresh, or call nb.task({task_id!r}) (import nanobanana_widgets as nb).")


def outcome_messages(run: PanelRun) -> list[tuple[Level, str]]:
    """``(level, text)`` messages that tell how ``run`` ended, in the order to show them."""
    if isinstance(run.error, PanelMistake):
        return [("error", str(run.error))]
    if run.status == "done" and run.result is not None:
        n = len(run.result.images)
        asked = run.spec.count
        text = f"Run #{run.number}: {n} image{'s' if n != 1 else ''} ready"
        if n < asked:
            text += f" ({asked - n} of {asked} failed; only successes are billed)"
        text += f" in {run.elapsed:.1f} s."
        out: list[tuple[Level, str]] = [
            ("warning", f"Run #{run.number}: image {t.image.index + 1} could not be shown: "
                        f"{t.error}") for t in run.thumbs if t.error]
        return [*out, ("success", text)]
    if run.status == "cancelled":
        if run.task is not None:
            return [("warning", f"Run #{run.number} cancelled. "
                                + cancelled_after_sending(run.task.id))]
        return [("info", f"Run #{run.number} cancelled before it was sent; nothing was "
                         "billed.")]
    message = describe_error(run.error) if run.error is not None else "unknown error"
    return [("error", f"Run #{run.number} failed: {message}")]


RunFactory = Callable[[int, RunSpec, Callable[["PanelRun"], None]], "PanelRun"]
"""``make_run(number, spec, on_finish)``: a new run (with its row)."""


class RunController:
    """Starts, checks and tracks a panel's runs and runs its background jobs.

    ``client()`` gives the client at the moment a run starts; ``on_started(run)`` and
    ``on_finished(run)`` (in the worker thread, before ``run.wait()`` returns) let the
    panel show them; ``report(error)`` receives the failure of a background job.
    """

    def __init__(self, make_run: RunFactory, *, client: Callable[[], Client],
                 on_started: Callable[[PanelRun], object],
                 on_finished: Callable[[PanelRun], object],
                 report: Callable[[BaseException], object], max_workers: int = 8) -> None:
        self._make_run = make_run
        self._client = client
        self._on_started = on_started
        self._on_finished = on_finished
        self._report = report
        self._lock = threading.RLock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="nbw-panel")
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self._numbers = itertools.count(1)
        self._runs: list[PanelRun] = []
        self._results: list[Result] = []
        self.closed = False

    @property
    def runs(self) -> list[PanelRun]:
        """Every run started, oldest first."""
        with self._lock:
            return list(self._runs)

    @property
    def results(self) -> list[Result]:
        """Every result received, oldest first."""
        with self._lock:
            return list(self._results)

    def result_of(self, image: GeneratedImage) -> Result | None:
        """The result ``image`` belongs to, when it is one of these runs'."""
        with self._lock:
            return next((r for r in self._results if image in r.images), None)

    def start(self, spec: RunSpec) -> PanelRun:
        """A new run of ``spec``, started in the pool; a mistake found before sending
        gives a run that failed and was never sent (nor shown, nor numbered: its
        ``number`` is 0 and the next run takes the number it would have had)."""
        problem = problem_with(spec)
        if problem is None and self.closed:
            problem = ("closed", "This panel was closed; make a new one.")
        if problem is not None:
            run = self._make_run(0, spec, self._finished)
            run.close()  # never shown: no progress row for a run that did not start
            run.refuse(PanelMistake(problem[1], problem[0]))
            return run
        with self._lock:
            run = self._make_run(next(self._numbers), spec, self._finished)
            self._runs.append(run)
        self._on_started(run)
        self.submit(run.execute, self._client)
        return run

    def _finished(self, run: PanelRun) -> None:
        if run.status == "done" and run.result is not None:
            with self._lock:
                self._results.append(run.result)
        self._on_finished(run)

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args)`` in the pool; an exception it raises goes to ``report``."""
        def job() -> None:
            try:
                fn(*args)
            except Exception as exc:  # never lost: shown in the status area
                _log.debug("panel job failed", exc_info=True)
                self._report(exc)

        future = self._executor.submit(job)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def wait_idle(self, timeout: float | None = None) -> None:
        """Block until every job has finished; :class:`WaitTimeoutError` at ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = set(self._futures)
            if not pending:
                return
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            _done, not_done = concurrent.futures.wait(pending, timeout=remaining)
            if not_done and deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"{len(not_done)} panel job(s) still running after {timeout} s."
                )

    def close(self) -> None:
        """Cancel the runs in flight, stop the pool and close the runs' rows."""
        self.closed = True
        runs = self.runs
        for run in runs:
            run.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for run in runs:
            run.close()
