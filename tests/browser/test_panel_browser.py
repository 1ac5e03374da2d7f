"""The PromptPanel as a person uses it in JupyterLab: type, Ctrl+Enter, see the image.

Checks what pure-Python tests cannot: the anywidget's Ctrl+Enter reaches Python (and does
not also run the cell), the layout has no horizontal scrolling at a ~900 px notebook width,
the text stays readable in the light and dark themes, and the saved notebook holds only
small thumbnails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .notebook_page import NotebookPage
from .page_scripts import CONTRAST, set_theme

pytestmark = pytest.mark.browser

CELLS = [
    "from nanobanana_widgets import PromptPanel\n"
    "panel = PromptPanel()\n"
    "panel",
]

RESULT_IMG = ".nbw-results .nbw-result-card img"

# How far any element of the panel sticks out past the panel's right edge (px), and whether
# the notebook itself scrolls sideways.
_OVERFLOW = """
() => {
  const panel = document.querySelector('.nbw-panel');
  const box = panel.getBoundingClientRect();
  let worst = 0;
  for (const el of panel.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0) worst = Math.max(worst, Math.round(r.right - box.right));
  }
  const scroller = panel.closest('.jp-WindowedPanel-outer, .jp-Notebook') || document.body;
  return {worst, sideways: scroller.scrollWidth - scroller.clientWidth};
}
"""


def _run_first_cell(nb: NotebookPage) -> None:
    nb.page.locator(".jp-Cell .jp-InputArea-editor").first.click()
    nb.page.keyboard.press("Shift+Enter")


def _save(nb: NotebookPage) -> dict[str, Any]:
    assert nb.path is not None
    before = nb.path.stat().st_mtime_ns
    nb.page.locator(".jp-Notebook").first.click(position={"x": 5, "y": 5})
    nb.page.keyboard.press("Control+s")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if nb.path.stat().st_mtime_ns != before:
            try:
                saved: dict[str, Any] = json.loads(nb.path.read_text())
            except json.JSONDecodeError:  # caught half-written
                saved = {}
            if "application/vnd.jupyter.widget-state+json" in saved.get("metadata", {}).get(
                    "widgets", {}):
                return saved
        nb.page.wait_for_timeout(100)
    raise AssertionError("the notebook was not saved with its widget state")


@pytest.mark.parametrize("frontend", ["lab"])
def test_type_ctrl_enter_and_see_the_image(
    nb: NotebookPage, frontend: str, page: Any, screenshot: Callable[..., Path]
) -> None:
    page.set_viewport_size({"width": 1200, "height": 1000})  # the cell output is ~770 px
    nb.write(CELLS)
    nb.open()
    _run_first_cell(nb)
    prompt = nb.widget(".nbw-panel .nbw-prompt textarea", timeout_ms=60_000)
    nb.wait_kernel_idle()
    nb.assert_widgets_rendered()
    counts_before = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()

    prompt.click()
    prompt.fill("a lighthouse at dusk <b>bold?</b>")
    prompt.press("Control+Enter")
    nb.widget(RESULT_IMG, timeout_ms=60_000)

    # The shortcut generated, and did not also run the cell again.
    assert page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts() == counts_before
    panel = page.locator(".nbw-panel").first
    panel.get_by_text("1 image ready").wait_for(timeout=30_000)
    assert "<b>bold?</b>" in panel.locator(".nbw-result-card").first.inner_text()
    assert panel.locator(".nbw-result-card b").count() == 0  # escaped, not rendered
    overflow = page.evaluate(_OVERFLOW)
    assert overflow["worst"] <= 1 and overflow["sideways"] <= 0, overflow
    assert page.evaluate(CONTRAST, ".nbw-panel .nbw-msg") >= 4.5
    screenshot(panel, "panel-light")

    # Iterate: the result becomes the input of an edit started with the real button.
    panel.get_by_role("button", name="Use as input").first.click()
    panel.locator(".nbw-input-card img").first.wait_for(timeout=30_000)
    prompt.fill("now at night")
    panel.locator("button.mod-primary").first.click()
    page.wait_for_function(
        "() => document.querySelectorAll('.nbw-results .nbw-result-card').length >= 2",
        timeout=60_000,
    )
    overflow = page.evaluate(_OVERFLOW)
    assert overflow["worst"] <= 1 and overflow["sideways"] <= 0, overflow

    page.set_viewport_size({"width": 1200, "height": 1500})  # the whole panel in view
    set_theme(page, "JupyterLab Dark")
    assert page.evaluate(CONTRAST, ".nbw-panel .nbw-msg") >= 4.5
    assert page.evaluate(CONTRAST, ".nbw-panel .nbw-result-card .widget-html-content") >= 4.5
    screenshot(panel, "panel-dark")
    set_theme(page, "JupyterLab Light")

    saved = _save(nb)
    state = json.dumps(saved["metadata"]["widgets"])
    assert "data:image/png" not in state
    assert len(state) <= 2 * 60_000 + 150_000, len(state)  # two images plus the controls
