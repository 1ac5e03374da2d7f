"""The history's storage: one SQLite database (WAL) and a content-addressed image folder.

Layout of a history folder (``.nanobanana/`` under the working directory by default)::

    history.sqlite               the records (WAL mode; -wal and -shm files beside it)
    images/<sha[:2]>/<sha>.<ext> every input and downloaded result image, named by content

Several processes and threads may use one history at once: every write runs in its own
``BEGIN IMMEDIATE`` transaction, and a busy timeout makes a writer wait for another instead
of failing. The schema is versioned with ``PRAGMA user_version``; :data:`MIGRATIONS` holds one
step per version. Nothing here talks to the network, and no API token is ever stored.
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
from pathlib import Path
from typing import Any

__all__ = [
    "DB_NAME",
    "DEFAULT_DIRNAME",
    "IMAGES_DIRNAME",
    "MIGRATIONS",
    "REQUEST_COLUMNS",
    "SCHEMA_VERSION",
    "HistoryStore",
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


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_to_1,)
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

    def id_for_task(self, task_id: str | None) -> int | None:
        """The record id of a task id, if recorded."""
        if not task_id:
            return None
        value = self.scalar("SELECT id FROM requests WHERE task_id = ?", (task_id,))
        return None if value is None else int(value)

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
