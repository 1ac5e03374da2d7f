"""Batch jobs in the history: each job, each of its rows and the row's state, so a job that
a dead kernel left half done can be picked up again (``nb.Job.open(name)``).

Two tables (defined by migration 2 of :mod:`.schema`): ``jobs`` (one per name: what it asks
for, its state, who runs it) and ``job_rows`` (one per row: its request, its state and, once
accepted, its task id). A row moves ``queued`` → ``sending`` → ``submitted`` → ``succeeded``
or ``failed``; ``uncertain`` is a row that may have been billed with no task id to look up,
``cancelled`` one never sent. ``sending`` is written *before* the submit and ``submitted``
(with the task id) right after it, before anything waits: a row found ``sending`` after a
crash is matched to the record the history wrote for its submit, never sent again.

This module holds the jobs' queries; :class:`JobBook` is reached through the
:class:`~nanobanana_widgets.store.History` façade (``history.jobs``).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from nanobanana_widgets.store.records import Record, load_records
from nanobanana_widgets.store.schema import HistoryStore

__all__ = ["JOB_STATES", "ROW_STATES", "JobBook", "new_owner"]


JOB_STATES: Final = ("awaiting confirmation", "running", "paused", "cancelled", "done")
ROW_STATES: Final = ("queued", "sending", "submitted", "succeeded", "failed", "uncertain",
                     "cancelled")
_ROW_FIELDS: Final = frozenset({
    "state", "task_id", "trace_id", "submits", "sent_at", "finished_at", "images",
    "error_class", "error_code", "error_message", "error_trace_id", "request",
})
_HEARTBEAT_STALE: Final = 30.0
"""Seconds without a heartbeat after which another host's claim on a job lapses."""


def new_owner() -> str:
    """A token naming this process as a job's runner: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alive_elsewhere(owner: str | None, heartbeat_at: float | None, me: str, now: float) -> bool:
    """Whether ``owner`` (not ``me``) still runs a job: a live process on this host, or a
    heartbeat from another host within the last 30 s."""
    if not owner or owner == me:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return False  # an earlier run in this process (its object is gone)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return heartbeat_at is not None and now - heartbeat_at < _HEARTBEAT_STALE


class JobBook:
    """The batch jobs of one history: create, read and update jobs and their rows."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store

    # --- jobs ------------------------------------------------------------------------

    def create(self, name: str, *, fingerprint: str, spec: Mapping[str, Any], paid: int,
               state: str, rows: Sequence[tuple[str, str, str]]) -> None:
        """Write a new job and its rows (``(request JSON, meta JSON, fingerprint)`` each,
        all ``queued``) in one transaction."""
        now = time.time()
        with self._store.write() as conn:
            conn.execute(
                "INSERT INTO jobs (name, created_at, updated_at, fingerprint, spec, state, "
                "total, paid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, now, now, fingerprint, json.dumps(dict(spec), sort_keys=True), state,
                 len(rows), paid))
            conn.executemany(
                "INSERT INTO job_rows (job, position, request, meta, fingerprint, state) "
                "VALUES (?, ?, ?, ?, ?, 'queued')",
                [(name, pos, req, meta, fp) for pos, (req, meta, fp) in enumerate(rows)])

    def get(self, name: str) -> dict[str, Any] | None:
        """The ``jobs`` row of ``name`` as a dict (``spec`` decoded), or ``None``."""
        rows = self._store.query("SELECT * FROM jobs WHERE name = ?", (name,))
        if not rows:
            return None
        job = dict(rows[0])
        job["spec"] = json.loads(job["spec"] or "{}")
        return job

    def names(self) -> list[dict[str, Any]]:
        """Every job, newest first: name, created_at, state, total and paid."""
        return [dict(r) for r in self._store.query(
            "SELECT name, created_at, updated_at, state, total, paid FROM jobs "
            "ORDER BY created_at DESC")]

    def set_state(self, name: str, state: str) -> None:
        """Set a job's state (one of :data:`JOB_STATES`)."""
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        with self._store.write() as conn:
            conn.execute("UPDATE jobs SET state = ?, updated_at = ? WHERE name = ?",
                         (state, time.time(), name))

    def claim(self, name: str, owner: str) -> str | None:
        """Make ``owner`` the job's runner, unless another live process runs it: returns
        ``None`` when claimed, else the other runner's token."""
        now = time.time()
        with self._store.write() as conn:
            row = conn.execute("SELECT owner, heartbeat_at FROM jobs WHERE name = ?",
                               (name,)).fetchone()
            if row is None:
                raise KeyError(name)
            if _alive_elsewhere(row[0], row[1], owner, now):
                return str(row[0])
            conn.execute("UPDATE jobs SET owner = ?, heartbeat_at = ? WHERE name = ?",
                         (owner, now, name))
            return None

    def heartbeat(self, name: str, owner: str) -> None:
        """Say that ``owner`` still runs the job."""
        with self._store.write() as conn:
            conn.execute("UPDATE jobs SET heartbeat_at = ? WHERE name = ? AND owner = ?",
                         (time.time(), name, owner))

    def release(self, name: str, owner: str) -> None:
        """``owner`` stops running the job."""
        with self._store.write() as conn:
            conn.execute("UPDATE jobs SET owner = NULL, heartbeat_at = NULL "
                         "WHERE name = ? AND owner = ?", (name, owner))

    # --- rows ------------------------------------------------------------------------

    def rows(self, name: str) -> list[dict[str, Any]]:
        """Every row of a job in order, as dicts (``request`` and ``meta`` decoded)."""
        out = []
        for r in self._store.query("SELECT * FROM job_rows WHERE job = ? ORDER BY position",
                                   (name,)):
            row = dict(r)
            row["request"] = json.loads(row["request"])
            row["meta"] = json.loads(row["meta"] or "{}")
            out.append(row)
        return out

    def update_row(self, name: str, position: int, **fields: Any) -> None:
        """Set columns of one row (``request`` may be a dict; it is stored as JSON)."""
        unknown = set(fields) - _ROW_FIELDS
        if unknown:
            raise KeyError(f"unknown job row columns: {sorted(unknown)}")
        if "state" in fields and fields["state"] not in ROW_STATES:
            raise ValueError(f"unknown row state {fields['state']!r}")
        if isinstance(fields.get("request"), Mapping):
            fields["request"] = json.dumps(fields["request"], sort_keys=True)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._store.write() as conn:
            conn.execute(f"UPDATE job_rows SET {sets} WHERE job = ? AND position = ?",
                         [*fields.values(), name, position])

    def mark_submitted(self, name: str, position: int, task_id: str,
                       trace_id: str | None) -> None:
        """A row's submit was accepted: its task id, before anything waits."""
        with self._store.write() as conn:
            conn.execute(
                "UPDATE job_rows SET state = 'submitted', task_id = ?, trace_id = ?, "
                "submits = submits + 1 WHERE job = ? AND position = ?",
                (task_id, trace_id, name, position))

    def requeue(self, name: str, positions: Iterable[int]) -> None:
        """Rows go back to ``queued`` (their task id and error are cleared)."""
        with self._store.write() as conn:
            conn.executemany(
                "UPDATE job_rows SET state = 'queued', task_id = NULL, trace_id = NULL, "
                "sent_at = NULL, finished_at = NULL, images = 0, error_class = NULL, "
                "error_code = NULL, error_message = NULL, error_trace_id = NULL "
                "WHERE job = ? AND position = ?", [(name, p) for p in positions])

    def cancel_unsent(self, name: str) -> None:
        """Every row still ``queued`` becomes ``cancelled`` (nothing was sent for it)."""
        with self._store.write() as conn:
            conn.execute("UPDATE job_rows SET state = 'cancelled' WHERE job = ? AND "
                         "state = 'queued'", (name,))

    def uncancel(self, name: str) -> None:
        """Every ``cancelled`` row is ``queued`` again."""
        with self._store.write() as conn:
            conn.execute("UPDATE job_rows SET state = 'queued' WHERE job = ? AND "
                         "state = 'cancelled'", (name,))

    # --- what the history recorded for the rows --------------------------------------

    def records_for_tasks(self, task_ids: Sequence[str]) -> dict[str, Record]:
        """The history's records of these task ids, by task id."""
        if not task_ids:
            return {}
        rows = self._store.query(
            "SELECT id, task_id FROM requests WHERE task_id IN "
            "(SELECT value FROM json_each(?))", (json.dumps(list(task_ids)),))
        by_id = {int(r["id"]): str(r["task_id"]) for r in rows}
        return {by_id[rec.id]: rec for rec in load_records(self._store, list(by_id))}

    def submitted_record(self, name: str, fingerprint: str, since: float
                         ) -> dict[str, Any] | None:
        """The record the history wrote for a submit of this request (same fingerprint,
        submitted at ``since`` or later) whose task no row of the job claims yet: what a
        row found ``sending`` after a crash was accepted as."""
        rows = self._store.query(
            "SELECT task_id, trace_id FROM requests WHERE fingerprint = ? AND task_id IS NOT "
            "NULL AND submitted_at >= ? AND task_id NOT IN (SELECT task_id FROM job_rows "
            "WHERE job = ? AND task_id IS NOT NULL) ORDER BY id LIMIT 1",
            (fingerprint, since, name))
        return dict(rows[0]) if rows else None

    # --- input images ----------------------------------------------------------------

    def keep_image(self, data: bytes, ext: str) -> tuple[str, str]:
        """Keep a row's input image in the history folder, by content; returns ``(sha256,
        path relative to the folder)``."""
        return self._store.put_file(data, ext)

    def image_path(self, rel: str) -> Path:
        """The absolute path of a kept input image."""
        path = self._store.file_path(rel)
        assert path is not None
        return path
