"""The session history: every request recorded in SQLite, browsable like a small DataFrame.

::

    h = History()                    # .nanobanana/ under the working directory
    h = History("runs/", client=c)   # another folder (or a .sqlite file), recording c's requests
    h[-1].result()                   # the latest request as a Result (images from local copies)
    h.filter(model="nano-banana-pro").search("cat").sort("rating", descending=True)
    h.rate(-1, 5); h.favourite(-1); h.note(-1, "the one"); h.delete(0); h.deleted().undelete(0)
    h.rerun(-1, aspect_ratio="16:9")  # the same request again (inputs read from the folder)
    h.export("picked/")              # images with metadata, manifest.csv and manifest.json

**Recording.** A :class:`History` is a client listener (``History.attach(client)`` or
``History(client=...)``). A record is written in ``on_submitted``, with its task id, before
anything waits; a submit that fails before a task id exists is recorded as failed. When a task
finishes, its image URLs are stored and the record is marked ``succeeded`` at once, so the
caller gets the result without waiting for the history; the images are then downloaded into
the content-addressed folder (with prompt, model, parameters and task id embedded) by a
background thread. A process that dies before a download ends loses nothing: the URL is
recorded, and :meth:`History.resume` downloads every result that has no local copy yet (as
well as looking up tasks still running). :meth:`History.flush` waits for the downloads.

**Opening** a history reads nothing but the row count and never touches the network, unless
``History(..., resume=True)`` asks it to look up the tasks that were still running.

**Replay** (off by default): with ``history.replay = True`` (or ``History(replay=True)``), a
request identical to one that succeeded before (same action, prompt, parameters and input
image bytes) returns the recorded result instead of being submitted again, so re-running a
notebook from the top does not pay twice. Each replay increments the record's ``replays``.

**Indexing.** ``h[i]`` counts positions in the view's order (oldest first unless sorted), so
``h[-1]`` is the latest record. Actions (``rate``, ``note``, ...) take the same positions, or a
:class:`Record`, or a task id. Deleted records are hidden unless
``History(include_deleted=True)``; ``h.deleted()`` lists only them.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import concurrent.futures
import contextlib
import csv
import hashlib
import html
import json
import logging
import math
import os
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

from nanobanana_widgets.images import (
    download,
    embed_metadata,
    extension_for,
    read_metadata,
    thumbnail,
    write_with_metadata,
)
from nanobanana_widgets.service import errors as _errors
from nanobanana_widgets.service.errors import (
    CancelledError,
    ImageInputError,
    InvalidParameterError,
    NanoBananaError,
    PossiblyBilledError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.status import Status
from nanobanana_widgets.service.types import (
    GeneratedImage,
    ImageRequest,
    Result,
    TaskRecord,
    Timings,
)
from nanobanana_widgets.store.schema import HistoryStore, dumps

if TYPE_CHECKING:
    import pandas

    from nanobanana_widgets.client import Client, Task

__all__ = ["ErrorInfo", "History", "HistoryView", "InputImage", "Pick", "Record", "RecordStatus",
           "ReplayMode", "ResultImage", "request_fingerprint"]

logger = logging.getLogger(__name__)

RecordStatus = Literal["submitted", "pending", "succeeded", "failed", "cancelled"]
RECORD_STATUSES: tuple[str, ...] = ("submitted", "pending", "succeeded", "failed", "cancelled")
_OPEN_STATUSES = ("submitted", "pending")

THUMB_SIDE = 128
"""Longest side, in pixels, of the JPEG thumbnails kept in the database."""
PAGE_SIZE = 50
"""Rows per page of the HTML view."""
_CHUNK = 250
_BATCH = 50

_MIME_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg",
             "image/webp": ".webp", "image/gif": ".gif", "image/bmp": ".bmp"}

_EXPR: dict[str, str] = {name: f"r.{name}" for name in (
    "id", "created_at", "action", "prompt", "model", "count", "aspect_ratio", "resolution",
    "task_id", "trace_id", "submitted_at", "started_at", "finished_at", "received_at", "status",
    "rating", "favourite", "notes", "deleted", "grid_id", "grid_cell", "fingerprint", "replays",
    "error_code", "error_message", "last_replayed_at",
)}
_EXPR.update({
    "created": "r.created_at",
    "error_type": "r.error_class",
    "error_class": "r.error_class",
    "elapsed": "(COALESCE(r.received_at, r.finished_at) - COALESCE(r.submitted_at, "
               "r.service_created_at))",
})
_RERUN_KEYS = ("prompt", "action", "images", "model", "count", "aspect_ratio", "resolution",
               "callback_url")


# --- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InputImage:
    """One input image of a request: its content hash, local copy and thumbnail."""

    sha256: str
    mime: str | None
    path: Path | None
    url: str | None = None
    thumbnail: bytes | None = field(default=None, repr=False, compare=False)

    def bytes(self) -> bytes:
        """The input file's bytes from the history folder."""
        if self.path is None or not self.path.is_file():
            raise ImageInputError(
                f"sha256 {self.sha256[:12]}",
                "its copy is missing from the history folder",
                hint="Pass the image again with rerun(..., images=[...]).",
            )
        return self.path.read_bytes()

    def source(self) -> builtins.bytes | str:
        """What to send again: the stored bytes, or the URL when the input was a URL."""
        return self.url if self.url is not None else self.bytes()

    def data_uri(self) -> str:
        """The input as it was sent (its URL, or a ``data:`` URI of the stored bytes)."""
        if self.url is not None:
            return self.url
        return f"data:{self.mime or 'image/png'};base64," + base64.b64encode(self.bytes()).decode()


@dataclass(frozen=True)
class ResultImage:
    """One result image: the service's URL, the echoed prompt and the local copy."""

    position: int
    url: str
    prompt: str
    sha256: str | None = None
    path: Path | None = None
    thumbnail: bytes | None = field(default=None, repr=False, compare=False)
    download_error: str | None = None

    @property
    def local(self) -> bool:
        """Whether the downloaded copy is in the history folder."""
        return self.path is not None and self.path.is_file()


@dataclass(frozen=True)
class Pick:
    """A pick recorded by :meth:`History.record_pick` (enough to take it back)."""

    record_id: int
    line: str
    was_favourite: bool


@dataclass(frozen=True)
class ErrorInfo:
    """Why a request failed: the error class name, the service's code, message, trace id."""

    type: str
    code: str | None
    message: str
    trace_id: str | None = None

    def to_exception(self, task_id: str | None = None) -> NanoBananaError:
        """The error as an instance of its class (``NanoBananaError`` if unknown)."""
        cls = getattr(_errors, self.type, None)
        if not (isinstance(cls, type) and issubclass(cls, NanoBananaError)):
            cls = NanoBananaError
        err = cls.__new__(cls)
        NanoBananaError.__init__(err, self.message, code=self.code, trace_id=self.trace_id,
                                 task_id=task_id)
        return err


@dataclass(frozen=True)
class Record:
    """One recorded request, read from the history (a snapshot; actions go through the view)."""

    id: int
    created_at: float
    action: str
    prompt: str
    model: str
    count: int
    aspect_ratio: str | None
    resolution: str | None
    parameters: Mapping[str, Any] = field(hash=False)
    inputs: tuple[InputImage, ...]
    task_id: str | None
    trace_id: str | None
    timings: Timings
    status: RecordStatus
    error: ErrorInfo | None
    results: tuple[ResultImage, ...]
    rating: int
    favourite: bool
    notes: str
    deleted: bool
    grid_id: str | None
    grid_cell: str | None
    fingerprint: str
    replays: int = 0

    @property
    def elapsed(self) -> float | None:
        """Seconds from submission to the result (``None`` while unknown)."""
        return self.timings.elapsed

    def request(self) -> ImageRequest:
        """The request as it was sent (inputs rebuilt from the history folder)."""
        return ImageRequest(
            action=self.action, prompt=self.prompt, model=self.model, count=self.count,
            aspect_ratio=self.aspect_ratio, resolution=self.resolution,
            image_urls=tuple(i.data_uri() for i in self.inputs),
            callback_url=self.parameters.get("callback_url"),
        )

    def result(self) -> Result:
        """The record as a :class:`Result`; image bytes come from the local copies.

        ``status`` is ``"pending"`` for a task still running (or not looked up yet) and
        ``"failed"`` for failed or cancelled ones, with ``error`` set when known.
        """
        request = ImageRequest(
            action=self.action, prompt=self.prompt, model=self.model, count=self.count,
            aspect_ratio=self.aspect_ratio, resolution=self.resolution,
            image_urls=tuple(i.url or f"sha256:{i.sha256}" for i in self.inputs),
        )
        return _result_from(self, request)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of everything recorded (no thumbnails), JSON-serialisable."""
        err = self.error
        return {
            "id": self.id,
            "created_at": self.created_at,
            "action": self.action,
            "prompt": self.prompt,
            "model": self.model,
            "count": self.count,
            "aspect_ratio": self.aspect_ratio,
            "resolution": self.resolution,
            "parameters": dict(self.parameters),
            "task_id": self.task_id,
            "trace_id": self.trace_id,
            "submitted_at": self.timings.submitted_at,
            "started_at": self.timings.started_at,
            "finished_at": self.timings.finished_at,
            "received_at": self.timings.received_at,
            "elapsed": self.elapsed,
            "status": self.status,
            "error_type": err.type if err else None,
            "error_code": err.code if err else None,
            "error_message": err.message if err else None,
            "error_trace_id": err.trace_id if err else None,
            "rating": self.rating,
            "favourite": self.favourite,
            "notes": self.notes,
            "deleted": self.deleted,
            "grid_id": self.grid_id,
            "grid_cell": self.grid_cell,
            "fingerprint": self.fingerprint,
            "replays": self.replays,
            "inputs": [{"sha256": i.sha256, "path": str(i.path) if i.path else None,
                        "url": i.url} for i in self.inputs],
            "results": [{"url": r.url, "prompt": r.prompt, "sha256": r.sha256,
                         "path": str(r.path) if r.path else None} for r in self.results],
        }

    def _repr_html_(self) -> str:
        # One record alone has no position: its first cell shows its id ("id 7"), which
        # ``history.get(7)`` takes; views number their rows by position instead.
        return _table_html([_row_cells(f"id {self.id}", self.to_dict(), _first_thumb(self))],
                           caption=None, first_header="")

    def __repr__(self) -> str:
        return (f"Record(id={self.id}, status={self.status!r}, prompt={self.prompt[:60]!r}, "
                f"model={self.model!r}, images={len(self.results)}, rating={self.rating})")


def _result_from(record: Record, request: ImageRequest) -> Result:
    images = []
    for r in record.results:
        image = GeneratedImage(url=r.url, prompt=r.prompt or record.prompt,
                               task_id=record.task_id or "", index=r.position, request=request)
        if r.path is not None and r.path.is_file():
            image._cache["data"] = r.path.read_bytes()
        images.append(image)
    status: Status
    if record.status == "succeeded":
        status = "succeeded"
    elif record.status in ("failed", "cancelled"):
        status = "failed"
    else:
        status = "pending"
    return Result(
        task_id=record.task_id or "",
        trace_id=record.trace_id,
        request=request,
        images=tuple(images),
        status=status,
        timings=record.timings,
        error=record.error.to_exception(record.task_id) if record.error else None,
    )


# --- request fingerprints and inputs ----------------------------------------------------


def _decode_data_uri(url: str) -> tuple[bytes, str] | None:
    if not url.startswith("data:"):
        return None
    head, _, body = url.partition(",")
    mime = head[5:].split(";")[0].strip().lower() or "application/octet-stream"
    try:
        if ";base64" in head.lower():
            data = base64.b64decode(body)
        else:
            data = urllib.parse.unquote_to_bytes(body)
    except (binascii.Error, ValueError):
        return None
    return data, mime


def _input_hash(url: str) -> str:
    decoded = _decode_data_uri(url)
    if decoded is not None:
        return hashlib.sha256(decoded[0]).hexdigest()
    return hashlib.sha256(f"url:{url}".encode()).hexdigest()


def request_fingerprint(request: ImageRequest, input_hashes: Sequence[str] | None = None) -> str:
    """A hash of what decides a request's output: action, prompt, parameters, input bytes."""
    hashes = list(input_hashes) if input_hashes is not None else [
        _input_hash(u) for u in request.image_urls]
    payload = {
        "action": request.action, "prompt": request.prompt, "model": request.model,
        "count": request.count, "aspect_ratio": request.aspect_ratio,
        "resolution": request.resolution, "inputs": hashes,
    }
    return hashlib.sha256(dumps(payload).encode()).hexdigest()


def _error_info(error: BaseException) -> ErrorInfo:
    if isinstance(error, NanoBananaError):
        return ErrorInfo(type(error).__name__, error.code, error.message, error.trace_id)
    return ErrorInfo(type(error).__name__, None, str(error) or type(error).__name__, None)


# --- views ------------------------------------------------------------------------------

_Cond = tuple[str, tuple[Any, ...]]


class HistoryView:
    """A lazily evaluated selection of history records (SQL conditions or an id list).

    Supports ``len``, indexing (``view[i]`` is a :class:`Record`), slicing (another view),
    iteration, ``filter``, ``search``, ``sort``, ``head``, ``tail``, the exports and the
    record actions. Nothing is read until asked for, so views over many records are cheap.
    """

    def __init__(self, history: History, *, conds: tuple[_Cond, ...] = (),
                 order: tuple[str, bool] = ("r.id", False), ids: tuple[int, ...] | None = None,
                 window: tuple[int, int] | None = None, deleted: bool | None = False) -> None:
        self._history = history
        self._conds = conds
        self._order = order
        self._ids = ids
        self._window = window
        self._deleted = deleted

    # --- SQL ------------------------------------------------------------------------

    def _derive(self, **changes: Any) -> HistoryView:
        spec: dict[str, Any] = {"conds": self._conds, "order": self._order, "ids": self._ids,
                                "window": self._window, "deleted": self._deleted}
        spec.update(changes)
        return HistoryView(self._history, **spec)

    def _sql(self, select: str, *, limit: int | None = None, offset: int = 0,
             ordered: bool = True) -> tuple[str, list[Any]]:
        params: list[Any] = []
        if self._ids is not None:
            source = "requests r JOIN json_each(?) j ON r.id = j.value"
            params.append(json.dumps(self._ids))
            order = "j.key"
        else:
            source = "requests r"
            expr, desc = self._order
            d = " DESC" if desc else ""
            order = f"{expr}{d}, r.id{d}"
        where = []
        if self._deleted is not None:
            where.append("r.deleted = 1" if self._deleted else "r.deleted = 0")
        for sql, values in self._conds:
            where.append(f"({sql})")
            params.extend(values)
        text = f"SELECT {select} FROM {source}"
        if where:
            text += " WHERE " + " AND ".join(where)
        start = offset
        stop: int | None = None
        if self._window is not None:
            start = self._window[0] + offset
            stop = self._window[1]
        if limit is not None:
            stop = start + limit if stop is None else min(stop, start + limit)
        if ordered or stop is not None or start:
            text += f" ORDER BY {order}"
        if stop is not None or start:
            text += " LIMIT ? OFFSET ?"
            params.extend([-1 if stop is None else max(0, stop - start), start])
        return text, params

    def _db(self) -> HistoryStore:
        return self._history._store

    def _id_list(self) -> list[int]:
        sql, params = self._sql("r.id")
        return [int(row[0]) for row in self._db().query(sql, params)]

    def _materialized(self) -> HistoryView:
        """The same records without a window (ids fixed now), for further filtering."""
        if self._window is None:
            return self
        return self._derive(ids=tuple(self._id_list()), window=None)

    # --- DataFrame-like -------------------------------------------------------------

    def __len__(self) -> int:
        sql, params = self._sql("r.id", ordered=False)
        return int(self._db().scalar(f"SELECT COUNT(*) FROM ({sql})", params))

    def _position(self, i: int) -> int:
        n = len(self)
        j = i + n if i < 0 else i
        if not 0 <= j < n:
            raise IndexError(f"record position {i} is out of range for {n} records")
        return j

    def _id_at(self, i: int) -> int:
        sql, params = self._sql("r.id", limit=1, offset=self._position(i))
        value = self._db().scalar(sql, params)
        if value is None:  # pragma: no cover - changed between the two queries
            raise IndexError(f"record position {i} is out of range")
        return int(value)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> HistoryView: ...
    def __getitem__(self, i: int | slice) -> Record | HistoryView:
        if isinstance(i, slice):
            r = range(len(self))[i]
            if r.step == 1:
                base = self._window[0] if self._window is not None else 0
                stop = max(r.start, r.stop)
                return self._derive(window=(base + r.start, base + stop))
            ids = self._id_list()
            return self._derive(ids=tuple(ids[k] for k in r), window=None)
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"history indices are integers or slices, not {type(i).__name__}")
        return self._history._load([self._id_at(i)])[0]

    def __iter__(self) -> Iterator[Record]:
        ids = self._id_list()
        for k in range(0, len(ids), _CHUNK):
            yield from self._history._load(ids[k:k + _CHUNK])

    def filter(self, predicate: Callable[[Record], bool] | None = None,
               **equals: Any) -> HistoryView:
        """Records whose fields equal ``equals`` (a list/tuple/set means any of) and, if
        given, for which ``predicate(record)`` is true.

        Fields: ``action, prompt, model, count, aspect_ratio, resolution, status, rating,
        favourite, notes, task_id, trace_id, grid_id, grid_cell, fingerprint, error_code,
        error_type``. Keyword filters run in SQL; a predicate loads each candidate record.
        """
        view = self._materialized()
        conds = list(view._conds)
        for name, value in equals.items():
            expr = _EXPR.get(name)
            if expr is None or name in ("elapsed", "id"):
                raise InvalidParameterError(
                    f"filter field {name!r}", value, sorted(k for k in _EXPR if k != "elapsed"))
            conds.append(_equals(expr, value))
        view = view._derive(conds=tuple(conds))
        if predicate is None:
            return view
        kept = tuple(rec.id for rec in view if predicate(rec))
        return view._derive(ids=kept, window=None)

    def search(self, text: str) -> HistoryView:
        """Records whose prompt or notes contain ``text`` (case-insensitive)."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cond = ("r.prompt LIKE ? ESCAPE '\\' OR r.notes LIKE ? ESCAPE '\\'", (pattern, pattern))
        view = self._materialized()
        return view._derive(conds=(*view._conds, cond))

    def sort(self, by: str = "created_at", descending: bool = False) -> HistoryView:
        """The same records ordered by a field (``created_at``, ``rating``, ``prompt``,
        ``model``, ``status``, ``elapsed``, ...); ties keep creation order."""
        expr = _EXPR.get(by)
        if expr is None:
            raise InvalidParameterError("sort field", by, sorted(_EXPR))
        view = self
        if self._window is not None or self._ids is not None:
            ids = self._id_list()
            view = self._derive(ids=None, window=None, conds=(
                *self._conds, ("r.id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))))
        return view._derive(order=(expr, bool(descending)))

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
        view = self.sort("id", descending=True)
        if before is not None:
            view = view._derive(conds=(*view._conds, ("r.id < ?", (int(before),))))
        sql, params = view._sql("r.id", limit=n)
        ids = [int(row[0]) for row in self._db().query(sql, params)]
        return self._history._load(ids)

    def favourites(self) -> HistoryView:
        """The records marked as favourite."""
        return self.filter(favourite=True)

    def deleted(self) -> HistoryView:
        """Only the deleted records (recover one with ``undelete``)."""
        return self._materialized()._derive(deleted=True)

    def grid(self, grid_id: str) -> HistoryView:
        """The records of one grid run."""
        return self.filter(grid_id=grid_id)

    def to_records(self) -> list[dict[str, Any]]:
        """Every record as a plain dict (see :meth:`Record.to_dict`)."""
        return [rec.to_dict() for rec in self]

    def to_pandas(self) -> pandas.DataFrame:
        """The records as a ``pandas.DataFrame`` (one row per record, indexed by ``id``)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "History.to_pandas() needs pandas, which is not installed: pip install pandas "
                "(or pip install 'nanobanana-widgets[pandas]'). to_records() gives plain dicts."
            ) from exc
        records = self.to_records()
        frame = pd.DataFrame.from_records(records, columns=list(_RECORD_KEYS))
        return frame.set_index("id")

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write one CSV row per record (nested fields as JSON); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(_RECORD_KEYS))
            writer.writeheader()
            for rec in self:
                writer.writerow(_flat(rec.to_dict()))
        return target

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the records as a JSON list; returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_records(), ensure_ascii=False, indent=1),
                          encoding="utf-8")
        return target

    # --- HTML -----------------------------------------------------------------------

    def html(self, page: int = 1, per_page: int = PAGE_SIZE) -> str:
        """One page of the HTML table (thumbnails, prompt, model, parameters, status)."""
        total = len(self)
        per_page = max(1, int(per_page))
        pages = max(1, math.ceil(total / per_page))
        page = min(max(1, int(page)), pages)
        offset = (page - 1) * per_page
        sql, params = self._sql(
            "r.*, (SELECT thumbnail FROM results t WHERE t.request_id = r.id AND "
            "t.thumbnail IS NOT NULL ORDER BY t.position LIMIT 1) AS result_thumb, "
            "(SELECT thumbnail FROM inputs t WHERE t.request_id = r.id AND "
            "t.thumbnail IS NOT NULL ORDER BY t.position LIMIT 1) AS input_thumb, "
            "(SELECT COUNT(*) FROM results t WHERE t.request_id = r.id) AS n_results",
            limit=per_page, offset=offset)
        rows = self._db().query(sql, params)
        cells = [_row_cells(offset + k, dict(row), row["result_thumb"] or row["input_thumb"])
                 for k, row in enumerate(rows)]
        if total:
            caption = (f"showing {offset + 1}–{offset + len(rows)} of {total:,} records"
                       f" (page {page} of {pages})")
            if pages > 1:
                caption += f"; more with .page({min(page + 1, pages)}) or slicing"
        else:
            caption = "no records"
        return _table_html(cells, caption=caption)

    def page(self, page: int = 1, per_page: int = PAGE_SIZE) -> Any:
        """One page of the HTML view as a display object."""
        from IPython.display import HTML

        return HTML(self.html(page, per_page))  # type: ignore[no-untyped-call]

    def _repr_html_(self) -> str:
        return self.html(1)

    def __repr__(self) -> str:
        return f"<HistoryView of {len(self)} records in {self._db().db_path}>"

    # --- actions --------------------------------------------------------------------

    def _target(self, target: int | Record | str | Task) -> int:
        if isinstance(target, Record):
            return target.id
        if isinstance(target, bool):
            raise TypeError("a record position must be an int, not a bool")
        if isinstance(target, int):
            return self._id_at(target)
        task_id = target if isinstance(target, str) else getattr(target, "id", None)
        rid = self._db().id_for_task(task_id) if isinstance(task_id, str) else None
        if rid is None:
            raise KeyError(f"no history record for task {task_id!r}")
        return rid

    def get(self, record_id: int) -> Record:
        """The record with this id (its ``Record.id``), deleted or not."""
        found = self._history._load([record_id])
        if not found:
            raise KeyError(f"no history record with id {record_id}")
        return found[0]

    def _set(self, target: int | Record | str | Task, **fields: Any) -> Record:
        rid = self._target(target)
        self._db().update(rid, **fields)
        return self.get(rid)

    def rate(self, i: int | Record | str | Task, stars: int) -> Record:
        """Rate a record from 0 (unrated) to 5 stars."""
        if isinstance(stars, bool) or not isinstance(stars, int) or not 0 <= stars <= 5:
            raise InvalidParameterError("stars", stars, range(6))
        return self._set(i, rating=stars)

    def favourite(self, i: int | Record | str | Task, on: bool = True) -> Record:
        """Mark (or with ``on=False`` unmark) a record as favourite."""
        return self._set(i, favourite=int(bool(on)))

    def note(self, i: int | Record | str | Task, text: str) -> Record:
        """Set a record's notes (searchable with ``search``)."""
        return self._set(i, notes=str(text))

    def delete(self, i: int | Record | str | Task) -> Record:
        """Hide a record from views (recoverable with ``undelete``; nothing is erased)."""
        return self._set(i, deleted=1)

    def undelete(self, i: int | Record | str | Task) -> Record:
        """Bring a deleted record back (e.g. ``h.deleted().undelete(0)``)."""
        return self._set(i, deleted=0)

    def tag(self, i: int | Record | str | Task, *, grid_id: str | None,
            cell: str | None = None) -> Record:
        """Label a record as one cell of a grid run."""
        return self._set(i, grid_id=grid_id, grid_cell=cell)

    def rerun(self, i: int | Record | str | Task, *, client: Client | None = None,
              **changes: Any) -> Task:
        """Submit a record's request again, with ``changes`` applied; returns the ``Task``.

        Input images are read from the history folder. ``changes`` may set ``prompt``,
        ``action``, ``images``, ``model``, ``count``, ``aspect_ratio``, ``resolution`` and
        ``callback_url``. The client (default: the attached one, else the package default)
        is attached to the history first, so the new request is recorded too.
        """
        unknown = set(changes) - set(_RERUN_KEYS)
        if unknown:
            raise TypeError(f"rerun() got unknown changes {sorted(unknown)}; "
                            f"allowed: {', '.join(_RERUN_KEYS)}")
        record = self.get(self._target(i))
        args: dict[str, Any] = {
            "prompt": record.prompt, "action": record.action, "model": record.model,
            "count": record.count, "aspect_ratio": record.aspect_ratio,
            "resolution": record.resolution,
        }
        callback = record.parameters.get("callback_url")
        if callback:
            args["callback_url"] = callback
        if "images" not in changes and record.inputs:
            args["images"] = [inp.source() for inp in record.inputs]
        args.update(changes)
        prompt = args.pop("prompt")
        chosen = self._history._client_for(client)
        self._history.attach(chosen)
        return chosen.submit(prompt, **args)

    def export(self, path: str | os.PathLike[str]) -> Path:
        """Write every result image of the view (with metadata) plus ``manifest.csv`` and
        ``manifest.json`` into the folder ``path``; returns the folder.

        Images not downloaded yet are downloaded now (and kept in the history folder).
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        for rec in self:
            for img in rec.results:
                data = self._history._local_bytes(rec, img)
                if data is None:
                    continue
                name = f"{rec.id:06d}-{img.position}{extension_for(data)}"
                meta = _image_meta(rec.to_dict(), img.position, img.url, img.prompt)
                try:
                    has_meta = bool(read_metadata(data).get("task_id") == (rec.task_id or ""))
                except Exception:
                    has_meta = False
                if has_meta:
                    (folder / name).write_bytes(data)
                else:
                    write_with_metadata(folder / name, data, meta)
                rows.append({
                    "file": name, "record_id": rec.id, "index": img.position,
                    "prompt": rec.prompt, "echoed_prompt": img.prompt, "action": rec.action,
                    "model": rec.model, "count": rec.count, "aspect_ratio": rec.aspect_ratio,
                    "resolution": rec.resolution, "task_id": rec.task_id,
                    "trace_id": rec.trace_id, "created_at": rec.created_at,
                    "rating": rec.rating, "favourite": rec.favourite, "notes": rec.notes,
                    "grid_id": rec.grid_id, "grid_cell": rec.grid_cell,
                    "url": img.url if not img.url.startswith("data:") else "",
                    "sha256": hashlib.sha256(data).hexdigest(),
                })
        keys = ["file", "record_id", "index", "prompt", "echoed_prompt", "action", "model",
                "count", "aspect_ratio", "resolution", "task_id", "trace_id", "created_at",
                "rating", "favourite", "notes", "grid_id", "grid_cell", "url", "sha256"]
        with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        (folder / "manifest.json").write_text(
            json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
        return folder


_RECORD_KEYS: tuple[str, ...] = (
    "id", "created_at", "action", "prompt", "model", "count", "aspect_ratio", "resolution",
    "parameters", "task_id", "trace_id", "submitted_at", "started_at", "finished_at",
    "received_at", "elapsed", "status", "error_type", "error_code", "error_message",
    "error_trace_id", "rating", "favourite", "notes", "deleted", "grid_id", "grid_cell",
    "fingerprint", "replays", "inputs", "results",
)


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
            for k, v in record.items()}


def _equals(expr: str, value: Any) -> _Cond:
    if value is None:
        return (f"{expr} IS NULL", ())
    if isinstance(value, (list, tuple, set, frozenset)):
        values = [int(v) if isinstance(v, bool) else v for v in value]
        if not values:
            return ("0", ())
        return (f"{expr} IN ({', '.join('?' for _ in values)})", tuple(values))
    return (f"{expr} = ?", (int(value) if isinstance(value, bool) else value,))


def _image_meta(rec: Mapping[str, Any], position: int, url: str, prompt: str) -> dict[str, Any]:
    params = rec.get("parameters")
    if isinstance(params, str):
        params = json.loads(params or "{}")
    return {
        "prompt": prompt or rec["prompt"], "request_prompt": rec["prompt"],
        "action": rec["action"], "model": rec["model"], "count": rec["count"],
        "aspect_ratio": rec["aspect_ratio"], "resolution": rec["resolution"],
        "parameters": params or {}, "task_id": rec["task_id"] or "",
        "trace_id": rec["trace_id"] or "", "index": position,
        "source_url": url if not url.startswith("data:") else "",
        "created_at": rec["created_at"],
    }


# --- HTML -------------------------------------------------------------------------------

_STYLE = (
    # JupyterLab's rendered-HTML tables align cells right with a more specific rule, hence
    # !important; colours come from the theme so the table reads in light and dark.
    "<style>.nbw-history{border-collapse:collapse;font-size:12px}"
    ".nbw-history td,.nbw-history th{border-bottom:1px solid var(--jp-border-color2,#ddd);"
    "padding:3px 6px;text-align:left !important;vertical-align:top}"
    ".nbw-history img{max-width:64px;max-height:64px}"
    ".nbw-history .p{max-width:420px;white-space:pre-wrap;word-break:break-word}"
    ".nbw-history .failed{color:var(--jp-error-color1,#b00)}"
    ".nbw-history .succeeded{color:var(--jp-success-color1,#070)}</style>"
)


def _first_thumb(rec: Record) -> bytes | None:
    items: tuple[ResultImage | InputImage, ...] = (*rec.results, *rec.inputs)
    for item in items:
        if item.thumbnail:
            return item.thumbnail
    return None


def _row_cells(position: int | str, row: Mapping[str, Any], thumb: bytes | None) -> list[str]:
    """The cells of one table row; ``position`` is the row's position in a view, or a
    label such as ``"id 7"`` for a record shown alone (the id is in the tooltip)."""
    esc = html.escape
    img = (f'<img src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}" alt="">'
           if thumb else "")
    prompt = str(row.get("prompt") or "")
    shown = prompt if len(prompt) <= 300 else prompt[:299] + "…"
    params = [str(row.get(k)) for k in ("action", "aspect_ratio", "resolution")
              if row.get(k)]
    count = row.get("count")
    if count and count != 1:
        params.append(f"×{count}")
    if row.get("grid_id"):
        params.append(f"grid {row['grid_id']}" + (f" [{row['grid_cell']}]"
                                                  if row.get("grid_cell") else ""))
    status = str(row.get("status") or "")
    err = row.get("error_code") or row.get("error_class") or row.get("error_type")
    status_html = f'<span class="{esc(status)}">{esc(status)}</span>'
    if err and status != "succeeded":
        message = str(row.get("error_message") or "")
        status_html += f'<br><span title="{esc(message)}">{esc(str(err))}</span>'
    rating = int(row.get("rating") or 0)
    stars = "★" * rating + "☆" * (5 - rating) if rating else ""
    if row.get("favourite"):
        stars = "♥ " + stars
    created = row.get("created_at")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else ""
    notes = str(row.get("notes") or "")
    prompt_html = esc(shown)
    if notes:
        prompt_html += f'<br><i>{esc(notes[:200])}</i>'
    rid = row.get("id")
    first = (f'<span title="id {esc(str(rid))}">{esc(str(position))}</span>'
             if isinstance(position, int) and rid is not None else esc(str(position)))
    return [first, img, f'<div class="p" title="{esc(prompt[:2000])}">{prompt_html}</div>',
            esc(str(row.get("model") or "")), esc(" · ".join(params)), status_html,
            esc(stars), esc(when), esc(str(row.get("task_id") or ""))]


def _table_html(rows: list[list[str]], *, caption: str | None, first_header: str = "#") -> str:
    head = "".join(f"<th>{h}</th>" for h in
                   (first_header, "", "prompt", "model", "parameters", "status", "rating",
                    "created", "task"))
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows)
    cap = f"<div>{html.escape(caption)}</div>" if caption else ""
    return f'{_STYLE}{cap}<table class="nbw-history"><tr>{head}</tr>{body}</table>'


# --- the history ------------------------------------------------------------------------


class ReplayMode:
    """``history.replay``: true when replay mode is on; calling it looks a request up.

    ``history.replay = True`` switches it on. As a client listener method,
    ``history.replay(request)`` returns the recorded :class:`Result` of an identical request
    that succeeded before (only when on), else ``None``.
    """

    def __init__(self, history: History) -> None:
        self._history = history

    def __bool__(self) -> bool:
        return self._history._replay_on

    def __call__(self, request: ImageRequest) -> Result | None:
        if not self._history._replay_on:
            return None
        return self._history._replay(request)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bool, ReplayMode)):
            return bool(self) == bool(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<replay mode {'on' if self else 'off'}>"


class History(HistoryView):
    """The persistent record of every request: SQLite + a content-addressed image folder.

    ``path`` is a folder or a ``.sqlite`` file (default: ``.nanobanana/`` under the current
    working directory, read now). ``client`` is attached as a listener (see module docs);
    ``replay=True`` turns replay mode on; ``resume=True`` looks up tasks that were still
    running when a previous process stopped (the only way opening touches the network);
    ``include_deleted=True`` shows deleted records too.
    """

    default_client_factory: ClassVar[Callable[[], Client] | None] = None
    """Makes the client that ``resume()`` and ``rerun()`` use when none is given or
    attached (the package's default client; set by :mod:`nanobanana_widgets.session`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 client: Client | None = None, replay: bool = False, resume: bool = False,
                 include_deleted: bool = False, busy_timeout: float = 30.0) -> None:
        self._store = HistoryStore(path, busy_timeout=busy_timeout)
        super().__init__(self, deleted=None if include_deleted else False)
        self._replay_on = bool(replay)
        self._replay_lock = threading.Lock()
        self._replay_used: dict[str, set[int]] = {}
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._client_ref: weakref.ref[Any] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._futures: set[concurrent.futures.Future[None]] = set()
        self._futures_lock = threading.Lock()
        self._closed = False
        self._tag_lock = threading.Lock()
        if client is not None:
            self.attach(client)
        if resume:
            self.resume(client)

    # --- location, lifecycle --------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file."""
        return self._store.db_path

    @property
    def folder(self) -> Path:
        """The folder holding the database and ``images/``."""
        return self._store.folder

    def __repr__(self) -> str:
        replay = ", replay on" if self._replay_on else ""
        return f"<History {self._store.db_path}: {len(self)} records{replay}>"

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait for background downloads; ``True`` when none is left."""
        with self._futures_lock:
            pending = list(self._futures)
        if not pending:
            return True
        _done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        return not not_done

    def close(self) -> None:
        """Finish background downloads, detach from clients and close the database."""
        if self._closed:
            return
        self.flush(timeout=None)
        for c in list(self._clients):
            self.detach(c)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._closed = True
        self._store.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[History]:
        """Group many ``add`` calls into one transaction (much faster for bulk imports)."""
        with self._store.write():
            yield self

    # --- clients --------------------------------------------------------------------

    def attach(self, client: Client) -> History:
        """Record every request ``client`` makes (registers this history as a listener)."""
        if client not in self._clients:
            client.add_listener(self)
            self._clients.add(client)
        self._client_ref = weakref.ref(client)
        return self

    def detach(self, client: Client) -> None:
        """Stop recording ``client``'s requests."""
        if client in self._clients:
            client.remove_listener(self)
            self._clients.discard(client)

    def _client_for(self, client: Client | None) -> Client:
        if client is not None:
            return client
        if self._client_ref is not None:
            attached = self._client_ref()
            if attached is not None:
                return attached  # type: ignore[no-any-return]
        factory = History.default_client_factory
        if factory is None:
            raise NanoBananaError(
                "This history has no client to look tasks up with: pass client=..., or "
                "History.attach(client) first.")
        return factory()

    # --- what the views write -------------------------------------------------------

    def find(self, *, task_id: str | None = None, record_id: int | None = None
             ) -> Record | None:
        """The record of ``task_id`` (deleted or not), else the one with ``record_id`` when
        its task id agrees; ``None`` when neither is recorded."""
        if task_id:
            rid = self._store.id_for_task(task_id)
            if rid is not None:
                return self.get(rid)
        if record_id is not None:
            try:
                rec = self.get(record_id)
            except KeyError:
                return None
            if task_id is None or rec.task_id == task_id:
                return rec
        return None

    def tag_cell(self, grid_id: str, cell: str, *, task_id: str | None = None,
                 request: ImageRequest | None = None) -> Record | None:
        """Label the record of one grid cell's request: by its ``task_id``, or (a submit that
        failed before a task id existed) the latest untagged record of the same ``request``.
        A replayed record that already belongs to another cell keeps its place. Returns the
        tagged record, ``None`` when there is none to tag."""
        with self._tag_lock:
            if task_id:
                rec = self.find(task_id=task_id)
                if rec is None:
                    return None
                if rec.grid_id and (rec.grid_id, rec.grid_cell) != (grid_id, cell):
                    return rec  # a replayed record of another grid cell keeps its place
                if (rec.grid_id, rec.grid_cell) == (grid_id, cell):
                    return rec
                return self.tag(rec, grid_id=grid_id, cell=cell)
            if request is None:
                return None
            view = self.filter(fingerprint=request_fingerprint(request), task_id=None,
                               grid_id=None)
            if not len(view):
                return None
            return self.tag(view[-1], grid_id=grid_id, cell=cell)

    def record_pick(self, chooser: str, picked: Record, others: Sequence[str]) -> Pick:
        """Record that ``picked`` won a comparison ``chooser`` (its id) over ``others`` (how
        they are named): a line in its notes and the favourite mark. Returns what
        :meth:`withdraw_pick` needs to take it back."""
        line = f"Picked in comparison {chooser} over {', '.join(others)}."
        rec = self.get(picked.id)
        self.note(rec, rec.notes + ("\n" if rec.notes else "") + line)
        if not rec.favourite:
            self.favourite(rec, True)
        return Pick(record_id=rec.id, line=line, was_favourite=rec.favourite)

    def withdraw_pick(self, pick: Pick) -> None:
        """Take back a pick: its note line goes, and the favourite mark if it made it."""
        try:
            rec = self.get(pick.record_id)
        except KeyError:
            return
        lines = rec.notes.split("\n")
        if pick.line in lines:
            lines.remove(pick.line)
            self.note(rec, "\n".join(lines))
        if not pick.was_favourite:
            self.favourite(rec, False)

    # --- replay ---------------------------------------------------------------------

    @property
    def replay(self) -> ReplayMode:
        """Replay mode (off by default): ``history.replay = True`` to switch it on."""
        return ReplayMode(self)

    @replay.setter
    def replay(self, on: bool | ReplayMode) -> None:
        self._replay_on = bool(on)

    def _replay(self, request: ImageRequest) -> Result | None:
        """The recorded result for an identical request, or ``None`` to send it.

        Identical requests made several times (grid repeats, a cell that runs twice) get
        the recorded results in their original order, one each, so a re-run shows what
        the first run showed; past the last one it starts again rather than paying.
        """
        fp = request_fingerprint(request)
        rows = self._store.query(
            "SELECT id FROM requests WHERE fingerprint = ? AND status = 'succeeded' "
            "AND deleted = 0 ORDER BY id LIMIT 200", (fp,))
        candidates = [c for c in self._load([int(r[0]) for r in rows]) if c.results]
        if not candidates:
            return None
        with self._replay_lock:
            used = self._replay_used.setdefault(fp, set())
            fresh = [c for c in candidates if c.id not in used]
            if not fresh:
                used.clear()
                fresh = candidates
            best = fresh[0]
            used.add(best.id)
        with self._store.write() as conn:
            conn.execute("UPDATE requests SET replays = replays + 1, last_replayed_at = ? "
                         "WHERE id = ?", (time.time(), best.id))
        logger.info("replayed history record %s for %r", best.id, request.prompt[:60])
        return _result_from(best, request)

    # --- listener -------------------------------------------------------------------

    def on_submitted(self, task: Task) -> None:
        """Listener: write the record as soon as the task id is known."""
        self._insert(task.request, task_id=task.id, trace_id=task.trace_id,
                     submitted_at=task.submitted_at, status="submitted")

    def on_finished(self, task: Task, result: Result) -> None:
        """Listener: store the result's URLs, mark it, then download the images."""
        rid = self._store.id_for_task(task.id) or self._insert(
            task.request, task_id=task.id, trace_id=task.trace_id,
            submitted_at=task.submitted_at, status="submitted")
        self._store_result(rid, result)

    def on_failed(self, request: ImageRequest, error: NanoBananaError,
                  task: Task | None) -> None:
        """Listener: record the error (a deadline or a cancel leaves the task resumable)."""
        task_id = task.id if task is not None else error.task_id
        trace_id = (task.trace_id if task is not None else None) or error.trace_id
        info = _error_info(error)
        fields: dict[str, Any]
        if isinstance(error, WaitTimeoutError) and task_id:
            fields = {"status": "pending"}
        elif isinstance(error, CancelledError) and task_id:
            fields = {"status": "cancelled"}
        elif isinstance(error, PossiblyBilledError) and task_id:
            fields = {"status": "pending"}
        else:
            fields = {"status": "failed", "received_at": time.time()}
        if fields["status"] != "pending":
            fields.update(error_class=info.type, error_code=info.code,
                          error_message=info.message, error_trace_id=info.trace_id)
        rid = self._store.id_for_task(task_id)
        if rid is None:
            self._insert(request, task_id=task_id, trace_id=trace_id,
                         submitted_at=task.submitted_at if task is not None else None, **fields)
            return
        if trace_id:
            fields["trace_id"] = trace_id
        with self._store.write() as conn:
            current = conn.execute("SELECT status FROM requests WHERE id = ?", (rid,)).fetchone()
            if current is not None and current[0] == "succeeded":
                return  # a late cancel or timeout never hides a result
            self._store.update(rid, **fields)

    # --- writing --------------------------------------------------------------------

    def add(self, request: ImageRequest, result: Result | None = None, *,
            error: BaseException | None = None, task_id: str | None = None,
            trace_id: str | None = None, status: RecordStatus | None = None,
            created_at: float | None = None, grid_id: str | None = None,
            grid_cell: str | None = None, download: bool = False) -> Record:
        """Record a request made elsewhere (or an import); returns the new record.

        Result images whose bytes are at hand (already fetched, or ``data:`` URLs) are
        stored in the folder; others are downloaded only with ``download=True``.
        """
        if status is not None and status not in RECORD_STATUSES:
            raise InvalidParameterError("status", status, RECORD_STATUSES)
        fields: dict[str, Any] = {"status": status or "submitted"}
        if error is not None:
            info = _error_info(error)
            fields.update(status=status or "failed", error_class=info.type,
                          error_code=info.code, error_message=info.message,
                          error_trace_id=info.trace_id)
            trace_id = trace_id or info.trace_id
        if result is not None:
            task_id = task_id or result.task_id or None
            trace_id = trace_id or result.trace_id
        rid = self._insert(request, task_id=task_id, trace_id=trace_id, created_at=created_at,
                           grid_id=grid_id, grid_cell=grid_cell,
                           submitted_at=result.timings.submitted_at if result else None,
                           **fields)
        if result is not None:
            self._store_result(rid, result, background=False, fetch=download,
                               status=status)
        return self.get(rid)

    def _insert(self, request: ImageRequest, *, task_id: str | None, trace_id: str | None,
                submitted_at: float | None, status: str, created_at: float | None = None,
                **extra: Any) -> int:
        inputs, hashes = self._store_inputs(request)
        params = request.parameters()
        params["inputs"] = len(request.image_urls)
        if request.callback_url:
            params["callback_url"] = request.callback_url
        row = {
            "created_at": created_at if created_at is not None else time.time(),
            "action": request.action, "prompt": request.prompt, "model": request.model,
            "count": request.count, "aspect_ratio": request.aspect_ratio,
            "resolution": request.resolution, "parameters": dumps(params),
            "task_id": task_id or None, "trace_id": trace_id, "submitted_at": submitted_at,
            "status": status, "fingerprint": request_fingerprint(request, hashes),
            **extra,
        }
        rid, _inserted = self._store.insert_request(row, inputs)
        return rid

    def _store_inputs(self, request: ImageRequest) -> tuple[list[dict[str, Any]], list[str]]:
        items: list[dict[str, Any]] = []
        hashes: list[str] = []
        for url in request.image_urls:
            decoded = _decode_data_uri(url)
            if decoded is None:
                sha = _input_hash(url)
                items.append({"sha256": sha, "url": url})
                hashes.append(sha)
                continue
            data, mime = decoded
            ext = _MIME_EXT.get(mime) or extension_for(data)
            sha, rel = self._store.put_file(data, ext)
            thumb = self._store.scalar(
                "SELECT thumbnail FROM inputs WHERE sha256 = ? AND thumbnail IS NOT NULL "
                "LIMIT 1", (sha,))
            if thumb is None:
                try:
                    thumb = thumbnail(data, max_side=THUMB_SIDE, quality=70)
                except Exception:  # not an image Pillow reads: keep the file, skip the thumb
                    thumb = None
            items.append({"sha256": sha, "mime": mime, "path": rel, "thumbnail": thumb})
            hashes.append(sha)
        return items, hashes

    def _store_result(self, rid: int, result: Result, *, background: bool = True,
                      fetch: bool = True, status: RecordStatus | None = None) -> None:
        timings = result.timings
        new_status: str = status or ("succeeded" if result.images else "failed")
        if status is None and result.status == "pending":
            new_status = "pending"
        fields: dict[str, Any] = {
            "status": new_status,
            "service_created_at": timings.created_at, "started_at": timings.started_at,
            "finished_at": timings.finished_at,
            "received_at": timings.received_at or time.time(),
        }
        if timings.submitted_at is not None:
            fields["submitted_at"] = timings.submitted_at
        if result.trace_id:
            fields["trace_id"] = result.trace_id
        if new_status == "succeeded":
            fields.update(error_class=None, error_code=None, error_message=None,
                          error_trace_id=None)
        elif result.error is not None or new_status == "failed":
            info = _error_info(result.error) if result.error is not None else ErrorInfo(
                "TaskFailedError", None, "The task finished without producing images.",
                result.trace_id)
            fields.update(error_class=info.type, error_code=info.code,
                          error_message=info.message, error_trace_id=info.trace_id)
        results = [{"url": img.url, "prompt": img.prompt} for img in result.images]
        with self._store.write():
            self._store.set_results(rid, results)
            self._store.update(rid, **fields)
        jobs: list[tuple[int, GeneratedImage | str]] = [
            (pos, img) for pos, img in enumerate(result.images)
            if fetch or "data" in img._cache or img.url.startswith("data:")]
        if not jobs:
            return
        if background:
            self._schedule(rid, jobs)
        else:
            self._download(rid, jobs)

    # --- downloads ------------------------------------------------------------------

    def _schedule(self, rid: int, jobs: list[tuple[int, GeneratedImage | str]]) -> None:
        with self._futures_lock:
            if self._closed:
                return  # closed: resume() in a later session downloads what is missing
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="nanobanana-history")
            future = self._executor.submit(self._download, rid, jobs)
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._futures_lock:
            self._futures.discard(future)

    def _download(self, rid: int, jobs: Sequence[tuple[int, GeneratedImage | str]]) -> None:
        """Fetch, embed metadata, store by content and thumbnail each result image."""
        rows = self._store.query("SELECT * FROM requests WHERE id = ?", (rid,))
        if not rows:
            return
        rec = dict(rows[0])
        prompts = {int(r["position"]): str(r["prompt"]) for r in self._store.query(
            "SELECT position, prompt FROM results WHERE request_id = ?", (rid,))}
        for pos, item in jobs:
            url = item if isinstance(item, str) else item.url
            try:
                # A GeneratedImage shares one download with whoever else shows it (the grid,
                # the panel): its bytes() waits for a fetch already under way.
                data = download(url) if isinstance(item, str) else item.bytes()
                meta = _image_meta(rec, pos, url, prompts.get(pos, ""))
                try:
                    stored = embed_metadata(data, meta)
                except Exception as exc:  # keep the image even if metadata cannot go in
                    logger.warning("history: could not embed metadata in %s: %s", url[:80], exc)
                    stored = data
                sha, rel = self._store.put_file(stored, extension_for(stored))
                try:
                    thumb: bytes | None = thumbnail(data, max_side=THUMB_SIDE, quality=70)
                except Exception:
                    thumb = None
                self._store.set_result_file(rid, pos, sha256=sha, path=rel, thumbnail=thumb)
            except Exception as exc:
                logger.warning("history: could not keep result image %s of record %s: %s",
                               pos, rid, exc)
                with contextlib.suppress(Exception):
                    self._store.set_result_file(rid, pos, sha256=None, path=None, thumbnail=None,
                                                error=f"{type(exc).__name__}: {exc}")

    def _local_bytes(self, rec: Record, img: ResultImage) -> bytes | None:
        if img.local and img.path is not None:
            return img.path.read_bytes()
        self._download(rec.id, [(img.position, img.url)])
        fresh = self.get(rec.id)
        for r in fresh.results:
            if r.position == img.position and r.local and r.path is not None:
                return r.path.read_bytes()
        return None

    # --- resume ---------------------------------------------------------------------

    def resume(self, client: Client | None = None, *, wait: bool = False,
               timeout: float | None = None) -> HistoryView:
        """Look up every task still ``submitted``/``pending`` (and cancelled ones without
        results) with ``client.tasks`` in batches, store finished results and errors, and
        download any result image not yet in the folder. With ``wait=True``, poll until
        all are done or ``timeout`` (default: the client's ``wait_timeout``) passes; tasks
        still running then stay ``pending``. Returns a view of the records looked up.
        """
        chosen = self._client_for(client)
        rows = self._store.query(
            "SELECT id, task_id FROM requests WHERE task_id IS NOT NULL AND (status IN "
            "('submitted', 'pending') OR (status = 'cancelled' AND NOT EXISTS "
            "(SELECT 1 FROM results t WHERE t.request_id = requests.id))) ORDER BY id")
        by_task = {str(r["task_id"]): int(r["id"]) for r in rows}
        looked_up = list(by_task.values())
        open_ids = list(by_task)
        deadline = time.monotonic() + (
            timeout if timeout is not None else float(getattr(chosen, "wait_timeout", 600.0)))
        interval = float(getattr(chosen, "poll_interval", 1.0))
        while open_ids:
            still: list[str] = []
            for k in range(0, len(open_ids), _BATCH):
                chunk = open_ids[k:k + _BATCH]
                found = {rec.id: rec for rec in chosen.tasks(chunk)}
                for task_id in chunk:
                    record = found.get(task_id)
                    if record is None or not self._apply(by_task[task_id], record):
                        still.append(task_id)
            open_ids = still
            if not wait or not open_ids or time.monotonic() >= deadline:
                break
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
        if open_ids and wait:
            logger.info("history.resume: %d tasks still running at the deadline", len(open_ids))
        self._redownload()
        if wait:
            self.flush(timeout=None)
        return self._derive(ids=tuple(looked_up), window=None, conds=(), deleted=None)

    def _apply(self, rid: int, record: TaskRecord) -> bool:
        """Store a looked-up task; ``True`` when it is finished."""
        if record.status == "pending":
            with self._store.write() as conn:
                conn.execute("UPDATE requests SET status = 'pending' WHERE id = ? AND "
                             "status = 'submitted'", (rid,))
            return False
        rec = self.get(rid)
        request = ImageRequest(action=rec.action, prompt=rec.prompt, model=rec.model,
                               count=rec.count, aspect_ratio=rec.aspect_ratio,
                               resolution=rec.resolution)
        result = record.to_result(request, submitted_at=rec.timings.submitted_at)
        self._store_result(rid, result, fetch=False)
        if record.status == "failed" and not result.images and result.error is None:
            self._store.update(rid, status="failed")
        return True

    def _redownload(self) -> None:
        rows = self._store.query(
            "SELECT request_id, position, url FROM results t JOIN requests r ON "
            "r.id = t.request_id WHERE t.path IS NULL AND r.status = 'succeeded' "
            "ORDER BY request_id, position")
        jobs: dict[int, list[tuple[int, GeneratedImage | str]]] = {}
        for row in rows:
            jobs.setdefault(int(row[0]), []).append((int(row[1]), str(row[2])))
        for rid, items in jobs.items():
            self._schedule(rid, items)

    # --- reading --------------------------------------------------------------------

    def _load(self, ids: Sequence[int]) -> list[Record]:
        if not ids:
            return []
        key = json.dumps(list(ids))
        rows = self._store.query(
            "SELECT r.* FROM requests r JOIN json_each(?) j ON r.id = j.value ORDER BY j.key",
            (key,))
        inputs: dict[int, list[InputImage]] = {}
        for row in self._store.query(
                "SELECT * FROM inputs WHERE request_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY request_id, position", (key,)):
            inputs.setdefault(int(row["request_id"]), []).append(InputImage(
                sha256=row["sha256"], mime=row["mime"], path=self._store.file_path(row["path"]),
                url=row["url"], thumbnail=row["thumbnail"]))
        results: dict[int, list[ResultImage]] = {}
        for row in self._store.query(
                "SELECT * FROM results WHERE request_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY request_id, position", (key,)):
            results.setdefault(int(row["request_id"]), []).append(ResultImage(
                position=int(row["position"]), url=row["url"], prompt=row["prompt"],
                sha256=row["sha256"], path=self._store.file_path(row["path"]),
                thumbnail=row["thumbnail"], download_error=row["download_error"]))
        out = []
        for row in rows:
            rid = int(row["id"])
            error = None
            if row["error_class"]:
                error = ErrorInfo(row["error_class"], row["error_code"],
                                  row["error_message"] or "", row["error_trace_id"])
            out.append(Record(
                id=rid, created_at=row["created_at"], action=row["action"],
                prompt=row["prompt"], model=row["model"], count=int(row["count"]),
                aspect_ratio=row["aspect_ratio"], resolution=row["resolution"],
                parameters=json.loads(row["parameters"] or "{}"),
                inputs=tuple(inputs.get(rid, ())), task_id=row["task_id"],
                trace_id=row["trace_id"],
                timings=Timings(submitted_at=row["submitted_at"],
                                created_at=row["service_created_at"],
                                started_at=row["started_at"], finished_at=row["finished_at"],
                                received_at=row["received_at"]),
                status=row["status"], error=error, results=tuple(results.get(rid, ())),
                rating=int(row["rating"]), favourite=bool(row["favourite"]),
                notes=row["notes"] or "", deleted=bool(row["deleted"]),
                grid_id=row["grid_id"], grid_cell=row["grid_cell"],
                fingerprint=row["fingerprint"], replays=int(row["replays"]),
            ))
        return out
