"""Shared fixtures: a running emulator and a client pointed at it over a real socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from support import TEST_TOKEN, png, wait_until

if TYPE_CHECKING:
    from nanobanana_widgets.store import History
    from nanobanana_widgets.widgets.panel import PromptPanel

__all__ = ["TEST_TOKEN"]


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's real token, base URL or working directory."""
    monkeypatch.delenv("ACEDATACLOUD_API_TOKEN", raising=False)
    monkeypatch.delenv("ACEDATACLOUD_API_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _fresh_defaults() -> Iterator[None]:
    """Each test starts without a default client or default history from an earlier one."""
    from nanobanana_widgets import session

    session.set_default_history(None)
    yield
    session.set_default_history(None)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh emulator with no latency on a free loopback port."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator):  # type: ignore[no-untyped-def]
    """A client pointed at the emulator, polling fast."""
    from nanobanana_widgets.client import Client

    c = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05)
    yield c
    c.close()


@pytest.fixture
def history(client: Client, tmp_path: Path) -> Iterator[History]:
    """A history in the test's folder, recording ``client``'s requests."""
    from nanobanana_widgets.store import History

    h = History(tmp_path / "history", client=client)
    yield h
    h.close()


@pytest.fixture(name="png")
def png_fixture() -> Callable[..., bytes]:
    """``png(color="teal", size=(40, 30)) -> bytes``: a small real PNG."""
    return png


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., None]:
    """``wait_until(condition, what, timeout=10.0)``: wait for what background threads do."""
    return wait_until


@pytest.fixture
def make_panel(tmp_path: Path) -> Iterator[Callable[..., PromptPanel]]:
    """Build panels that save into the test's folder; all are closed after the test."""
    from nanobanana_widgets.widgets.panel import PromptPanel

    panels: list[PromptPanel] = []

    def make(client: Client | None = None, **kwargs: Any) -> PromptPanel:
        kwargs.setdefault("save_dir", tmp_path / "saved")
        panel = PromptPanel(client, **kwargs)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()
