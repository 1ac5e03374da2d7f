"""Read-only views of a history, used like a small DataFrame.

A :class:`HistoryView` is a :class:`~nanobanana_widgets.store.schema.Selection` (SQL
conditions, or a fixed list of ids) evaluated only when asked: ``len``, ``view[i]`` (a
:class:`Record`), slices (another view), iteration, ``filter``, ``search``, ``sort``,
``head``, ``tail``, ``newest``, the exports and the HTML table. ``view[i]`` counts positions in
the view's order (oldest first unless sorted), so ``view[-1]`` is the latest record.

Views read; the record actions they offer (``rate``, ``note``, ``delete``, ...) resolve a
position in the view and hand the record to the :class:`~nanobanana_widgets.store.History`
façade, the only writer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from nanobanana_widgets.render.history_table import history_page_html
from nanobanana_widgets.service.errors import HistoryError, InvalidParameterError
from nanobanana_widgets.store.export import export_images, to_dataframe, write_csv, write_json
from nanobanana_widgets.store.html_report import write_history_report
from nanobanana_widgets.store.records import Record, RecordId, load_records
from nanobanana_widgets.store.schema import FIELDS, HistoryStore, Selection

if TYPE_CHECKING:
    import pandas

    from nanobanana_widgets.client import Client, Task
    from nanobanana_widgets.store.history import History
    from nanobanana_widgets.store.records import RecordTarget

__all__ = ["PAGE_SIZE", "HistoryView"]

PAGE_SIZE = 50
"""Rows per page of the HTML view."""
_CHUNK = 250
"""Records loaded per query while iterating a view."""
_NOT_FILTERS = ("elapsed", "id")


class HistoryView:
    """A lazily evaluated selection of history records (SQL conditions or an id list).

    Supports ``len``, indexing (``view[i]`` is a :class:`Record`), slicing (another view),
    iteration, ``filter``, ``search``, ``sort``, ``head``, ``tail``, the exports and the
    record actions. Nothing is read until asked for, so views over many records are cheap.
    """

    def __init__(self, history: History, store: HistoryStore, selection: Selection) -> None:
        self._history = history
        self._store = store
        self._selection = selection

    # --- evaluation -----------------------------------------------------------------

    def _derive(self, selection: Selection) -> HistoryView:
        return HistoryView(self._history, self._store, selection)

    def _id_list(self) -> list[int]:
        return self._store.select_ids(self._selection)

    def _materialized(self) -> HistoryView:
        """The same records without a window (ids fixed now), for further filtering."""
        if self._selection.window is None:
            return self
        return self._derive(self._selection.fixed(self._id_list()))

    def _position(self, i: int) -> int:
        n = len(self)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"record position {i} is out of range for {n} records")
        return j

    def _id_at(self, i: int) -> int:
        value = self._store.id_at(self._selection, self._position(i))
        if value is None:  # pragma: no cover - changed between the two queries
            raise IndexError(f"record position {i} is out of range")
        return value

    def _target(self, target: RecordTarget) -> int:
        """The record id of a position in this view, a record, a task id or a ``Task``."""
        if isinstance(target, RecordId):
            return int(target)
        if isinstance(target, Record):
            return target.id
        if isinstance(target, bool):
            raise TypeError("a record position must be an int, not a bool")
        if isinstance(target, int):
            return self._id_at(target)
        task_id = target if isinstance(target, str) else getattr(target, "id", None)
        rid = self._store.id_for_task(task_id) if isinstance(task_id, str) else None
        if rid is None:
            raise KeyError(f"no history record for task {task_id!r}")
        return rid

    def _ref(self, target: RecordTarget) -> RecordId:
        """``target`` as a record id the façade takes whatever view it came from."""
        return RecordId(self._target(target))

    # --- DataFrame-like -------------------------------------------------------------

    def __len__(self) -> int:
        return self._store.count(self._selection)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> HistoryView: ...
    def __getitem__(self, i: int | slice) -> Record | HistoryView:
        if isinstance(i, slice):
            r = range(len(self))[i]
            if r.step == 1:
                window = self._selection.window
                base = window[0] if window is not None else 0
                stop = max(r.start, r.stop)
                return self._derive(self._selection.windowed(base + r.start, base + stop))
            ids = self._id_list()
            return self._derive(self._selection.fixed([ids[k] for k in r]))
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"history indices are integers or slices, not {type(i).__name__}")
        return load_records(self._store, [self._id_at(i)])[0]

    def __iter__(self) -> Iterator[Record]:
        ids = self._id_list()
        for k in range(0, len(ids), _CHUNK):
            yield from load_records(self._store, ids[k:k + _CHUNK])

    def get(self, record_id: int) -> Record:
        """The record with this id (its ``Record.id``), deleted or not."""
        found = load_records(self._store, [record_id])
        if not found:
            raise KeyError(f"no history record with id {record_id}")
        return found[0]

    def filter(self, predicate: Callable[[Record], bool] | None = None,
               **equals: Any) -> HistoryView:
        """Records whose fields equal ``equals`` (a list/tuple/set means any of) and, if
        given, for which ``predicate(record)`` is true.

        Fields: ``action, prompt, model, count, aspect_ratio, resolution, status, rating,
        favourite, notes, task_id, trace_id, grid_id, grid_cell, fingerprint, error_code,
        error_type``. Keyword filters run in SQL; a predicate loads each candidate record.
        """
        view = self._materialized()
        selection = view._selection
        for name, value in equals.items():
            if name not in FIELDS or name in _NOT_FILTERS:
                raise InvalidParameterError(
                    f"filter field {name!r}", value, sorted(k for k in FIELDS if k != "elapsed"))
            selection = selection.where(name, value)
        view = view._derive(selection)
        if predicate is None:
            return view
        kept = [rec.id for rec in view if predicate(rec)]
        return view._derive(selection.fixed(kept))

    def search(self, text: str) -> HistoryView:
        """Records whose prompt or notes contain ``text`` (case-insensitive)."""
        view = self._materialized()
        return view._derive(view._selection.containing(text))

    def sort(self, by: str = "created_at", descending: bool = False) -> HistoryView:
        """The same records ordered by a field (``created_at``, ``rating``, ``prompt``,
        ``model``, ``status``, ``elapsed``, ...); ties keep creation order."""
        if by not in FIELDS:
            raise InvalidParameterError("sort field", by, sorted(FIELDS))
        selection = self._selection
        if selection.window is not None or selection.ids is not None:
            selection = selection.among(self._id_list())
        return self._derive(selection.sorted_by(by, descending))

    def head(self, n: int = 5) -> HistoryView:
        """The first ``n`` records."""
        return self[: max(0, n)]

    def tail(self, n: int = 5) -> HistoryView:
        """The last ``n`` records."""
        total = len(self)
        return self[max(0, total - max(0, n)):]

    def newest(self, n: int = 12, *, before: int | None = None) -> list[Record]:
        """The ``n`` most recent records of this view, newest first (by record id).

        With ``before`` (a record id), only records older than that one: the next page of
        a list that already shows ``before``. Reads only those ``n`` rows, so it stays
        quick on a large history.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidParameterError("n", n, None, hint="a count of records, 0 or more")
        selection = self.sort("id", descending=True)._selection
        if before is not None:
            selection = selection.older_than(before)
        return load_records(self._store, self._store.select_ids(selection, limit=n))

    def favourites(self) -> HistoryView:
        """The records marked as favourite."""
        return self.filter(favourite=True)

    def deleted(self) -> HistoryView:
        """Only the deleted records (recover one with ``undelete``)."""
        view = self._materialized()
        return view._derive(view._selection.only_deleted())

    def grid(self, grid_id: str) -> HistoryView:
        """The records of one grid run."""
        return self.filter(grid_id=grid_id)

    # --- exports --------------------------------------------------------------------

    def to_records(self) -> list[dict[str, Any]]:
        """Every record as a plain dict (see :meth:`Record.to_dict`)."""
        return [rec.to_dict() for rec in self]

    def to_pandas(self) -> pandas.DataFrame:
        """The records as a ``pandas.DataFrame`` (one row per record, indexed by ``id``)."""
        return to_dataframe(self.to_records())

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one CSV row per record (nested fields as JSON); returns the path."""
        return write_csv(self, path)

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the records as a JSON list; returns the path."""
        return write_json(self.to_records(), path)

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write every result image of the view (with metadata) plus ``manifest.csv`` and
        ``manifest.json`` into the folder ``path``; returns the folder.

        Images not downloaded yet are downloaded now (and kept in the history folder); a
        kept copy is checked against its hash (a damaged one is downloaded again). Files
        already in the folder are never replaced nor followed (a taken name gets ``-2``).
        An image that cannot be had is skipped, and the skips are reported (a
        ``HistoryWarning`` and ``History.problems``); the others are exported.
        """
        history = self._history

        def report(message: str) -> None:
            history._problems.report("export", message)

        return export_images(self, path, history._recorder.local_bytes, report)

    def to_html(self, path: str | os.PathLike[str], *, embed: bool = False) -> Path:
        """Write the view's records as one HTML page readable offline in any browser:
        thumbnails, prompts, parameters, status, ratings and notes (picks included), each
        record's full-size images in ``<name>_files/`` beside the page (or embedded in it
        with ``embed=True``). Images not downloaded yet are downloaded now. Returns the
        page's path."""
        n = len(self)
        return write_history_report(
            self, path, embed=embed, image_bytes=self._history._recorder.local_bytes,
            title=f"History: {n:,} record{'s' if n != 1 else ''}")

    # --- HTML -----------------------------------------------------------------------

    def html(self, page: int = 1, per_page: int = PAGE_SIZE) -> str:
        """One page of the HTML table (thumbnails, prompt, model, parameters, status)."""
        total = len(self)
        per_page = max(1, int(per_page))
        pages = max(1, math.ceil(total / per_page))
        page = min(max(1, int(page)), pages)
        offset = (page - 1) * per_page
        rows = self._store.page_rows(self._selection, limit=per_page, offset=offset)
        return history_page_html(rows, offset=offset, total=total, page=page, pages=pages)

    def page(self, page: int = 1, per_page: int = PAGE_SIZE) -> Any:
        """One page of the HTML view as a display object."""
        from IPython.display import HTML

        return HTML(self.html(page, per_page))  # type: ignore[no-untyped-call]

    def _repr_html_(self) -> str | None:
        try:
            return self.html(1)
        except HistoryError:
            return None  # the notebook shows the plain repr, which says what is wrong

    def __repr__(self) -> str:
        try:
            count = f"{len(self)} records"
        except HistoryError as exc:
            count = f"unreadable records ({exc.detail or type(exc).__name__})"
        return f"<HistoryView of {count} in {self._store.db_path}>"

    # --- record actions (written by the History façade) -----------------------------

    def rate(self, i: RecordTarget, stars: int) -> Record:
        """Rate a record from 0 (unrated) to 5 stars."""
        return self._history.rate(self._ref(i), stars)

    def favourite(self, i: RecordTarget, on: bool = True) -> Record:
        """Mark (or with ``on=False`` unmark) a record as favourite."""
        return self._history.favourite(self._ref(i), on)

    def note(self, i: RecordTarget, text: str) -> Record:
        """Set a record's notes (searchable with ``search``)."""
        return self._history.note(self._ref(i), text)

    def delete(self, i: RecordTarget) -> Record:
        """Hide a record from views (recoverable with ``undelete``; nothing is erased)."""
        return self._history.delete(self._ref(i))

    def undelete(self, i: RecordTarget) -> Record:
        """Bring a deleted record back (e.g. ``h.deleted().undelete(0)``)."""
        return self._history.undelete(self._ref(i))

    def tag(self, i: RecordTarget, *, grid_id: str | None, cell: str | None = None) -> Record:
        """Label a record as one cell of a grid run."""
        return self._history.tag(self._ref(i), grid_id=grid_id, cell=cell)

    def rerun(self, i: RecordTarget, *, client: Client | None = None, **changes: Any) -> Task:
        """Submit a record's request again, with ``changes`` applied (see
        :meth:`History.rerun`); returns the ``Task``."""
        return self._history.rerun(self._ref(i), client=client, **changes)
