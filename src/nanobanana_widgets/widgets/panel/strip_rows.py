"""The rows of the history strip: one small box per record, with "Load", "Use as input"
and "+" (add to the inputs), sharing their layout and style models.

Only what the rows need: the thumbnail a row shows (the JPEG the history stored, at most
128 px), the row's widgets, and closing them again. Every string from the history reaches
HTML escaped (the HTML is :mod:`nanobanana_widgets.render.strip`'s).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

from nanobanana_widgets.images import thumbnail
from nanobanana_widgets.store import RECORD_STATUSES, Record
from nanobanana_widgets.widgets._ui import close_deep

__all__ = ["THUMB_SIDE", "Callback", "RecentThumbs", "RowMaker", "small_jpeg"]

_log = logging.getLogger(__name__)

THUMB_SIDE = 128
"""Longest side, in pixels, of the thumbnails kept in widget state (JPEG)."""
_THUMB_MAX_BYTES = 24_000

Callback = Callable[[Record], None]


def small_jpeg(data: bytes) -> bytes | None:
    """``data`` when it is already a small JPEG; otherwise a JPEG thumbnail of it."""
    if data[:2] == b"\xff\xd8" and len(data) <= _THUMB_MAX_BYTES:
        return data
    try:
        return thumbnail(data, max_side=THUMB_SIDE, format="JPEG", quality=70)
    except Exception:  # a broken stored thumbnail shows the placeholder instead
        _log.debug("history strip: unusable thumbnail", exc_info=True)
        return None


class RecentThumbs:
    """Small thumbnails of a panel's own results by task id, for the records whose images
    the history has not stored yet (its downloads run in the background)."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._thumbs: dict[str, bytes] = {}

    def remember(self, task_id: str, jpeg: bytes) -> None:
        """Keep a strip-sized copy of ``jpeg`` for ``task_id`` (the oldest go first)."""
        small = thumbnail(jpeg, max_side=THUMB_SIDE, format="JPEG", quality=70)
        with self._lock:
            self._thumbs[task_id] = small
            while len(self._thumbs) > self._limit:
                del self._thumbs[next(iter(self._thumbs))]

    def get(self, record: Record) -> bytes | None:
        """The thumbnail kept for ``record``'s task, if any."""
        with self._lock:
            return self._thumbs.get(record.task_id or "")


class RowMaker:
    """Makes and closes the strip's rows; every row shares one layout and style model of
    each kind. ``guard(action)`` wraps a button's action so its errors are reported."""

    def __init__(self, *, on_load: Callback | None, on_use: Callback | None,
                 on_add: Callback | None,
                 guard: Callable[[Callable[[], object]], Callable[[object], None]],
                 extra_thumb: Callable[[Record], bytes | None] | None = None) -> None:
        self._on_load = on_load
        self._on_use = on_use
        self._on_add = on_add
        self._guard = guard
        self._extra_thumb = extra_thumb
        # flex 0 0 auto: rows keep their height in the scrolling list instead of being
        # squeezed into it (ipywidgets boxes would then scroll inside each row).
        self.row_layout = w.Layout(display="flex", flex_flow="row wrap", align_items="center",
                                   justify_content="flex-end", width="100%", flex="0 0 auto")
        self.info_layout = w.Layout(flex="1 1 260px", min_width="0")
        self.actions_layout = w.Layout(display="flex", flex_flow="row wrap",
                                       align_items="center", justify_content="flex-end",
                                       flex="0 1 auto", width="auto")
        self.button_layout = w.Layout(width="auto")
        self.button_style = w.ButtonStyle()
        self.html_style = HTMLStyle()
        self.shared: list[w.Widget] = [self.row_layout, self.info_layout, self.actions_layout,
                                       self.button_layout, self.button_style, self.html_style]

    def thumb(self, rec: Record) -> tuple[bytes | None, str]:
        """The row's thumbnail (a small JPEG) and what it shows (``"result"``/``"input"``)."""
        data, kind = self._stored_thumb(rec)
        return (small_jpeg(data) if data else None), kind

    def _stored_thumb(self, rec: Record) -> tuple[bytes | None, str]:
        for image in rec.results:
            if image.thumbnail:
                return image.thumbnail, "result"
        if self._extra_thumb is not None and rec.status == "succeeded":
            try:
                extra = self._extra_thumb(rec)
            except Exception:
                extra = None
            if extra:
                return extra, "result"
        for inp in rec.inputs:
            if inp.thumbnail:
                return inp.thumbnail, "input"
        return None, ""

    def _button(self, description: str, icon: str, tooltip: str,
                callback: Callback, rec: Record) -> w.Button:
        button = w.Button(description=description, icon=icon, tooltip=tooltip,
                          layout=self.button_layout, style=self.button_style)
        button.on_click(self._guard(lambda: callback(rec)))
        return button

    def make(self, rec: Record, markup: str, usable: bool) -> w.Box:
        """A record's row: its HTML and its buttons ("Use as input" and "+" only for a
        record that succeeded)."""
        info = w.HTML(markup, layout=self.info_layout, style=self.html_style)
        buttons: list[w.Widget] = []
        if self._on_load is not None:
            buttons.append(self._button(
                "Load", "reply", f"Put the prompt and parameters of id {rec.id} (and its "
                "input images) back into the controls", self._on_load, rec))
        if usable and self._on_use is not None:
            use = self._button("Use as input", "arrow-up",
                               f"Continue from the image of id {rec.id}: it replaces the edit "
                               "inputs (and the panel switches to Edit images)",
                               self._on_use, rec)
            buttons.append(use)
            if self._on_add is not None:
                add = self._button("", "plus", f"Add the image of id {rec.id} to the edit "
                                   "inputs (keep the ones there)", self._on_add, rec)
                add.add_class("nbw-add-input")
                buttons.append(add)
        children: list[w.Widget] = [info]
        if buttons:
            actions = w.Box(buttons, layout=self.actions_layout)
            actions.add_class("nbw-hs-actions")
            children.append(actions)
        row = w.Box(children, layout=self.row_layout)
        row.add_class("nbw-hs-item")
        if rec.status in RECORD_STATUSES:
            row.add_class(f"nbw-hs-item-{rec.status}")
        return row

    def close(self, row: w.Box) -> None:
        """Close a row's widgets (the shared layouts and styles stay for the other rows)."""
        close_deep(row, keep=self.shared)

    def close_shared(self) -> None:
        """Close the shared layout and style models (the strip is closing)."""
        for widget in self.shared:
            widget.close()
