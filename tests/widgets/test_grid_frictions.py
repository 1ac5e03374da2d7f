"""What a new user trips over in the grid (issue 13): a failed cell can be retried, a
waiting cell keeps the room of its images, the status line and the cells share one clock,
and a grid cancelled before it started says that nothing was sent."""

from __future__ import annotations

import re
from collections.abc import Callable

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.render.grid import cell_waiting_html
from nanobanana_widgets.service.errors import CancelledError, ContentRefusedError
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid import Cell, Grid, grid


def test_a_failed_cell_is_retried_as_a_new_attempt_of_the_same_cell(
        client: Client, history: History, emulator: Emulator) -> None:
    emulator.inject("task_forbidden")  # one cell is refused by the provider
    g = grid(["a red kite", "a blue kite"], client=client, history=history)
    g.wait(30)
    (failed,) = [c for c, o in g.results.items() if isinstance(o, ContentRefusedError)]
    button = g.retry_button(failed)
    assert button is not None and button.description == "Retry"
    assert any(button in getattr(child, "children", ()) for child in g.matrix.children)
    sent = emulator.submissions
    button.click()
    g.wait(30)
    assert isinstance(g.results[failed], Result) and g.results[failed].images
    assert emulator.submissions == sent + 1  # only the failed cell went again
    assert g.retry_button(failed) is None  # its cell shows the image, no button
    assert g.cell_widget(failed) in g.matrix.children
    tag = next(s.tag for s in g.runner.slots if s.cell == failed)
    attempts = [r for r in history.grid(g.id) if r.grid_cell == tag]
    assert [r.status for r in attempts] == ["failed", "succeeded"]  # two attempts, one cell
    reopened = Grid.open(g.id, history=history)
    assert isinstance(reopened.results[failed], Result)  # the latest attempt
    assert g.retry() == []  # nothing failed any more
    assert g.state == "done"


def test_grid_retry_resends_all_failed_cells_but_never_a_sent_one(
        slow: Emulator, slow_client: Client, history: History,
        wait_until: Callable[..., None]) -> None:
    g = grid(["a", "b"], client=slow_client, history=history)
    wait_until(lambda: g.runner.sent == 2, "both cells to be sent")
    g.cancel()
    g.wait(10)
    assert all(isinstance(o, CancelledError) and o.task_id for o in g.results.values())
    assert g.retry() == []  # sent: they may still finish and be billed
    text = g.status_line.value
    assert "2 failed cells were sent and may still finish" in text
    assert "grid.history.resume()" in text
    assert g.retry_button(g.cells[0]) is None
    assert slow.submissions == 2


def test_a_grid_cancelled_before_it_started_says_nothing_was_sent(
        client: Client, history: History, emulator: Emulator) -> None:
    g = grid(["a", "b", "c"], aspect_ratios=["1:1", "16:9"], client=client,
             history=history, max_calls=2)
    assert g.state == "awaiting confirmation"
    g.cancel()
    text = g.status_line.value
    assert "Cancelled before anything was sent; nothing was billed." in text
    assert "may still run" not in text and "billed;" not in text
    assert emulator.submissions == 0


def test_a_waiting_cell_keeps_the_room_of_its_image() -> None:
    wide = cell_waiting_html("waiting 2 s", aspect_ratio="16:9", images=1, side=256)
    assert "width:100%;max-width:256px;aspect-ratio:256 / 144" in wide
    tall = cell_waiting_html("queued", aspect_ratio="9:16", images=2, side=160)
    assert tall.count("aspect-ratio:90 / 160") == 2
    assert "waiting 2 s" in wide  # the text is the caption, where the finished one's is


def test_the_status_line_and_the_waiting_cells_share_one_clock(
        slow: Emulator, slow_client: Client, history: History,
        wait_until: Callable[..., None]) -> None:
    g = grid(["a", "b"], aspect_ratios=["16:9"], client=slow_client, history=history)
    try:
        wait_until(lambda: all(re.search(r">waiting \d", g.cell_widget(c).value)
                               for c in g.cells), "the cells to wait")
        assert "aspect-ratio:256 / 144" in g.cell_widget(g.cells[0]).value
        g._clock.stop()
        g._tick()
        header = re.search(r"· (\d+(?:\.\d)?) s", g.status_line.value)
        cells = {re.search(r"waiting (\d+(?:\.\d)?) s", g.cell_widget(c).value).group(1)
                 for c in g.cells}  # type: ignore[union-attr]
        assert header is not None and cells == {header.group(1)}
    finally:
        g.cancel()
        slow.finish_all()


def test_retry_is_refused_before_confirmation(client: Client, history: History) -> None:
    g = grid(["a", "b", "c"], client=client, history=history, max_calls=1)
    try:
        g.retry()
    except Exception as exc:
        assert "confirm it first" in str(exc)
    else:
        raise AssertionError("retry before confirmation did not refuse")
    assert isinstance(g.cells[0], Cell)


def test_a_reopened_grid_retries_its_failed_cell(client: Client, history: History,
                                                emulator: Emulator) -> None:
    from nanobanana_widgets import session

    emulator.inject("task_forbidden")
    g = grid(["only"], client=client, history=history)
    g.wait(30)
    reopened = Grid.open(g.id, history=history)
    (cell,) = reopened.cells
    button = reopened.retry_button(cell)
    assert button is not None
    session.set_default_client(client)
    try:
        button.click()
        reopened.wait(30)
    finally:
        session.set_default_client(None)
    assert isinstance(reopened.results[cell], Result) and reopened.state == "done"
    assert [r.status for r in history.grid(g.id)] == ["failed", "succeeded"]
