"""A new user opens a notebook in a folder whose default history is damaged: nb.connect()
and nb.generate() still work, the damaged file is kept aside, and the cell output shows a
warning saying so. The module functions also show when a paid result could not be saved."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import nanobanana_widgets as nb
from nanobanana_widgets import functions, session
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import HistoryWarning
from nanobanana_widgets.store import History

DAMAGED = b"SQLite format 3\x00" + b"\x13\x37" * 3000


@pytest.fixture(autouse=True)
def _fresh_default() -> Iterator[None]:
    session.set_default_client(None)
    yield
    client = session._default
    session._stop_emulator()
    session.set_default_client(None)
    if client is not None:
        client.close()


def _damage_default_history() -> Path:
    db = Path.cwd() / ".nanobanana" / "history.sqlite"
    db.parent.mkdir()
    db.write_bytes(DAMAGED)
    return db


def test_connect_and_generate_in_a_folder_with_a_damaged_history() -> None:
    db = _damage_default_history()
    with pytest.warns(HistoryWarning, match="is damaged") as shown:
        backend = nb.connect(latency=0.0)
    assert str(db) in str(shown[0].message)
    nb.default_client().poll_interval = 0.05
    result = nb.generate("a cat in a fresh history")
    assert len(result) == 1 and backend.emulator is not None
    history = session.default_history()
    assert history.path == db and [r.task_id for r in history] == [result.task_id]
    (aside,) = db.parent.glob("history.sqlite.damaged-*")
    assert aside.read_bytes() == DAMAGED
    assert [p.kind for p in history.problems] == ["set_aside"]


def test_a_new_users_notebook_starts_and_shows_the_warning(tmp_path: Path) -> None:
    (tmp_path / ".nanobanana").mkdir()
    (tmp_path / ".nanobanana" / "history.sqlite").write_bytes(DAMAGED)
    code = (
        "import nanobanana_widgets as nb\n"
        "nb.connect(latency=0.0)\n"
        "r = nb.generate('a cat')\n"
        "print(len(r), len(nb.session.default_history()))\n"
    )
    source = str(Path(nb.__file__).parents[1])  # the package under test, nothing else
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": source}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
    assert "HistoryWarning" in done.stderr and "is damaged" in done.stderr
    assert "Traceback" not in done.stderr
    (aside,) = (tmp_path / ".nanobanana").glob("history.sqlite.damaged-*")
    assert aside.read_bytes() == DAMAGED


def test_the_module_functions_show_a_result_the_history_could_not_save(
        emulator: Emulator, tmp_path: Path, wait_until: Callable[..., None]) -> None:
    from support import TEST_TOKEN

    client = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05)
    history = History(tmp_path / "h", busy_timeout=0.2)
    session.set_default_history(history)
    session.set_default_client(client)
    blocker = sqlite3.connect(history.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.warns(HistoryWarning, match="could not save the record") as shown:
            result = functions.generate("paid while the history is locked")
        assert any(result.task_id in str(w.message) for w in shown)
        assert [u.task_id for u in history.unsaved] == [result.task_id]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    wait_until(lambda: not history.unsaved, "the record to be saved", timeout=15)
    assert history[-1].task_id == result.task_id
    history.close()
