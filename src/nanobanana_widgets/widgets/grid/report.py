"""A grid as a shareable report: one HTML page with the matrix, readable offline.

``grid.to_html(path)`` writes the page: the title, the plan, the status and the matrix, with
each cell's thumbnails embedded and linked to its full-size images in the folder beside the
page (or embedded in it with ``embed=True``), its time, rating and favourite mark (from the
history's records of the grid), and each failed cell's error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nanobanana_widgets.images import thumbnail
from nanobanana_widgets.images.published import ReportAssets
from nanobanana_widgets.render.grid import (
    CellImage,
    cell_error_html,
    cell_images_html,
    column_label,
    record_caption,
)
from nanobanana_widgets.render.parts import seconds
from nanobanana_widgets.render.report import full_size_html, report_document
from nanobanana_widgets.render.results import data_uri
from nanobanana_widgets.render.static import matrix_html
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.widgets.grid.plan import Slot, latest_by_cell

__all__ = ["grid_static_body", "write_grid_report"]

_SIDE = 256


def _records(grid: Any) -> Mapping[str, Any]:
    history = grid.history
    if history is None:
        return {}
    try:
        return latest_by_cell(history.grid(grid.id))
    except Exception:  # a report without ratings is still a report
        return {}


def _title(slot: Slot, rec: Any) -> str:
    c = slot.cell
    parts = [c.prompt, column_label((c.model, c.aspect_ratio, c.resolution)), f"cell {slot.tag}"]
    if rec is not None:
        parts += [f"record #{rec.id}", f"task {rec.task_id or '—'}"]
    return "\n".join(parts)


def _caption(result: Result | None, rec: Any) -> str:
    if rec is not None:
        return record_caption(rec)
    elapsed = result.timings.elapsed if result is not None else None
    return seconds(elapsed) if elapsed is not None else ""


def _result_cell(result: Result, slot: Slot, rec: Any, assets: ReportAssets) -> str:
    side = _SIDE if len(result.images) == 1 else 160
    images: list[CellImage] = []
    extras = []
    for image in result.images:
        stem = f"{slot.tag}-{image.index + 1}"
        try:
            data = image.bytes()
            target = assets.add(data, stem=stem, metadata=image.metadata())
            uri = data_uri(thumbnail(data, max_side=side))
        except Exception as exc:  # one missing image says why; the others still show
            images.append((None, None, f"Image not available: {describe_error(exc)}"))
            continue
        embedded = target.startswith("data:")
        images.append((uri, None if embedded else target, None))
        if embedded:
            extras.append(full_size_html(target, name=stem))
    return (cell_images_html(images, _caption(result, rec), _title(slot, rec))
            + "".join(extras))


def _record_cell(rec: Any, slot: Slot, assets: ReportAssets) -> str:
    side = _SIDE if len(rec.results) == 1 else 160
    images: list[CellImage] = []
    extras = []
    for r in rec.results:
        stem = f"{slot.tag}-{r.position + 1}"
        if r.local and r.path is not None:
            target = assets.add(r.path, stem=stem, digest=r.sha256)
            uri = data_uri(thumbnail(r.path, max_side=side))
            embedded = target.startswith("data:")
            images.append((uri, None if embedded else target, None))
            if embedded:
                extras.append(full_size_html(target, name=stem))
        elif r.thumbnail:
            images.append((data_uri(r.thumbnail), None, None))
        else:
            images.append((None, None, "Image not kept locally."))
    return cell_images_html(images, record_caption(rec), _title(slot, rec)) + "".join(extras)


def _cell(grid: Any, slot: Slot, records: Mapping[str, Any], assets: ReportAssets,
          painted: str) -> str:
    rec = records.get(slot.tag)
    outcome = grid.results.get(slot.cell)
    try:
        if isinstance(outcome, Result) and outcome.images:
            return _result_cell(outcome, slot, rec, assets)
        if rec is not None and rec.status == "succeeded" and rec.results:
            return _record_cell(rec, slot, assets)
        if isinstance(outcome, BaseException):
            return cell_error_html(outcome, _title(slot, rec))
    except Exception as exc:  # never a traceback in a report: the cell says why
        return cell_error_html(exc, _title(slot, rec))
    return painted  # waiting, not recorded, cancelled: as the view shows it


def _matrix_children(grid: Any) -> list[tuple[Any, str, int]]:
    """``(html widget, its markup, columns spanned)`` of each child of the grid's matrix (a
    failed cell is its HTML in a box with its Retry button: the HTML is what counts)."""
    out = []
    for child in grid.matrix.children:
        span = int(str(child.layout.grid_column or "span 1").split()[-1])
        html = child if hasattr(child, "value") else next(
            (c for c in getattr(child, "children", ()) if hasattr(c, "value")), None)
        out.append((html, str(html.value) if html is not None else "", span))
    return out


def grid_static_body(grid: Any) -> str:
    """The grid's static rendition (its frame aside): title, plan, the budget while one is
    asked for, status and the matrix, every cell as painted."""
    cells = {id(grid.cell_widget(s.cell)) for s in grid.runner.slots}
    parts = [(markup, span, "nbw-matrix-cell" if id(html) in cells else "")
             for html, markup, span in _matrix_children(grid)]
    budget = grid.budget_line.value if grid.budget_row.layout.display != "none" else ""
    head = f"{grid.title.value}{grid.plan_line.value}{budget}{grid.status_line.value}"
    return head + matrix_html(parts, grid.matrix.layout.grid_template_columns)


def write_grid_report(grid: Any, path: str | os.PathLike[str], *, embed: bool = False) -> Path:
    """Write ``grid`` (a :class:`~nanobanana_widgets.widgets.grid.view.Grid`) as one HTML
    page at ``path``, full-size images in ``<name>_files/`` beside it (or embedded with
    ``embed=True``); returns the page's path."""
    assets = ReportAssets(path, embed=embed)
    records = _records(grid)
    slot_of = {id(grid.cell_widget(s.cell)): s for s in grid.runner.slots}
    parts = []
    for html, markup, span in _matrix_children(grid):
        slot = slot_of.get(id(html))
        if slot is None:
            parts.append((markup, span, ""))
        else:
            parts.append((_cell(grid, slot, records, assets, markup), span,
                          "nbw-matrix-cell"))
    body = (f'<div class="nbw-static-matrix">{grid.title.value}{grid.plan_line.value}'
            f"{grid.status_line.value}"
            f"{matrix_html(parts, grid.matrix.layout.grid_template_columns)}</div>")
    page = report_document(f"Prompt grid {grid.id}", body,
                           subtitle=grid.summary, sheets=("frame", "grid"))
    return assets.write(page)
