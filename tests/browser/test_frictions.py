"""Issue 13 as a person sees it: the panel's mode and action, progress, messages, cards,
drops and pastes, and the grid's cells, in JupyterLab (light and dark) and Voilà.

Each test opens its own notebook; the kernels talk to the session's emulator.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import EMULATOR_LATENCY, expect
from .notebook_page import NotebookPage
from .page_scripts import ELEMENT_CONTRAST, set_theme

pytestmark = pytest.mark.browser

PANEL = ".nbw-panel"
PANEL_CELLS = ["from nanobanana_widgets import PromptPanel\n"
               "panel = PromptPanel(prompt='a lighthouse at dusk')\npanel"]

# A synthetic drop or paste of one PNG (base64) on an element.
_DROP = """
([selector, b64, name, kind]) => {
  const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, {type: 'image/png'}));
  const target = document.querySelector(selector);
  if (kind === 'paste') {
    target.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true,
                                                      cancelable: true}));
  } else {
    target.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true,
                                                    cancelable: true}));
    target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true,
                                                cancelable: true}));
  }
}
"""


# Resolves once the panel's colours read the same twice, 150 ms apart.
_SETTLED = """
() => new Promise((resolve) => {
  const read = () => [...document.querySelectorAll('.nbw-panel, .nbw-panel *')].slice(0, 400)
    .map(e => { const c = getComputedStyle(e); return c.color + c.backgroundColor +
                c.opacity; }).join('|');
  let last = read();
  const check = () => { const now = read(); if (now === last) { resolve(true); }
                        else { last = now; setTimeout(check, 150); } };
  setTimeout(check, 150);
})
"""


def _theme(page: Any, name: str) -> None:
    set_theme(page, name)
    # ... and its colours have settled (no transition half-way): two reads agree.
    page.evaluate(_SETTLED)


def _png_b64(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _open_panel(nb: NotebookPage, cells: list[str] | None = None) -> Any:
    nb.open_and_run(cells or PANEL_CELLS)
    nb.widget(f"{PANEL} .nbw-prompt textarea")
    nb.assert_widgets_rendered()
    return nb.page.locator(PANEL).first


def _action(panel: Any) -> Any:
    return panel.locator("button.mod-primary").first


def _wait_results(nb: NotebookPage, n: int) -> None:
    nb.page.wait_for_function(
        "(n) => { const imgs = [...document.querySelectorAll('.nbw-result-card img')];"
        " return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=n, timeout=60_000)


@pytest.mark.parametrize("frontend", ["lab"])
def test_mode_action_progress_messages_and_cards_read_well_in_both_themes(
        nb: NotebookPage, frontend: str, emulator: Any,
        screenshot: Callable[..., Path]) -> None:
    page = nb.page
    page.set_viewport_size({"width": 1100, "height": 1300})
    panel = _open_panel(nb)
    # 4. The mode says what it is; the action is the only "Generate"; the active mode is
    # filled, in light and in dark.
    toggles = panel.locator(".nbw-mode .widget-toggle-button")
    expect(toggles).to_have_text(["Text to image", "Edit images"])
    words = panel.locator("button").evaluate_all("bs => bs.map(b => b.textContent.trim())")
    assert words.count("Generate") == 1, words
    for theme in ("JupyterLab Light", "JupyterLab Dark"):
        _theme(page, theme)
        active = toggles.nth(0).evaluate(ELEMENT_CONTRAST)
        idle = toggles.nth(1).evaluate(ELEMENT_CONTRAST)
        assert active["contrast"] >= 4.5, (theme, active)
        assert abs(active["bg"] - idle["bg"]) >= 0.1, (theme, active, idle)  # told apart
    _theme(page, "JupyterLab Light")
    toggles.nth(1).click()
    expect(_action(panel)).to_have_text("Apply edit")

    # 2. A refused click shows why; fixing it folds the message; each one can be dismissed.
    _action(panel).click()
    status = panel.locator(".nbw-status")
    expect(status.locator(".nbw-msg-row")).to_have_count(1)
    expect(status).to_contain_text("Edit needs at least one input image")
    toggles.nth(0).click()
    expect(status.locator(".nbw-msg-row")).to_have_count(0)
    expect(status.locator("details.nbw-earlier summary")).to_have_text("1 earlier message")

    # 3. A run in flight: a moving bar, and a clock the header shares with the row.
    emulator.set_latency(float("inf"))
    _action(panel).click()
    row = panel.locator(".nbw-run").first
    expect(row.locator(".nbw-bar-indeterminate")).to_have_count(1)
    expect(panel.locator(".nbw-activity")).to_contain_text("1 running")
    page.wait_for_function("() => /· [2-9]\\.\\d s/.test("
                           "document.querySelector('.nbw-activity').textContent)")
    screenshot(panel, f"issue13-progress-{frontend}")
    emulator.finish_all()
    _wait_results(nb, 1)
    expect(panel.locator(".nbw-activity")).to_have_count(0)  # nothing in flight
    expect(status.locator(".nbw-msg-row")).to_have_count(1)
    status.locator("button.nbw-dismiss").first.click()
    expect(status.locator(".nbw-msg-row")).to_have_count(0)

    # 7. The card's buttons sit on one row; its ids are folded and copy with one click.
    emulator.set_latency(EMULATOR_LATENCY)
    _action(panel).click()
    _wait_results(nb, 2)
    card = panel.locator(".nbw-result-card").first
    tops = card.locator(".nbw-card-buttons button").evaluate_all(
        "bs => bs.map(b => Math.round(b.getBoundingClientRect().top))")
    assert len(tops) == 4 and len(set(tops)) == 1, tops
    clipped = card.locator(".nbw-card-buttons button").evaluate_all(
        "bs => bs.filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.textContent)")
    assert clipped == [], clipped
    cards = panel.locator(".nbw-result-card").evaluate_all(
        "cs => cs.map(c => Math.round(c.getBoundingClientRect().top))")
    assert len(set(cards)) == 1, cards  # two cards side by side at this width
    assert "task" not in card.locator(".nbw-card-meta .nbw-hint").inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    card.locator("details.nbw-ids summary").click()
    copy = card.locator(".nbw-copy").first
    task_id = copy.get_attribute("data-nbw-copy")
    copy.click()
    expect(copy).to_have_text("copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == task_id
    screenshot(panel, f"issue13-panel-light-{frontend}")
    _theme(page, "JupyterLab Dark")
    screenshot(panel, f"issue13-panel-dark-{frontend}")
    _theme(page, "JupyterLab Light")


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_images_dropped_or_pasted_on_the_panel_become_inputs(
        nb: NotebookPage, frontend: str, emulator: Any,
        screenshot: Callable[..., Path]) -> None:
    page = nb.page
    panel = _open_panel(nb)
    sent_before = emulator.submissions
    page.evaluate(_DROP, [f"{PANEL} .nbw-results", _png_b64((220, 40, 40)), "red.png", "drop"])
    cards = panel.locator(".nbw-input-card")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("red.png")
    expect(_action(panel)).to_have_text("Apply edit")  # a dropped image is for editing
    page.evaluate(_DROP, [f"{PANEL} .nbw-prompt textarea", _png_b64((40, 40, 220)),
                          "image.png", "paste"])
    expect(cards).to_have_count(2)
    expect(panel.locator(".nbw-prompt textarea")).to_have_value("a lighthouse at dusk")
    page.evaluate(_DROP, [f"{PANEL} .nbw-inputs", _png_b64((40, 200, 40)), "green.png",
                          "paste"])
    expect(cards).to_have_count(3)
    expect(panel.locator(".nbw-inputs")).to_contain_text("3 input images")
    assert emulator.submissions == sent_before  # adding inputs sends nothing
    screenshot(panel, f"issue13-dropped-{frontend}")


GRID_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "g = nbw.grid(['a red kite', 'a blue kite'], aspect_ratios=['1:1', '16:9'])\n"
    "g",
    # The grid's hidden static copy is sent again once its cells are waiting, so the page
    # always holds waiting cells outside the live view too (they must not be counted).
    "import time\n"
    "while 'waiting ' not in g.static_html():\n"
    "    time.sleep(0.05)\n"
    "g.static.update()\n"
    "g.static.flush()",
]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_grid_cells_keep_their_size_while_waiting_and_a_failed_cell_retries(
        nb: NotebookPage, frontend: str, emulator: Any,
        screenshot: Callable[..., Path]) -> None:
    page = nb.page
    page.set_viewport_size({"width": 1100, "height": 1200})
    emulator.set_latency(float("inf"))
    emulator.inject("task_forbidden")
    nb.open_and_run(GRID_CELLS)
    matrix = nb.widget(".nbw-matrix")
    # Counted in the live view only: the page also holds the view's hidden static copy,
    # whose cells say "waiting" when the copy was last sent during the wait.
    expect(matrix.locator(".nbw-matrix-waiting").filter(has_text=re.compile(r"waiting \d"))
           ).to_have_count(4)
    heights = ("() => [...document.querySelectorAll('.nbw-matrix .nbw-matrix-cell')]"
               ".map(c => Math.round(c.getBoundingClientRect().height))")
    waiting = page.evaluate(heights)
    screenshot(matrix, f"issue13-grid-waiting-{frontend}")
    emulator.finish_all()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.nbw-matrix .nbw-matrix-cell img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length === 3", timeout=60_000)
    expect(matrix.locator(".nbw-matrix-failed")).to_have_count(1)
    done = page.evaluate(heights)
    moved = [i for i, h in enumerate(done) if abs(h - waiting[i]) > 1]
    # The cells that got their image kept their height; only the refused one changed
    # (its error and Retry take the image's room).
    assert len(moved) == 1, (waiting, done)
    screenshot(matrix, f"issue13-grid-done-{frontend}")
    sent = emulator.submissions
    emulator.set_latency(EMULATOR_LATENCY)
    matrix.get_by_role("button", name="Retry").click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.nbw-matrix .nbw-matrix-cell img')]"
        ".filter(i => i.complete && i.naturalWidth > 0).length === 4", timeout=60_000)
    expect(matrix.get_by_role("button", name="Retry")).to_have_count(0)
    expect(matrix).to_contain_text("4 succeeded, 0 failed")
    assert emulator.submissions == sent + 1
