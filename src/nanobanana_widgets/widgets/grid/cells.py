"""The cells of a grid's matrix: one HTML widget each, and a "Retry" button under a cell
that failed.

A failed cell that may be sent again takes the place of its HTML in the matrix with a box
holding that HTML and a "Retry" button; a retried cell gets its plain HTML back and the
box's widgets are closed. Call :meth:`CellSlots.show_retry` and :meth:`hide_retry` only
inside a :class:`~nanobanana_widgets.widgets._ui.Painter`'s ``apply`` (they change the
matrix's children, which every cell shares).
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as w

from nanobanana_widgets.images import thumbnail
from nanobanana_widgets.render.grid import (
    CellImage,
    cell_error_html,
    cell_images_html,
    cell_waiting_html,
    record_caption,
    record_cell_title,
)
from nanobanana_widgets.service.errors import NanoBananaError, describe_error
from nanobanana_widgets.service.text import data_uri
from nanobanana_widgets.store import Record
from nanobanana_widgets.widgets._static import record_image_link
from nanobanana_widgets.widgets._ui import close_deep, guarded
from nanobanana_widgets.widgets.grid.plan import Cell
from nanobanana_widgets.widgets.grid.runner import Outcome, resendable

__all__ = ["CELL_CLASS", "CELL_THUMB_SIDE", "CellSlots", "record_images", "recorded_cell",
           "thumb_side", "waiting_html"]

CELL_CLASS = "nbw-matrix-cell"
CELL_THUMB_SIDE = 256
"""Longest side, in pixels, of a cell's thumbnail (160 when a cell holds several images)."""


def thumb_side(n_images: int) -> int:
    """The thumbnails' longest side in a cell of ``n_images`` images."""
    return CELL_THUMB_SIDE if n_images == 1 else 160


def waiting_html(cell: Cell, count: int, text: str, *, spin: bool = True) -> str:
    """A waiting cell that keeps the room of its ``count`` images (from the cell's aspect
    ratio; square when the service chooses, as for an edit without one)."""
    return cell_waiting_html(text, spin=spin, aspect_ratio=cell.aspect_ratio, images=count,
                             side=thumb_side(count))


class CellSlots:
    """Where each cell sits in ``matrix`` and what it shows there."""

    def __init__(self, matrix: w.GridBox, widgets: dict[Cell, w.HTML],
                 report: Callable[[BaseException], object]) -> None:
        self.matrix = matrix
        self.widgets = widgets
        self._report = report
        self._boxes: dict[Cell, w.VBox] = {}

    def retry_button(self, cell: Cell) -> w.Button | None:
        """The "Retry" button under ``cell`` (``None`` when it has none)."""
        box = self._boxes.get(cell)
        button = box.children[1] if box is not None else None
        return button if isinstance(button, w.Button) else None

    def _swap(self, old: w.Widget, new: w.Widget) -> None:
        self.matrix.children = tuple(new if child is old else child
                                     for child in self.matrix.children)

    def show_retry(self, cell: Cell, retry: Callable[[], object]) -> None:
        """Put a "Retry" button under ``cell`` (no effect when it has one)."""
        if cell in self._boxes:
            return
        html = self.widgets[cell]
        button = w.Button(description="Retry", icon="redo",
                          tooltip="Send this cell again (a new attempt, billed if it succeeds)",
                          layout=w.Layout(width="auto", align_self="flex-start"))
        button.add_class("nbw-retry")
        button.on_click(guarded(lambda _b: retry(), self._report))
        box = w.VBox([html, button], layout=w.Layout(min_width="0", padding="4px"))
        box.add_class(CELL_CLASS)
        box.add_class("nbw-matrix-cell-failed")
        html.remove_class(CELL_CLASS)
        html.layout.padding = "0"
        self._boxes[cell] = box
        self._swap(html, box)

    def hide_retry(self, cell: Cell) -> None:
        """Give ``cell`` its plain HTML back (its box's other widgets are closed)."""
        box = self._boxes.pop(cell, None)
        if box is None:
            return
        html = self.widgets[cell]
        html.add_class(CELL_CLASS)
        html.layout.padding = "4px"
        self._swap(box, html)
        close_deep(box, keep=[html, html.layout, html.style])


def recorded_cell(rec: Record | None, tag: str) -> tuple[Outcome | None, str, bool]:
    """A reopened grid's cell from its latest record: ``(outcome, markup, retry)`` (no
    outcome for a cell never recorded or still running; ``retry`` for a failure that may be
    sent again)."""
    if rec is None:
        return None, cell_waiting_html("not recorded", spin=False), False
    if rec.status == "succeeded":
        return (rec.result(), cell_images_html(record_images(rec), record_caption(rec),
                                               record_cell_title(rec, tag)), False)
    if rec.status in ("failed", "cancelled"):
        error = (rec.error.to_exception(rec.task_id) if rec.error is not None else
                 NanoBananaError(f"The request {rec.status}.", task_id=rec.task_id))
        return (error, cell_error_html(error, record_cell_title(rec, tag)),
                rec.status == "failed" and resendable(error))
    return None, cell_waiting_html(
        "still running when last recorded; grid.history.resume() looks it up",
        spin=False), False


def record_images(rec: Record) -> list[CellImage]:
    """A recorded cell's images: its local copies' thumbnails, else the stored ones."""
    side = thumb_side(len(rec.results))
    out: list[CellImage] = []
    for r in rec.results:
        link = record_image_link(r, rec.task_id)
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
