"""The history's storage: one SQLite database (WAL) and a content-addressed image folder.

Layout of a history folder (``.nanobanana/`` under the working directory by default)::

    history.sqlite               the records (WAL mode; -wal and -shm files beside it)
    images/<sha[:2]>/<sha>.<ext> every input and downloaded result image, named by content

Several processes and threads may use one history at once: every write runs in its own
``BEGIN IMMEDIATE`` transaction, and a busy timeout makes a writer wait for another instead
of failing. The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` holds one
step per version. Nothing here talks to the network, and no API token is ever stored.

This module holds every SQL statement of the package: the rest of ``store/`` calls the
methods of :class:`HistoryStore`, and the views describe what they show with a
:class:`Selection`, which this module turns into a query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "DB_NAME",
    "DEFAULT_DIRNAME",
    "FIELDS",
    "IMAGES_DIRNAME",
    "MIGRATIONS",
    "REQUEST_COLUMNS",
    "SCHEMA_VERSION",
    "HistoryStore",
    "Selection",
    "dumps",
    "resolve_location",
]

DEFAULT_DIRNAME = ".nanobanana"
DB_NAME = "history.sqlite"
IMAGES_DIRNAME = "images"
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")

_V1 = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    action TEXT NOT NULL,
    prompt TEXT NOT NULL,
    model TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    aspect_ratio TEXT,
    resolution TEXT,
    parameters TEXT NOT NULL DEFAULT '{}',
    task_id TEXT,
    trace_id TEXT,
    submitted_at REAL,
    service_created_at REAL,
    started_at REAL,
    finished_at REAL,
    received_at REAL,
    status TEXT NOT NULL,
    error_class TEXT,
    error_code TEXT,
    error_message TEXT,
    error_trace_id TEXT,
    rating INTEGER NOT NULL DEFAULT 0,
    favourite INTEGER NOT NULL DEFAULT 0,
    notes TEXT NOT NULL DEFAULT '',
    deleted INTEGER NOT NULL DEFAULT 0,
    grid_id TEXT,
    grid_cell TEXT,
    fingerprint TEXT NOT NULL,
    replays INTEGER NOT NULL DEFAULT 0,
    last_replayed_at REAL
);
CREATE UNIQUE INDEX requests_task_id ON requests(task_id) WHERE task_id IS NOT NULL;
CREATE INDEX requests_fingerprint ON requests(fingerprint);
CREATE INDEX requests_status ON requests(status);
CREATE INDEX requests_grid ON requests(grid_id) WHERE grid_id IS NOT NULL;
CREATE TABLE inputs (
    request_id INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    mime TEXT,
    path TEXT,
    url TEXT,
    thumbnail BLOB,
    PRIMARY KEY (request_id, position)
);
CREATE TABLE results (
    request_id INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    url TEXT NOT NULL,
    prompt TEXT NOT NULL DEFAULT '',
    sha256 TEXT,
    path TEXT,
    thumbnail BLOB,
    download_error TEXT,
    PRIMARY KEY (request_id, position)
);
"""


REQUEST_COLUMNS: tuple[str, ...] = (
    "created_at", "action", "prompt", "model", "count", "aspect_ratio", "resolution",
    "parameters", "task_id", "trace_id", "submitted_at", "service_created_at", "started_at",
    "finished_at", "received_at", "status", "error_class", "error_code", "error_message",
    "error_trace_id", "rating", "favourite", "notes", "deleted", "grid_id", "grid_cell",
    "fingerprint", "replays", "last_replayed_at",
)
"""The writable columns of ``requests`` (``id`` is assigned by SQLite)."""


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)


# Version 2: batch jobs and their rows (queried by store/jobs.py).
_V2 = """
CREATE TABLE jobs (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    fingerprint TEXT NOT NULL,
    spec TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    total INTEGER NOT NULL,
    paid INTEGER NOT NULL,
    owner TEXT,
    heartbeat_at REAL
);
CREATE TABLE job_rows (
    job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    request TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    task_id TEXT,
    trace_id TEXT,
    submits INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    finished_at REAL,
    images INTEGER NOT NULL DEFAULT 0,
    error_class TEXT,
    error_code TEXT,
    error_message TEXT,
    error_trace_id TEXT,
    PRIMARY KEY (job, position)
);
CREATE INDEX job_rows_task ON job_rows(task_id) WHERE task_id IS NOT NULL;
CREATE INDEX job_rows_state ON job_rows(job, state);
"""


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    for statement in _V2.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_to_1, _migrate_to_2)
"""``MIGRATIONS[n]`` takes a database at ``user_version`` n to n + 1 (inside a transaction)."""

SCHEMA_VERSION = len(MIGRATIONS)


def resolve_location(path: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """``(database file, image folder)`` for a folder, a ``.sqlite`` file, or ``None``.

    ``None`` means ``.nanobanana/`` under the current working directory (read now).
    """
    if path is None:
        folder = Path.cwd() / DEFAULT_DIRNAME
        return folder / DB_NAME, folder / IMAGES_DIRNAME
    p = Path(path).expanduser()
    if p.suffix.lower() in DB_SUFFIXES or p.is_file():
        return p, p.parent / IMAGES_DIRNAME
    return p / DB_NAME, p / IMAGES_DIRNAME


Condition = tuple[str, tuple[Any, ...]]
"""A SQL condition over ``requests r`` and the values of its ``?`` placeholders."""

FIELDS: dict[str, str] = {name: f"r.{name}" for name in (
    "id", "created_at", "action", "prompt", "model", "count", "aspect_ratio", "resolution",
    "task_id", "trace_id", "submitted_at", "started_at", "finished_at", "received_at", "status",
    "rating", "favourite", "notes", "deleted", "grid_id", "grid_cell", "fingerprint", "replays",
    "error_code", "error_message", "last_replayed_at",
)}
FIELDS.update({
    "created": "r.created_at",
    "error_type": "r.error_class",
    "error_class": "r.error_class",
    "elapsed": "(COALESCE(r.received_at, r.finished_at) - COALESCE(r.submitted_at, "
               "r.service_created_at))",
})
"""The fields a view filters and sorts by, and their SQL expressions."""

_PAGE_COLUMNS = (
    "r.*, (SELECT thumbnail FROM results t WHERE t.request_id = r.id AND "
    "t.thumbnail IS NOT NULL ORDER BY t.position LIMIT 1) AS result_thumb, "
    "(SELECT thumbnail FROM inputs t WHERE t.request_id = r.id AND "
    "t.thumbnail IS NOT NULL ORDER BY t.position LIMIT 1) AS input_thumb, "
    "(SELECT COUNT(*) FROM results t WHERE t.request_id = r.id) AS n_results"
)


def _equals(expr: str, value: Any) -> Condition:
    if value is None:
        return (f"{expr} IS NULL", ())
    if isinstance(value, (list, tuple, set, frozenset)):
        values = [int(v) if isinstance(v, bool) else v for v in value]
        if not values:
            return ("0", ())
        return (f"{expr} IN ({', '.join('?' for _ in values)})", tuple(values))
    return (f"{expr} = ?", (int(value) if isinstance(value, bool) else value,))


@dataclass(frozen=True)
class Selection:
    """Which ``requests`` rows a history view shows, and in which order (immutable).

    Either the rows meeting every one of ``conditions`` in ``order`` (a field of
    :data:`FIELDS` and whether descending; ties keep creation order), or, when ``ids`` is
    set, those records in that order. ``window`` keeps the positions ``start <= k < stop``
    of that sequence. ``deleted`` keeps only deleted rows (``True``), only the others
    (``False``) or all (``None``). Each method returns a new selection.
    """

    conditions: tuple[Condition, ...] = ()
    order: tuple[str, bool] = ("id", False)
    ids: tuple[int, ...] | None = None
    window: tuple[int, int] | None = None
    deleted: bool | None = False

    def where(self, field: str, value: Any) -> Selection:
        """Also require ``field`` to equal ``value`` (a list/tuple/set means any of them;
        ``None`` means no value). ``field`` is a key of :data:`FIELDS`."""
        return replace(self, conditions=(*self.conditions, _equals(FIELDS[field], value)))

    def containing(self, text: str) -> Selection:
        """Also require the prompt or the notes to contain ``text`` (case-insensitive)."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cond = ("r.prompt LIKE ? ESCAPE '\\' OR r.notes LIKE ? ESCAPE '\\'", (pattern, pattern))
        return replace(self, conditions=(*self.conditions, cond))

    def older_than(self, record_id: int) -> Selection:
        """Also require a record id below ``record_id``."""
        return replace(self, conditions=(*self.conditions, ("r.id < ?", (int(record_id),))))

    def among(self, ids: Sequence[int]) -> Selection:
        """Only the records ``ids`` (as a condition, so a sort orders them)."""
        cond = ("r.id IN (SELECT value FROM json_each(?))", (json.dumps(list(ids)),))
        return replace(self, conditions=(*self.conditions, cond), ids=None, window=None)

    def fixed(self, ids: Sequence[int]) -> Selection:
        """Exactly the records ``ids``, in that order (no window)."""
        return replace(self, ids=tuple(ids), window=None)

    def sorted_by(self, field: str, descending: bool = False) -> Selection:
        """The same rows ordered by ``field`` (a key of :data:`FIELDS`)."""
        if field not in FIELDS:
            raise KeyError(field)
        return replace(self, order=(field, bool(descending)))

    def windowed(self, start: int, stop: int) -> Selection:
        """The positions ``start <= k < stop`` of the whole sequence (not of the window)."""
        return replace(self, window=(start, stop))

    def only_deleted(self) -> Selection:
        """Only deleted records."""
        return replace(self, deleted=True)

    def sql(self, select: str, *, limit: int | None = None, offset: int = 0,
            ordered: bool = True) -> tuple[str, list[Any]]:
        """``SELECT <select>`` over these rows: the query text and its parameters."""
        params: list[Any] = []
        if self.ids is not None:
            source = "requests r JOIN json_each(?) j ON r.id = j.value"
            params.append(json.dumps(self.ids))
            order = "j.key"
        else:
            source = "requests r"
            field, desc = self.order
            d = " DESC" if desc else ""
            order = f"{FIELDS[field]}{d}, r.id{d}"
        where = []
        if self.deleted is not None:
            where.append("r.deleted = 1" if self.deleted else "r.deleted = 0")
        for sql, values in self.conditions:
            where.append(f"({sql})")
            params.extend(values)
        text = f"SELECT {select} FROM {source}"
        if where:
            text += " WHERE " + " AND ".join(where)
        start = offset
        stop: int | None = None
        if self.window is not None:
            start = self.window[0] + offset
            stop = self.window[1]
        if limit is not None:
            stop = start + limit if stop is None else min(stop, start + limit)
        if ordered or stop is not None or start:
            text += f" ORDER BY {order}"
        if stop is not None or start:
            text += " LIMIT ? OFFSET ?"
            params.extend([-1 if stop is None else max(0, stop - start), start])
        return text, params


class HistoryStore:
    """One connection to a history database, safe to share between threads.

    Reads and writes go through one lock-guarded connection. Every write is one
    ``BEGIN IMMEDIATE`` transaction (see :meth:`write`), so another process writing at the
    same moment makes this one wait (up to ``busy_timeout`` seconds), never fail at once.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 busy_timeout: float = 30.0) -> None:
        self.db_path, self.images_dir = resolve_location(path)
        self.folder = self.db_path.parent
        self.busy_timeout = busy_timeout
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(
                f"Cannot create the history folder {self.folder}: {exc.strerror or exc}. "
                "Pass History(path) with a writable folder."
            ) from exc
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(
            str(self.db_path), timeout=busy_timeout, isolation_level=None,
            check_same_thread=False,
        )
        self._conn.row_factory = sqlite3.Row
        # Close the connection when the store is garbage collected (no ResourceWarning).
        self._finalizer = weakref.finalize(self, self._conn.close)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise sqlite3.DatabaseError(
                f"Cannot open the history database {self.db_path}: {exc}. If the file is not "
                "a nanobanana history, pass History(path) with another location."
            ) from exc

    # --- connection ------------------------------------------------------------------

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this package understands "
                f"({SCHEMA_VERSION}); upgrade nanobanana-widgets"
            )
        if version == SCHEMA_VERSION:
            return
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process?
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (nested calls join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return every row."""
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (``None`` when there is no row)."""
        with self._lock:
            row = self._conn.execute(sql, tuple(params)).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        """Close the connection (further use raises ``sqlite3.ProgrammingError``)."""
        with self._lock:
            self._finalizer()

    # --- rows ------------------------------------------------------------------------

    def insert_request(self, row: dict[str, Any], inputs: Sequence[dict[str, Any]] = (),
                       results: Sequence[dict[str, Any]] = ()) -> tuple[int, bool]:
        """Insert one request with its inputs and results; ``(id, inserted)``.

        A row with the same task id already present is kept (``inserted`` is ``False``):
        two listeners, or two processes, seeing the same submission write it once.
        """
        columns = [c for c in row if c in REQUEST_COLUMNS]
        sql = (f"INSERT OR IGNORE INTO requests ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' for _ in columns)})")
        with self.write() as conn:
            cur = conn.execute(sql, [row[c] for c in columns])
            if cur.rowcount == 0:
                existing = self.id_for_task(row.get("task_id"))
                if existing is None:  # pragma: no cover - only a task id can conflict
                    raise sqlite3.IntegrityError("the history refused a new record")
                return existing, False
            rid = int(cur.lastrowid or 0)
            for pos, item in enumerate(inputs):
                conn.execute(
                    "INSERT INTO inputs (request_id, position, sha256, mime, path, url, thumbnail)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (rid, pos, item["sha256"], item.get("mime"), item.get("path"),
                     item.get("url"), item.get("thumbnail")),
                )
            self._write_results(conn, rid, results)
            return rid, True

    def set_results(self, request_id: int, results: Sequence[dict[str, Any]]) -> None:
        """Replace a request's result rows (keeping local copies already made)."""
        with self.write() as conn:
            self._write_results(conn, request_id, results)

    @staticmethod
    def _write_results(conn: sqlite3.Connection, rid: int,
                       results: Sequence[dict[str, Any]]) -> None:
        for pos, item in enumerate(results):
            conn.execute(
                "INSERT INTO results (request_id, position, url, prompt, sha256, path, thumbnail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id, position) DO UPDATE SET"
                " url = excluded.url, prompt = excluded.prompt,"
                " sha256 = COALESCE(excluded.sha256, results.sha256),"
                " path = COALESCE(excluded.path, results.path),"
                " thumbnail = COALESCE(excluded.thumbnail, results.thumbnail)",
                (rid, pos, item["url"], item.get("prompt") or "", item.get("sha256"),
                 item.get("path"), item.get("thumbnail")),
            )

    def set_result_file(self, request_id: int, position: int, *, sha256: str | None,
                        path: str | None, thumbnail: bytes | None,
                        error: str | None = None) -> None:
        """Record the local copy of one result image (or why there is none)."""
        with self.write() as conn:
            conn.execute(
                "UPDATE results SET sha256 = COALESCE(?, sha256), path = COALESCE(?, path),"
                " thumbnail = COALESCE(?, thumbnail), download_error = ?"
                " WHERE request_id = ? AND position = ?",
                (sha256, path, thumbnail, error, request_id, position),
            )

    def update(self, request_id: int, **fields: Any) -> None:
        """Set columns of one request."""
        unknown = set(fields) - set(REQUEST_COLUMNS)
        if unknown:
            raise KeyError(f"unknown history columns: {sorted(unknown)}")
        if not fields:
            return
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.write() as conn:
            conn.execute(f"UPDATE requests SET {sets} WHERE id = ?", [*fields.values(), request_id])

    def update_unless_succeeded(self, request_id: int, **fields: Any) -> bool:
        """Set columns of one request unless it succeeded already (a late cancel or timeout
        never hides a result); ``True`` when written."""
        with self.write() as conn:
            current = conn.execute("SELECT status FROM requests WHERE id = ?",
                                   (request_id,)).fetchone()
            if current is not None and current[0] == "succeeded":
                return False
            self.update(request_id, **fields)
            return True

    def mark_running(self, request_id: int) -> None:
        """A request still ``submitted`` becomes ``pending`` (its task was seen running)."""
        with self.write() as conn:
            conn.execute("UPDATE requests SET status = 'pending' WHERE id = ? AND "
                         "status = 'submitted'", (request_id,))

    def count_replay(self, request_id: int, at: float) -> None:
        """Count one more replay of a request, made at ``at`` (epoch seconds)."""
        with self.write() as conn:
            conn.execute("UPDATE requests SET replays = replays + 1, last_replayed_at = ? "
                         "WHERE id = ?", (at, request_id))

    def id_for_task(self, task_id: str | None) -> int | None:
        """The record id of a task id, if recorded."""
        if not task_id:
            return None
        value = self.scalar("SELECT id FROM requests WHERE task_id = ?", (task_id,))
        return None if value is None else int(value)

    # --- what views, records, the recorder and replay read ---------------------------

    def select_ids(self, selection: Selection, *, limit: int | None = None,
                   offset: int = 0) -> list[int]:
        """The record ids of ``selection`` in its order (``limit`` of them from ``offset``)."""
        sql, params = selection.sql("r.id", limit=limit, offset=offset)
        return [int(row[0]) for row in self.query(sql, params)]

    def count(self, selection: Selection) -> int:
        """How many records ``selection`` holds."""
        sql, params = selection.sql("r.id", ordered=False)
        return int(self.scalar(f"SELECT COUNT(*) FROM ({sql})", params))

    def id_at(self, selection: Selection, position: int) -> int | None:
        """The record id at ``position`` (0-based) of ``selection``; ``None`` past its end."""
        sql, params = selection.sql("r.id", limit=1, offset=position)
        value = self.scalar(sql, params)
        return None if value is None else int(value)

    def page_rows(self, selection: Selection, *, limit: int, offset: int
                  ) -> list[dict[str, Any]]:
        """One page of ``selection`` for a table: each request's columns plus
        ``result_thumb`` and ``input_thumb`` (the first thumbnail of each, or ``None``) and
        ``n_results``."""
        sql, params = selection.sql(_PAGE_COLUMNS, limit=limit, offset=offset)
        return [dict(row) for row in self.query(sql, params)]

    def record_rows(self, ids: Sequence[int]
                    ) -> tuple[list[sqlite3.Row], list[sqlite3.Row], list[sqlite3.Row]]:
        """The ``requests`` rows of ``ids`` (in that order), and their ``inputs`` and
        ``results`` rows (by request, then position)."""
        key = json.dumps(list(ids))
        requests = self.query(
            "SELECT r.* FROM requests r JOIN json_each(?) j ON r.id = j.value ORDER BY j.key",
            (key,))
        inputs = self.query(
            "SELECT * FROM inputs WHERE request_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY request_id, position", (key,))
        results = self.query(
            "SELECT * FROM results WHERE request_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY request_id, position", (key,))
        return requests, inputs, results

    def request_row(self, request_id: int) -> dict[str, Any] | None:
        """The ``requests`` row of one id, as a dict (``None`` when there is none)."""
        rows = self.query("SELECT * FROM requests WHERE id = ?", (request_id,))
        return dict(rows[0]) if rows else None

    def result_prompts(self, request_id: int) -> dict[int, str]:
        """The prompt the service echoed for each result image of a request, by position."""
        return {int(r["position"]): str(r["prompt"]) for r in self.query(
            "SELECT position, prompt FROM results WHERE request_id = ?", (request_id,))}

    def input_thumbnail(self, sha256: str) -> bytes | None:
        """A thumbnail already made for an input image with this content hash, if any."""
        value = self.scalar("SELECT thumbnail FROM inputs WHERE sha256 = ? AND "
                            "thumbnail IS NOT NULL LIMIT 1", (sha256,))
        return None if value is None else bytes(value)

    def open_tasks(self) -> dict[str, int]:
        """Task id → record id of every task that may still bring a result: ``submitted``
        or ``pending``, or ``cancelled`` (locally) without results; oldest first."""
        rows = self.query(
            "SELECT id, task_id FROM requests WHERE task_id IS NOT NULL AND (status IN "
            "('submitted', 'pending') OR (status = 'cancelled' AND NOT EXISTS "
            "(SELECT 1 FROM results t WHERE t.request_id = requests.id))) ORDER BY id")
        return {str(r["task_id"]): int(r["id"]) for r in rows}

    def missing_downloads(self) -> dict[int, list[tuple[int, str]]]:
        """Record id → ``(position, url)`` of each result image of a succeeded request that
        has no local copy yet."""
        rows = self.query(
            "SELECT request_id, position, url FROM results t JOIN requests r ON "
            "r.id = t.request_id WHERE t.path IS NULL AND r.status = 'succeeded' "
            "ORDER BY request_id, position")
        jobs: dict[int, list[tuple[int, str]]] = {}
        for row in rows:
            jobs.setdefault(int(row[0]), []).append((int(row[1]), str(row[2])))
        return jobs

    def replay_candidates(self, fingerprint: str, limit: int = 200) -> list[int]:
        """Ids of the live, succeeded requests with this fingerprint, oldest first."""
        rows = self.query(
            "SELECT id FROM requests WHERE fingerprint = ? AND status = 'succeeded' "
            "AND deleted = 0 ORDER BY id LIMIT ?", (fingerprint, limit))
        return [int(r[0]) for r in rows]

    # --- content-addressed files -----------------------------------------------------

    def put_file(self, data: bytes, ext: str) -> tuple[str, str]:
        """Store ``data`` by content; returns ``(sha256, path relative to the folder)``."""
        sha = hashlib.sha256(data).hexdigest()
        ext = ext if ext.startswith(".") else f".{ext}"
        rel = f"{IMAGES_DIRNAME}/{sha[:2]}/{sha}{ext.lower()}"
        target = self.folder / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        return sha, rel

    def file_path(self, rel: str | None) -> Path | None:
        """The absolute path of a stored file (``None`` when ``rel`` is ``None``)."""
        return None if rel is None else self.folder / rel


def dumps(value: Any) -> str:
    """Compact, stable JSON for the ``parameters`` column."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
