"""``HistoryStrip``: a compact, scrollable list of the most recent history records.

The :class:`~nanobanana_widgets.panel.PromptPanel` shows one under its results. Each row
shows a record's thumbnail (the JPEG the history stored, at most 128 px), its prompt, id,
model and parameters, its status (a failed one with the headline of its error) and its
rating; "Load" and "Use as input" hand the record to callbacks the panel provides.

Only the rows shown are read from the database (:meth:`HistoryView.newest`), so a history
of ten thousand records opens as fast as one of ten. Rows whose content did not change keep
their widgets when the strip refreshes, and the rows share their layout and style models,
so the widget state stays small: a thumbnail and a few hundred bytes per row. Every string
from the history reaches HTML escaped (the HTML is :mod:`nanobanana_widgets.render.strip`'s).

The strip is refreshed from the panel's worker threads (a run has finished) and from
clicks. Reads of the history take turns and each takes the next revision; what a read
found is painted through a :class:`~nanobanana_widgets.widgets._ui.Painter` at that
revision, so a thread that read earlier can never cover what a later read showed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

from nanobanana_widgets.images import thumbnail
from nanobanana_widgets.render.static import rows_html
from nanobanana_widgets.render.strip import (
    error_headline,
    record_summary,
    strip_message_html,
    strip_row_html,
    strip_title_html,
)
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.store import RECORD_STATUSES, HistoryView, Record
from nanobanana_widgets.widgets._ui import Painter, guarded

__all__ = ["PAGE_SIZE", "THUMB_SIDE", "HistoryStrip", "RecentThumbs", "error_headline",
           "record_summary"]

_log = logging.getLogger(__name__)

PAGE_SIZE = 12
"""Records shown at first, and added by each click on "More…"."""
THUMB_SIDE = 128
"""Longest side, in pixels, of the thumbnails kept in widget state (JPEG)."""
_THUMB_MAX_BYTES = 24_000

Callback = Callable[[Record], None]


def _small_jpeg(data: bytes) -> bytes | None:
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


class HistoryStrip(w.VBox):  # type: ignore[misc]
    """The newest records of a history, newest first, with "Load" and "Use as input".

    ``HistoryStrip(history, on_load=..., on_use=..., on_error=..., extra_thumb=...)``.
    ``on_load(record)`` and ``on_use(record)`` are called by the rows' buttons ("Use as
    input" is offered only for records that succeeded); an exception they raise goes to
    ``on_error(text)`` (or the strip's own message line). ``extra_thumb(record)`` may give a
    thumbnail for a record whose images the history has not stored yet. ``refresh()``
    reads the history again; ``load_more()`` adds the next ``page_size`` older records.
    ``painter`` is the view's (a panel's); a strip on its own has its own.
    """

    _closed = False
    ROWS_KEY = ("strip",)
    MESSAGE_KEY = ("strip-message",)

    def __init__(
        self,
        history: HistoryView,
        *,
        on_load: Callback | None = None,
        on_use: Callback | None = None,
        on_error: Callable[[str], None] | None = None,
        extra_thumb: Callable[[Record], bytes | None] | None = None,
        page_size: int = PAGE_SIZE,
        painter: Painter | None = None,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, not {page_size!r}")
        self.history = history
        self.page_size = page_size
        self._on_load = on_load
        self._on_use = on_use
        self._on_error = on_error
        self._extra_thumb = extra_thumb
        self._painter = painter if painter is not None else Painter()
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._revision = 0
        self._records: list[Record] = []
        self._rows: dict[int, tuple[tuple[Any, ...], w.Box]] = {}
        self._total = 0
        self._closed = False

        # Shared by every row: one layout/style model each instead of one per widget.
        # flex 0 0 auto: rows keep their height in the scrolling list instead of being
        # squeezed into it (ipywidgets boxes would then scroll inside each row).
        self._row_layout = w.Layout(display="flex", flex_flow="row wrap", align_items="center",
                                    justify_content="flex-end", width="100%", flex="0 0 auto")
        self._info_layout = w.Layout(flex="1 1 260px", min_width="0")
        self._actions_layout = w.Layout(display="flex", flex_flow="column",
                                        align_items="stretch", flex="0 0 auto", width="auto")
        self._button_layout = w.Layout(width="auto")
        self._button_style = w.ButtonStyle()
        self._html_style = HTMLStyle()
        self._shared: list[w.Widget] = [self._row_layout, self._info_layout,
                                        self._actions_layout, self._button_layout,
                                        self._button_style, self._html_style]

        self.title = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.refresh_button = w.Button(
            description="Refresh", icon="refresh", layout=w.Layout(width="auto"),
            tooltip="Read the history again (shows records written by other notebooks "
                    "or processes too)",
        )
        self.refresh_button.on_click(self._guarded(lambda: self.refresh()))
        self._header = w.HBox([self.title, self.refresh_button],
                              layout=w.Layout(align_items="center", width="100%"))
        self._header.add_class("nbw-hs-header")
        self.message = w.HTML(layout=w.Layout(width="100%"))
        self.more_button = w.Button(
            description="More…", icon="angle-double-down",
            tooltip=f"Show the {page_size} next older records",
            layout=w.Layout(width="auto", align_self="center", margin="4px 0"),
        )
        self.more_button.on_click(self._guarded(lambda: self.load_more()))
        self.list_box = w.VBox(layout=w.Layout(width="100%", max_height="330px",
                                               overflow="hidden auto"))
        self.list_box.add_class("nbw-hs-list")
        super().__init__([self._header, self.message, self.list_box],
                         layout=w.Layout(width="100%"))
        self.add_class("nbw-hstrip")
        self.refresh()

    # --- reading --------------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """The records shown, newest first."""
        with self._lock:
            return list(self._records)

    @property
    def total(self) -> int:
        """How many records the history holds (as of the last refresh)."""
        return self._total

    @property
    def rows(self) -> list[w.Box]:
        """The row widgets shown, newest first."""
        with self._lock:
            return [self._rows[rec.id][1] for rec in self._records if rec.id in self._rows]

    def _next_revision(self) -> int:
        with self._lock:
            self._revision += 1
            return self._revision

    def refresh(self) -> None:
        """Read the newest records again (as many as are shown, at least one page)."""
        with self._read_lock:
            with self._lock:
                if self._closed:
                    return
                wanted = max(self.page_size, len(self._records))
            revision = self._next_revision()
            try:
                total = len(self.history)
                records = self.history.newest(wanted)
            except Exception as exc:
                self._show_message(f"Could not read the history: {describe_error(exc)}",
                                   revision)
                return
        self._show(revision, records, total)

    def load_more(self) -> int:
        """Add the next page of older records below the ones shown; returns how many."""
        with self._read_lock:
            with self._lock:
                if self._closed:
                    return 0
                shown, total = list(self._records), self._total
            revision = self._next_revision()
            before = shown[-1].id if shown else None
            older = self.history.newest(self.page_size, before=before)
        known = {rec.id for rec in shown}
        added = [rec for rec in older if rec.id not in known]
        self._show(revision, shown + added, total)
        return len(added)

    # --- painting -------------------------------------------------------------------

    def _show(self, revision: int, records: list[Record], total: int) -> None:
        """Paint ``records`` (read at ``revision``) unless a later read is shown already."""
        prepared = [(rec, strip_row_html(rec, *self._thumb(rec)),
                     rec.status == "succeeded" and bool(rec.results)) for rec in records]
        title = strip_title_html(len(records), total)
        stale: list[w.Box] = []

        def apply() -> None:
            with self._lock:
                if self._closed:
                    return
                keep: dict[int, tuple[tuple[Any, ...], w.Box]] = {}
                children: list[w.Widget] = []
                for rec, markup, usable in prepared:
                    signature = (markup, usable, rec.status)
                    old = self._rows.get(rec.id)
                    row = (old[1] if old is not None and old[0] == signature
                           else self._make_row(rec, markup, usable))
                    keep[rec.id] = (signature, row)
                    children.append(row)
                more = len(records) < total
                self.more_button.layout.display = None if more else "none"
                if more:
                    children.append(self.more_button)
                stale.extend(row for rid, (_sig, row) in self._rows.items()
                             if rid not in keep or keep[rid][1] is not row)
                self._rows, self._records, self._total = keep, records, total
                self.list_box.children = tuple(children)
                self.title.value = title

        if self._painter.paint(self.ROWS_KEY, (revision,), apply):
            self._show_message("", revision)
        for row in stale:
            self._close_row(row)

    def _thumb(self, rec: Record) -> tuple[bytes | None, str]:
        """The row's thumbnail (a small JPEG) and what it shows (``"result"``/``"input"``)."""
        data, kind = self._stored_thumb(rec)
        return (_small_jpeg(data) if data else None), kind

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

    def _make_row(self, rec: Record, markup: str, usable: bool) -> w.Box:
        info = w.HTML(markup, layout=self._info_layout, style=self._html_style)
        buttons: list[w.Widget] = []
        if self._on_load is not None:
            load = w.Button(description="Load", icon="reply",
                            tooltip=f"Put the prompt and parameters of id {rec.id} "
                                    "(and its input images) back into the controls",
                            layout=self._button_layout, style=self._button_style)
            load.on_click(self._guarded(lambda: self._call(self._on_load, rec)))
            buttons.append(load)
        if usable and self._on_use is not None:
            use = w.Button(description="Use as input", icon="arrow-up",
                           tooltip=f"Add the image of id {rec.id} to the edit inputs and "
                                   "switch to Edit",
                           layout=self._button_layout, style=self._button_style)
            use.on_click(self._guarded(lambda: self._call(self._on_use, rec)))
            buttons.append(use)
        children: list[w.Widget] = [info]
        if buttons:
            actions = w.Box(buttons, layout=self._actions_layout)
            actions.add_class("nbw-hs-actions")
            children.append(actions)
        row = w.Box(children, layout=self._row_layout)
        row.add_class("nbw-hs-item")
        if rec.status in RECORD_STATUSES:
            row.add_class(f"nbw-hs-item-{rec.status}")
        return row

    @staticmethod
    def _call(callback: Callback | None, rec: Record) -> None:
        if callback is not None:
            callback(rec)

    def static_html(self, shown_above: frozenset[str] = frozenset()) -> str:
        """The strip as a saved notebook shows it: its title and the rows shown (the same
        markup), without the thumbnails of the tasks in ``shown_above`` (their images are
        in the notebook already: every saved byte counts)."""
        with self._lock:
            rows = [strip_row_html(rec, None) if rec.task_id in shown_above
                    else self._rows[rec.id][0][0]
                    for rec in self._records if rec.id in self._rows]
            title = self.title.value
        return (f'<div class="nbw-static-hstrip" style="margin-top:8px;">'
                f'<div style="margin-bottom:4px;">{title}</div>{rows_html(rows)}</div>')

    # --- errors and lifecycle --------------------------------------------------------

    def _guarded(self, action: Callable[[], Any]) -> Callable[[Any], None]:
        return guarded(lambda _button: action(), self._report)

    def _report(self, exc: BaseException) -> None:
        text = describe_error(exc)
        if self._on_error is not None:
            try:
                self._on_error(text)
                return
            except Exception:
                _log.exception("history strip: on_error failed")
        self._show_message(text, self._next_revision())

    def _show_message(self, text: str, revision: int) -> None:
        markup = strip_message_html(text)
        self._painter.paint(self.MESSAGE_KEY, (revision,),
                            lambda: setattr(self.message, "value", markup))

    @staticmethod
    def _close_row(row: w.Box) -> None:
        children: Sequence[w.Widget] = row.children
        for child in children:
            for grandchild in getattr(child, "children", ()):
                grandchild.close()
            child.close()  # their shared layouts and styles stay open for the other rows
        row.close()

    def close(self) -> None:
        """Close every row and the strip's own widgets."""
        if "_lock" not in self.__dict__:  # __init__ did not get far
            super().close()
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            rows = [row for _sig, row in self._rows.values()]
            self._rows = {}
        for row in rows:
            self._close_row(row)
        super().close()
        names = ("title", "refresh_button", "_header", "message", "more_button", "list_box")
        for widget in [*(getattr(self, n, None) for n in names), *self._shared]:
            if widget is not None:
                widget.close()

    def __repr__(self) -> str:
        return f"HistoryStrip({len(self._records)} of {self._total} records shown)"
