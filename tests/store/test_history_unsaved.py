"""Nothing paid for is lost when the history cannot be written: a write lock held past
busy_timeout, a process that dies meanwhile, and a really full disk. The records are kept
(in memory and in a journal beside the database), shown (a HistoryWarning, History.unsaved,
History.problems), and saved when the history can be written again."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import HistoryWarning
from nanobanana_widgets.store import History
from support import TEST_TOKEN

from .smallfs import mode, run_on_small_disk


def _lock(db: Path) -> sqlite3.Connection:
    """Another connection holding the history's write lock (until rolled back)."""
    blocker = sqlite3.connect(db, isolation_level=None, timeout=5)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


def test_a_lock_held_past_busy_timeout_keeps_every_record(
        client: Client, emulator: Emulator, tmp_path: Path,
        wait_until: Callable[..., None]) -> None:
    h = History(tmp_path / "h", client=client, busy_timeout=0.2)
    problems: list[str] = []
    h.on_problem(lambda p: problems.append(p.kind))
    blocker = _lock(h.path)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        results = [client.generate(f"paid while locked {i}") for i in range(3)]
        assert len(h) == 0
        unsaved = h.unsaved
        assert [u.task_id for u in unsaved] == [r.task_id for r in results]
        assert all(u.status == "succeeded" and u.journal is not None for u in unsaved)
        journal = unsaved[0].journal
        assert journal is not None and journal.parent == h.folder
        assert all(r.task_id in journal.read_text() for r in results)
        messages = [str(w.message) for w in shown if w.category is HistoryWarning]
        for r in results:
            assert any(r.task_id in m and "could not save" in m for m in messages)
        assert h.problem_count >= 3 and problems.count("unsaved") == 3
        blocker.execute("ROLLBACK")
        blocker.close()
        wait_until(lambda: not h.unsaved, "the kept records to be saved", timeout=15)
        assert [(r.task_id, r.status) for r in h] == [(r.task_id, "succeeded")
                                                      for r in results]
        assert not journal.exists()
        assert h.flush(timeout=10) and all(r.results[0].local for r in h)
        assert "saved" in problems
    h.close()


def test_a_process_that_dies_with_unsaved_records_leaves_them_to_the_next_history(
        emulator: Emulator, tmp_path: Path,
        run_python: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    folder = tmp_path / "h"
    History(folder).close()
    child = """
        import os, sys, warnings
        from nanobanana_widgets.client import Client
        from nanobanana_widgets.store import History
        warnings.simplefilter("ignore")
        client = Client(sys.argv[2], base_url=sys.argv[1], poll_interval=0.05)
        h = History(sys.argv[3], client=client, busy_timeout=0.2)
        ids = [client.generate(f"died {i}").task_id for i in range(2)]
        assert len(h.unsaved) == 2, h.unsaved
        print(" ".join(ids))
        os._exit(0)  # no close(): the process just dies
    """
    blocker = _lock(folder / "history.sqlite")
    try:
        done = run_python(child, emulator.base_url, TEST_TOKEN, str(folder))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert done.returncode == 0, done.stderr
    task_ids = done.stdout.split()
    assert len(list(folder.glob("history.sqlite.unsaved-*.jsonl"))) == 1
    with pytest.warns(HistoryWarning, match="earlier session could not save"):
        h = History(folder)
    assert [(r.task_id, r.status) for r in h] == [(t, "succeeded") for t in task_ids]
    assert list(folder.glob("history.sqlite.unsaved-*")) == []
    with Client(TEST_TOKEN, base_url=emulator.base_url) as client:
        h.resume(client, wait=True, timeout=10)  # downloads what the dead process could not
    assert all(r.results[0].local for r in h)
    assert emulator.submissions == 2
    h.close()


FULL_DISK = """
    import json, sys, time, warnings
    from nanobanana_widgets.client import Client
    from nanobanana_widgets.store import History
    shown = []
    warnings.simplefilter("always")
    warnings.showwarning = lambda message, category, *a, **k: shown.append(
        (category.__name__, str(message)))
    out = {}
    client = Client(sys.argv[2], base_url=sys.argv[1], poll_interval=0.05)
    h = History(FOLDER + "/h", client=client)
    fill()
    ids = [client.generate(f"paid on a full disk {i}").task_id for i in range(3)]
    out["in_db_while_full"] = len(h)
    out["unsaved"] = [u.task_id for u in h.unsaved]
    out["resume_finds"] = [r.task_id for r in h.resume(client)]
    out["warned"] = [t for t in ids if any(t in m for c, m in shown if c == "HistoryWarning")]
    free()  # nothing else is done: the retry thread saves them on its own
    freed = time.monotonic()
    while h.unsaved and time.monotonic() < freed + 40:
        time.sleep(0.05)
    out["saved_after"] = time.monotonic() - freed
    out["after"] = [[r.task_id, r.status] for r in h]
    h.flush(timeout=10)
    out["local"] = [r.results[0].local for r in h]
    fill()
    out["last"] = client.generate("paid as the session ends").task_id
    h.close()
    out["last_word"] = [m for c, m in shown if "nor journaled" in m]
    out["ids"] = ids
    free()
    print(json.dumps(out))
"""


def test_a_full_disk_keeps_paid_results_until_space_returns(emulator: Emulator,
                                                            tmp_path: Path) -> None:
    done = run_on_small_disk(FULL_DISK, tmp_path / "small", emulator.base_url, TEST_TOKEN,
                             size_kb=1024)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    ids = out["ids"]
    assert out["in_db_while_full"] == 0
    assert out["unsaved"] == ids and out["warned"] == ids  # kept, and shown
    assert out["resume_finds"] == []
    assert out["after"] == [[t, "succeeded"] for t in ids]  # saved when space returned
    if mode():  # a real disk: the retry notices the freed space within a second or two
        assert out["saved_after"] < 5, out["saved_after"]
    assert out["local"] == [True, True, True]
    assert len(out["last_word"]) == 1 and out["last"] in out["last_word"][0]
    assert emulator.submissions == 4
