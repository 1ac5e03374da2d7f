"""grid(): a prompt × parameter matrix run concurrently against the emulator (latency,
injected failures), the budget confirmation, history tags, reopening without network,
replay without new submissions, and escaping."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable, Iterator

import ipywidgets as w
import pytest
from PIL import Image

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import CancelledError, NanoBananaError, ServerError
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid import Cell, Grid, grid, open_grid
from nanobanana_widgets.widgets.grid.plan import cell_tag

from .helpers import HOSTILE, html_of

PROMPTS = ["a lemon on a table", "a pear on a table"]
MODELS = ["nano-banana", "nano-banana-pro"]
RATIOS = ["1:1", "16:9"]
IMG_SRC = re.compile(r'<img[^>]*\bsrc="(data:image/jpeg;base64,[^"]+)"')


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Tasks take 0.2 s here, so cells are seen waiting before they fill in."""
    with Emulator(latency=0.2) as e:
        yield e


def thumbs(g: Grid, cell: Cell) -> list[Image.Image]:
    out = []
    for uri in IMG_SRC.findall(g.cell_widget(cell).value):
        img = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        img.load()
        out.append(img)
    return out


def run_2x2x2(client: Client, history: History, **kwargs: object) -> Grid:
    return grid(PROMPTS, models=MODELS, aspect_ratios=RATIOS, client=client, history=history,
                **kwargs)  # type: ignore[arg-type]


# --- the matrix --------------------------------------------------------------------------


def test_grid_fills_every_cell_and_shows_the_failed_one(
        client: Client, history: History, emulator: Emulator) -> None:
    emulator.inject("task_error")  # one accepted task fails; the others must still complete
    g = run_2x2x2(client, history)
    assert isinstance(g, w.VBox) and g.state in ("running", "done")
    assert "2 prompts × 4 columns (2 models × 2 aspect ratios) = 8 requests; makes 8 paid " \
           "generations." in g.plan_line.value
    results = g.wait(timeout=30)
    assert g.done() and g.state == "done"
    assert emulator.submissions == 8  # one submit per cell, none resent
    assert len(results) == 8 and list(results) == g.cells
    failed = {c: r for c, r in results.items() if not isinstance(r, Result)}
    assert len(failed) == 1
    (bad_cell, error), = failed.items()
    assert isinstance(error, ServerError) and error.trace_id
    bad_html = g.cell_widget(bad_cell).value
    assert "⚠ ServerError</b><br>The service had an internal error.<div" in bad_html
    title = re.search(r'title="([^"]*)"', bad_html)
    assert title and "The service said: Internal server error." in title.group(1)  # tooltip
    assert "code api_error" in bad_html
    assert f"trace id {error.trace_id}" in bad_html and not IMG_SRC.search(bad_html)
    for cell, result in results.items():
        if cell == bad_cell:
            continue
        assert isinstance(result, Result) and result.status == "succeeded"
        assert (result.request.prompt, result.request.model, result.request.aspect_ratio) == (
            cell.prompt, cell.model, cell.aspect_ratio)
        images = thumbs(g, cell)
        assert len(images) == 1 and max(images[0].size) <= 256
        if cell.aspect_ratio == "16:9":
            assert images[0].width > images[0].height
    assert "Done: 8 of 8 cells done: 7 succeeded, 1 failed" in g.status_line.value
    assert g.cancel_button.layout.display == "none"
    # labelled: prompts as rows, the other axes as columns
    head = html_of(g.matrix)
    for label in ("nano-banana · 1:1", "nano-banana · 16:9", "nano-banana-pro · 1:1",
                  "nano-banana-pro · 16:9", *PROMPTS):
        assert label in head
    # every task is tagged with the grid id and its cell
    tagged = {r.grid_cell: r for r in history.grid(g.id)}
    assert sorted(tagged) == sorted(cell_tag(r, c, 0) for r in range(2) for c in range(4))
    assert tagged["r2c3#1"].prompt == PROMPTS[1] and tagged["r2c3#1"].model == MODELS[1]
    assert tagged["r2c3#1"].aspect_ratio == "1:1"


def test_grid_returns_at_once_and_cells_wait_until_results_arrive(
        client: Client, history: History, emulator: Emulator,
        wait_until: Callable[..., None]) -> None:
    emulator.set_latency(float("inf"))  # nothing finishes until finish_all()
    g = grid(["one", "two"], client=client, history=history)
    assert not g.done() and g.state == "running"
    wait_until(lambda: emulator.submissions == 2)
    wait_until(lambda: all("waiting" in g.cell_widget(c).value for c in g.cells))
    assert "nbw-spin" in g.cell_widget(g.cells[0]).value
    assert g.results == {} and "Running: 0 of 2" in g.status_line.value
    assert g.cancel_button.layout.display == "flex"
    with pytest.raises(NanoBananaError, match="still running"):
        g.wait(timeout=0.1)
    emulator.finish_all()
    results = g.wait(timeout=20)
    assert all(isinstance(r, Result) for r in results.values())
    assert all(len(thumbs(g, c)) == 1 for c in g.cells)


def test_cancel_stops_waiting_and_says_tasks_may_still_be_billed(
        client: Client, history: History, emulator: Emulator,
        wait_until: Callable[..., None]) -> None:
    emulator.set_latency(float("inf"))
    g = grid(["one", "two", "three"], client=client, history=history)
    wait_until(lambda: emulator.submissions == 3)
    wait_until(lambda: all("waiting" in g.cell_widget(c).value for c in g.cells))
    g.cancel_button.click()
    results = g.wait(timeout=10)
    assert g.state == "cancelled" and emulator.submissions == 3
    assert all(isinstance(r, CancelledError) for r in results.values())
    assert "billed" in g.cell_widget(g.cells[0]).value
    assert "Cancelled:" in g.status_line.value and "history.resume()" in g.status_line.value


def test_repeats_sit_side_by_side_and_count_multiplies_the_cost(
        client: Client, history: History, emulator: Emulator) -> None:
    g = grid(["a kite"], models="nano-banana-2", resolutions=["1K", "2K"], repeats=2, count=2,
             client=client, history=history)
    assert "1 prompt × 2 columns (2 resolutions) × 2 repeats = 4 requests; makes 8 paid " \
           "generations (2 images each)." in g.plan_line.value
    g.wait(timeout=30)
    assert emulator.submissions == 4
    assert g.cells == [Cell("a kite", "nano-banana-2", None, "1K", 0),
                       Cell("a kite", "nano-banana-2", None, "1K", 1),
                       Cell("a kite", "nano-banana-2", None, "2K", 0),
                       Cell("a kite", "nano-banana-2", None, "2K", 1)]
    heads = [c for c in g.matrix.children if "nbw-matrix-head" in getattr(c, "value", "")]
    assert [h.layout.grid_column for h in heads] == ["span 2", "span 2"]
    assert "#1" in html_of(g.matrix) and "#2" in html_of(g.matrix)
    assert g.matrix.layout.grid_template_columns == (
        "minmax(60px, 0.6fr) repeat(4, minmax(80px, 1fr))")
    for cell in g.cells:
        images = thumbs(g, cell)
        assert len(images) == 2 and all(max(i.size) <= 160 for i in images)
    assert {r.grid_cell for r in history.grid(g.id)} == {"r1c1#1", "r1c1#2", "r1c2#1", "r1c2#2"}


def test_an_edit_grid_sends_the_same_inputs_to_every_cell(
        client: Client, history: History, emulator: Emulator, png: Callable[..., bytes]) -> None:
    g = grid(["make it night", "make it dawn"], action="edit", images=png((0, 200, 0)),
             client=client, history=history)
    results = g.wait(timeout=30)
    assert emulator.submissions == 2
    assert all(isinstance(r, Result) and r.request.action == "edit" for r in results.values())
    assert all(len(rec.inputs) == 1 for rec in history.grid(g.id))
    assert len({rec.inputs[0].sha256 for rec in history.grid(g.id)}) == 1


def test_a_refused_submit_fails_its_cell_and_is_still_tagged(
        client: Client, history: History, emulator: Emulator) -> None:
    emulator.inject("server_error")  # a 500 on a submit is never resent (it may be billed)
    g = grid(["alpha", "beta", "gamma"], client=client, history=history)
    results = g.wait(timeout=30)
    assert emulator.submissions == 3
    errors = [r for r in results.values() if isinstance(r, NanoBananaError)]
    assert len(errors) == 1 and isinstance(errors[0], ServerError)
    assert len(history.grid(g.id)) == 3  # the failed submit's record is in the grid too
    assert [r.status for r in history.grid(g.id)].count("failed") == 1


def test_above_max_calls_nothing_is_sent_until_confirmed(
        client: Client, history: History, emulator: Emulator) -> None:
    g = grid(["one", "two"], repeats=9, client=client, history=history)  # 18 > 16
    assert g.state == "awaiting confirmation"
    assert "18 paid generations, more than max_calls=16" in g.budget_line.value
    assert "Nothing has been sent" in g.budget_line.value
    assert g.budget_row.layout.display == "flex"
    assert g.confirm_button.description == "Run 18 paid generations"
    assert "Waiting for confirmation" in g.status_line.value
    with pytest.raises(NanoBananaError, match=r"grid.confirm\(\)"):
        g.wait(timeout=1)
    assert emulator.submissions == 0 and len(history) == 0
    g.confirm_button.click()
    g.wait(timeout=30)
    assert emulator.submissions == 18 and len(history.grid(g.id)) == 18
    assert g.budget_row.layout.display == "none"
    g.confirm()  # once started, confirming again sends nothing
    assert emulator.submissions == 18


def test_budget_counts_images_and_can_be_confirmed_up_front(
        client: Client, history: History, emulator: Emulator) -> None:
    within = grid(["a", "b", "c", "d"], count=4, client=client, history=history)  # 16 images: ok
    assert within.state in ("running", "done")
    within.wait(timeout=30)
    assert emulator.submissions == 4
    above = grid(["a", "b", "c", "d", "e"], count=4, client=client, history=history)  # 20 images
    assert above.state == "awaiting confirmation" and emulator.submissions == 4
    above.cancel()
    assert above.state == "cancelled" and above.done() and emulator.submissions == 4
    assert above.wait(timeout=1) == {}
    grid(["x", "y"], max_calls=1, confirm=True, client=client, history=history).wait(timeout=30)
    assert emulator.submissions == 6
    zero = grid(["z"], max_calls=0, client=client, history=history)
    assert zero.state == "awaiting confirmation"
    zero.confirm().wait(timeout=30)
    assert emulator.submissions == 7


def test_grid_reopens_from_a_fresh_history_without_network(
        client: Client, history: History, emulator: Emulator) -> None:
    emulator.inject("task_forbidden")
    g = run_2x2x2(client, history)
    first = g.wait(timeout=30)
    assert history.flush(timeout=20)
    emulator.stop()  # reopening must not need the service
    fresh = History(history.path)
    again = Grid.open(g.id, history=fresh)
    assert again.state == "reopened" and again.done() and again.id == g.id
    assert again.plan.prompts == g.plan.prompts and again.plan.columns == g.plan.columns
    assert again.cells == g.cells
    reopened = again.results
    assert list(reopened) == list(first)
    for cell, outcome in first.items():
        other = reopened[cell]
        assert type(other) is type(outcome)
        if isinstance(outcome, Result):
            assert isinstance(other, Result) and other.task_id == outcome.task_id
            assert len(thumbs(again, cell)) == 1
        else:
            assert "refused" in again.cell_widget(cell).value
            assert outcome.trace_id and outcome.trace_id in again.cell_widget(cell).value
    assert "reopened from the history" in again.title.value
    assert "From the history: 8 of 8 cells done: 7 succeeded, 1 failed" in \
        again.status_line.value
    assert again.cancel_button.layout.display == "none"
    assert open_grid(g.id, fresh).cells == g.cells
    with pytest.raises(KeyError, match="No grid 'g-nope'"):
        Grid.open("g-nope", history=fresh)
    fresh.close()


def test_rerunning_a_grid_with_replay_on_submits_nothing(
        client: Client, history: History, emulator: Emulator) -> None:
    first = grid(PROMPTS, models=MODELS, client=client, history=history)
    done = first.wait(timeout=30)
    assert emulator.submissions == 4 and history.flush(timeout=20)
    history.replay = True
    again = grid(PROMPTS, models=MODELS, client=client, history=history)
    assert "Replay mode is on" in again.plan_line.value
    results = again.wait(timeout=30)
    assert emulator.submissions == 4  # the emulator's counter proves nothing was sent
    assert again.id == first.id  # same grid, same id: Grid.open(id) keeps working
    assert {c: r.task_id for c, r in results.items() if isinstance(r, Result)} == \
        {c: r.task_id for c, r in done.items() if isinstance(r, Result)}
    assert "4 replayed from the history" in again.status_line.value
    assert all("replayed" in again.cell_widget(c).value for c in again.cells)
    assert len(history) == 4 and {r.grid_cell for r in history.grid(first.id)} == {
        "r1c1#1", "r1c2#1", "r2c1#1", "r2c2#1"}
    history.replay = False
    grid(PROMPTS, models=MODELS, client=client, history=history).wait(timeout=30)
    assert emulator.submissions == 8


def test_hostile_prompts_are_escaped_in_the_live_and_reopened_matrix(
        client: Client, history: History, emulator: Emulator) -> None:
    g = grid(HOSTILE, client=client, history=history, grid_id="hostile <b>grid</b>")
    g.wait(timeout=30)
    history.flush(timeout=20)
    for widget in (g, Grid.open("hostile <b>grid</b>", history=History(history.path))):
        text = html_of(widget)
        assert "<script>" not in text and "<img src=x" not in text and "<b>grid" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert "&lt;img src=x onerror=alert(1)&gt;" in text
        assert "hostile &lt;b&gt;grid&lt;/b&gt;" in text


def test_widget_state_holds_only_small_jpeg_thumbnails(
        client: Client, history: History, emulator: Emulator) -> None:
    g = grid(["big one", "big two"], models="nano-banana-pro", resolutions="2K",
             client=client, history=history)
    g.wait(timeout=30)
    text = html_of(g)
    uris = re.findall(r'src="(data:[^"]+)"', text)
    assert len(uris) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in uris)
    assert len(text) < 200_000
    assert repr(g).startswith(f"<Grid {g.id}: 2 cells, 2 paid generations, done")

