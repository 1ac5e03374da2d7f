"""More of the comparison, grid, history and panel history strip, as a person uses them.

* A pick in a comparison: the button shows it, and the history on disk (read afresh here,
  in the test process) marks the winner favourite with a note; a second pick moves both.
* A grid over its budget: a confirmation line and nothing sent until its button is
  clicked in the page; then the cells fill, and a cell the service refuses says so.
* Hostile prompts and labels in the comparison, the grid and the history table: text only.
* The panel's history strip: two runs, two rows with thumbnails, "Load" on the older one
  puts its prompt back into the prompt box.

Each test opens its own notebook (one kernel, its own folder: the kernel's working
directory, where the default history ``.nanobanana/`` lives).
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

# Every <img> matched by the selector (at least n of them) is decoded and drawn.


def read_history(nb: NotebookPage) -> list[Any]:
    """Every record of the notebook's default history, read now from its folder on disk."""
    from nanobanana_widgets.store import History

    folder = nb.folder / ".nanobanana"
    assert (folder / "history.sqlite").is_file(), f"the kernel wrote no history in {folder}"
    history = History(folder)
    try:
        return list(history)
    finally:
        history.close()


# --------------------------------------------------------------------------------------------
# 1. The comparison's pick buttons

PICK_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "dusk = nbw.generate('a lighthouse at dusk, oil painting')\n"
    "dawn = nbw.generate('a lighthouse at dawn, oil painting')\n"
    "nbw.compare(dusk, dawn)",
]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_a_pick_in_the_comparison_shows_and_is_recorded_in_the_history(
    nb: NotebookPage, frontend: str, emulator: Any, screenshot: Callable[..., Path]
) -> None:
    nb.open_and_run(PICK_CELLS)
    page = nb.page
    cmp = nb.widget(".nbw-cmp")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-card img", 2])
    nb.assert_widgets_rendered()
    cards = cmp.locator(".nbw-cmp-card")
    status = cmp.locator(".nbw-cmp-status")
    expect(status).to_contain_text("Pick the better image (recorded in the history)")

    bar = cmp.locator(".nbw-cmp-pickbar")
    bar.get_by_role("button", name="A is better").click()
    expect(bar.get_by_role("button").nth(0)).to_have_text("✓ A picked")
    expect(cards.nth(0)).to_have_class(_has_class("nbw-picked"))
    expect(cards.nth(1)).not_to_have_class(_has_class("nbw-picked"))
    expect(bar.get_by_role("button").nth(1)).to_have_text("B is better")
    expect(status).to_contain_text("A picked: recorded in the history")
    screenshot(cmp, f"compare-picked-{frontend}")

    by_prompt = {r.prompt: r for r in read_history(nb)}
    dusk = by_prompt["a lighthouse at dusk, oil painting"]
    dawn = by_prompt["a lighthouse at dawn, oil painting"]
    assert dusk.favourite and not dawn.favourite
    assert f"over #{dawn.id} (B)." in dusk.notes
    assert dusk.notes.startswith("Picked in comparison c-")
    assert dawn.notes == ""

    # Changing one's mind moves the pick: the first winner is back as it was.
    bar.get_by_role("button", name="B is better").click()
    expect(bar.get_by_role("button").nth(1)).to_have_text("✓ B picked")
    expect(bar.get_by_role("button").nth(0)).to_have_text("A is better")
    expect(status).to_contain_text(f"B picked: recorded in the history (record #{dawn.id}")
    by_prompt = {r.prompt: r for r in read_history(nb)}
    dusk, dawn = (by_prompt[f"a lighthouse at {w}, oil painting"] for w in ("dusk", "dawn"))
    assert dawn.favourite and not dusk.favourite
    assert f"over #{dusk.id} (A)." in dawn.notes
    assert dusk.notes == ""


def _has_class(name: str) -> Any:
    import re

    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


# --------------------------------------------------------------------------------------------
# 2. A grid over its budget, and a failed cell

GRID_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "g = nbw.grid(prompts=['a red kite', 'a blue kite'], aspect_ratios=['1:1', '16:9'],"
    " max_calls=2)\n"
    "g",
]


@pytest.mark.parametrize("frontend", ["lab", "notebook"])
def test_grid_over_budget_waits_for_the_click_then_fills_and_shows_a_failed_cell(
    nb: NotebookPage, frontend: str, emulator: Any, screenshot: Callable[..., Path]
) -> None:
    sent_before = emulator.submissions
    nb.open_and_run(GRID_CELLS)
    page = nb.page
    matrix = nb.widget(".nbw-matrix")
    nb.assert_widgets_rendered()
    budget = matrix.locator(".nbw-budget")
    expect(budget).to_contain_text("This grid would make 4 paid generations, more than "
                                   "max_calls=2. Nothing has been sent.")
    run = matrix.get_by_role("button", name="Run 4 paid generations")
    expect(run).to_be_visible()
    expect(matrix).to_contain_text("Waiting for confirmation; nothing has been sent.")
    assert matrix.locator(".nbw-matrix-cell").count() == 4
    assert matrix.locator(".nbw-matrix-cell img").count() == 0
    screenshot(matrix, f"grid-budget-{frontend}")
    # The kernel is idle and the grid is on screen: had it sent anything, it would be here.
    assert emulator.submissions == sent_before

    # One of the four tasks will be refused by the provider.
    emulator.inject("task_forbidden")
    run.click()
    expect(run).to_be_hidden()
    page.wait_for_function(ALL_DECODED, arg=[".nbw-matrix .nbw-matrix-cell img", 3])
    failed = matrix.locator(".nbw-matrix-failed")
    expect(failed).to_have_count(1)
    expect(matrix).to_contain_text("Done:")
    text = failed.inner_text()
    assert "ContentRefusedError" in text
    assert "refused" in text.lower()
    assert "code forbidden" in text and "trace id" in text
    assert "Traceback" not in text
    assert matrix.locator(".nbw-matrix-cell img").count() == 3
    assert emulator.submissions == sent_before + 4  # each cell sent once, none again
    screenshot(matrix, f"grid-failed-cell-{frontend}")


# --------------------------------------------------------------------------------------------
# 3. Hostile strings as prompts and labels

H_IMG = "<img src=x onerror=alert(1)>"
H_SCRIPT = "<script>alert(1)</script>"

HOSTILE_CELLS = [
    "import nanobanana_widgets as nbw\n"
    f"H_IMG, H_SCRIPT = {H_IMG!r}, {H_SCRIPT!r}\n"
    "a = nbw.generate(H_IMG + ' a cat')\n"
    "b = nbw.generate(H_SCRIPT + ' a cat')\n"
    "nbw.compare(a, b, labels=[H_IMG, H_SCRIPT])",
    "g = nbw.grid(prompts=[H_IMG, H_SCRIPT])\n"
    "g.wait(60)\n"
    "g",
    "h = nbw.default_history()\n"
    "h.flush()\n"
    "h.note(-1, H_IMG + H_SCRIPT)\n"
    "h",
]

# Elements the hostile strings would make if any of them reached the page as markup.
_INJECTED = """
() => [...document.querySelectorAll(
  'img[src="x"], [onerror], [onload], .jp-OutputArea-output script, .nbw-cmp script, '
  + '.nbw-matrix script, table.nbw-history script'
)].map(e => e.outerHTML)
"""


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_hostile_prompts_and_labels_render_as_text_in_comparison_grid_and_history(
    nb: NotebookPage, frontend: str, emulator: Any, screenshot: Callable[..., Path]
) -> None:
    nb.open_and_run(HOSTILE_CELLS)
    page = nb.page
    cmp = nb.widget(".nbw-cmp")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-card img", 2])
    matrix = nb.widget(".nbw-matrix")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-matrix .nbw-matrix-cell img", 2])
    table = nb.widget("table.nbw-history")
    nb.assert_widgets_rendered()

    # The very characters, as text: labels, prompts, buttons, row heads, table cells, notes.
    badges = cmp.locator(".nbw-cmp-badge").all_inner_texts()
    assert H_IMG in badges and H_SCRIPT in badges
    prompts = cmp.locator(".nbw-cmp-prompt").all_inner_texts()
    assert f"{H_IMG} a cat" in prompts and f"{H_SCRIPT} a cat" in prompts
    button = cmp.get_by_role("button", name=f"{H_IMG} is better")
    expect(button).to_be_visible()
    button.click()
    expect(cmp.locator(".nbw-cmp-status")).to_contain_text(f"{H_IMG} picked: recorded")
    heads = matrix.locator(".nbw-matrix-rowhead").all_inner_texts()
    assert [h.strip() for h in heads] == [H_IMG, H_SCRIPT]
    table_text = table.inner_text()
    assert f"{H_IMG} a cat" in table_text and f"{H_SCRIPT} a cat" in table_text
    assert H_IMG + H_SCRIPT in table_text  # the note

    # ... and never as markup: nothing was made of them, nothing ran.
    assert page.evaluate(_INJECTED) == []
    page.wait_for_timeout(300)  # give a stray onerror handler its chance to fire
    assert nb.dialogs == []
    screenshot(cmp, f"compare-hostile-{frontend}")
    screenshot(matrix, f"grid-hostile-{frontend}")
    screenshot(table, f"history-hostile-{frontend}")


# --------------------------------------------------------------------------------------------
# 5. The panel's history strip

PANEL = ".nbw-panel"
PROMPT = f"{PANEL} .nbw-prompt textarea"
RESULT_IMG = f"{PANEL} .nbw-results .nbw-result-card img"
STRIP = f"{PANEL} .nbw-hstrip"

PANEL_CELLS = [
    "from nanobanana_widgets import PromptPanel\npanel = PromptPanel()\npanel",
]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_panel_history_strip_lists_two_runs_and_load_brings_the_older_prompt_back(
    nb: NotebookPage, frontend: str, emulator: Any, screenshot: Callable[..., Path]
) -> None:
    sent_before = emulator.submissions
    nb.open_and_run(PANEL_CELLS)
    page = nb.page
    prompt = nb.widget(PROMPT)
    nb.assert_widgets_rendered()
    panel = page.locator(PANEL).first
    strip = page.locator(STRIP).first
    expect(strip).to_contain_text("no requests recorded yet")
    generate = panel.locator("button.mod-primary").first

    for n, text in enumerate(["a red kite over the dunes", "a blue kite over the sea"], 1):
        prompt.fill(text)
        generate.click()
        page.wait_for_function(ALL_DECODED, arg=[RESULT_IMG, n])
        expect(strip.locator(".nbw-hs-item")).to_have_count(n)

    items = strip.locator(".nbw-hs-item")
    page.wait_for_function(ALL_DECODED, arg=[f"{STRIP} .nbw-hs-item img.nbw-hs-thumb", 2])
    expect(items.nth(0)).to_contain_text("a blue kite over the sea")  # newest first
    expect(items.nth(1)).to_contain_text("a red kite over the dunes")
    expect(strip).to_contain_text("2 records")
    assert items.nth(1).locator(".nbw-hs-status").inner_text().startswith("✓ 1 image")
    screenshot(panel, f"panel-history-strip-{frontend}")

    prompt.fill("something else entirely")
    items.nth(1).get_by_role("button", name="Load").click()
    expect(page.locator(PROMPT)).to_have_value("a red kite over the dunes")
    expect(panel.locator(".nbw-status")).to_contain_text("Loaded id")
    screenshot(panel, f"panel-history-strip-loaded-{frontend}")
    assert emulator.submissions == sent_before + 2  # loading sends nothing
