"""Fixtures of the widget tests: a panel on the shared client, and an emulator whose tasks
wait until told to finish (to see runs in flight)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.widgets.panel import PromptPanel
from support import TEST_TOKEN

from .helpers import NEVER


@pytest.fixture
def panel(client: Client, make_panel: Callable[..., PromptPanel]) -> PromptPanel:
    """A panel on the shared client, recording into the default history."""
    return make_panel(client)


@pytest.fixture
def slow() -> Iterator[Emulator]:
    """An emulator whose tasks never finish until ``finish_all()``."""
    with Emulator(latency=NEVER) as emu:
        yield emu


@pytest.fixture
def slow_client(slow: Emulator) -> Iterator[Client]:
    """A client of the :func:`slow` emulator, polling fast."""
    c = Client(TEST_TOKEN, base_url=slow.base_url, poll_interval=0.05)
    yield c
    c.close()
