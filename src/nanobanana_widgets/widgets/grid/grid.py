"""Prompt × parameter grids: many generations at once, shown as a matrix that fills in.

::

    g = grid(["a cat", "a dog"], models=["nano-banana", "nano-banana-pro"],
             aspect_ratios=["1:1", "16:9"])          # 2 × 4 = 8 paid generations
    g                                                # the matrix; cells fill in as they finish
    g.wait(); g.results[Cell("a cat", "nano-banana", "16:9", None)]
    Grid.open(g.id)                                  # later, from the history, no network

**Cells.** The product of ``prompts`` × ``models`` × ``aspect_ratios`` × ``resolutions`` ×
``repeats``. Rows are prompts; columns are the combinations of the other axes, with the
repeats of one combination side by side. ``**fixed`` sets what every cell shares: ``count``
(images per request), ``action`` and ``images`` (for edits). Every combination is checked
locally first: an unknown model, a bad aspect ratio, a resolution the model lacks, an empty
or repeated prompt raise :class:`~nanobanana_widgets.errors.InvalidParameterError` and
nothing is sent.

**Cost.** The widget states the number of paid generations before anything is sent
(``images = cells × count``). When that number is above ``max_calls`` (default 16) nothing
is spent until the "Run N paid generations" button is clicked or ``grid.confirm()`` is
called (or ``confirm=True`` was passed). With the history's replay mode on
(``history.replay = True``), a cell identical to a recorded success is answered from the
history and not paid again; the widget says when replay is on.

**Running.** Submits go out concurrently and all tasks are waited for together through the
client's one batched poller (``client.wait_all``), in background threads: ``grid(...)``
returns at once. A failed cell shows its error (with the trace id) while the others
complete. ``grid.wait(timeout)`` blocks until every cell is done, ``grid.results`` maps each
finished :class:`Cell` to its ``Result`` or error, and ``grid.cancel()`` stops waiting locally
(the service has no cancel: tasks already submitted may still run and be billed).

**History.** Every task is tagged ``history.tag(task, grid_id=grid.id, cell="r1c2#1")``
(row, column and repeat, counted from 1). The id is derived from what the grid asks for
(prompts, axes, repeats, fixed parameters and input images), so running the same notebook
again gives the same id and ``Grid.open(id)`` keeps working; pass ``grid_id=`` to choose
one. When a grid ran more than once, ``Grid.open`` shows each cell's latest run. A replayed
record that already belongs to another grid cell keeps its tag.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import html
import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import ipywidgets as w

from nanobanana_widgets.images import thumbnail, to_image_urls
from nanobanana_widgets.render.results import data_uri, safe_link, thumbnail_data_uri
from nanobanana_widgets.render.styles import style_element
from nanobanana_widgets.service.errors import (
    CancelledError,
    InvalidParameterError,
    NanoBananaError,
    WaitTimeoutError,
    describe_error,
)
from nanobanana_widgets.service.models import (
    ACTIONS,
    ASPECT_RATIOS,
    DEFAULT_MODEL,
    MODELS,
    RESOLUTIONS,
    validate_request,
)
from nanobanana_widgets.service.types import ImageRequest, Result
from nanobanana_widgets.session import choose_history, default_client, default_history
from nanobanana_widgets.store import History, Record
from nanobanana_widgets.widgets._ui import ViewSync

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Progress, Task

__all__ = ["Cell", "Grid", "GridPlan", "grid", "open_grid"]

_log = logging.getLogger(__name__)

CELL_THUMB_SIDE = 256
"""Longest side, in pixels, of a cell's thumbnail (160 when a cell holds several images)."""
DEFAULT_MAX_CALLS = 16
_FIXED_KEYS = ("count", "action", "images")
_SUBMIT_WORKERS = 8
_TAG_RE = re.compile(r"^r(\d+)c(\d+)#(\d+)$")

_MUTED = "font-size:var(--jp-ui-font-size0, 11px);color:var(--jp-ui-font-color2, inherit);"
_ERROR = ("color:var(--jp-error-color1, #d32f2f);font-size:var(--jp-ui-font-size1, 13px);"
          "overflow-wrap:anywhere;")
_IMG = ("display:block;max-width:100%;height:auto;margin:0 auto;border-radius:4px;"
        "background:var(--jp-layout-color2, rgba(128,128,128,0.15));")


class Cell(NamedTuple):
    """One cell of a grid: the prompt, the column's parameters and the repeat (from 0)."""

    prompt: str
    model: str
    aspect_ratio: str | None
    resolution: str | None
    repeat: int = 0


Column = tuple[str, str | None, str | None]
"""A column's ``(model, aspect_ratio, resolution)``."""


@dataclass(frozen=True)
class _Slot:
    cell: Cell
    row: int
    column: int
    tag: str


@dataclass(frozen=True)
class GridPlan:
    """What a grid asks for, checked: rows, columns, repeats and the shared parameters."""

    grid_id: str
    prompts: tuple[str, ...]
    columns: tuple[Column, ...]
    repeats: int = 1
    count: int = 1
    action: str = "generate"
    images: tuple[str, ...] = ()

    @property
    def calls(self) -> int:
        """Requests the grid sends (one per cell)."""
        return len(self.prompts) * len(self.columns) * self.repeats

    @property
    def paid(self) -> int:
        """Paid generations: images requested (``calls × count``)."""
        return self.calls * self.count

    def slots(self) -> list[_Slot]:
        out = []
        for row, prompt in enumerate(self.prompts):
            for col, (model, ratio, res) in enumerate(self.columns):
                for rep in range(self.repeats):
                    out.append(_Slot(Cell(prompt, model, ratio, res, rep), row, col,
                                     cell_tag(row, col, rep)))
        return out

    def request(self, cell: Cell) -> ImageRequest:
        """The request a cell sends (as the client builds it)."""
        return ImageRequest(action=self.action, prompt=cell.prompt, model=cell.model,
                            count=self.count, aspect_ratio=cell.aspect_ratio,
                            resolution=cell.resolution, image_urls=self.images)


def cell_tag(row: int, column: int, repeat: int) -> str:
    """The history tag of a cell (positions from 0): ``r1c2#1`` style, counted from 1."""
    return f"r{row + 1}c{column + 1}#{repeat + 1}"


def parse_cell_tag(tag: str | None) -> tuple[int, int, int] | None:
    """``(row, column, repeat)`` from 0 for a tag written by :func:`cell_tag`."""
    m = _TAG_RE.match(tag or "")
    if m is None:
        return None
    row, col, rep = (int(g) - 1 for g in m.groups())
    return (row, col, rep) if min(row, col, rep) >= 0 else None


def column_label(column: Column) -> str:
    """``nano-banana · 16:9 · 2K`` (unset parameters left out)."""
    return " · ".join(p for p in column if p)


# --- checking the axes -------------------------------------------------------------------


def _axis(name: str, value: Any, default: tuple[Any, ...]) -> tuple[Any, ...]:
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Iterable):
        raise InvalidParameterError(name, value, None, hint="a list of values")
    items = tuple(value)
    if not items:
        raise InvalidParameterError(name, [], None, hint="at least one value")
    seen = set()
    for item in items:
        if item in seen:
            raise InvalidParameterError(name, item, None,
                                        hint="each value once (use repeats= to run a cell "
                                             "several times)")
        seen.add(item)
    return items


def _fingerprint(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return "g-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def make_plan(prompts: Any, models: Any = None, aspect_ratios: Any = None,
              resolutions: Any = None, repeats: int = 1, *, grid_id: str | None = None,
              **fixed: Any) -> GridPlan:
    """Check a grid's axes and shared parameters; raises before anything is sent."""
    unknown = sorted(set(fixed) - set(_FIXED_KEYS))
    if unknown:
        raise TypeError(
            f"grid() got unexpected keyword(s) {', '.join(unknown)}. Axes are prompts=, "
            "models=, aspect_ratios=, resolutions=, repeats=; every cell shares "
            f"{', '.join(_FIXED_KEYS)}.")
    if prompts is None:
        raise InvalidParameterError("prompts", None, None, hint="a list of at least one prompt")
    prompt_axis = _axis("prompts", prompts, ())
    for p in prompt_axis:
        if not isinstance(p, str) or not p.strip():
            raise InvalidParameterError("prompts", p, None,
                                        hint="non-empty texts describing the images")
    model_axis = _axis("models", models, (DEFAULT_MODEL,))
    for m in model_axis:
        if not isinstance(m, str) or m not in MODELS:
            raise InvalidParameterError("models", m, tuple(MODELS))
    ratio_axis = _axis("aspect_ratios", aspect_ratios, (None,))
    for r in ratio_axis:
        if r is not None and r not in ASPECT_RATIOS:
            raise InvalidParameterError("aspect_ratios", r, ASPECT_RATIOS)
    res_axis = _axis("resolutions", resolutions, (None,))
    for s in res_axis:
        if s is not None and s not in RESOLUTIONS:
            raise InvalidParameterError("resolutions", s, RESOLUTIONS)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidParameterError("repeats", repeats, None, hint="a whole number, 1 or more")
    count = fixed.get("count", 1)
    action = fixed.get("action", "generate")
    if action not in ACTIONS:
        raise InvalidParameterError("action", action, ACTIONS)
    images: tuple[str, ...] = ()
    if fixed.get("images") is not None:
        images = tuple(to_image_urls(fixed["images"]))
    columns: tuple[Column, ...] = tuple(itertools.product(model_axis, ratio_axis, res_axis))
    for model, ratio, res in columns:
        for prompt in prompt_axis:
            validate_request(action=action, prompt=prompt, model=model, count=count,
                             aspect_ratio=ratio, resolution=res,
                             image_urls=list(images) if images else None)
    if grid_id is None:
        grid_id = _fingerprint({
            "prompts": prompt_axis, "columns": columns, "repeats": repeats, "count": count,
            "action": action,
            "images": [hashlib.sha256(u.encode()).hexdigest() for u in images],
        })
    elif not isinstance(grid_id, str) or not grid_id.strip() or len(grid_id) > 100:
        raise InvalidParameterError("grid_id", grid_id, None,
                                    hint="a non-empty text of at most 100 characters")
    return GridPlan(grid_id=grid_id, prompts=tuple(prompt_axis), columns=columns,
                    repeats=repeats, count=count, action=action, images=images)


# --- the widget --------------------------------------------------------------------------


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def _images_html(images: Sequence[tuple[str | None, str | None, str | None]],
                 caption: str, title: str) -> str:
    """A cell's thumbnails: ``(data uri, link, problem)`` per image, then a caption."""
    esc = html.escape
    parts = []
    for uri, link, problem in images:
        if uri is None:
            text = problem or "No image."
            if link:
                parts.append(f'<div style="{_ERROR}"><a href="{esc(link, quote=True)}" '
                             f'target="_blank" rel="noopener noreferrer">{esc(text)}</a></div>')
            else:
                parts.append(f'<div style="{_ERROR}">{esc(text)}</div>')
            continue
        img = f'<img src="{uri}" alt="" style="{_IMG}">'
        if link:
            img = (f'<a href="{esc(link, quote=True)}" target="_blank" rel="noopener noreferrer"'
                   f' title="Open the full-size image">{img}</a>')
        parts.append(f'<div style="flex:1 1 0;min-width:0;">{img}</div>')
    body = "".join(parts)
    return (f'<div title="{esc(title, quote=True)}">'
            f'<div style="display:flex;gap:4px;flex-wrap:wrap;">{body}</div>'
            f'<div style="{_MUTED}margin-top:2px;overflow-wrap:anywhere;">{esc(caption)}</div>'
            f"</div>")


def _error_html(error: BaseException, title: str) -> str:
    """A failed cell: the error class, the first sentence of its message (all of it in the
    tooltip), the service's code and the trace id."""
    esc = html.escape
    message = error.message if isinstance(error, NanoBananaError) else describe_error(error)
    first, dot, _rest = message.partition(". ")
    short = first + "." if dot and len(first) < 160 else message
    short = short if len(short) <= 160 else short[:159] + "…"
    details = []
    code = getattr(error, "code", None)
    if code:
        details.append(f"code {code}")
    trace = getattr(error, "trace_id", None)
    if trace:
        details.append(f"trace id {trace}")
    tooltip = f"{title}\n\n{describe_error(error)}"
    return (f'<div class="nbw-matrix-failed" title="{esc(tooltip, quote=True)}" '
            f'style="{_ERROR}padding:4px;"><b>⚠ {esc(type(error).__name__)}</b><br>'
            f"{esc(short)}"
            + (f'<div style="{_MUTED}margin-top:2px;">{esc(" · ".join(details))}</div>'
               if details else "")
            + "</div>")


def _waiting_html(text: str, *, spin: bool = True) -> str:
    spinner = '<span class="nbw-spin" aria-hidden="true">◌</span> ' if spin else ""
    return (f'<div class="nbw-matrix-waiting" style="{_MUTED}padding:4px;">'
            f"{spinner}{html.escape(text)}</div>")


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
    ``"reopened"``), ``summary``, ``cell_widget(cell)``.
    """

    def __init__(self, plan: GridPlan, *, client: Client | None = None,
                 history: History | None = None, max_calls: int = DEFAULT_MAX_CALLS,
                 confirm: bool = False, records: dict[str, Record] | None = None) -> None:
        if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 0:
            raise InvalidParameterError("max_calls", max_calls, None,
                                        hint="a whole number of paid generations, 0 or more")
        self.plan = plan
        self.id = plan.grid_id
        self.max_calls = max_calls
        self._client = client
        self._history = history
        self._slots = plan.slots()
        self._by_cell = {s.cell: s for s in self._slots}
        self._lock = threading.RLock()
        self._outcomes: dict[Cell, Result | NanoBananaError] = {}
        self._tasks: dict[Cell, Task] = {}
        self._task_slots: dict[str, list[_Slot]] = {}
        self._shown_seconds: dict[Cell, int] = {}
        self._replayed: set[Cell] = set()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._started_at: float | None = None
        self._thread: threading.Thread | None = None
        self._render_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._reopened = records is not None
        self.state = "reopened" if self._reopened else "ready"

        self.title = w.HTML(self._title_html())
        self.plan_line = w.HTML(self._plan_html())
        self.confirm_button = w.Button(
            description=f"Run {plan.paid} paid generations", button_style="warning",
            icon="play", tooltip="Start the grid: every image is billed",
            layout=w.Layout(width="auto", min_width="max-content"))
        self.confirm_button.on_click(lambda _b: self._on_confirm_click())
        self.budget_line = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.budget_row = w.HBox([self.budget_line, self.confirm_button], layout=w.Layout(
            width="100%", display="none", align_items="center", flex_flow="row wrap"))
        self.status_line = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.cancel_button = w.Button(description="Cancel", icon="times",
                                      tooltip="Stop waiting (submitted tasks may still run "
                                              "and be billed)",
                                      layout=w.Layout(width="auto", display="none"))
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.status_row = w.HBox([self.status_line, self.cancel_button],
                                 layout=w.Layout(width="100%", align_items="center"))
        self._cell_widgets: dict[Cell, w.HTML] = {}
        self.matrix = self._build_matrix()
        super().__init__(
            [w.HTML(style_element("compare"), layout=w.Layout(display="none")), ViewSync(self),
             self.title, self.plan_line, self.budget_row, self.status_row, self.matrix],
            layout=w.Layout(width="100%", max_width="100%", overflow="hidden"))
        self.add_class("nbw-matrix")

        if records is not None:
            self._fill_from_records(records)
            self._finished.set()
            self._render_status()
        elif plan.paid > max_calls and not confirm:
            self.state = "awaiting confirmation"
            self.budget_line.value = (
                f'<div class="nbw-budget">This grid would make {plan.paid} paid generations, '
                f"more than max_calls={max_calls}. Nothing has been sent. Click the button (or "
                f"call grid.confirm()) to run them.</div>")
            self.budget_row.layout.display = "flex"
            self._render_status()
        else:
            self._start()

    # --- building ----------------------------------------------------------------------

    def _title_html(self) -> str:
        esc = html.escape
        where = " (reopened from the history)" if self._reopened else ""
        return (f'<div><span class="nbw-title">Prompt grid</span> '
                f'<span class="nbw-muted">{esc(self.id)}{esc(where)}</span></div>')

    def _plan_html(self) -> str:
        esc = html.escape
        p = self.plan
        rows = len(p.prompts)
        cols = len(p.columns)
        axes = []
        for name, index in (("models", 0), ("aspect ratios", 1), ("resolutions", 2)):
            values = {c[index] for c in p.columns}
            if len(values) > 1:
                axes.append(f"{len(values)} {name}")
        shape = f"{rows} prompt{'s' if rows != 1 else ''} × {cols} column{'s' if cols != 1 else ''}"
        if axes:
            shape += f" ({' × '.join(axes)})"
        if p.repeats > 1:
            shape += f" × {p.repeats} repeats"
        verb = "made" if self._reopened else "makes"
        text = (f"{shape} = {p.calls} request{'s' if p.calls != 1 else ''}; {verb} "
                f"{p.paid} paid generation{'s' if p.paid != 1 else ''}"
                f"{f' ({p.count} images each)' if p.count != 1 else ''}.")
        if p.action == "edit":
            text += f" Edits of {len(p.images)} input image{'s' if len(p.images) != 1 else ''}."
        extra = ""
        if not self._reopened and self._history is not None and bool(self._history.replay):
            extra = (' <span class="nbw-muted">Replay mode is on: a cell identical to a '
                     "recorded success is answered from the history and not paid again."
                     "</span>")
        return f'<div style="overflow-wrap:anywhere;">{esc(text)}{extra}</div>'

    def _build_matrix(self) -> w.GridBox:
        esc = html.escape
        p = self.plan
        n = len(p.columns) * p.repeats
        # Up to 4 columns fit a ~470 px output area (a 900 px window with the sidebar open);
        # wider grids scroll inside the matrix, never the page.
        first_col, min_px = ("minmax(60px, 0.6fr)", 80) if n <= 4 else ("minmax(90px, 0.7fr)", 120)
        children: list[w.Widget] = []
        corner = w.HTML('<div class="nbw-muted">prompt</div>')
        children.append(corner)
        for column in p.columns:
            head = w.HTML(f'<div class="nbw-matrix-head" style="overflow-wrap:anywhere;">'
                          f"{esc(column_label(column) or 'defaults')}</div>",
                          layout=w.Layout(grid_column=f"span {p.repeats}", min_width="0"))
            children.append(head)
        if p.repeats > 1:
            children.append(w.HTML(""))
            for _column in p.columns:
                for rep in range(p.repeats):
                    children.append(w.HTML(f'<div class="nbw-muted">#{rep + 1}</div>',
                                           layout=w.Layout(min_width="0")))
        for row, prompt in enumerate(p.prompts):
            shown = prompt if len(prompt) <= 160 else prompt[:159] + "…"
            label = prompt or f"(row {row + 1} not recorded)"
            children.append(w.HTML(
                f'<div class="nbw-matrix-rowhead" title="{esc(label, quote=True)}" '
                f'style="overflow-wrap:anywhere;">{esc(shown or label)}</div>',
                layout=w.Layout(min_width="0")))
            for slot in self._slots[row * n:(row + 1) * n]:
                cell_widget = w.HTML(_waiting_html("not started", spin=False),
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
    def results(self) -> dict[Cell, Result | NanoBananaError]:
        """Finished cells (in matrix order) → their ``Result`` or error."""
        with self._lock:
            return {s.cell: self._outcomes[s.cell] for s in self._slots
                    if s.cell in self._outcomes}

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
        with self._lock:
            outcomes = list(self._outcomes.values())
        ok = sum(isinstance(o, Result) for o in outcomes)
        failed = len(outcomes) - ok
        total = len(self._slots)
        text = f"{len(outcomes)} of {total} cells done: {ok} succeeded, {failed} failed"
        if self._replayed:
            text += f", {len(self._replayed)} replayed from the history"
        return text

    def confirm(self) -> Grid:
        """Start a grid that waits for confirmation (no effect once started)."""
        if self.state == "awaiting confirmation":
            self._start()
        return self

    def cancel(self) -> None:
        """Stop: no further submits, stop waiting for submitted tasks (they may still run
        and be billed; look them up later with ``history.resume()``)."""
        with self._lock:
            self._cancel.set()
            tasks = list(self._tasks.values())
            if self.state == "awaiting confirmation":
                self.state = "cancelled"
                self.budget_row.layout.display = "none"
                self._finished.set()
        for task in tasks:
            task.cancel()
        self._render_status()

    def wait(self, timeout: float | None = None) -> dict[Cell, Result | NanoBananaError]:
        """Block until every cell is done; returns :attr:`results`.

        ``timeout`` defaults to the client's ``wait_timeout`` plus a minute. Raises
        :class:`WaitTimeoutError` when cells are still running at the deadline, and
        :class:`NanoBananaError` when the grid waits for confirmation (nothing would end).
        """
        if self.state == "awaiting confirmation":
            raise NanoBananaError(
                f"This grid has not started: it would make {self.plan.paid} paid generations, "
                f"more than max_calls={self.max_calls}. Call grid.confirm() (or click 'Run "
                f"{self.plan.paid} paid generations') to start it, or grid.cancel().",
                code="not_confirmed")
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
        latest: dict[str, Record] = {}
        for rec in history.grid(grid_id):
            if rec.grid_cell is None or parse_cell_tag(rec.grid_cell) is None:
                continue
            old = latest.get(rec.grid_cell)
            if old is None or rec.id > old.id:
                latest[rec.grid_cell] = rec
        if not latest:
            raise KeyError(f"No grid {grid_id!r} in the history at {history.folder}: no "
                           "record is tagged with this grid id.")
        return cls(_plan_from_records(grid_id, latest), history=history, records=latest)

    open = _ClassOrWidgetOpen()
    """``Grid.open(grid_id, history=None)`` reopens a grid from the history (see
    ``_from_history``); on an instance, ``open()`` stays the ipywidgets method that opens
    the widget's comm."""

    def __repr__(self) -> str:
        return (f"<Grid {self.id}: {self.plan.calls} cells, {self.plan.paid} paid generations, "
                f"{self.state}; {self.summary}>")

    # --- running -----------------------------------------------------------------------

    def _on_confirm_click(self) -> None:
        try:
            self.confirm()
        except Exception as exc:  # a click never loses its error
            self._set_status(f"Could not start: {describe_error(exc)}", error=True)

    def _start(self) -> None:
        with self._lock:
            if self.state not in ("ready", "awaiting confirmation"):
                return
            self.state = "running"
            self._started_at = time.monotonic()
        self.budget_row.layout.display = "none"
        self.cancel_button.layout.display = "flex"
        for slot in self._slots:
            self._cell_widgets[slot.cell].value = _waiting_html("queued", spin=False)
        self._render_status()
        self._thread = threading.Thread(target=self._run, name=f"nbw-grid-{self.id}",
                                        daemon=True)
        self._thread.start()

    def _client_now(self) -> Client:
        if self._client is None:
            self._client = default_client()
        if self._history is not None:
            self._history.attach(self._client)
        return self._client

    def _run(self) -> None:
        self._render_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=4, thread_name_prefix=f"nbw-grid-{self.id}-thumbs")
        try:
            client = self._client_now()
            workers = max(1, min(_SUBMIT_WORKERS, len(self._slots)))
            with concurrent.futures.ThreadPoolExecutor(
                    max_workers=workers, thread_name_prefix=f"nbw-grid-{self.id}-submit") as pool:
                list(pool.map(lambda s: self._submit(client, s), self._slots))
            with self._lock:
                waiting = [t for c, t in self._tasks.items() if c not in self._outcomes]
            tasks = list(dict.fromkeys(waiting))
            if tasks:
                outcomes = client.wait_all(tasks, return_exceptions=True,
                                           on_progress=self._on_progress)
                for task, outcome in zip(tasks, outcomes, strict=True):
                    for slot in self._task_slots.get(task.id, []):
                        self._finish(slot, outcome)
        except Exception as exc:
            _log.exception("grid %s failed", self.id)
            err = exc if isinstance(exc, NanoBananaError) else NanoBananaError(
                describe_error(exc))
            for slot in self._slots:
                self._finish(slot, err)
        finally:
            self._render_pool.shutdown(wait=True)
            with self._lock:
                self.state = "cancelled" if self._cancel.is_set() else "done"
            self.cancel_button.layout.display = "none"
            self._finished.set()
            self._render_status()

    def _submit(self, client: Client, slot: _Slot) -> None:
        cell = slot.cell
        if self._cancel.is_set():
            self._finish(slot, CancelledError("Not sent: the grid was cancelled first."))
            return
        self._show_progress(cell, "sending…")
        try:
            task = client.submit(
                cell.prompt, action=self.plan.action,
                images=list(self.plan.images) if self.plan.images else None,
                model=cell.model, count=self.plan.count, aspect_ratio=cell.aspect_ratio,
                resolution=cell.resolution)
        except NanoBananaError as exc:
            self._tag_failure(slot, exc)
            self._finish(slot, exc)
            return
        except Exception as exc:
            self._finish(slot, NanoBananaError(describe_error(exc)))
            return
        replayed = task.done()  # only a replayed task is settled the moment it is sent
        with self._lock:
            self._tasks[cell] = task
            self._task_slots.setdefault(task.id, []).append(slot)
        self._tag(task, slot)
        if self._cancel.is_set():
            task.cancel()
        if replayed:
            self._replayed.add(cell)
            try:
                outcome: Result | NanoBananaError = task.result()
            except NanoBananaError as exc:
                outcome = exc
            self._finish(slot, outcome)
        else:
            self._show_progress(cell, "waiting 0 s")

    def _tag(self, task: Task, slot: _Slot) -> None:
        if self._history is None:
            return
        try:
            self._history.tag_cell(self.id, slot.tag, task_id=task.id)
        except Exception as exc:  # the grid still runs; only reopening loses the cell
            _log.warning("grid %s: could not tag task %s in the history: %s", self.id,
                         task.id, exc)

    def _tag_failure(self, slot: _Slot, error: NanoBananaError) -> None:
        """Tag the record the history wrote for a submit that failed (no task handle)."""
        if self._history is None:
            return
        try:
            self._history.tag_cell(self.id, slot.tag, task_id=error.task_id,
                                   request=self.plan.request(slot.cell))
        except Exception as exc:
            _log.warning("grid %s: could not tag a failed submit in the history: %s",
                         self.id, exc)

    def _on_progress(self, progress: Progress) -> None:
        for slot in self._task_slots.get(progress.task_id, []):
            cell = slot.cell
            if cell in self._outcomes:
                continue
            if progress.stage in ("done", "failed"):
                task = self._tasks.get(cell)
                if task is None:
                    continue
                try:
                    outcome: Result | NanoBananaError = task.result()
                except NanoBananaError as exc:
                    outcome = exc
                self._finish(slot, outcome)
                continue
            seconds = int(progress.elapsed)
            if self._shown_seconds.get(cell) != seconds:
                self._shown_seconds[cell] = seconds
                self._show_progress(cell, f"waiting {seconds} s")

    def _show_progress(self, cell: Cell, text: str) -> None:
        """Show a cell's progress unless it has finished: a finished cell keeps its outcome
        (checked and written under the lock that ``_finish`` takes to settle a cell)."""
        with self._lock:
            if cell not in self._outcomes:
                self._cell_widgets[cell].value = _waiting_html(text)

    def _finish(self, slot: _Slot, outcome: Result | NanoBananaError) -> None:
        cell = slot.cell
        with self._lock:
            if cell in self._outcomes:
                return
            self._outcomes[cell] = outcome
        title = self._cell_title(slot)
        if isinstance(outcome, Result) and outcome.images:
            pool = self._render_pool
            if pool is not None:
                try:
                    pool.submit(self._render_result, slot, outcome)
                except RuntimeError:  # shut down: render here
                    self._render_result(slot, outcome)
            else:
                self._render_result(slot, outcome)
        elif isinstance(outcome, Result):
            reason = outcome.error or NanoBananaError(f"No image (status {outcome.status}).")
            self._cell_widgets[cell].value = _error_html(reason, title)
        else:
            self._cell_widgets[cell].value = _error_html(outcome, title)
        self._render_status()

    def _render_result(self, slot: _Slot, result: Result) -> None:
        side = CELL_THUMB_SIDE if len(result.images) == 1 else 160
        images: list[tuple[str | None, str | None, str | None]] = []
        for image in result.images:
            try:
                images.append((thumbnail_data_uri(image, max_side=side), safe_link(image.url),
                               None))
            except Exception as exc:
                images.append((None, safe_link(image.url),
                               f"Image not shown: {describe_error(exc)}"))
        bits = []
        elapsed = result.timings.elapsed
        if slot.cell in self._replayed:
            bits.append("replayed from the history")
        elif elapsed is not None:
            bits.append(_seconds(elapsed))
        if len(result.images) < self.plan.count:
            bits.append(f"{len(result.images)} of {self.plan.count} images")
        self._cell_widgets[slot.cell].value = _images_html(images, " · ".join(bits),
                                                           self._cell_title(slot, result))

    def _cell_title(self, slot: _Slot, result: Result | None = None) -> str:
        c = slot.cell
        parts = [c.prompt, column_label((c.model, c.aspect_ratio, c.resolution))]
        if self.plan.repeats > 1:
            parts.append(f"repeat {c.repeat + 1}")
        task = self._tasks.get(c)
        task_id = result.task_id if result is not None else (task.id if task else None)
        if task_id:
            parts.append(f"task {task_id}")
        trace = result.trace_id if result is not None else (task.trace_id if task else None)
        if trace:
            parts.append(f"trace id {trace}")
        parts.append(f"cell {slot.tag}")
        return "\n".join(parts)

    def _set_status(self, text: str, *, error: bool = False) -> None:
        style = _ERROR if error else "overflow-wrap:anywhere;"
        self.status_line.value = f'<div style="{style}">{html.escape(text)}</div>'

    def _render_status(self) -> None:
        state = self.state
        if state == "awaiting confirmation":
            text = "Waiting for confirmation; nothing has been sent."
        elif state == "ready":
            text = "Not started."
        elif state == "reopened":
            text = f"From the history: {self.summary}."
        else:
            text = self.summary
            if self._started_at is not None:
                text += f" · {_seconds(time.monotonic() - self._started_at)}"
            if state == "running":
                text = "Running: " + text
            elif state == "cancelled":
                text = ("Cancelled: " + text + ". Submitted tasks may still run and be billed; "
                        "history.resume() looks them up.")
            else:
                text = "Done: " + text
        self._set_status(text + ("" if text.endswith(".") else "."))

    # --- reopening ---------------------------------------------------------------------

    def _fill_from_records(self, records: dict[str, Record]) -> None:
        for slot in self._slots:
            rec = records.get(slot.tag)
            widget = self._cell_widgets[slot.cell]
            if rec is None:
                widget.value = _waiting_html("not recorded", spin=False)
                continue
            title = "\n".join([rec.prompt, column_label((rec.model, rec.aspect_ratio,
                                                          rec.resolution)),
                               f"record #{rec.id}", f"task {rec.task_id or '—'}",
                               f"trace id {rec.trace_id or '—'}", f"cell {slot.tag}"])
            if rec.status == "succeeded":
                self._outcomes[slot.cell] = rec.result()
                widget.value = _images_html(_record_images(rec), _record_caption(rec), title)
            elif rec.status in ("failed", "cancelled"):
                if rec.error is not None:
                    error = rec.error.to_exception(rec.task_id)
                else:
                    error = NanoBananaError(f"The request {rec.status}.", task_id=rec.task_id)
                self._outcomes[slot.cell] = error
                widget.value = _error_html(error, title)
            else:
                widget.value = _waiting_html(
                    "still running when last recorded; history.resume() looks it up",
                    spin=False)


def _record_images(rec: Record) -> list[tuple[str | None, str | None, str | None]]:
    side = CELL_THUMB_SIDE if len(rec.results) == 1 else 160
    out: list[tuple[str | None, str | None, str | None]] = []
    for r in rec.results:
        link = safe_link(r.url)
        try:
            if r.local and r.path is not None:
                out.append((data_uri(thumbnail(r.path, max_side=side)), link, None))
                continue
        except Exception as exc:
            out.append((None, link, f"Local copy unreadable: {describe_error(exc)}"))
            continue
        if r.thumbnail:
            out.append((data_uri(r.thumbnail), link, None))
        else:
            out.append((None, link, "Image not kept locally" + (
                f" ({r.download_error})" if r.download_error else "")))
    return out


def _record_caption(rec: Record) -> str:
    bits = []
    if rec.elapsed is not None:
        bits.append(_seconds(rec.elapsed))
    if rec.rating:
        bits.append("★" * rec.rating)
    if rec.favourite:
        bits.append("♥")
    return " · ".join(bits)


def _plan_from_records(grid_id: str, records: dict[str, Record]) -> GridPlan:
    rows: dict[int, str] = {}
    columns: dict[int, Column] = {}
    repeats = 1
    count = 1
    action = "generate"
    for tag, rec in records.items():
        pos = parse_cell_tag(tag)
        assert pos is not None
        row, col, rep = pos
        rows.setdefault(row, rec.prompt)
        columns.setdefault(col, (rec.model, rec.aspect_ratio, rec.resolution))
        repeats = max(repeats, rep + 1)
        count = max(count, rec.count)
        action = rec.action
    n_rows = max(rows) + 1
    n_cols = max(columns) + 1
    prompts = tuple(rows.get(r, "") for r in range(n_rows))
    cols = tuple(columns.get(c, ("?", None, None)) for c in range(n_cols))
    return GridPlan(grid_id=grid_id, prompts=prompts, columns=cols, repeats=repeats,
                    count=count, action=action)


# --- the function ------------------------------------------------------------------------


def grid(prompts: Any = None, models: Any = None, aspect_ratios: Any = None,
         resolutions: Any = None, repeats: int = 1, *, client: Client | None = None,
         history: History | None = None, max_calls: int = DEFAULT_MAX_CALLS,
         confirm: bool = False, grid_id: str | None = None, **fixed: Any) -> Grid:
    """Run the product of the axes concurrently and show it as a matrix that fills in.

    ``prompts`` are the rows; ``models`` (default ``nano-banana``), ``aspect_ratios``,
    ``resolutions`` (default: the service's) and ``repeats`` make the columns. ``fixed``
    may set ``count``, ``action`` and ``images`` for every cell. Above ``max_calls`` paid
    generations (``cells × count``) nothing is sent until ``grid.confirm()`` or the button,
    unless ``confirm=True``. ``client`` defaults to the package's client and ``history`` to
    the default history (tasks are tagged there; ``Grid.open(grid.id)`` reopens the matrix).
    Returns at once; the work runs in background threads. Invalid axes raise
    ``InvalidParameterError`` before anything is sent.
    """
    plan = make_plan(prompts, models, aspect_ratios, resolutions, repeats, grid_id=grid_id,
                     **fixed)
    if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 0:
        raise InvalidParameterError("max_calls", max_calls, None,
                                    hint="a whole number of paid generations, 0 or more")
    chosen = choose_history(history, client)
    return Grid(plan, client=client, history=chosen, max_calls=max_calls, confirm=confirm)


def open_grid(grid_id: str, history: History | None = None) -> Grid:
    """Reopen a grid's matrix from the history (same as ``Grid.open``; no network)."""
    return Grid._from_history(grid_id, history)
