"""The thread rule in each view (docs/architecture.md, rule 5): a state painted late by a slow
or late thread never covers a newer one.

This is the pattern of the grid race (a background thread wrote a cell's progress after its
outcome was shown), looked for wherever background threads change a view: a panel run's
row (the poller reports progress late), the panel's status area (messages from several
threads), the history strip (refreshed by runs finishing and by clicks) and a comparison's
pick (from any thread). Each test holds one thread between making its HTML and painting it
while another thread paints a newer state, then lets it go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from nanobanana_widgets.client import Client, Progress
from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.compare import compare
from nanobanana_widgets.widgets.compare import comparison as comparison_module
from nanobanana_widgets.widgets.panel import PromptPanel
from nanobanana_widgets.widgets.panel import status as status_module
from nanobanana_widgets.widgets.panel import strip as strip_module
from nanobanana_widgets.widgets.panel.run import PanelRun
from nanobanana_widgets.widgets.panel.runs import RunSpec

from .helpers import click_and_wait, html_of


class Hold:
    """Wraps a render function: the call for which ``when(args)`` is true waits, after
    making its HTML, until :meth:`release` (so its thread paints after the others)."""

    def __init__(self, render: Callable[..., str], when: Callable[..., bool]) -> None:
        self._render = render
        self._when = when
        self.entered = threading.Event()
        self._release = threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        markup = self._render(*args, **kwargs)
        if self._when(*args, **kwargs):
            self.entered.set()
            assert self._release.wait(10)
        return markup

    def release(self) -> None:
        self._release.set()


def _in_thread(target: Callable[..., object], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _progress(task_id: str) -> Progress:
    return Progress(task_id=task_id, status="pending", stage="waiting", elapsed=3.0)


def test_a_late_progress_report_never_takes_a_run_back(panel: PromptPanel) -> None:
    run = PanelRun(7, RunSpec("a kite"))
    try:
        run._advance("downloading")  # the task has finished; its images are on their way
        run._on_progress(_progress("t-7"))  # the poller's last report arrives late
        assert run.status == "downloading"
        assert "#7 downloading" in run.label.value
    finally:
        run.close()
    panel.prompt = "a lighthouse"
    done = click_and_wait(panel)
    assert done.status == "done" and done.task_id is not None
    final = done.label.value
    done._on_progress(_progress(done.task_id))
    assert done.status == "done" and done.label.value == final and "#1 done" in final


def test_older_status_messages_never_cover_newer_ones(
        panel: PromptPanel, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_thread: list[threading.Thread] = []
    hold = Hold(status_module.folded_messages_html,
                lambda folded: threading.current_thread() in slow_thread)
    monkeypatch.setattr(status_module, "folded_messages_html", hold)
    slow = threading.Thread(target=panel.notify, args=("older news",), daemon=True)
    slow_thread.append(slow)
    slow.start()
    assert hold.entered.wait(10)  # its HTML is made, not painted
    panel.notify("newer news", "success")
    hold.release()
    slow.join(10)
    shown = html_of(panel.status_area)
    assert "newer news" in shown and shown.index("newer news") < shown.index("older news")
    assert len(panel.status_area.children) == 3  # two rows and the folded part
    assert panel.messages == ["older news", "newer news"]
    assert panel.shown_messages == ["newer news", "older news"]


def test_a_strip_read_painted_late_never_covers_a_later_one(
        client: Client, history: History, make_panel: Callable[..., PromptPanel],
        monkeypatch: pytest.MonkeyPatch) -> None:
    history.add(ImageRequest("generate", "the first record"), status="failed")
    panel = make_panel(client, history=history)
    strip = panel.history_strip
    assert strip is not None and len(strip.rows) == 1
    slow_thread: list[threading.Thread] = []
    hold = Hold(strip_module.strip_row_html,
                lambda *a, **k: threading.current_thread() in slow_thread)
    monkeypatch.setattr(strip_module, "strip_row_html", hold)
    slow = threading.Thread(target=strip.refresh, daemon=True)  # a run's worker, say
    slow_thread.append(slow)
    slow.start()
    assert hold.entered.wait(10)  # it read one record and has not painted it yet
    history.add(ImageRequest("generate", "the second record"), status="failed")
    strip.refresh_button.click()  # reads both and shows them
    hold.release()
    slow.join(10)
    assert [r.prompt for r in strip.records] == ["the second record", "the first record"]
    assert "the second record" in strip.rows[0].children[0].value
    assert "2 records" in strip.title.value


def test_a_pick_painted_late_never_covers_a_later_pick(
        client: Client, history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    c = compare(client.generate("left"), client.generate("right"), history=history)
    hold = Hold(comparison_module.pick_status_html,
                lambda text, css: text.startswith("A picked"))
    monkeypatch.setattr(comparison_module, "pick_status_html", hold)
    slow = _in_thread(c.pick, "A")
    assert hold.entered.wait(10)  # A's pick is recorded, its status not painted yet
    c.pick("B")
    hold.release()
    slow.join(10)
    assert c.picked == "B"
    assert "B picked" in c.status.value and "A picked" not in c.status.value
    assert c.buttons[1].button_style == "success" and c.buttons[0].button_style == ""
