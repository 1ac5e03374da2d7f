"""The history's batch-job tables: migration from version 1, rows and their states, and who
may run a job."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nanobanana_widgets.service.errors import HistoryWriteError
from nanobanana_widgets.store import History
from nanobanana_widgets.store.jobs import new_owner
from nanobanana_widgets.store.schema import MIGRATIONS


def test_a_version_1_history_gains_the_job_tables(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:
        MIGRATIONS[0](conn)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO requests (created_at, action, prompt, model, status, "
                     "fingerprint) VALUES (1, 'generate', 'kept', 'nano-banana', "
                     "'succeeded', 'f')")
    h = History(db)
    try:
        assert len(h) == 1 and h[0].prompt == "kept"
        assert h.jobs.names() == []
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 2
    finally:
        h.close()


def test_rows_and_states(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    try:
        book = h.jobs
        book.create("j", fingerprint="fp", spec={"model": "nano-banana"}, paid=3,
                    state="running", rows=[('{"prompt": "a"}', "{}", "fa"),
                                           ('{"prompt": "b"}', '{"label": 1}', "fb")])
        job = book.get("j")
        assert job is not None and job["total"] == 2 and job["spec"] == {"model": "nano-banana"}
        rows = book.rows("j")
        assert [r["request"]["prompt"] for r in rows] == ["a", "b"]
        assert rows[1]["meta"] == {"label": 1} and {r["state"] for r in rows} == {"queued"}
        book.mark_submitted("j", 0, "task-1", "trace-1")
        book.cancel_unsent("j")
        rows = book.rows("j")
        assert (rows[0]["state"], rows[0]["task_id"], rows[0]["submits"]) == (
            "submitted", "task-1", 1)
        assert rows[1]["state"] == "cancelled"
        book.uncancel("j")
        book.requeue("j", [0])
        assert [r["state"] for r in book.rows("j")] == ["queued", "queued"]
        assert book.rows("j")[0]["task_id"] is None
        with pytest.raises(ValueError):
            book.update_row("j", 0, state="lost")
        with pytest.raises(KeyError):
            book.update_row("j", 0, prompt="x")
        with pytest.raises(HistoryWriteError, match="UNIQUE"):  # the store's typed error
            book.create("j", fingerprint="fp", spec={}, paid=0, state="running", rows=[])
    finally:
        h.close()


def test_one_live_process_runs_a_job(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        book = h.jobs
        book.create("j", fingerprint="fp", spec={}, paid=0, state="running", rows=[])
        other = f"{socket.gethostname()}:{sleeper.pid}:abc"
        assert book.claim("j", other) is None
        me = new_owner()
        assert me.split(":")[1] == str(os.getpid())
        assert book.claim("j", me) == other  # the other process lives
        sleeper.kill()
        sleeper.wait(10)
        assert book.claim("j", me) is None  # it died: the job is free
        book.release("j", me)
        assert book.get("j")["owner"] is None  # type: ignore[index]
        remote = "elsewhere.example:123:abc"
        assert book.claim("j", remote) is None
        assert book.claim("j", me) == remote  # another host's fresh heartbeat holds it
        with pytest.raises(KeyError):
            book.claim("nope", me)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        h.close()
