"""The comparison, the grid and the history view, as they show in a browser.

One notebook per front end (JupyterLab, Notebook 7, Voilà) holds all three (one kernel): two
generated images compared (side by side, then the before/after slider moved), a 2 x 2 grid
filling its cells, and the session history listing its records with thumbnails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import expect
from .notebook_page import NotebookPage
from .page_scripts import ALL_DECODED

pytestmark = pytest.mark.browser

CELLS = [
    "import nanobanana_widgets as nbw\n"
    "dusk = nbw.generate('a lighthouse at dusk, oil painting')\n"
    "dawn = nbw.generate('a lighthouse at dawn, oil painting')\n"
    "comparison = nbw.compare(dusk, dawn, labels=['dusk', 'dawn'])\n"
    "comparison",
    "g = nbw.grid(prompts=['a red kite', 'a blue kite'], aspect_ratios=['1:1', '16:9'])\n"
    "g",
    "history = nbw.default_history()\n"
    "history.flush()\n"
    "history",
]


# The right-hand inset of the top image's clip-path, in percent (what the slider drives).
_CLIP_RIGHT = """
() => {
  const top = document.querySelector('.nbw-cmp .nbw-cmp-top');
  const m = getComputedStyle(top).clipPath.match(/inset\\(\\s*0(?:px)?\\s+([\\d.]+)%/);
  return m ? Number(m[1]) : null;
}
"""


@pytest.mark.parametrize("frontend", ["lab", "notebook", "voila"])
def test_comparison_slider_grid_cells_and_history_thumbnails(
    nb: NotebookPage, frontend: str, browser_emulator: Any, screenshot: Callable[..., Path]
) -> None:
    nb.open_and_run(CELLS)
    page = nb.page

    # Comparison: two cards with real images, and the prompt diff marks the changed word.
    cmp = nb.widget(".nbw-cmp")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-card img", 2])
    nb.assert_widgets_rendered()
    assert "dusk" in " ".join(cmp.locator(".nbw-cmp-diff del").all_inner_texts())
    assert "dawn" in " ".join(cmp.locator(".nbw-cmp-diff ins").all_inner_texts())
    screenshot(cmp, f"compare-{frontend}")

    # The slider view: the first image is clipped where the slider says, and follows it.
    cmp.locator(".widget-toggle-button", has_text="Slider").click()
    stage = cmp.locator(".nbw-cmp-stage")
    stage.wait_for()
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-stage img", 2])
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === 50")
    track = cmp.locator(".widget-slider .noUi-target, .widget-slider .slider").first
    box = track.bounding_box()
    assert box is not None
    track.click(position={"x": box["width"] * 0.2, "y": box["height"] / 2})
    readout = cmp.locator(".widget-slider .widget-readout").first
    expect(readout).not_to_have_text("50")
    shown = int(readout.inner_text().strip())
    assert shown < 50
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === {100 - shown}")
    screenshot(cmp, f"compare-slider-{frontend}")

    # Grid: every one of the 2 x 2 cells ends up holding a real image.
    matrix = nb.widget(".nbw-matrix")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-matrix .nbw-matrix-cell img", 4])
    assert matrix.locator(".nbw-matrix-cell").count() == 4
    assert matrix.locator(".nbw-matrix-failed").count() == 0
    heads = " ".join(matrix.locator(".nbw-matrix-rowhead").all_inner_texts())
    assert "a red kite" in heads and "a blue kite" in heads
    screenshot(matrix, f"grid-{frontend}")

    # History: a table of this session's requests, with thumbnails.
    table = nb.widget("table.nbw-history")
    page.wait_for_function(ALL_DECODED, arg=["table.nbw-history img", 2])
    text = table.inner_text()
    assert "a lighthouse at dusk, oil painting" in text
    assert "a lighthouse at dawn, oil painting" in text
    screenshot(table, f"history-{frontend}")
