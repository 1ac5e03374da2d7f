"""``HistoryStrip``: a compact, scrollable list of the most recent history records.

The :class:`~nanobanana_widgets.panel.PromptPanel` shows one under its results. Each row
shows a record's thumbnail (the JPEG the history stored, at most 128 px), its prompt, id,
model and parameters, its status (a failed one with the headline of its error) and its
rating; "Load" and "Use as input" hand the record to callbacks the panel provides.

Only the rows shown are read from the database (:meth:`HistoryView.newest`), so a history
of ten thousand records opens as fast as one of ten. Rows whose content did not change keep
their widgets when the strip refreshes, and the rows share their layout and style models,
so the widget state stays small: a thumbnail and a few hundred bytes per row. Every string
from the history reaches HTML escaped.
"""

from __future__ import annotations

import base64
import html
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

from nanobanana_widgets.images import thumbnail
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.store import RECORD_STATUSES, HistoryView, Record

__all__ = ["PAGE_SIZE", "THUMB_SIDE", "HistoryStrip", "error_headline", "record_summary"]

_log = logging.getLogger(__name__)

PAGE_SIZE = 12
"""Records shown at first, and added by each click on "More…"."""
THUMB_SIDE = 128
"""Longest side, in pixels, of the thumbnails kept in widget state (JPEG)."""
_THUMB_MAX_BYTES = 24_000
_PROMPT_CHARS = 160
_HEADLINE_CHARS = 110

Callback = Callable[[Record], None]


def error_headline(rec: Record) -> str:
    """The first sentence of a record's error (short), or ``""`` when it has none."""
    err = rec.error
    if err is None:
        return ""
    message = " ".join(err.message.split()) or err.type
    first, dot, _rest = message.partition(". ")
    short = first + "." if dot else message
    if len(short) > _HEADLINE_CHARS:
        short = short[: _HEADLINE_CHARS - 1] + "…"
    return short


def record_summary(rec: Record) -> str:
    """``"generate · nano-banana-2 · 16:9 · 2K · ×2"``: what a record asked for, in one line."""
    parts = [rec.action, rec.model]
    if rec.aspect_ratio:
        parts.append(rec.aspect_ratio)
    if rec.resolution:
        parts.append(rec.resolution)
    if rec.count != 1:
        parts.append(f"×{rec.count}")
    if rec.inputs:
        n = len(rec.inputs)
        parts.append(f"{n} input{'s' if n != 1 else ''}")
    return " · ".join(parts)


def _when(created: float) -> tuple[str, str]:
    """A short time for the row and a full one for its tooltip."""
    local = time.localtime(created)
    full = time.strftime("%Y-%m-%d %H:%M:%S", local)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M", local), full
    return time.strftime("%Y-%m-%d", local), full


def _small_jpeg(data: bytes) -> bytes | None:
    """``data`` when it is already a small JPEG; otherwise a JPEG thumbnail of it."""
    if data[:2] == b"\xff\xd8" and len(data) <= _THUMB_MAX_BYTES:
        return data
    try:
        return thumbnail(data, max_side=THUMB_SIDE, format="JPEG", quality=70)
    except Exception:  # a broken stored thumbnail shows the placeholder instead
        _log.debug("history strip: unusable thumbnail", exc_info=True)
        return None


class HistoryStrip(w.VBox):  # type: ignore[misc]
    """The newest records of a history, newest first, with "Load" and "Use as input".

    ``HistoryStrip(history, on_load=..., on_use=..., on_error=..., extra_thumb=...)``.
    ``on_load(record)`` and ``on_use(record)`` are called by the rows' buttons ("Use as
    input" is offered only for records that succeeded); an exception they raise goes to
    ``on_error(text)`` (or the strip's own message line). ``extra_thumb(record)`` may give a
    thumbnail for a record whose images the history has not stored yet. ``refresh()``
    reads the history again; ``load_more()`` adds the next ``page_size`` older records.
    """

    _closed = False

    def __init__(
        self,
        history: HistoryView,
        *,
        on_load: Callback | None = None,
        on_use: Callback | None = None,
        on_error: Callable[[str], None] | None = None,
        extra_thumb: Callable[[Record], bytes | None] | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, not {page_size!r}")
        self.history = history
        self.page_size = page_size
        self._on_load = on_load
        self._on_use = on_use
        self._on_error = on_error
        self._extra_thumb = extra_thumb
        self._lock = threading.RLock()
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

    def refresh(self) -> None:
        """Read the newest records again (as many as are shown, at least one page)."""
        with self._lock:
            if self._closed:
                return
            wanted = max(self.page_size, len(self._records))
            try:
                total = len(self.history)
                records = self.history.newest(wanted)
            except Exception as exc:
                self._show_message(f"Could not read the history: {describe_error(exc)}")
                return
            self._total = total
            self._records = records
            self._show_message("")
            self._render()

    def load_more(self) -> int:
        """Add the next page of older records below the ones shown; returns how many."""
        with self._lock:
            if self._closed:
                return 0
            before = self._records[-1].id if self._records else None
            older = self.history.newest(self.page_size, before=before)
            known = {rec.id for rec in self._records}
            added = [rec for rec in older if rec.id not in known]
            self._records.extend(added)
            self._render()
            return len(added)

    # --- rendering ------------------------------------------------------------------

    def _render(self) -> None:
        n, total = len(self._records), self._total
        if total:
            shown = f"newest {n} of {total:,}" if n < total else f"all {total:,}"
            self.title.value = (
                '<span class="nbw-hs-title">History</span> '
                f'<span class="nbw-muted">· {total:,} record{"s" if total != 1 else ""}'
                f" · {shown} shown</span>")
        else:
            self.title.value = ('<span class="nbw-hs-title">History</span> '
                                '<span class="nbw-muted">· no requests recorded yet</span>')
        keep: dict[int, tuple[tuple[Any, ...], w.Box]] = {}
        children: list[w.Widget] = []
        for rec in self._records:
            markup, usable = self._row_html(rec), rec.status == "succeeded" and bool(rec.results)
            signature = (markup, usable, rec.status)
            old = self._rows.get(rec.id)
            if old is not None and old[0] == signature:
                row = old[1]
            else:
                row = self._make_row(rec, markup, usable)
            keep[rec.id] = (signature, row)
            children.append(row)
        more = n < total
        self.more_button.layout.display = None if more else "none"
        if more:
            children.append(self.more_button)
        stale = [row for rid, (_sig, row) in self._rows.items()
                 if rid not in keep or keep[rid][1] is not row]
        self._rows = keep
        self.list_box.children = tuple(children)
        for row in stale:
            self._close_row(row)

    def _thumb(self, rec: Record) -> tuple[bytes | None, str]:
        """The row's thumbnail and what it shows (``"result"`` or ``"input"``)."""
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

    def _row_html(self, rec: Record) -> str:
        esc = html.escape
        prompt = " ".join(rec.prompt.split())
        short = prompt if len(prompt) <= _PROMPT_CHARS else prompt[: _PROMPT_CHARS - 1] + "…"
        data, kind = self._thumb(rec)
        jpeg = _small_jpeg(data) if data else None
        if jpeg is not None:
            alt = "input image" if kind == "input" else "result image"
            cls = "nbw-hs-thumb nbw-hs-input" if kind == "input" else "nbw-hs-thumb"
            thumb = (f'<img class="{cls}" alt="{alt}" '
                     f'src="data:image/jpeg;base64,{base64.b64encode(jpeg).decode("ascii")}" '
                     'style="width:56px;height:56px;object-fit:cover;border-radius:4px;'
                     'flex:0 0 56px;">')
        else:
            glyph = {"failed": "⚠", "cancelled": "✕", "succeeded": "✓"}.get(rec.status, "…")
            thumb = ('<div class="nbw-hs-thumb nbw-hs-noimg" aria-hidden="true" '
                     'style="width:56px;height:56px;flex:0 0 56px;display:flex;'
                     'align-items:center;justify-content:center;border-radius:4px;">'
                     f"{glyph}</div>")
        short_time, full_time = _when(rec.created_at)
        meta = f"id {rec.id} · {record_summary(rec)} · {short_time}"
        status = self._status_html(rec)
        tooltip = f"{prompt}\n\nid {rec.id} · {full_time}"
        if rec.task_id:
            tooltip += f"\ntask {rec.task_id}"
        return (
            f'<div class="nbw-hs-item-body" title="{esc(tooltip, quote=True)}" '
            'style="display:flex;gap:8px;align-items:center;min-width:0;">'
            f"{thumb}"
            '<div style="min-width:0;flex:1 1 auto;">'
            f'<div class="nbw-hs-prompt">{esc(short) or "(empty prompt)"}</div>'
            f'<div class="nbw-muted" style="overflow-wrap:anywhere;">{esc(meta)}</div>'
            f"{status}</div></div>"
        )

    def _status_html(self, rec: Record) -> str:
        esc = html.escape
        marks = ""
        if rec.rating:
            stars = "★" * rec.rating + "☆" * (5 - rec.rating)
            marks += (f' <span class="nbw-hs-stars" title="rated {rec.rating} of 5">'
                      f"{stars}</span>")
        if rec.favourite:
            marks += ' <span class="nbw-hs-fav" title="favourite">♥</span>'
        if rec.status == "succeeded":
            n = len(rec.results)
            text = f"✓ {n} image{'s' if n != 1 else ''}"
            return (f'<div class="nbw-hs-status nbw-hs-succeeded">{esc(text)}{marks}</div>')
        if rec.status in ("failed", "cancelled"):
            headline = error_headline(rec)
            err = rec.error
            details = []
            if err is not None:
                details.append(f"{err.type}: {err.message}")
                if err.code:
                    details.append(f"code {err.code}")
                if err.trace_id:
                    details.append(f"trace id {err.trace_id}")
            word = "failed" if rec.status == "failed" else "cancelled"
            text = f"⚠ {word}" + (f": {headline}" if headline else "")
            return (f'<div class="nbw-hs-status nbw-hs-{word}" '
                    f'title="{esc(chr(10).join(details), quote=True)}" '
                    f'style="overflow-wrap:anywhere;">{esc(text)}{marks}</div>')
        return ('<div class="nbw-hs-status nbw-hs-pending" title="Still running, or its '
                'process stopped before it finished: History.resume() looks it up.">'
                f"… not finished ({esc(rec.status)}){marks}</div>")

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

    # --- errors and lifecycle --------------------------------------------------------

    def _guarded(self, action: Callable[[], Any]) -> Callable[[Any], None]:
        def handler(_button: Any) -> None:
            try:
                action()
            except Exception as exc:  # a click never loses its error
                _log.debug("history strip action failed", exc_info=True)
                text = describe_error(exc)
                if self._on_error is not None:
                    try:
                        self._on_error(text)
                        return
                    except Exception:
                        _log.exception("history strip: on_error failed")
                self._show_message(text)

        return handler

    def _show_message(self, text: str) -> None:
        self.message.value = (f'<div class="nbw-msg nbw-msg-error">{html.escape(text)}</div>'
                              if text else "")

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
