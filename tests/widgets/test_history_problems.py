"""What the history could not do is shown where the user looks: the panel's status area and
the grid's status line, not only the log (a lock held past ``busy_timeout`` keeps a paid
record unsaved; saving it later is said too)."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid import grid
from nanobanana_widgets.widgets.panel import PromptPanel


def _lock(db: Path) -> sqlite3.Connection:
    """Another connection holding the history's write lock (until rolled back)."""
    blocker = sqlite3.connect(db, isolation_level=None, timeout=5)
    blocker.execute("BEGIN IMMEDIATE")
    return blocker


@pytest.fixture
def locked_history(client: Client, tmp_path: Path) -> History:
    return History(tmp_path / "h", client=client, busy_timeout=0.2)


def test_the_panel_says_when_a_paid_record_could_not_be_saved(
        client: Client, locked_history: History, make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
    panel = make_panel(client, history=locked_history, prompt="a lighthouse at dusk")
    blocker = _lock(locked_history.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning is the cell output's; here: the panel
        panel.generate_button.click()
        wait_until(lambda: any("History:" in m and "could not save" in m
                               for m in panel.shown_messages), "the panel to say so")
        blocker.execute("ROLLBACK")
        blocker.close()
        wait_until(lambda: not locked_history.unsaved, "the kept record to be saved", 15)
        wait_until(lambda: any("History:" in m for m in panel.messages[-1:]),
                   "the panel to say it was saved")
    panel.close()
    locked_history.close()


def test_the_grid_says_when_a_paid_record_could_not_be_saved(
        client: Client, locked_history: History, wait_until: Callable[..., None]) -> None:
    blocker = _lock(locked_history.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = grid(["a red kite"], client=client, history=locked_history)
        g.wait(30)
        wait_until(lambda: "History:" in g.status_line.value
                   and "could not save" in g.status_line.value, "the grid to say so")
    blocker.execute("ROLLBACK")
    blocker.close()
    g.close()
    locked_history.close()
