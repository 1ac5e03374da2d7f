"""The history's storage: one SQLite database (WAL) and a content-addressed image folder.

Layout of a history folder (``.nanobanana/`` under the working directory by default)::

    history.sqlite               the records (WAL mode; -wal and -shm files beside it)
    images/<sha[:2]>/<sha>.<ext> every input and downloaded result image, named by content
    history.sqlite.unsaved-*.jsonl  records a session could not write yet (see ``unsaved``)
    history.sqlite.damaged-<time>   a damaged history kept aside (see ``recovery``)

Several processes and threads may use one history at once: every write runs in its own
``BEGIN IMMEDIATE`` transaction, and a busy timeout makes a writer wait for another instead
of failing. The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` holds one
step per version. Nothing here talks to the network, and no API token is ever stored.

This module holds every SQL statement of the package (but the votes', kept apart in
``store/votes.py``): the rest of ``store/`` calls the methods of :class:`HistoryStore`, and
the views describe what they show with a :class:`Selection`, which this module turns into a
query.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nanobanana_widgets.service.errors import HistoryVersionError
from nanobanana_widgets.store.clean import clean_text, clean_value
from nanobanana_widgets.store.failures import history_error, translated

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
    "read_sound",
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
    "fingerprint", "replays", "last_replayed_at", "record_key",
)
"""The writable columns of ``requests`` (``id`` is assigned by SQLite)."""


def _migrate_to_1(conn: sqlite3.Connection) -> None:
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_2(conn: sqlite3.Connection) -> None:
    # Two paid requests may come back with one task id (a broken service): both are kept,
    # so a task id no longer names one record. ``record_key`` does: it names one
    # submission (task id, time and request), so a listener event or a journal entry
    # replayed twice still writes one record.
    conn.execute("ALTER TABLE requests ADD COLUMN record_key TEXT")
    conn.execute("UPDATE requests SET record_key = 'v1-' || id")
    conn.execute("DROP INDEX requests_task_id")
    conn.execute("CREATE INDEX requests_task_id ON requests(task_id) WHERE task_id IS NOT NULL")
    conn.execute("CREATE UNIQUE INDEX requests_record_key ON requests(record_key)")


_V3_VOTES = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    tournament TEXT NOT NULL,
    left_key TEXT NOT NULL,
    left_record INTEGER REFERENCES requests(id) ON DELETE SET NULL,
    left_image INTEGER,
    left_prompt TEXT,
    left_model TEXT,
    right_key TEXT NOT NULL,
    right_record INTEGER REFERENCES requests(id) ON DELETE SET NULL,
    right_image INTEGER,
    right_prompt TEXT,
    right_model TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('left', 'right', 'tie', 'skip')),
    blind INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS votes_tournament ON votes(tournament, id);
CREATE INDEX IF NOT EXISTS votes_left_record ON votes(left_record) WHERE left_record IS NOT NULL;
CREATE INDEX IF NOT EXISTS votes_right_record ON votes(right_record) WHERE right_record IS NOT NULL;
"""
"""Pairwise votes of comparisons and tournaments (``store/votes.py`` reads and writes them):
which two items (a record and image position when known, a stable key always, the prompt
and model as they were), the outcome as shown (left/right/tie/skip), blind or not, when.
``IF NOT EXISTS`` so the step is safe whatever place it takes among other migrations."""


def _migrate_to_3(conn: sqlite3.Connection) -> None:
    for statement in _V3_VOTES.split(";"):
        if statement.strip():
            conn.execute(statement)


# Version 4: batch jobs and their rows (queried by store/jobs.py).
_V4_JOBS = """
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


def _migrate_to_4(conn: sqlite3.Connection) -> None:
    for statement in _V4_JOBS.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_to_1, _migrate_to_2, _migrate_to_3, _migrate_to_4)
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
    Every string written goes through :func:`~nanobanana_widgets.store.clean.clean_value`
    (no lone surrogate, no secret), and every failure is a typed
    :class:`~nanobanana_widgets.service.errors.HistoryError` naming the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 busy_timeout: float = 30.0) -> None:
        self.db_path, self.images_dir = resolve_location(path)
        self.folder = self.db_path.parent
        self.busy_timeout = busy_timeout
        with translated(self.db_path, "create the folder of"):
            self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        with translated(self.db_path, "open"):
            self._conn = sqlite3.connect(
                str(self.db_path), timeout=busy_timeout, isolation_level=None,
                check_same_thread=False,
            )
        self._conn.row_factory = sqlite3.Row
        # Close the connection when the store is garbage collected or at exit (no
        # ResourceWarning), under the lock: never while another thread is using it.
        self._finalizer = weakref.finalize(self, _close_connection, self._conn, self._lock)
        try:
            with translated(self.db_path, "open"):
                self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                # Read and check before the first write: a file this version cannot use
                # is left exactly as it was.
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                self._check_version(version)
                self._check_whole()
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._migrate()
                self._conn.execute("SELECT MAX(id) FROM requests").fetchone()
        except BaseException:
            self._finalizer()
            raise

    # --- connection ------------------------------------------------------------------

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise HistoryVersionError(
                f"The history {self.db_path} was written by a newer nanobanana-widgets "
                f"(schema version {version}; this one understands up to {SCHEMA_VERSION}). "
                "It was left as it is. Upgrade (pip install -U nanobanana-widgets), or pass "
                "History(path) with another location.", path=str(self.db_path),
                detail=f"schema version {version}")

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process?
            self._check_version(version)
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")

    def _check_whole(self) -> None:
        """Refuse a truncated file: SQLite notices only when it reads a missing page. (A
        page damaged inside the file is found when it is read: every read and write
        raises a typed ``HistoryDamagedError`` then; a whole ``quick_check`` would make
        opening a large history slow.)"""
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        if not wal.exists() or wal.stat().st_size == 0:
            size = self.db_path.stat().st_size
            pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
            page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            if size < pages * page_size:
                raise sqlite3.DatabaseError(
                    f"database disk image is malformed: the file is truncated ({size} bytes "
                    f"of {pages * page_size})")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (nested calls join the outer one). A failure raises a
        :class:`~nanobanana_widgets.service.errors.HistoryError` and writes nothing."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            with translated(self.db_path, "write to"):
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException as exc:
                self._depth = 0
                self._rollback()
                if isinstance(exc, (sqlite3.Error, OSError)):
                    raise history_error(exc, self.db_path, "write to") from exc
                raise
            self._depth = 0
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise history_error(exc, self.db_path, "write to") from exc

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back already
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return every row."""
        with self._lock, translated(self.db_path, "read"):
            return self._conn.execute(sql, clean_value(tuple(params))).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (``None`` when there is no row)."""
        with self._lock, translated(self.db_path, "read"):
            row = self._conn.execute(sql, clean_value(tuple(params))).fetchone()
        return None if row is None else row[0]

    def close(self) -> None:
        """Close the connection (further use raises a ``HistoryError``)."""
        with self._lock:
            self._finalizer()

    # --- rows ------------------------------------------------------------------------

    def apply_write(self, key: str, row: dict[str, Any], *,
                    inputs: Sequence[dict[str, Any]] = (),
                    results: Sequence[dict[str, Any]] | None = None,
                    fields: dict[str, Any] | None = None, keep_success: bool = False,
                    match_task: bool = False) -> tuple[int, bool]:
        """Write one event of a request into its record, in one transaction; returns
        ``(id, inserted)``.

        The record is the one whose ``record_key`` is ``key``; with ``match_task``, else
        the newest with the same task id and fingerprint, else the newest with that task
        id that has not succeeded. When there is none, ``row`` (with ``fields``) is
        inserted with ``inputs`` and ``results``. Otherwise ``results`` replace its result
        rows and ``fields`` are set (unless it succeeded already and ``keep_success``).
        Writing the same event twice changes nothing more, so a journal can be replayed.
        """
        with self.write() as conn:
            rid = self._find(conn, key, row, match_task)
            if rid is None:
                values = clean_value({**row, **(fields or {}), "record_key": key})
                columns = [c for c in values if c in REQUEST_COLUMNS]
                cur = conn.execute(
                    f"INSERT INTO requests ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' for _ in columns)})", [values[c] for c in columns])
                rid = int(cur.lastrowid or 0)
                for pos, item in enumerate(clean_value(list(inputs))):
                    conn.execute(
                        "INSERT INTO inputs (request_id, position, sha256, mime, path, url, "
                        "thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (rid, pos, item["sha256"], item.get("mime"), item.get("path"),
                         item.get("url"), item.get("thumbnail")))
                self._write_results(conn, rid, results or ())
                return rid, True
            if results is not None:
                self._write_results(conn, rid, results)
            if fields:
                status = conn.execute("SELECT status FROM requests WHERE id = ?",
                                      (rid,)).fetchone()[0]
                if not (keep_success and status == "succeeded"):
                    self.update(rid, **fields)
            return rid, False

    @staticmethod
    def _find(conn: sqlite3.Connection, key: str, row: dict[str, Any],
              match_task: bool) -> int | None:
        found = conn.execute("SELECT id FROM requests WHERE record_key = ?", (key,)).fetchone()
        if found is not None:
            return int(found[0])
        task_id = row.get("task_id")
        if not match_task or not task_id:
            return None
        rows = conn.execute("SELECT id, fingerprint, status FROM requests WHERE task_id = ? "
                            "ORDER BY id DESC", (clean_text(task_id),)).fetchall()
        same_request = [r for r in rows if r[1] == row.get("fingerprint")]
        still_open = [r for r in rows if r[2] != "succeeded"]
        chosen = same_request or still_open
        return int(chosen[0][0]) if chosen else None

    def set_results(self, request_id: int, results: Sequence[dict[str, Any]]) -> None:
        """Replace a request's result rows (keeping local copies already made)."""
        with self.write() as conn:
            self._write_results(conn, request_id, results)

    @staticmethod
    def _write_results(conn: sqlite3.Connection, rid: int,
                       results: Sequence[dict[str, Any]]) -> None:
        for pos, item in enumerate(clean_value(list(results))):
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
                (sha256, path, thumbnail, None if error is None else clean_text(error),
                 request_id, position),
            )

    def forget_result_file(self, request_id: int, position: int, error: str) -> None:
        """A result's local copy is damaged or gone: forget it, so that it is downloaded
        again (by ``resume()`` or the next read)."""
        with self.write() as conn:
            conn.execute("UPDATE results SET path = NULL, sha256 = NULL, download_error = ? "
                         "WHERE request_id = ? AND position = ?",
                         (clean_text(error), request_id, position))

    def update(self, request_id: int, **fields: Any) -> None:
        """Set columns of one request."""
        unknown = set(fields) - set(REQUEST_COLUMNS)
        if unknown:
            raise KeyError(f"unknown history columns: {sorted(unknown)}")
        if not fields:
            return
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.write() as conn:
            conn.execute(f"UPDATE requests SET {sets} WHERE id = ?",
                         [*clean_value(list(fields.values())), request_id])

    def mark_running(self, request_id: int) -> None:
        """A request still ``submitted`` (or failed without an error code: under the
        service's rules a task that may still be running) becomes ``pending``."""
        with self.write() as conn:
            conn.execute(
                "UPDATE requests SET status = 'pending', error_class = NULL, error_code = NULL,"
                " error_message = NULL, error_trace_id = NULL WHERE id = ? AND (status = "
                "'submitted' OR (status = 'failed' AND error_code IS NULL))", (request_id,))

    def count_replay(self, request_id: int, at: float) -> None:
        """Count one more replay of a request, made at ``at`` (epoch seconds)."""
        with self.write() as conn:
            conn.execute("UPDATE requests SET replays = replays + 1, last_replayed_at = ? "
                         "WHERE id = ?", (at, request_id))

    def id_for_task(self, task_id: str | None) -> int | None:
        """The id of the newest record of a task id (a broken service may give two
        requests one id: both are kept), if recorded."""
        if not task_id:
            return None
        value = self.scalar("SELECT MAX(id) FROM requests WHERE task_id = ?", (task_id,))
        return None if value is None else int(value)

    def has_key(self, key: str) -> bool:
        """Whether a record with this ``record_key`` is in the database."""
        return self.scalar("SELECT 1 FROM requests WHERE record_key = ?", (key,)) is not None

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

    def open_tasks(self) -> dict[str, list[int]]:
        """Task id → record ids (oldest first) of every task that may still bring a
        result: ``submitted`` or ``pending``, ``cancelled`` (locally) without results, or
        ``failed`` without an error code (under the service's rules such a task may still
        be running)."""
        rows = self.query(
            "SELECT id, task_id FROM requests WHERE task_id IS NOT NULL AND (status IN "
            "('submitted', 'pending') OR (status = 'cancelled' AND NOT EXISTS "
            "(SELECT 1 FROM results t WHERE t.request_id = requests.id)) OR (status = "
            "'failed' AND error_code IS NULL)) ORDER BY id")
        found: dict[str, list[int]] = {}
        for r in rows:
            found.setdefault(str(r["task_id"]), []).append(int(r["id"]))
        return found

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
        """Store ``data`` by content; returns ``(sha256, path relative to the folder)``.

        A copy already there is kept only when it is sound (its bytes have this hash);
        a damaged copy, or anything else under that name, is replaced. Raises
        :class:`~nanobanana_widgets.service.errors.HistoryError` (a full disk, a read-only
        folder)."""
        sha = hashlib.sha256(data).hexdigest()
        ext = ext if ext.startswith(".") else f".{ext}"
        rel = f"{IMAGES_DIRNAME}/{sha[:2]}/{sha}{ext.lower()}"
        target = self.folder / rel
        if read_sound(target, sha) is not None:
            return sha, rel
        with translated(self.db_path, "keep an image file beside"):
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


def _close_connection(conn: sqlite3.Connection, lock: threading.RLock) -> None:
    with lock:
        conn.close()


def read_sound(path: Path | None, sha256: str | None) -> bytes | None:
    """The bytes of a kept file when they have the recorded hash; ``None`` when the file
    is missing, is not a regular file (a symlink is never followed) or is damaged."""
    if path is None or not sha256:
        return None
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None

def dumps(value: Any) -> str:
    """Compact, stable JSON for the ``parameters`` column."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
