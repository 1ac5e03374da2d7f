"""What a grid asks for, checked before anything is sent: axes → a :class:`GridPlan` of
cells, each with its history tag.

**Cells.** The product of ``prompts`` × ``models`` × ``aspect_ratios`` × ``resolutions`` ×
``repeats``. Rows are prompts; columns are the combinations of the other axes, with the
repeats of one combination side by side. ``**fixed`` sets what every cell shares:
``count`` (images per request), ``action`` and ``images`` (for edits). Every combination is
checked locally: an unknown model, a bad aspect ratio, a resolution the model lacks, an
empty or repeated prompt raise :class:`~nanobanana_widgets.service.errors.InvalidParameterError`.

**Tags and ids.** A cell is tagged ``r1c2#1`` in the history (row, column and repeat,
counted from 1). A grid's id is derived from what it asks for, so running the same
notebook again gives the same id. A plan can be rebuilt from the records tagged with it.

No widget and no network here (edit inputs are normalised by ``images``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from nanobanana_widgets.images import to_image_urls
from nanobanana_widgets.render.grid import column_label
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.service.models import (
    ACTIONS,
    ASPECT_RATIOS,
    DEFAULT_MODEL,
    MODELS,
    RESOLUTIONS,
    validate_request,
)
from nanobanana_widgets.service.types import ImageRequest

__all__ = [
    "DEFAULT_MAX_CALLS",
    "Cell",
    "Column",
    "GridPlan",
    "Slot",
    "cell_tag",
    "check_max_calls",
    "column_label",
    "latest_by_cell",
    "make_plan",
    "parse_cell_tag",
    "plan_from_records",
]

DEFAULT_MAX_CALLS = 16
"""Paid generations a grid may make without a confirmation."""
_FIXED_KEYS = ("count", "action", "images")
_TAG_RE = re.compile(r"^r(\d+)c(\d+)#(\d+)$")


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
class Slot:
    """A cell with its place in the matrix (from 0) and its history tag."""

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

    def slots(self) -> list[Slot]:
        """Every cell in matrix order (row by row, repeats of a column side by side)."""
        out = []
        for row, prompt in enumerate(self.prompts):
            for col, (model, ratio, res) in enumerate(self.columns):
                for rep in range(self.repeats):
                    out.append(Slot(Cell(prompt, model, ratio, res, rep), row, col,
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


def check_max_calls(max_calls: Any) -> int:
    """``max_calls`` when it is a whole number of paid generations, 0 or more."""
    if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 0:
        raise InvalidParameterError("max_calls", max_calls, None,
                                    hint="a whole number of paid generations, 0 or more")
    return max_calls


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


# --- plans from the history --------------------------------------------------------------


def latest_by_cell(records: Iterable[Any]) -> dict[str, Any]:
    """Each cell tag's latest record (highest id) among records tagged with a grid."""
    latest: dict[str, Any] = {}
    for rec in records:
        if rec.grid_cell is None or parse_cell_tag(rec.grid_cell) is None:
            continue
        old = latest.get(rec.grid_cell)
        if old is None or rec.id > old.id:
            latest[rec.grid_cell] = rec
    return latest


def plan_from_records(grid_id: str, records: Mapping[str, Any]) -> GridPlan:
    """The plan a grid's records (cell tag → record, as :func:`latest_by_cell` gives)
    were made from; a row or column no record names is left blank."""
    rows: dict[int, str] = {}
    columns: dict[int, Column] = {}
    repeats = 1
    count = 1
    action = "generate"
    for tag, rec in records.items():
        pos = parse_cell_tag(tag)
        if pos is None:
            continue
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
