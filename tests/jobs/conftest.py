"""Fixtures of the batch-job tests: a rate-limited emulator and a client and history on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.store import History
from support import TEST_TOKEN


@pytest.fixture
def limited() -> Iterator[Emulator]:
    """An emulator that takes 20 submits per second (a burst of 5) and answers in 0.1–0.3 s."""
    with Emulator(rate_limit=20, burst=5, latency=(0.1, 0.3)) as emu:
        yield emu


@pytest.fixture
def limited_client(limited: Emulator) -> Iterator[Client]:
    c = Client(TEST_TOKEN, base_url=limited.base_url, poll_interval=0.05)
    yield c
    c.close()


@pytest.fixture
def job_history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "history")
    yield h
    h.close()
