"""``PromptPanel``: an interactive, non-blocking image studio in one notebook cell.

The panel is an ``ipywidgets.VBox``: a prompt box, a generate/edit toggle, an image
picker, model / count / aspect ratio / resolution, a Generate button, a progress row per
run, result thumbnails and a status area. Clicks return at once; the work (normalising
inputs, submitting, waiting, downloading thumbnails) runs in a thread pool through
:class:`~nanobanana_widgets.panel_run.PanelRun`. The panel holds no HTTP code: it calls
``client.submit(...)`` and ``task.wait(...)`` like a user would. Every request is recorded in a
:class:`~nanobanana_widgets.history.History` (the default one unless told otherwise), whose
newest records the panel shows in a :class:`~nanobanana_widgets.history_strip.HistoryStrip`.

Widget state holds only small JPEG thumbnails (never full-size images), so saved
notebooks stay light. Every user-supplied string that reaches HTML is escaped.
"""

from __future__ import annotations

import base64
import concurrent.futures
import html
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import ipywidgets as w

from nanobanana_widgets.images import thumbnail
from nanobanana_widgets.service.errors import (
    ImageInputError,
    InvalidParameterError,
    NanoBananaError,
    WaitTimeoutError,
    describe_error,
)
from nanobanana_widgets.service.models import (
    ACTIONS,
    ASPECT_RATIOS,
    DEFAULT_MODEL,
    DEFAULT_RESOLUTION,
    MAX_COUNT,
    MAX_IMAGES,
    MIN_COUNT,
    MODELS,
)
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.session import choose_history, default_client
from nanobanana_widgets.store import History, Record
from nanobanana_widgets.widgets._ui import ViewSync
from nanobanana_widgets.widgets.panel.keys import SubmitKeys
from nanobanana_widgets.widgets.panel.run import PanelRun, RunSpec, Thumb
from nanobanana_widgets.widgets.panel.strip import THUMB_SIDE as STRIP_THUMB_SIDE
from nanobanana_widgets.widgets.panel.strip import HistoryStrip, record_summary

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client

__all__ = ["PromptPanel"]

_log = logging.getLogger(__name__)

INPUT_THUMB_SIDE = 112
"""Longest side, in pixels, of the input thumbnails kept in widget state."""

_MAX_MESSAGES_SHOWN = 3
_MAX_MESSAGES_KEPT = 200
_MAX_FINISHED_ROWS = 3
"""Finished runs whose progress rows stay visible (runs in flight always are)."""
_MAX_STRIP_THUMBS = 64
"""Thumbnails of this panel's results kept for the history strip until the history has its own."""

Level = Literal["info", "success", "warning", "error"]

_DEFAULT_KEYS = frozenset({"prompt", "action", "model", "count", "aspect_ratio", "resolution",
                           "inputs"})


@dataclass(frozen=True)
class _Input:
    """One edit input: a label for people, the source for the client, a small thumbnail."""

    label: str
    source: Any
    jpeg: bytes


def _jpeg_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _label_for(source: Any, index: int) -> str:
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.startswith("data:"):
            return f"image {index + 1}"
        if text.lower().startswith(("http://", "https://")):
            return text.rsplit("/", 1)[-1][:60] or text[:60]
        return Path(text).name or text
    if isinstance(source, GeneratedImage):
        return f"result {source.task_id[:8]}" + (f" #{source.index + 1}" if source.index else "")
    if isinstance(source, Result):
        return f"result {source.task_id[:8]}"
    if isinstance(source, dict) and isinstance(source.get("name"), str):
        return str(source["name"])
    if hasattr(source, "mode") and hasattr(source, "size"):
        return f"PIL image {index + 1}"
    return f"{type(source).__name__} {index + 1}"


class PromptPanel(w.VBox):  # type: ignore[misc]
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
    record back into the controls (:meth:`load_record`) and whose "Use as input" adds its
    image to the edit inputs (:meth:`use_record_as_input`).

    Everything visible is reachable from Python: ``panel.prompt``, ``panel.action``,
    ``panel.model``, ``panel.count``, ``panel.aspect_ratio``, ``panel.resolution``,
    ``panel.inputs``, ``panel.run()``, ``panel.results``, ``panel.runs``,
    ``panel.messages``, ``panel.history`` and ``panel.history_strip`` (refreshed after each
    run of this panel; ``panel.refresh_history()`` or its Refresh button for records other
    processes wrote).
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
        self.save_dir = Path(save_dir)
        self._lock = threading.RLock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="nbw-panel"
        )
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self._numbers = itertools.count(1)
        self._runs: list[PanelRun] = []
        self._results: list[Result] = []
        self._inputs: list[_Input] = []
        self._messages: list[tuple[Level, str]] = []
        self._strip_thumbs: dict[str, bytes] = {}
        self._load_generation = 0
        self._loading_record = False
        self._closed = False
        self.css_class = f"nbw-panel-{uuid.uuid4().hex[:10]}"
        if client is not None:
            _ = self.client  # attach the history now: every request is recorded

        self._build_widgets()
        super().__init__(children=self._layout_children(),
                         layout=w.Layout(width="100%", max_width="100%", overflow="hidden"))
        self.add_class("nbw-panel")
        self.add_class(self.css_class)

        # Apply the defaults in an order where each is valid (model before resolution).
        for key in ("action", "model", "resolution", "count", "aspect_ratio", "prompt"):
            if key in defaults:
                setattr(self, key, defaults[key])
        if "inputs" in defaults:
            self.inputs = defaults["inputs"]
        self._build_history_strip()
        self._render_status()

    # --- building ----------------------------------------------------------------------

    def _build_widgets(self) -> None:
        full = w.Layout(width="100%")
        initial = {"description_width": "initial"}

        self.title = w.HTML('<span class="nbw-title">Nano Banana</span>')
        self.shortcut = SubmitKeys(self._on_keys_submit, self._on_keys_prompt,
                                   panel_class=self.css_class,
                               layout=w.Layout(width="0px", height="0px", overflow="hidden"))
        self.prompt_box = w.Textarea(
            placeholder="Describe the image, or the change to make in edit mode…  "
                        "(Ctrl/Cmd+Enter to run)",
            rows=3, layout=w.Layout(width="100%"),
        )
        self.prompt_box.add_class("nbw-prompt")
        self.action_toggle = w.ToggleButtons(
            options=[("Generate", "generate"), ("Edit", "edit")], value="generate",
            style={"button_width": "auto"},
            tooltips=["Make new images from the prompt",
                      "Change the input images following the prompt"],
            layout=w.Layout(width="auto"),
        )
        self.model_dropdown = w.Dropdown(
            options=list(MODELS), value=DEFAULT_MODEL, description="Model",
            style=initial, layout=w.Layout(width="auto", min_width="230px"),
        )
        self.count_slider = w.IntSlider(
            value=1, min=MIN_COUNT, max=MAX_COUNT, description="Count",
            style=initial, layout=w.Layout(width="190px"),
        )
        self.aspect_dropdown = w.Dropdown(
            options=["auto", *ASPECT_RATIOS], value="auto",
            description="Aspect", style=initial, layout=w.Layout(width="150px"),
            tooltip="auto: 1:1 when generating, the first input's shape when editing",
        )
        self.resolution_dropdown = w.Dropdown(
            options=list(MODELS[DEFAULT_MODEL]), value=DEFAULT_RESOLUTION,
            description="Resolution", style=initial, layout=w.Layout(width="160px"),
        )
        self.upload = w.FileUpload(
            accept="image/*", multiple=True, description="Add images",
            tooltip="Choose one or more input images for edit mode",
            layout=w.Layout(width="auto"),
        )
        # The upload button's own label counts the files of its last pick, which the panel
        # takes into its inputs at once (so it would say "(0)"); panel.css shows the
        # number of input images instead, chosen by a class (see _render_upload_label).
        self.upload.add_class("nbw-upload")
        self.clear_inputs_button = w.Button(
            description="Clear", icon="trash", tooltip="Remove every input image",
            layout=w.Layout(width="auto"),
        )
        self.inputs_hint = w.HTML(layout=w.Layout(width="auto"))
        self.inputs_box = w.Box(layout=w.Layout(
            display="flex", flex_flow="row wrap", width="100%",
        ))
        self.inputs_box.add_class("nbw-gap")
        inputs_bar = w.HBox([self.upload, self.clear_inputs_button, self.inputs_hint],
                            layout=w.Layout(flex_flow="row wrap", align_items="center",
                                            width="100%"))
        inputs_bar.add_class("nbw-gap")
        self.inputs_area = w.VBox([inputs_bar, self.inputs_box], layout=full)
        self.inputs_area.add_class("nbw-inputs")
        self.generate_button = w.Button(
            description="Generate", button_style="primary", icon="magic",
            tooltip="Run (Ctrl/Cmd+Enter in the prompt box)", layout=w.Layout(width="auto"),
        )
        self.generate_button.add_class("nbw-generate")
        self.shortcut_hint = w.HTML('<span class="nbw-hint">Ctrl/Cmd+Enter in the prompt box '
                                    "also runs</span>")
        self.status_area = w.HTML(layout=full)
        self.status_area.add_class("nbw-status")
        self.runs_box = w.VBox(layout=full)
        self.runs_box.add_class("nbw-runs")
        self.viewer = w.VBox(layout=w.Layout(width="100%", display="none"))
        self.results_box = w.Box(layout=w.Layout(
            display="flex", flex_flow="row wrap", width="100%", align_items="flex-start",
        ))
        self.results_box.add_class("nbw-results")
        self.results_box.add_class("nbw-gap-l")
        self.history_box = w.VBox(layout=w.Layout(width="100%"))
        """Holds the history strip (hidden when the panel records no history)."""
        self.history_box.add_class("nbw-history-box")
        self.history_strip: HistoryStrip | None = None

        self.controls = w.Box(
            [self.action_toggle, self.model_dropdown, self.count_slider, self.aspect_dropdown,
             self.resolution_dropdown],
            layout=w.Layout(display="flex", flex_flow="row wrap", align_items="center",
                            width="100%"),
        )
        self.controls.add_class("nbw-gap-l")

        self.generate_button.on_click(self._guard(self._on_generate_click))
        self.clear_inputs_button.on_click(self._guard(lambda _b: self.clear_inputs()))
        self.model_dropdown.observe(self._guard(self._on_model_change), names="value")
        self.action_toggle.observe(self._guard(self._on_action_change), names="value")
        self.upload.observe(self._guard(self._on_upload), names="value")
        self._on_action_change(None)

    def _layout_children(self) -> list[w.Widget]:
        header = w.HBox([self.title, self.shortcut, ViewSync(self)],
                        layout=w.Layout(align_items="center", width="100%"))
        actions = w.HBox([self.generate_button, self.shortcut_hint],
                         layout=w.Layout(align_items="center", width="100%",
                                         flex_flow="row wrap"))
        actions.add_class("nbw-gap-l")
        return [header, self.prompt_box, self.controls, self.inputs_area, actions,
                self.status_area, self.runs_box, self.viewer, self.results_box,
                self.history_box]

    # --- properties mirroring the controls ----------------------------------------------

    @property
    def prompt(self) -> str:
        """The text in the prompt box."""
        return str(self.prompt_box.value)

    @prompt.setter
    def prompt(self, value: str) -> None:
        if not isinstance(value, str):
            raise InvalidParameterError("prompt", value, None, hint="a string")
        self.prompt_box.value = value

    @property
    def action(self) -> str:
        """``"generate"`` or ``"edit"``."""
        return str(self.action_toggle.value)

    @action.setter
    def action(self, value: str) -> None:
        if value not in ACTIONS:
            raise InvalidParameterError("action", value, ACTIONS)
        self.action_toggle.value = value

    @property
    def model(self) -> str:
        """The model name (any of ``models.MODELS``, ``:official`` variants included)."""
        return str(self.model_dropdown.value)

    @model.setter
    def model(self, value: str) -> None:
        if value not in MODELS:
            raise InvalidParameterError("model", value, tuple(MODELS))
        self.model_dropdown.value = value

    @property
    def count(self) -> int:
        """How many images per run (1–4)."""
        return int(self.count_slider.value)

    @count.setter
    def count(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not (
            MIN_COUNT <= value <= MAX_COUNT
        ):
            raise InvalidParameterError("count", value, tuple(range(MIN_COUNT, MAX_COUNT + 1)))
        self.count_slider.value = value

    @property
    def aspect_ratio(self) -> str | None:
        """The aspect ratio, or ``None`` for the service's default ("auto")."""
        value = self.aspect_dropdown.value
        return None if value in (None, "auto") else str(value)

    @aspect_ratio.setter
    def aspect_ratio(self, value: str | None) -> None:
        if value is None:
            value = "auto"
        if value != "auto" and value not in ASPECT_RATIOS:
            raise InvalidParameterError("aspect_ratio", value, ("auto", *ASPECT_RATIOS))
        self.aspect_dropdown.value = value

    @property
    def resolution(self) -> str:
        """The resolution; only what the chosen model supports is offered."""
        return str(self.resolution_dropdown.value)

    @resolution.setter
    def resolution(self, value: str) -> None:
        allowed = MODELS[self.model]
        if value not in allowed:
            raise InvalidParameterError(
                "resolution", value, allowed,
                hint=f"a resolution that {self.model} supports; nano-banana-2, "
                "nano-banana-2.1 and nano-banana-pro go up to 4K",
            )
        self.resolution_dropdown.value = value

    @property
    def inputs(self) -> list[Any]:
        """The edit inputs, as given (paths, PIL images, results, uploaded files as dicts).

        Setting it replaces them; every item is checked (decoded into a thumbnail) and an
        unusable one is left out with a message in the status area naming it.
        """
        with self._lock:
            return [item.source for item in self._inputs]

    @inputs.setter
    def inputs(self, sources: Any) -> None:
        if sources is None:
            sources = []
        elif not isinstance(sources, (list, tuple)):
            sources = [sources]
        items = self._make_inputs(list(enumerate(sources)))
        with self._lock:
            self._inputs = items
        self._render_inputs()

    def add_inputs(self, *sources: Any) -> None:
        """Add input images (as for :attr:`inputs`) after the ones already there."""
        with self._lock:
            start = len(self._inputs)
        items = self._make_inputs([(start + i, s) for i, s in enumerate(sources)])
        with self._lock:
            self._inputs.extend(items)
        self._render_inputs()

    def clear_inputs(self) -> None:
        """Remove every input image."""
        with self._lock:
            self._inputs = []
        self._render_inputs()

    def remove_input(self, index: int) -> None:
        """Remove the input at ``index``."""
        with self._lock:
            del self._inputs[index]
        self._render_inputs()

    @property
    def results(self) -> list[Result]:
        """Every result this panel received, oldest first."""
        with self._lock:
            return list(self._results)

    @property
    def runs(self) -> list[PanelRun]:
        """Every run started from this panel, oldest first."""
        with self._lock:
            return list(self._runs)

    @property
    def history(self) -> History | None:
        """The :class:`~nanobanana_widgets.history.History` recording this panel's requests
        (``None`` with ``history=False``).

        It is attached to the panel's client (at once when a client was given, else at the
        first run), so every request is recorded.
        """
        return self._history

    @property
    def messages(self) -> list[str]:
        """The status messages shown so far, oldest first, as plain text."""
        with self._lock:
            return [text for _level, text in self._messages]

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

    # --- the history strip ---------------------------------------------------------------

    def _build_history_strip(self) -> None:
        if self._history is None:
            self.history_box.layout.display = "none"
            return
        self.history_strip = HistoryStrip(
            self._history, on_load=self.load_record, on_use=self.use_record_as_input,
            on_error=lambda text: self.notify(text, "error"), extra_thumb=self._strip_thumb,
        )
        self.history_box.children = (self.history_strip,)

    def _strip_thumb(self, record: Record) -> bytes | None:
        """A thumbnail this panel made for a record whose images the history has not
        stored yet (its downloads run in the background)."""
        with self._lock:
            return self._strip_thumbs.get(record.task_id or "")

    def _remember_strip_thumb(self, run: PanelRun) -> None:
        jpeg = next((t.jpeg for t in run.thumbs if t.jpeg is not None), None)
        if jpeg is None or run.result is None or not run.result.task_id:
            return
        small = thumbnail(jpeg, max_side=STRIP_THUMB_SIDE, format="JPEG", quality=70)
        with self._lock:
            self._strip_thumbs[run.result.task_id] = small
            while len(self._strip_thumbs) > _MAX_STRIP_THUMBS:
                del self._strip_thumbs[next(iter(self._strip_thumbs))]

    def refresh_history(self) -> None:
        """Read the history again into the strip (records of other processes appear)."""
        if self.history_strip is not None:
            self.history_strip.refresh()

    def _record(self, record: Record | int) -> Record:
        if isinstance(record, Record):
            return record
        if isinstance(record, int) and not isinstance(record, bool):
            if self._history is None:
                raise ValueError("This panel keeps no history (history=False); pass a Record.")
            return self._history.get(record)
        raise TypeError(f"expected a history Record or a record id, not {type(record).__name__}")

    def load_record(self, record: Record | int) -> None:
        """Put a history record's prompt, action, model, count, aspect ratio and resolution
        into the controls, and for an edit its stored input images into the inputs.

        ``record`` is a :class:`~nanobanana_widgets.history.Record` (``panel.history[-1]``)
        or a record id (the ``id N`` the strip shows). A click on Generate then sends the
        same request again. Values the controls cannot take are named in the status area.
        """
        rec = self._record(record)
        problems: list[str] = []
        self._loading_record = True
        try:
            if rec.action in ACTIONS:
                self.action = rec.action
            else:
                problems.append(f"action {rec.action!r} is unknown here")
            if rec.model in MODELS:
                self.model = rec.model
            else:
                problems.append(f"model {rec.model!r} is unknown here; kept {self.model}")
            resolution = rec.resolution or DEFAULT_RESOLUTION
            if resolution in MODELS[self.model]:
                self.resolution = resolution
            else:
                problems.append(f"{self.model} cannot make {resolution} images; "
                                f"kept {self.resolution}")
            if MIN_COUNT <= rec.count <= MAX_COUNT:
                self.count = rec.count
            else:
                problems.append(f"count {rec.count} is outside {MIN_COUNT}–{MAX_COUNT}; "
                                f"kept {self.count}")
            if rec.aspect_ratio is None or rec.aspect_ratio in ASPECT_RATIOS:
                self.aspect_ratio = rec.aspect_ratio
            else:
                problems.append(f"aspect ratio {rec.aspect_ratio!r} is unknown here; "
                                f"kept {self.aspect_dropdown.value}")
            self.prompt = rec.prompt
        finally:
            self._loading_record = False
        with self._lock:
            self._load_generation += 1
            generation = self._load_generation
        extra = ""
        if rec.action == "edit":
            entries, missing = self._record_inputs(rec)
            problems.extend(missing)
            n = len(entries)
            extra = f", with its {n} input image{'s' if n != 1 else ''}"
            if all(jpeg is not None for _label, _source, jpeg in entries):
                self._set_loaded_inputs(generation, entries)
            else:  # some have no stored thumbnail (URLs): make them off the kernel's thread
                with self._lock:
                    self._inputs = []
                self._render_inputs()
                extra += " (loading…)"
                self._submit_job(self._set_loaded_inputs, generation, entries)
        verb = "Edit" if self.action == "edit" else "Generate"
        self.notify(f"Loaded id {rec.id} into the controls ({record_summary(rec)}){extra}. "
                    f"Click {verb} to run it again.", "info")
        for problem in problems:
            self.notify(f"Loading id {rec.id}: {problem}.", "warning")

    def _record_inputs(self, rec: Record) -> tuple[list[tuple[str, Any, bytes | None]],
                                                    list[str]]:
        """``(label, source, thumbnail)`` for each stored input, and what is missing."""
        entries: list[tuple[str, Any, bytes | None]] = []
        missing: list[str] = []
        for k, inp in enumerate(rec.inputs):
            label = f"id {rec.id} input {k + 1}"
            if inp.url is not None:
                entries.append((label, inp.url, inp.thumbnail))
            elif inp.path is not None and inp.path.is_file():
                entries.append((label, inp.path, inp.thumbnail))
            else:
                missing.append(f"{label} is missing from the history folder "
                               f"({self._history.folder if self._history else 'no history'}) "
                               "and was left out")
        return entries, missing

    def _set_loaded_inputs(self, generation: int,
                           entries: list[tuple[str, Any, bytes | None]]) -> None:
        items: list[_Input] = []
        for label, source, jpeg in entries:
            if jpeg is not None:
                items.append(_Input(label=label, source=source, jpeg=jpeg))
                continue
            item = self._make_input(label, source)
            if item is not None:
                items.append(item)
        with self._lock:
            if generation != self._load_generation:
                return  # another record was loaded meanwhile
            self._inputs = items
        self._render_inputs()

    def use_record_as_input(self, record: Record | int) -> None:
        """Add the (first) image of a history record that succeeded to the edit inputs and
        switch to Edit. The history's local copy is used when it has one, else the URL."""
        rec = self._record(record)
        if rec.status != "succeeded" or not rec.results:
            raise ValueError(f"id {rec.id} has no image to use as an input (it is {rec.status})")
        image = rec.results[0]
        source: Any = image.path if image.local else image.url
        label = f"id {rec.id} result"
        jpeg = image.thumbnail or self._strip_thumb(rec)
        if jpeg is not None:
            with self._lock:
                self._inputs.append(_Input(label=label, source=source, jpeg=jpeg))
            self._render_inputs()
        else:
            self._submit_job(self._add_labelled_inputs, [(label, source)])
        self.action = "edit"
        self.notify(f"Added the image of id {rec.id} as an input; switched to Edit.", "info")

    def _add_labelled_inputs(self, pairs: Sequence[tuple[str, Any]]) -> None:
        items = [item for label, source in pairs
                 if (item := self._make_input(label, source)) is not None]
        with self._lock:
            self._inputs.extend(items)
        self._render_inputs()

    # --- running -----------------------------------------------------------------------

    def run(self) -> PanelRun:
        """Start a run with the current controls and return its handle at once.

        A mistake found before sending (empty prompt, edit without inputs) gives a failed
        run that was not sent, with the reason in ``run.error`` and in the status area.
        """
        with self._lock:
            inputs = tuple((item.label, item.source) for item in self._inputs)
        spec = RunSpec(
            prompt=self.prompt, action=self.action, model=self.model, count=self.count,
            aspect_ratio=self.aspect_ratio, resolution=self.resolution,
            inputs=inputs if self.action == "edit" else (),
        )
        return self._start(spec)

    def run_again(self, result: Result) -> PanelRun:
        """Send the request of an earlier result again (a new run, billed again)."""
        req = result.request
        spec = RunSpec(
            prompt=req.prompt, action=req.action, model=req.model, count=req.count,
            aspect_ratio=req.aspect_ratio, resolution=req.resolution,
            inputs=tuple((f"input {i + 1}", url) for i, url in enumerate(req.image_urls)),
        )
        return self._start(spec)

    def _check(self, spec: RunSpec) -> str | None:
        if not spec.prompt.strip():
            return "Type a prompt first: the prompt box is empty."
        if spec.action == "edit" and not spec.inputs:
            return ("Edit needs at least one input image: add images with “Add images”, "
                    "set panel.inputs, or switch to Generate.")
        if len(spec.inputs) > MAX_IMAGES:
            return (f"Too many input images ({len(spec.inputs)}): the service takes at most "
                    f"{MAX_IMAGES}. Remove some.")
        if spec.resolution is not None and spec.resolution not in MODELS.get(spec.model, ()):
            return f"{spec.model} cannot make {spec.resolution} images."
        return None

    def _start(self, spec: RunSpec) -> PanelRun:
        number = next(self._numbers)
        run = PanelRun(number, spec, on_finish=self._run_finished)
        problem = self._check(spec)
        if problem is not None or self._closed:
            problem = problem or "This panel was closed; make a new one."
            run._finish("failed", _PanelMistake(problem))
            run.close()  # never shown: no progress row for a run that did not start
            return run
        with self._lock:
            self._runs.append(run)
        self._render_runs()
        factory: Callable[[], Client] = lambda: self.client  # noqa: E731
        self._submit_job(run.execute, factory)
        return run

    def _render_runs(self) -> None:
        """Progress rows, newest first: every run in flight and the last few finished."""
        with self._lock:
            shown: list[PanelRun] = []
            finished = 0
            for run in reversed(self._runs):
                if run.status in ("done", "failed", "cancelled"):
                    finished += 1
                    if finished > _MAX_FINISHED_ROWS:
                        continue
                shown.append(run)
            self.runs_box.children = tuple(run.row for run in shown)

    def _run_finished(self, run: PanelRun) -> None:
        """Called in the worker thread when a run ends: show its outcome."""
        try:
            self._show_outcome(run)
        except Exception as exc:  # never lost: a failure to show a result is shown too
            _log.debug("showing run #%d failed", run.number, exc_info=True)
            self.notify(f"Run #{run.number}: could not show the outcome: "
                        f"{describe_error(exc)}", "error")

    def _show_outcome(self, run: PanelRun) -> None:
        if run in self._runs:
            self._render_runs()
        if isinstance(run.error, _PanelMistake):
            self.notify(str(run.error), "error")
            return
        try:
            self._show_run_outcome(run)
        finally:
            self._refresh_strip_after(run)

    def _refresh_strip_after(self, run: PanelRun) -> None:
        """Show the finished run in the history strip (its record is written by now)."""
        if self.history_strip is None or self._closed:
            return
        try:
            if run.status == "done":
                self._remember_strip_thumb(run)
            self.history_strip.refresh()
        except Exception as exc:  # the run's outcome is shown; say why the strip is not
            _log.debug("refreshing the history strip failed", exc_info=True)
            self.notify(f"The history strip could not be updated: {describe_error(exc)}",
                        "warning")

    def _show_run_outcome(self, run: PanelRun) -> None:
        if run.status == "done" and run.result is not None:
            with self._lock:
                self._results.append(run.result)
            cards = [self._result_card(thumb) for thumb in run.thumbs]
            with self._lock:
                self.results_box.children = (*cards, *self.results_box.children)
            result = run.result
            n = len(result.images)
            asked = run.spec.count
            text = f"Run #{run.number}: {n} image{'s' if n != 1 else ''} ready"
            if n < asked:
                text += f" ({asked - n} of {asked} failed; only successes are billed)"
            text += f" in {run.elapsed:.1f} s."
            failed_thumbs = [t for t in run.thumbs if t.error]
            for thumb in failed_thumbs:
                self.notify(f"Run #{run.number}: image {thumb.image.index + 1} could not be "
                            f"shown: {thumb.error}", "warning")
            self.notify(text, "success")
        elif run.status == "cancelled":
            if run.task is not None:
                self.notify(f"Run #{run.number} cancelled. Task {run.task.id} had already been "
                            "sent: the service may still finish it and bill it.", "warning")
            else:
                self.notify(f"Run #{run.number} cancelled before it was sent; nothing was "
                            "billed.", "info")
        else:
            error = run.error
            message = describe_error(error) if error is not None else "unknown error"
            self.notify(f"Run #{run.number} failed: {message}", "error")

    # --- background jobs ----------------------------------------------------------------

    def _submit_job(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        def job() -> None:
            try:
                fn(*args)
            except Exception as exc:  # never lost: shown in the status area
                _log.debug("panel job failed", exc_info=True)
                self.notify(describe_error(exc), "error")

        future = self._executor.submit(job)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget_future)
        return future

    def _forget_future(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def wait_idle(self, timeout: float | None = None) -> None:
        """Block until every background job (runs, uploads, saves) has finished.

        Raises :class:`WaitTimeoutError` if some are still going at ``timeout``.
        """
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

    # --- handlers -----------------------------------------------------------------------

    def _guard(self, handler: Callable[..., Any]) -> Callable[..., None]:
        """Wrap a widget callback so any exception shows in the status area."""

        def guarded(*args: Any) -> None:
            try:
                handler(*args)
            except Exception as exc:
                _log.debug("panel callback failed", exc_info=True)
                self.notify(describe_error(exc), "error")

        return guarded

    def _on_generate_click(self, _button: Any = None) -> None:
        self.run()

    def _on_keys_submit(self, value: str | None) -> None:
        try:
            if value is not None and value != self.prompt_box.value:
                self.prompt_box.value = value
            self.run()
        except Exception as exc:
            self.notify(describe_error(exc), "error")

    def _on_keys_prompt(self, value: str) -> None:
        """The prompt box's text, sent by the front end just before a Generate click."""
        if value != self.prompt_box.value:
            self.prompt_box.value = value

    def _on_model_change(self, change: Any) -> None:
        model = self.model
        allowed = list(MODELS[model])
        current = self.resolution_dropdown.value
        if current in allowed:
            self.resolution_dropdown.options = allowed
            self.resolution_dropdown.value = current
            return
        self.resolution_dropdown.options = allowed
        self.resolution_dropdown.value = DEFAULT_RESOLUTION
        if self._loading_record:
            return  # load_record sets the resolution next and names any problem itself
        self.notify(
            f"{model} supports only {', '.join(allowed)}: resolution changed from {current} to "
            f"{DEFAULT_RESOLUTION}.", "warning",
        )

    def _on_action_change(self, _change: Any) -> None:
        editing = self.action == "edit"
        self.generate_button.description = "Edit" if editing else "Generate"
        self.generate_button.icon = "pencil" if editing else "magic"
        if editing:
            self.inputs_area.remove_class("nbw-dimmed")
        else:
            self.inputs_area.add_class("nbw-dimmed")
        self._render_inputs_hint()

    def _on_upload(self, change: Any) -> None:
        value = change["new"] if isinstance(change, dict) else change.new
        if not value:
            return
        files: list[tuple[str, bytes]] = []
        for i, entry in enumerate(value):
            name = str(_get(entry, "name") or f"upload {i + 1}")
            content = _get(entry, "content")
            data = bytes(content) if content is not None else b""
            files.append((name, data))
        # Drop the file contents from the widget state at once: the notebook stays small.
        self.upload.value = ()
        self._submit_job(self._ingest_uploads, files)

    def _ingest_uploads(self, files: list[tuple[str, bytes]]) -> None:
        with self._lock:
            start = len(self._inputs)
        sources = [(start + i, {"name": name, "content": data})
                   for i, (name, data) in enumerate(files)]
        items = self._make_inputs(sources)
        if items:
            with self._lock:
                self._inputs.extend(items)
            self._render_inputs()
            names = ", ".join(item.label for item in items)
            self.notify(f"Added {len(items)} input image{'s' if len(items) != 1 else ''}: "
                        f"{names}.", "info")

    def _make_inputs(self, sources: Iterable[tuple[int, Any]]) -> list[_Input]:
        """Check and thumbnail each source; report the unusable ones by name."""
        items: list[_Input] = []
        for index, source in sources:
            item = self._make_input(_label_for(source, index), source)
            if item is not None:
                items.append(item)
        return items

    def _make_input(self, label: str, source: Any) -> _Input | None:
        """One checked, thumbnailed input, or ``None`` (reported) when it is unusable."""
        try:
            if isinstance(source, Result):
                source = source.image
            jpeg = thumbnail(source, max_side=INPUT_THUMB_SIDE)
        except Exception as exc:
            problem = describe_error(exc)
            if not isinstance(exc, ImageInputError) or label not in problem:
                problem = f"Input image {label} cannot be used: {problem}"
            self.notify(problem, "error")
            return None
        return _Input(label=label, source=source, jpeg=jpeg)

    # --- rendering ----------------------------------------------------------------------

    def notify(self, text: str, level: Level = "info") -> None:
        """Show a message in the status area (plain text; it is escaped)."""
        with self._lock:
            self._messages.append((level, text))
            del self._messages[:-_MAX_MESSAGES_KEPT]
        self._render_status()

    def _render_status(self) -> None:
        with self._lock:
            shown = self._messages[-_MAX_MESSAGES_SHOWN:]
        if not shown:
            self.status_area.value = ""
            return
        parts = []
        for level, text in reversed(shown):
            parts.append(f'<div class="nbw-msg nbw-msg-{level}">{html.escape(text)}</div>')
        self.status_area.value = "".join(parts)

    def _render_upload_label(self, n: int) -> None:
        """Make the upload button read "Add images (n)" with n the number of inputs."""
        wanted = f"nbw-upload-n{n}" if n <= MAX_IMAGES else "nbw-upload-many"
        for name in list(self.upload._dom_classes):
            if name.startswith("nbw-upload-") and name != wanted:
                self.upload.remove_class(name)
        if wanted not in self.upload._dom_classes:
            self.upload.add_class(wanted)

    def _render_inputs_hint(self) -> None:
        with self._lock:
            n = len(self._inputs)
        self._render_upload_label(n)
        if self.action == "edit":
            text = (f"{n} input image{'s' if n != 1 else ''}" if n
                    else "Add at least one image to edit")
        else:
            text = (f"{n} input image{'s' if n != 1 else ''} (used in Edit mode)" if n
                    else "Input images are used in Edit mode")
        self.inputs_hint.value = f'<span class="nbw-hint">{html.escape(text)}</span>'

    def _render_inputs(self) -> None:
        with self._lock:
            items = list(self._inputs)
            old = list(self.inputs_box.children)
            self.inputs_box.children = tuple(
                self._input_card(i, item) for i, item in enumerate(items)
            )
        for card in old:
            _close_tree(card)
        self._render_inputs_hint()

    def _input_card(self, index: int, item: _Input) -> w.Widget:
        esc = html.escape
        label = item.label if len(item.label) <= 24 else item.label[:23] + "…"
        thumb = w.HTML(
            f'<img src="{_jpeg_uri(item.jpeg)}" alt="{esc(item.label, quote=True)}" '
            f'title="{esc(item.label, quote=True)}" '
            f'style="display:block;max-width:{INPUT_THUMB_SIDE}px;'
            f'max-height:{INPUT_THUMB_SIDE}px;margin:0 auto;border-radius:4px;">'
            f'<div class="nbw-hint" style="text-align:center;overflow-wrap:anywhere;">'
            f"{esc(label)}</div>"
        )
        remove = w.Button(description="Remove", icon="times", tooltip=f"Remove {item.label}",
                          layout=w.Layout(width="auto"))

        def on_remove(_b: Any, item: _Input = item) -> None:
            with self._lock:
                if item in self._inputs:
                    self._inputs.remove(item)
            self._render_inputs()

        remove.on_click(self._guard(on_remove))
        card = w.VBox([thumb, remove], layout=w.Layout(width=f"{INPUT_THUMB_SIDE + 16}px",
                                                       align_items="center"))
        card.add_class("nbw-input-card")
        return card

    def _result_card(self, thumb: Thumb) -> w.Widget:
        esc = html.escape
        image = thumb.image
        req = image.request
        prompt = " ".join((req.prompt if req is not None else image.prompt).split())
        short = prompt if len(prompt) <= 120 else prompt[:119] + "…"
        url = image.url
        is_link = url.lower().startswith(("http://", "https://"))
        if thumb.jpeg is not None:
            img = (f'<img src="{_jpeg_uri(thumb.jpeg)}" alt="{esc(short, quote=True)}" '
                   'style="display:block;max-width:100%;height:auto;margin:0 auto;'
                   'border-radius:4px;">')
            if is_link:
                img = (f'<a href="{esc(url, quote=True)}" target="_blank" '
                       f'rel="noopener noreferrer" title="Open the full-size image">{img}</a>')
        else:
            img = (f'<div class="nbw-msg nbw-msg-error">Could not show this image: '
                   f"{esc(thumb.error or '')}</div>")
        meta = [f"#{thumb.run_number}"]
        if req is not None:
            meta.append(req.model)
            if req.action == "edit":
                meta.append("edit")
            if req.aspect_ratio:
                meta.append(req.aspect_ratio)
            if req.resolution:
                meta.append(req.resolution)
        short_id = image.task_id if len(image.task_id) <= 12 else image.task_id[:8] + "…"
        meta.append(f"task {short_id}" + (f" #{image.index + 1}"
                                           if req is not None and req.count > 1 else ""))
        caption = w.HTML(
            f'{img}<div title="{esc(prompt, quote=True)}" '
            f'style="margin-top:4px;overflow-wrap:anywhere;">{esc(short)}</div>'
            f'<div class="nbw-hint" style="overflow-wrap:anywhere;" '
            f'title="task {esc(image.task_id, quote=True)}">{esc(" · ".join(meta))}</div>'
        )
        small = w.Layout(width="auto")
        use = w.Button(description="Use as input", icon="arrow-up", layout=small,
                       tooltip="Add this image to the edit inputs and switch to Edit")
        save = w.Button(description="Save", icon="download", layout=small,
                        tooltip=f"Save the full image with its metadata into {self.save_dir}")
        again = w.Button(description="Run again", icon="refresh", layout=small,
                         tooltip="Send the same request again (billed again)")
        buttons: list[w.Widget] = [use, save, again]
        if not is_link:
            opener = w.Button(description="Open", icon="expand", layout=small,
                              tooltip="Show the full-size image")
            opener.on_click(self._guard(lambda _b: self._open_full(image)))
            buttons.insert(0, opener)
        if thumb.jpeg is None:
            use.disabled = True
        use.on_click(self._guard(lambda _b: self._use_as_input(thumb)))
        save.on_click(self._guard(lambda _b: self._submit_job(self._save, image)))
        again.on_click(self._guard(lambda _b: self._run_again_image(image)))
        bar = w.Box(buttons, layout=w.Layout(display="flex", flex_flow="row wrap",
                                             width="100%"))
        bar.add_class("nbw-gap-s")
        card = w.VBox(
            [caption, bar],
            layout=w.Layout(width="272px", max_width="100%"),
        )
        card.add_class("nbw-result-card")
        return card

    def _use_as_input(self, thumb: Thumb) -> None:
        image = thumb.image
        label = _label_for(image, 0)
        jpeg = thumb.jpeg
        if jpeg is None:
            raise ImageInputError(label, "it could not be downloaded")
        small = thumbnail(jpeg, max_side=INPUT_THUMB_SIDE)
        with self._lock:
            self._inputs.append(_Input(label=label, source=image, jpeg=small))
        self._render_inputs()
        self.action = "edit"
        self.notify(f"Added {label} as an input; switched to Edit.", "info")

    def _run_again_image(self, image: GeneratedImage) -> None:
        with self._lock:
            result = next((r for r in self._results if image in r.images), None)
        if result is None:
            raise ValueError("the result of this image is no longer known")
        self.run_again(result)

    def _save(self, image: GeneratedImage) -> None:
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = image.save(self.save_dir)
        self.notify(f"Saved {path}.", "success")

    def _open_full(self, image: GeneratedImage) -> None:
        """Show the full image on demand; Close drops it from the widget state again."""
        src = image.url if image.url.startswith("data:image/") else ""
        if not src:
            raise ValueError("this image has no viewable URL")
        close = w.Button(description="Close", icon="times", layout=w.Layout(width="auto"))
        view = w.HTML(f'<img src="{html.escape(src, quote=True)}" alt="full-size image" '
                      'style="max-width:100%;height:auto;display:block;">')

        def on_close(_b: Any) -> None:
            self.viewer.children = ()
            self.viewer.layout.display = "none"
            view.close()
            close.close()

        close.on_click(self._guard(on_close))
        self.viewer.children = (close, view)
        self.viewer.layout.display = "flex"

    # --- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Cancel the runs in flight, stop the workers and close every widget."""
        if self._closed:
            return
        self._closed = True
        if "_executor" not in self.__dict__:  # __init__ refused its arguments
            super().close()
            return
        for run in self.runs:
            run.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        for run in self.runs:
            run.close()
        children = list(self.children)
        super().close()
        for child in children:
            _close_tree(child)

    def __repr__(self) -> str:
        return (
            f"PromptPanel(action={self.action!r}, model={self.model!r}, "
            f"inputs={len(self._inputs)}, runs={len(self._runs)}, "
            f"results={len(self._results)})"
        )


class _PanelMistake(NanoBananaError, ValueError):
    """A mistake caught before sending (empty prompt, edit without inputs); nothing sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_request")

    def __str__(self) -> str:
        return self.message


def _get(entry: Any, key: str) -> Any:
    if isinstance(entry, dict):
        return entry.get(key)
    return getattr(entry, key, None)


def _close_tree(widget: Any) -> None:
    children: Sequence[Any] = getattr(widget, "children", ()) or ()
    for child in children:
        _close_tree(child)
    widget.close()
