"""A view never shows an older state than the kernel holds, even when the page loads mid-run.

A page that loads widgets from a running kernel (Voilà; a reloaded JupyterLab tab) gets one
snapshot of every widget's state. An update that a background thread sends after that
snapshot is taken but before the page knows the widget is dropped by the page: a grid cell
could stay at "waiting 0 s" under a grid that says every cell is done (the flaky
``test_comparison_slider_grid_cells_and_history_thumbnails[voila]``). Here the kernel's
answer to the page's state request is held back until a grid has run from start to end, so
*every* update the grid sends falls in that window, on every run, not only under load.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import expect
from .notebook_page import NotebookPage
from .page_scripts import ALL_DECODED

pytestmark = pytest.mark.browser

# The test's hook on ipywidgets: the snapshot is computed first (the grid still awaits
# confirmation), then, before it is sent, the grid is confirmed and run to the end.
HOLD_SNAPSHOT = """
from ipywidgets.widgets.widget import Widget

_answer_states = Widget._handle_control_comm_msg.__func__

def _answer_after_the_grid_ran(cls, msg):
    comm = cls._control_comm
    send = comm.send
    def send_late(*args, **kwargs):
        comm.send = send
        g.confirm()
        g.wait(60)
        send(*args, **kwargs)
    comm.send = send_late
    _answer_states(cls, msg)

Widget._handle_control_comm_msg = classmethod(_answer_after_the_grid_ran)
"""

CELLS = [
    "import nanobanana_widgets as nbw\n"
    "g = nbw.grid(prompts=['a red kite', 'a blue kite'], aspect_ratios=['1:1', '16:9'],\n"
    "             max_calls=0)\n"
    "g",
    HOLD_SNAPSHOT,
]


@pytest.mark.parametrize("frontend", ["voila"])
def test_grid_updates_sent_while_the_page_loads_are_not_lost(
    nb: NotebookPage, frontend: str, browser_emulator: Any
) -> None:
    nb.open_and_run(CELLS)
    page = nb.page
    matrix = nb.widget(".nbw-matrix")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-matrix .nbw-matrix-cell img", 4])
    # The state sent again arrives as one message per widget: the status line's may come
    # a moment after the cells' images (each waits up to 30 s; a lost update never comes).
    expect(matrix.locator(".nbw-matrix-waiting")).to_have_count(0)
    expect(matrix).to_contain_text("Done: 4 of 4 cells done", use_inner_text=True)
    expect(matrix).not_to_contain_text("Waiting for confirmation", use_inner_text=True)
    expect(matrix).not_to_contain_text("nothing has been sent", use_inner_text=True)
