"""The whole stack without our package: plain ipywidgets render and call back into Python.

If this fails, the panel tests cannot pass either: the widget manager, the comms or the
kernel are broken in that front end, not our code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .harness import FRONTENDS
from .notebook_page import NotebookPage

pytestmark = pytest.mark.browser

CELLS = [
    "import ipywidgets as w\n"
    "label = w.Label('nothing yet')\n"
    "button = w.Button(description='Press me')\n"
    "clicks = []\n"
    "def on_click(_):\n"
    "    clicks.append(1)\n"
    "    label.value = f'pressed {len(clicks)} time(s) in Python'\n"
    "button.on_click(on_click)\n"
    "w.VBox([button, label])",
    "w.IntSlider(value=7, min=0, max=10, description='Level')",
]


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_button_and_slider_render_and_call_back(
    nb: NotebookPage, frontend: str, screenshot: Callable[..., Path]
) -> None:
    nb.open_and_run(CELLS)

    button = nb.widget("button.widget-button", timeout_ms=30_000)
    slider = nb.widget(".widget-slider", timeout_ms=30_000)
    nb.assert_widgets_rendered()
    # Real controls, not the kernel's text repr of them.
    assert button.inner_text().strip() == "Press me"
    assert "Level" in slider.inner_text()
    assert nb.page.locator(".widget-readout").first.inner_text().strip() == "7"
    assert "IntSlider(" not in nb.output_text()
    label = nb.page.locator(".widget-label", has_text="nothing yet")
    assert label.count() == 1

    button.click()
    nb.page.locator(".widget-label", has_text="pressed 1 time(s) in Python").wait_for()
    button.click()
    nb.page.locator(".widget-label", has_text="pressed 2 time(s) in Python").wait_for()

    screenshot(nb.page, f"stack-{frontend}")
