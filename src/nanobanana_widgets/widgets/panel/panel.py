"""``PromptPanel``: an interactive, non-blocking image studio in one notebook cell.

The panel is an ``ipywidgets.VBox``: a prompt box, a generate/edit toggle, an image
picker, model / count / aspect ratio / resolution, a Generate button, a progress row per
run, result thumbnails and a status area. Clicks return at once; the work (normalising
inputs, submitting, waiting, downloading thumbnails) runs in a thread pool through
:class:`~nanobanana_widgets.widgets.panel.run.PanelRun`. The panel holds no HTTP code: it
calls ``client.submit(...)`` and ``task.wait(...)`` like a user would. Every request is
recorded in a :class:`~nanobanana_widgets.store.History` (the default one unless told
otherwise), whose newest records the panel shows in a
:class:`~nanobanana_widgets.widgets.panel.strip.HistoryStrip`.

This module is the façade; each concern has its module: ``controls`` (the parameters as
traitlets, their widgets and rules), ``inputs`` (edit inputs and uploads), ``runs`` (the
run controller, no widgets), ``run`` (one run and its row), ``gallery`` (result cards,
viewer, saving), ``status`` (messages), ``records`` (Load / Use as input from the history),
``strip`` (the history strip) and ``keys`` (Ctrl/Cmd+Enter). Every widget value that
background threads change goes through the panel's one
:class:`~nanobanana_widgets.widgets._ui.Painter`.

Widget state holds only small JPEG thumbnails (never full-size images), so saved
notebooks stay light. Every user-supplied string that reaches HTML is escaped.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nanobanana_widgets.render.panel import SHORTCUT_HINT_HTML, TITLE_HTML
from nanobanana_widgets.render.static import static_frame, static_styles
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.session import choose_history, default_client
from nanobanana_widgets.store import History, HistoryProblem, Record
from nanobanana_widgets.widgets._static import StaticRendition
from nanobanana_widgets.widgets._ui import (
    Painter,
    Ticker,
    ViewSync,
    close_deep,
    guarded,
    weak_callback,
)
from nanobanana_widgets.widgets.panel.controls import CONTROL_NAMES, Controls, ControlState
from nanobanana_widgets.widgets.panel.gallery import Gallery
from nanobanana_widgets.widgets.panel.inputs import (
    InputMethods,
    Inputs,
)
from nanobanana_widgets.widgets.panel.keys import SubmitKeys
from nanobanana_widgets.widgets.panel.records import RecordLoader
from nanobanana_widgets.widgets.panel.run import PanelRun, RowModels, RunRows
from nanobanana_widgets.widgets.panel.runs import (
    PanelMistake,
    RunController,
    RunSpec,
    outcome_messages,
    still_wrong,
)
from nanobanana_widgets.widgets.panel.static import panel_static_body
from nanobanana_widgets.widgets.panel.status import Level, StatusArea
from nanobanana_widgets.widgets.panel.strip import HistoryStrip, RecentThumbs

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client

__all__ = ["ACTION_WORDS", "PromptPanel"]

ACTION_WORDS = {"generate": "Generate", "edit": "Apply edit"}
"""The action button's words in each mode (the mode toggle says "Text to image" and
"Edit images", so no two buttons share a name)."""

_DEFAULT_KEYS = frozenset({*CONTROL_NAMES, "inputs"})



class PromptPanel(w.VBox, ControlState, InputMethods):  # type: ignore[misc]
    """An image studio in one cell: type a prompt, click Generate, edit, iterate.

    ``PromptPanel(client=None, history=None, *, save_dir="nanobanana-images", **defaults)``;
    ``defaults`` may set ``prompt``, ``action``, ``model``, ``count``, ``aspect_ratio``,
    ``resolution`` and ``inputs``. Without ``client`` the package's default client is used
    (made at the first run).

    Every request the panel makes is recorded in a :class:`~nanobanana_widgets.History`:
    ``history`` itself when one is given, else the package's default history
    (``.nanobanana/`` under the working directory); ``history=False`` (or the environment
    variable ``NANOBANANA_HISTORY=0`` with ``history=None``) records nothing. The panel
    shows the newest records in a strip (``panel.history_strip``) whose "Load" puts a
    record back into the controls (:meth:`load_record`) and whose "Use as input" continues
    from its image (:meth:`use_record_as_input`; the "+" beside it adds instead).

    The status area shows the current state: a message about a mistake folds away once it
    is fixed, every message folds away when the next run starts, and each can be
    dismissed (``panel.messages`` keeps them all, ``panel.shown_messages`` the ones shown).
    Only the newest dozen result cards stay live; older results stay in ``panel.results``
    and in the history strip.

    Everything visible is reachable from Python: ``panel.prompt``, ``panel.action``,
    ``panel.model``, ``panel.count``, ``panel.aspect_ratio``, ``panel.resolution``,
    ``panel.inputs``, ``panel.run()``, ``panel.results``, ``panel.runs``,
    ``panel.messages``, ``panel.history`` and ``panel.history_strip`` (refreshed after each
    run of this panel; ``panel.refresh_history()`` or its Refresh button for records other
    processes wrote). The six parameters are traitlets kept in step with the controls both
    ways: ``panel.observe(f, names="model")`` and ``traitlets.link`` work on them.
    """

    _closed = False
    _history_attached = False

    def __init__(
        self,
        client: Client | None = None,
        history: History | bool | None = None,
        *,
        save_dir: str | Path = "nanobanana-images",
        max_workers: int = 8,
        **defaults: Any,
    ) -> None:
        unknown = sorted(set(defaults) - _DEFAULT_KEYS)
        if unknown:
            raise TypeError(
                f"PromptPanel got unknown keyword(s): {', '.join(unknown)}. "
                f"Known defaults: {', '.join(sorted(_DEFAULT_KEYS))}."
            )
        self._client = client
        self._history: History | None = choose_history(history, client, owner="PromptPanel(history")
        self._lock = threading.RLock()
        self._closed = False
        self.css_class = f"nbw-panel-{uuid.uuid4().hex[:10]}"
        if client is not None:
            _ = self.client  # attach the history now: every request is recorded
        self._build_parts(Path(save_dir), max_workers)
        super().__init__(children=self._layout_children(),
                         layout=w.Layout(width="100%", max_width="100%", overflow="hidden"))
        self.add_class("nbw-panel")
        self.add_class(self.css_class)
        self.generate_button.on_click(self._guard(lambda _b: self.run()))
        self.observe(self._guard(self._on_action_change), names="action")
        self.observe(self._guard(lambda _c: self._recheck()),
                     names=["prompt", "action", "model", "resolution"])
        self._on_action_change(None)
        for key in CONTROL_NAMES:  # in an order where each is valid (model before resolution)
            if key in defaults:
                setattr(self, key, defaults[key])
        if "inputs" in defaults:
            self.inputs = defaults["inputs"]
        self._build_history_strip()
        self._problem_callback = weak_callback(self._on_history_problem)
        if self._history is not None:  # what the history could not do is said here too
            self._history.on_problem(self._problem_callback)
        self.static = StaticRendition(self, self.static_html)
        """The copy of the panel a saved notebook shows (:meth:`static_html`)."""

    # --- building ----------------------------------------------------------------------

    def _build_parts(self, save_dir: Path, max_workers: int) -> None:
        painter = self._painter = Painter()
        row_models = RowModels()
        self._status = StatusArea(painter)
        self._controls = Controls(self, notify=self.notify)
        self._runner = RunController(
            lambda number, spec, on_finish: PanelRun(number, spec, on_finish=on_finish,
                                                     painter=painter, shared=row_models),
            client=lambda: self.client, on_started=self._run_started,
            on_finished=self._run_finished, report=self._report, max_workers=max_workers)
        self._inputs = Inputs(painter, notify=self.notify, run_job=self._runner.submit,
                              editing=lambda: self.action == "edit",
                              on_change=self._recheck)
        self._gallery = Gallery(painter, save_dir=save_dir, on_use=self._use_thumb,
                                on_again=self._run_again_image, run_job=self._runner.submit,
                                notify=self.notify)
        self._clock = Ticker(lambda: self._tick() and not self._closed, interval=1.0,
                             name="nbw-panel-clock")
        self._rows = RunRows(painter, lambda: self._runner.runs)
        self._strip_thumbs = RecentThumbs()
        self._loader = RecordLoader(self, self._controls, self._inputs, self._history,
                                    notify=self.notify, run_job=self._runner.submit,
                                    extra_thumb=self._strip_thumbs.get)
        controls, inputs = self._controls, self._inputs
        self.prompt_box = controls.prompt_box
        self.action_toggle = controls.action_toggle
        self.model_dropdown = controls.model_dropdown
        self.count_slider = controls.count_slider
        self.aspect_dropdown = controls.aspect_dropdown
        self.resolution_dropdown = controls.resolution_dropdown
        self.controls = controls.box
        self.upload = inputs.upload
        self.clear_inputs_button = inputs.clear_button
        self.inputs_hint = inputs.hint
        self.inputs_box = inputs.box
        self.inputs_area = inputs.area
        self.status_area = self._status.widget
        self.runs_box = self._rows.box
        self.viewer = self._gallery.viewer
        self.results_box = self._gallery.box
        self.title = w.HTML(TITLE_HTML)
        self.activity = self._rows.activity
        """The header's summary of the runs in flight (``2 running · 12 s``)."""
        self.shortcut = SubmitKeys(self._on_keys_submit, self._on_keys_prompt,
                                   on_file=self._on_file, on_refused=self._inputs.refused,
                                   panel_class=self.css_class,
                                   layout=w.Layout(width="0px", height="0px", overflow="hidden"))
        self.generate_button = w.Button(
            description=ACTION_WORDS["generate"], button_style="primary", icon="magic",
            tooltip="Run (Ctrl/Cmd+Enter in the prompt box)", layout=w.Layout(width="auto"),
        )
        self.generate_button.add_class("nbw-generate")
        self.shortcut_hint = w.HTML(SHORTCUT_HINT_HTML)
        self.history_box = w.VBox(layout=w.Layout(width="100%"))
        """Holds the history strip (hidden when the panel records no history)."""
        self.history_box.add_class("nbw-history-box")
        self.history_strip: HistoryStrip | None = None

    def _layout_children(self) -> list[w.Widget]:
        header = w.HBox([self.title, self.activity, self.shortcut, ViewSync(self)],
                        layout=w.Layout(align_items="center", width="100%"))
        header.add_class("nbw-gap")
        actions = w.HBox([self.generate_button, self.shortcut_hint],
                         layout=w.Layout(align_items="center", width="100%",
                                         flex_flow="row wrap"))
        actions.add_class("nbw-gap-l")
        return [header, self.prompt_box, self.controls, self.inputs_area, actions,
                self.status_area, self.runs_box, self.viewer, self.results_box,
                self.history_box]

    def _build_history_strip(self) -> None:
        if self._history is None:
            self.history_box.layout.display = "none"
            return
        self.history_strip = HistoryStrip(
            self._history, on_load=self.load_record, on_use=self.use_record_as_input,
            on_add=lambda record: self.use_record_as_input(record, add=True),
            on_error=lambda text: self.notify(text, "error"),
            extra_thumb=self._strip_thumbs.get, painter=self._painter,
            resume=self._resume_history, run_job=self._runner.submit,
        )
        self.history_box.children = (self.history_strip,)

    # --- inputs --------------------------------------------------------------------------

    # --- what the panel holds ------------------------------------------------------------

    @property
    def results(self) -> list[Result]:
        """Every result this panel received, oldest first."""
        return self._runner.results

    @property
    def runs(self) -> list[PanelRun]:
        """Every run started from this panel, oldest first."""
        return self._runner.runs

    @property
    def history(self) -> History | None:
        """The :class:`~nanobanana_widgets.store.History` recording this panel's requests
        (``None`` with ``history=False``).

        It is attached to the panel's client (at once when a client was given, else at the
        first run), so every request is recorded.
        """
        return self._history

    @property
    def messages(self) -> list[str]:
        """Every status message so far, oldest first, as plain text (shown or not)."""
        return self._status.messages

    @property
    def shown_messages(self) -> list[str]:
        """The status messages shown up front now, newest first (the others are folded
        under "earlier messages" or were dismissed)."""
        return self._status.shown

    @property
    def save_dir(self) -> Path:
        """Where "Save" writes the full images (with their metadata)."""
        return self._gallery.save_dir

    @save_dir.setter
    def save_dir(self, value: str | Path) -> None:
        self._gallery.save_dir = Path(value)

    @property
    def client(self) -> Client:
        """The client runs go through (the package's default client unless one was given)."""
        with self._lock:
            if self._client is None:
                self._client = default_client()
            client = self._client
            if self._history is not None and not self._history_attached:
                self._history.attach(client)  # records every run (attach is idempotent)
                self._history_attached = True
            return client

    def notify(self, text: str, level: Level = "info", cause: str | None = None) -> None:
        """Show a message in the status area (plain text; it is escaped). ``cause`` names
        a mistake in the controls (``"prompt"``, ``"inputs"``, ...): the message folds
        away once it is fixed."""
        self._status.notify(text, level, cause)

    # --- the history ---------------------------------------------------------------------

    def refresh_history(self) -> None:
        """Read the history again into the strip (records of other processes appear).
        The strip's Refresh button also looks up the records still pending."""
        if self.history_strip is not None:
            self.history_strip.refresh()

    def _resume_history(self) -> None:
        """Look the history's pending records up (a background job of the strip)."""
        if self._history is not None:
            self._history.resume(self.client)

    def load_record(self, record: Record | int) -> None:
        """Put a history record's prompt, action, model, count, aspect ratio and resolution
        into the controls, and for an edit its stored input images into the inputs.

        ``record`` is a :class:`~nanobanana_widgets.store.Record` (``panel.history[-1]``)
        or a record id (the ``id N`` the strip shows). A click on Generate then sends the
        same request again. Values the controls cannot take are named in the status area.
        """
        self._loader.load(record)

    def use_record_as_input(self, record: Record | int, *, add: bool = False) -> None:
        """Continue from the (first) image of a history record that succeeded: it replaces
        the edit inputs (``add=True`` adds it to them instead) and the panel switches to
        Edit. The history's local copy is used when it has one, else the URL."""
        self._loader.use_as_input(record, add=add)

    # --- running -----------------------------------------------------------------------

    def run(self) -> PanelRun:
        """Start a run with the current controls and return its handle at once.

        A mistake found before sending (empty prompt, edit without inputs) gives a failed
        run that was not sent, with the reason in ``run.error`` and in the status area.
        """
        return self._runner.start(self._spec())

    def run_again(self, result: Result) -> PanelRun:
        """Send the request of an earlier result again (a new run, billed again)."""
        return self._runner.start(RunSpec.of(result))

    def wait_idle(self, timeout: float | None = None) -> None:
        """Block until every background job (runs, uploads, saves) has finished.

        Raises :class:`WaitTimeoutError` if some are still going at ``timeout``.
        """
        self._runner.wait_idle(timeout)

    def _run_started(self, run: PanelRun) -> None:
        """A run passed its checks: older messages fold away, its row and the clock show."""
        self._status.fold_all()
        self._rows.show()
        self._clock.start()
        self._tick()

    def _tick(self, now: float | None = None) -> bool:
        """The panel's clock (see :meth:`RunRows.tick`); whether a run is in flight."""
        return self._rows.tick(now)

    def _recheck(self) -> None:
        """Fold the messages about mistakes that the controls no longer have."""
        spec = self._spec()
        self._status.resolve(lambda cause: still_wrong(cause, spec))

    def _spec(self) -> RunSpec:
        editing = self.action == "edit"
        inputs = tuple((item.label, item.source) for item in self._inputs.items)
        return RunSpec(
            prompt=self.prompt, action=self.action, model=self.model, count=self.count,
            aspect_ratio=self.aspect_ratio, resolution=self.resolution,
            inputs=inputs if editing else (),
        )

    def _run_finished(self, run: PanelRun) -> None:
        """Called in the worker thread when a run ends: show its outcome."""
        try:
            self._show_outcome(run)
        except Exception as exc:  # never lost: a failure to show a result is shown too
            self.notify(f"Run #{run.number}: could not show the outcome: "
                        f"{describe_error(exc)}", "error")

    def _show_outcome(self, run: PanelRun) -> None:
        if run in self._runner.runs:
            self._rows.show()
        try:
            if run.status == "done" and run.result is not None:
                self._gallery.add(run.thumbs)
            cause = run.error.cause if isinstance(run.error, PanelMistake) else None
            for level, text in outcome_messages(run):
                self.notify(text, level, cause or None)
            self._tick()
        finally:
            if not isinstance(run.error, PanelMistake):
                self._refresh_strip_after(run)
            self.static.update()

    def static_html(self) -> str:
        """The panel as a saved notebook shows it: the status messages, the newest results
        (thumbnails with prompt and parameters, linked to full-size copies beside the
        notebook) and the history strip."""
        thumbs = [t for run in reversed(self._runner.runs) for t in run.thumbs]
        return static_frame(self.static.view_id, "panel",
                            panel_static_body(thumbs, self._status.static_html(),
                                              self.history_strip),
                            styles=static_styles("panel"))

    # --- handlers -----------------------------------------------------------------------

    def _refresh_strip_after(self, run: PanelRun) -> None:
        """Show the finished run in the history strip (its record is written by now)."""
        if self.history_strip is None or self._closed:
            return
        try:
            jpeg = next((t.jpeg for t in run.thumbs if t.jpeg is not None), None)
            if run.status == "done" and jpeg is not None and run.result and run.result.task_id:
                self._strip_thumbs.remember(run.result.task_id, jpeg)
            self.history_strip.refresh()
        except Exception as exc:  # the run's outcome is shown; say why the strip is not
            self.notify(f"The history strip could not be updated: {describe_error(exc)}",
                        "warning")

    # --- handlers -----------------------------------------------------------------------

    def _report(self, exc: BaseException) -> None:
        self.notify(describe_error(exc), "error")

    def _guard(self, handler: Any) -> Any:
        """Wrap a widget callback so any exception shows in the status area."""
        return guarded(handler, self._report)

    def _on_keys_submit(self, value: str | None) -> None:
        try:
            if value is not None:
                self.prompt = value
            self.run()
        except Exception as exc:
            self._report(exc)

    def _on_keys_prompt(self, value: str) -> None:
        """The prompt box's text, sent by the front end just before a Generate click."""
        self.prompt = value

    def _on_file(self, name: str, data: bytes, how: str) -> None:
        """An image dropped on the panel or pasted into it: checked and added in the pool;
        the panel switches to Edit images (what a dropped image is for)."""
        self.action = "edit"
        self._runner.submit(self._inputs.ingest, [(name, data)])

    def _on_action_change(self, _change: Any) -> None:
        editing = self.action == "edit"
        self.generate_button.description = ACTION_WORDS[self.action]
        self.generate_button.icon = "pencil" if editing else "magic"
        self._inputs.dim(not editing)

    def _run_again_image(self, image: GeneratedImage) -> None:
        result = self._runner.result_of(image)
        if result is None:
            raise ValueError("the result of this image is no longer known")
        self.run_again(result)

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Cancel the runs in flight, stop the workers and close every widget."""
        if self._closed:
            return
        self._closed = True
        if "_runner" not in self.__dict__:  # __init__ refused its arguments
            super().close()
            return
        self._clock.stop()
        self._runner.close()
        if self._history is not None:
            self._history.remove_problem_callback(self._problem_callback)
        children = list(self.children)
        super().close()
        for child in children:
            close_deep(child)

    def _on_history_problem(self, problem: HistoryProblem) -> None:
        """The history could not do something (a record not saved yet, an image not kept):
        the status area says so, not only the log."""
        level: Level = "success" if problem.kind == "saved" else "warning"
        self.notify(f"History: {problem.message}", level)

    def __repr__(self) -> str:
        return (
            f"PromptPanel(action={self.action!r}, model={self.model!r}, "
            f"inputs={len(self._inputs.items)}, runs={len(self._runner.runs)}, "
            f"results={len(self._runner.results)})"
        )
