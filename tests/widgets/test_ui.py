"""The widgets' shared rule (widgets/_ui.py): views never show an older state than the
kernel holds.

* ``ViewSync``: when a view is rendered, every widget in it (children, layouts, styles) has
  its current state sent again, so an update the page dropped while loading is repaired.
* The ``Painter`` never puts back an older state, from any number of threads; a grid cell
  that has finished keeps its outcome when a late progress report arrives.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as w
import pytest

from nanobanana_widgets.client import Client, Progress
from nanobanana_widgets.widgets._ui import Painter, ViewSync, widget_tree
from nanobanana_widgets.widgets.compare import compare
from nanobanana_widgets.widgets.grid import grid
from support import png


def _record_sends(root: w.Widget, monkeypatch: pytest.MonkeyPatch) -> list[tuple[w.Widget, Any]]:
    """Swap each widget's comm ``send`` for a recorder (asserting on messages only)."""
    sent: list[tuple[w.Widget, Any]] = []
    for widget in widget_tree(root):
        def send(data: Any = None, buffers: Any = None, *, _w: w.Widget = widget) -> None:
            sent.append((_w, data))
        monkeypatch.setattr(widget.comm, "send", send)
    return sent


def _render_message(sync: ViewSync) -> None:
    """What the front end sends when the view is rendered (through ipywidgets' dispatch)."""
    sync._handle_msg({"content": {"data": {"method": "custom",
                                           "content": {"event": "rendered"}}},
                      "buffers": []})


def _resent_states(view: w.Widget, monkeypatch: pytest.MonkeyPatch) -> dict[int, Any]:
    """Render ``view``'s ViewSync and return the state each widget sent again, by id."""
    sync = next(c for c in widget_tree(view) if isinstance(c, ViewSync))
    sent = _record_sends(view, monkeypatch)
    _render_message(sync)
    return {id(widget): data["state"] for widget, data in sent if data["method"] == "update"}


def test_widget_tree_reaches_children_layouts_and_styles() -> None:
    inner = w.HTML("x")
    button = w.Button(description="b")
    box = w.VBox([w.HBox([inner, button])])
    found = list(widget_tree(box))
    ids = {id(x) for x in found}
    for widget in (box, inner, button, inner.layout, button.style, box.children[0]):
        assert id(widget) in ids
    assert len(found) == len(ids)  # each once


def test_rendered_view_sends_every_widget_state_again(monkeypatch: pytest.MonkeyPatch,
                                                       client: Client) -> None:
    g = grid(["a lemon", "a pear"], aspect_ratios=["1:1", "16:9"], client=client, history=None)
    g.wait(30)
    sync = next(c for c in g.children if isinstance(c, ViewSync))
    updated = _resent_states(g, monkeypatch)
    for cell in g.cells:
        cell_widget = g.cell_widget(cell)
        assert updated[id(cell_widget)]["value"] == cell_widget.value
        assert "<img" in cell_widget.value
    assert id(g.cancel_button.layout) in updated  # layouts too (display: none once done)
    assert id(sync) not in updated


def test_a_resent_view_never_sends_back_what_the_person_sets_in_the_page(
        monkeypatch: pytest.MonkeyPatch, make_panel: Any, client: Client) -> None:
    # A prompt typed in the page reaches the kernel only when the box loses focus. A state
    # sent again in between must not carry the kernel's older prompt, or it would erase
    # the typing (the panel then said "Type a prompt first" to a person who had).
    panel = make_panel(client)
    updated = _resent_states(panel, monkeypatch)
    prompt = updated[id(panel.prompt_box)]
    assert "value" not in prompt
    assert prompt["placeholder"] == panel.prompt_box.placeholder  # the rest is resent
    for control in widget_tree(panel):
        if control.has_trait("disabled") and id(control) in updated:
            assert not {"value", "index"} & set(updated[id(control)]), control
    # What only the kernel writes is resent whole: the status area's HTML, for one.
    html = [w_ for w_ in widget_tree(panel) if isinstance(w_, w.HTML) and id(w_) in updated]
    assert html and all("value" in updated[id(h)] for h in html)


def test_a_resent_comparison_keeps_the_divider_where_it_was_dragged(
        monkeypatch: pytest.MonkeyPatch, client: Client) -> None:
    view = compare(png((200, 0, 0)), png((0, 0, 200)))
    try:
        updated = _resent_states(view, monkeypatch)
        assert "value" not in updated[id(view.divider)]
        assert updated[id(view.divider)]["html"] == view.divider.html
        assert "value" not in updated[id(view.slider)]
    finally:
        view.close()


def test_other_messages_send_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    box = w.VBox([w.HTML("x")])
    sync = ViewSync(box)
    box.children = (*box.children, sync)
    sent = _record_sends(box, monkeypatch)
    for content in ({"event": "x"}, "rendered"):
        sync._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                          "buffers": []})
    assert sent == []


def test_finished_grid_cell_ignores_a_late_progress_report(client: Client) -> None:
    g = grid(["a lemon"], client=client, history=None)
    g.wait(30)
    cell = g.cells[0]
    final = g.cell_widget(cell).value
    assert "<img" in final
    task_id = g.results[cell].task_id  # type: ignore[union-attr]
    assert task_id is not None
    g.runner.on_progress(Progress(task_id=task_id, status="pending", stage="waiting", elapsed=0.0))
    assert g.cell_widget(cell).value == final


def test_painter_never_puts_back_an_older_state() -> None:
    painter = Painter()
    shown: list[str] = []
    assert painter.paint("cell", (1,), lambda: shown.append("queued"))
    assert painter.paint("cell", (3, 0), lambda: shown.append("waiting 0 s"))
    assert painter.paint("cell", (9,), lambda: shown.append("done"))
    assert not painter.paint("cell", (3, 4), lambda: shown.append("waiting 4 s"))
    assert painter.paint("cell", (9,), lambda: shown.append("done, thumbnail"))  # equal: repaint
    assert shown == ["queued", "waiting 0 s", "done", "done, thumbnail"]
    assert painter.version("cell") == (9,)
    painter.forget("cell")
    assert painter.paint("cell", (1,), lambda: shown.append("queued again"))

    # From many threads at once, the last state shown is the newest one painted.
    final: list[int] = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for step in range(200):
            painter.paint("race", (step, n), lambda s=step: final.append(s))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert final[-1] == 199
    assert final == sorted(final)

