"""``HistoryStrip``: a compact, paged, searchable list of a history's records.

The :class:`~nanobanana_widgets.panel.PromptPanel` shows one under its results. Each row
shows a record's thumbnail, its prompt, id, model and parameters, its status (a failed one
with the headline of its error) and its rating; "Load", "Use as input" and "+" hand the
record to callbacks the panel provides (rows are made by :mod:`.strip_rows`).

**Pages.** One page of ``page_size`` records is shown, newest first; "Older" and "Newer"
page through the rest (a page is anchored on the record before it, so records that arrive
meanwhile do not shift it). The search box keeps the records whose prompt or notes
contain its text. Only the rows of the page are read from the database
(:meth:`HistoryView.newest`), so a history of ten thousand records opens as fast as one of
ten, and the live widgets stay bounded however long the session.

**Staying current.** A light watcher checks every few seconds whether the history changed
(a record written by another notebook or process) and reads the page again. "Refresh"
reads it at once and, in the background, looks up the records still unfinished (a run
cancelled locally whose task finished later), then reads again.

Reads of the history take turns and each takes the next revision; what a read found is
painted through a :class:`~nanobanana_widgets.widgets._ui.Painter` at that revision, so a
thread that read earlier can never cover what a later read showed. Rows whose content did
not change keep their widgets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from nanobanana_widgets.render.static import rows_html
from nanobanana_widgets.render.strip import (
    error_headline,
    pager_html,
    record_summary,
    strip_message_html,
    strip_row_html,
    strip_title_html,
)
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.store import HistoryView, Record
from nanobanana_widgets.widgets._ui import Painter, Ticker, guarded
from nanobanana_widgets.widgets.panel.strip_rows import (
    THUMB_SIDE,
    Callback,
    RecentThumbs,
    RowMaker,
)

__all__ = ["PAGE_SIZE", "THUMB_SIDE", "WATCH_INTERVAL", "HistoryStrip", "RecentThumbs",
           "error_headline", "record_summary"]

_log = logging.getLogger(__name__)

PAGE_SIZE = 12
"""Records on one page of the strip."""
WATCH_INTERVAL = 5.0
"""Seconds between the watcher's checks for records written elsewhere."""
_UNFINISHED = ("submitted", "pending")


def _unfinished(rec: Record) -> bool:
    """Whether a lookup may still change ``rec`` (its task may have finished since)."""
    if not rec.task_id:
        return False
    return rec.status in _UNFINISHED or (rec.status == "cancelled" and not rec.results)


class HistoryStrip(w.VBox):  # type: ignore[misc]
    """A page of a history's records, newest first, with "Load", "Use as input" and "+".

    ``on_load(record)``, ``on_use(record)`` and ``on_add(record)`` are called by the rows'
    buttons ("Use as input" and "+" only for records that succeeded); an exception they
    raise goes to ``on_error(text)`` (or the strip's own message line).
    ``extra_thumb(record)`` may give a thumbnail for a record whose images the history has
    not stored yet. ``resume()`` looks the unfinished records up (Refresh calls it through
    ``run_job(fn)``, the owner's background pool). ``watch_interval`` seconds between
    checks for changes made elsewhere (``None``: no watcher). ``painter`` is the view's (a
    panel's); a strip on its own has its own.
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
        on_add: Callback | None = None,
        on_error: Callable[[str], None] | None = None,
        extra_thumb: Callable[[Record], bytes | None] | None = None,
        page_size: int = PAGE_SIZE,
        painter: Painter | None = None,
        resume: Callable[[], object] | None = None,
        run_job: Callable[..., object] | None = None,
        watch_interval: float | None = WATCH_INTERVAL,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be a positive int, not {page_size!r}")
        self.history = history
        self.page_size = page_size
        self._on_error = on_error
        self._resume = resume
        self._run_job = run_job
        self._painter = painter if painter is not None else Painter()
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._revision = 0
        self._records: list[Record] = []
        self._rows: dict[int, tuple[tuple[Any, ...], w.Box]] = {}
        self._total = 0
        self._matching = 0
        self._query = ""
        self._anchors: list[int | None] = [None]  # the record before each page (None: top)
        self._seen: tuple[int, int | None] | None = None
        self._closed = False
        self._maker = RowMaker(on_load=on_load, on_use=on_use, on_add=on_add,
                               guard=self._guarded, extra_thumb=extra_thumb)

        self.title = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.search = w.Text(placeholder="Search prompts and notes", continuous_update=True,
                             layout=w.Layout(width="220px", flex="0 1 auto"))
        self.search.add_class("nbw-hs-search")
        self.search.observe(guarded(lambda c: self.find(c["new"]), self._report), names="value")
        self.refresh_button = w.Button(
            description="Refresh", icon="refresh", layout=w.Layout(width="auto"),
            tooltip="Read the history again and look up the records still unfinished "
                    "(records of other notebooks also appear by themselves)",
        )
        self.refresh_button.on_click(self._guarded(lambda: self.refresh(look_up=True)))
        self._header = w.HBox([self.title, self.search, self.refresh_button],
                              layout=w.Layout(align_items="center", width="100%",
                                              flex_flow="row wrap"))
        self._header.add_class("nbw-hs-header")
        self._header.add_class("nbw-gap")
        self.message = w.HTML(layout=w.Layout(width="100%"))
        self.list_box = w.VBox(layout=w.Layout(width="100%", max_height="330px",
                                               overflow="hidden auto"))
        self.list_box.add_class("nbw-hs-list")
        self.newer_button = w.Button(description="Newer", icon="angle-left",
                                     tooltip="The page of newer records",
                                     layout=w.Layout(width="auto"))
        self.older_button = w.Button(description="Older", icon="angle-right",
                                     tooltip=f"The {page_size} next older records",
                                     layout=w.Layout(width="auto"))
        self.newer_button.on_click(self._guarded(lambda: self.newer()))
        self.older_button.on_click(self._guarded(lambda: self.older()))
        self.page_label = w.HTML()
        self.pager = w.HBox([self.newer_button, self.page_label, self.older_button],
                            layout=w.Layout(justify_content="center", align_items="center",
                                            width="100%", display="none"))
        self.pager.add_class("nbw-hs-pager")
        self.pager.add_class("nbw-gap")
        super().__init__([self._header, self.message, self.list_box, self.pager],
                         layout=w.Layout(width="100%"))
        self.add_class("nbw-hstrip")
        self.refresh()
        self._watcher: Ticker | None = None
        if watch_interval is not None:
            self._watcher = Ticker(self._watch, interval=watch_interval,
                                   name="nbw-history-watch")
            self._watcher.start()

    # --- reading --------------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """The records shown, newest first."""
        with self._lock:
            return list(self._records)

    @property
    def total(self) -> int:
        """How many records the history holds (as of the last read)."""
        return self._total

    @property
    def page(self) -> int:
        """The page shown, from 1 (the newest records)."""
        with self._lock:
            return len(self._anchors)

    @property
    def query(self) -> str:
        """The search text (``""``: every record)."""
        return self._query

    @property
    def rows(self) -> list[w.Box]:
        """The row widgets shown, newest first."""
        with self._lock:
            return [self._rows[rec.id][1] for rec in self._records if rec.id in self._rows]

    def _next_revision(self) -> int:
        with self._lock:
            self._revision += 1
            return self._revision

    def _view(self) -> HistoryView:
        return self.history.search(self._query) if self._query else self.history

    def refresh(self, *, look_up: bool = False) -> None:
        """Read the page shown again. With ``look_up`` (the Refresh button), also look up
        the unfinished records in the background, then read again."""
        self._read()
        if look_up and self._resume is not None and self._run_job is not None:
            pending = [rec for rec in self.records if _unfinished(rec)]
            if pending:
                n = len(pending)
                self._show_message(f"Looking up {n} unfinished record{'s' if n != 1 else ''}…",
                                   self._next_revision(), "info")
                self._run_job(self._look_up)

    def _look_up(self) -> None:
        assert self._resume is not None
        try:
            self._resume()
        except Exception as exc:
            self._show_message(f"Could not look the unfinished records up: "
                               f"{describe_error(exc)}", self._next_revision())
            return
        self._read()

    def _read(self) -> None:
        with self._read_lock:
            with self._lock:
                if self._closed:
                    return
                anchor = self._anchors[-1]
            revision = self._next_revision()
            try:
                view = self._view()
                total = len(self.history)
                matching = len(view) if self._query else total
                records = view.newest(self.page_size, before=anchor)
                if not records and anchor is not None:  # the page emptied: back to the top
                    with self._lock:
                        self._anchors = [None]
                    records = view.newest(self.page_size)
                self._seen = self._signature()
            except Exception as exc:
                self._show_message(f"Could not read the history: {describe_error(exc)}",
                                   revision)
                return
        self._show(revision, records, total, matching)

    def _signature(self) -> tuple[int, int | None]:
        newest = self.history.newest(1)
        return len(self.history), (newest[0].id if newest else None)

    def _watch(self) -> bool:
        """The watcher's tick: read again when the history changed since the last read."""
        if self._closed:
            return False
        try:
            changed = self._signature() != self._seen
        except Exception:  # a history that cannot be read now; Refresh will say why
            _log.debug("history strip: watch failed", exc_info=True)
            return True
        if changed:
            self._read()
        return not self._closed

    def find(self, text: str) -> None:
        """Show the records whose prompt or notes contain ``text`` (``""``: all), from the
        first page."""
        with self._lock:
            self._query = " ".join(str(text).split())
            self._anchors = [None]
        if self.search.value != text:
            self.search.value = text
        self._read()

    def older(self) -> int:
        """Show the next page of older records; returns how many it shows."""
        with self._lock:
            if not self._records or self._first() + len(self._records) > self._matching:
                return 0
            self._anchors.append(self._records[-1].id)
        self._read()
        return len(self.records)

    def newer(self) -> int:
        """Show the page of newer records; returns how many it shows."""
        with self._lock:
            if len(self._anchors) == 1:
                return 0
            self._anchors.pop()
        self._read()
        return len(self.records)

    def _first(self) -> int:
        """The place (from 1) of the first record shown, in the list being paged."""
        return (len(self._anchors) - 1) * self.page_size + 1

    # --- painting -------------------------------------------------------------------

    def _show(self, revision: int, records: list[Record], total: int, matching: int) -> None:
        """Paint ``records`` (read at ``revision``) unless a later read is shown already."""
        prepared = [(rec, strip_row_html(rec, *self._maker.thumb(rec)),
                     rec.status == "succeeded" and bool(rec.results)) for rec in records]
        with self._lock:
            first, page = self._first(), len(self._anchors)
        title = strip_title_html(len(records), total, first=first, query=self._query,
                                 matching=matching)
        pages = max(1, -(-matching // self.page_size))
        has_older = first + len(records) <= matching
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
                           else self._maker.make(rec, markup, usable))
                    keep[rec.id] = (signature, row)
                    children.append(row)
                stale.extend(row for rid, (_sig, row) in self._rows.items()
                             if rid not in keep or keep[rid][1] is not row)
                self._rows, self._records = keep, records
                self._total, self._matching = total, matching
                self.list_box.children = tuple(children)
                self.title.value = title
                self.page_label.value = pager_html(page, pages)
                self.newer_button.disabled = page == 1
                self.older_button.disabled = not has_older
                self.pager.layout.display = "flex" if (page > 1 or has_older) else "none"

        if self._painter.paint(self.ROWS_KEY, (revision,), apply):
            self._show_message("", revision)
        for row in stale:
            self._maker.close(row)

    # --- errors and lifecycle --------------------------------------------------------

    def _guarded(self, action: Callable[[], object]) -> Callable[[object], None]:
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

    def _show_message(self, text: str, revision: int, level: str = "error") -> None:
        markup = strip_message_html(text, level)
        self._painter.paint(self.MESSAGE_KEY, (revision,),
                            lambda: setattr(self.message, "value", markup))

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

    def close(self) -> None:
        """Stop the watcher, close every row and the strip's own widgets."""
        if "_lock" not in self.__dict__:  # __init__ did not get far
            super().close()
            return
        with self._lock:
            if self._closed:
                return
            self._closed = True
            rows = [row for _sig, row in self._rows.values()]
            self._rows = {}
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.stop()
        for row in rows:
            self._maker.close(row)
        super().close()
        names = ("title", "search", "refresh_button", "_header", "message", "list_box",
                 "newer_button", "older_button", "page_label", "pager")
        for widget in (getattr(self, n, None) for n in names):
            if widget is not None:
                widget.close()
        self._maker.close_shared()

    def __repr__(self) -> str:
        return (f"HistoryStrip(page {self.page}: {len(self._records)} of {self._total} "
                "records shown)")
