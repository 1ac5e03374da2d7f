"""Tournaments, A/B tests and the comparison's slider and difference views, as a person uses
them in JupyterLab and Voilà.

* A blind tournament voted with the keyboard alone: nothing on the page names a prompt or
  model before the vote; after it, the pair voted on is revealed (a hostile prompt as
  text), and the votes are in the history on disk.
* The comparison: the divider dragged on the image itself (no selection, no native drag)
  and moved with the arrow keys; the pick buttons under every view; the difference view.
* An A/B test: its cost stated, its images made, blind votes by key, then the verdict.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import expect
from .notebook_page import NotebookPage
from .page_scripts import ALL_DECODED, set_theme

pytestmark = pytest.mark.browser

SHOTS = Path("/work/notes/screens")


PROMPTS = [
    "a red kite over the dunes",
    "a blue kite over the dunes",
    "a green kite over the dunes",
    "a kite <img src=x onerror=alert(1)> over the dunes",
    "a yellow kite over the dunes",
]


def _shot(target: Any, issue: str, name: str) -> None:
    path = SHOTS / issue / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    target.screenshot(path=str(path))


def _stage_pair(page: Any) -> int:
    return int(page.locator(".nbw-trn .nbw-trn-stage").first.get_attribute("data-pair"))


TOURNAMENT_CELLS = [
    "import nanobanana_widgets as nbw\n"
    f"results = [nbw.generate(p) for p in {PROMPTS!r}]\n"
    "nbw.default_history().flush()\n"
    "t = nbw.tournament(results)\n"
    "t",
]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_a_blind_tournament_voted_with_the_keyboard(
    nb: NotebookPage, frontend: str, emulator: Any
) -> None:
    nb.page.set_viewport_size({"width": 1280, "height": 1600})
    nb.open_and_run(TOURNAMENT_CELLS)
    page = nb.page
    view = nb.widget(".nbw-trn")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-trn .nbw-trn-stage img", 2])
    nb.assert_widgets_rendered()
    text = view.inner_text()
    assert not any(p.split(" over")[0] in text for p in PROMPTS), text
    assert "nano-banana" not in text
    assert _stage_pair(page) == 1
    _shot(view, "issue14", f"tournament-blind-{frontend}")
    if frontend == "lab":
        set_theme(page, "JupyterLab Dark")
        _shot(view, "issue14", "tournament-blind-lab-dark")

    # Focus the tournament with a click on its frame, then vote with keys only.
    view.locator(".nbw-trn-head").click()
    page.keyboard.press("1")
    page.wait_for_function("() => document.querySelector('.nbw-trn .nbw-trn-stage')"
                           ".dataset.pair === '2'")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-trn .nbw-trn-stage img", 2])
    reveal = view.locator(".nbw-trn-reveal")
    expect(reveal).to_contain_text("Pair 1: you preferred the left image")
    expect(reveal).to_contain_text("nano-banana")
    if frontend == "lab":
        _shot(view, "issue14", "tournament-after-vote-lab-dark")
        set_theme(page, "JupyterLab Light")
    _shot(view, "issue14", f"tournament-after-vote-{frontend}")
    for key, pair in (("2", 3), ("=", 4), ("s", 5), ("ArrowLeft", 6)):
        page.keyboard.press(key)
        page.wait_for_function(f"() => document.querySelector('.nbw-trn .nbw-trn-stage')"
                               f".dataset.pair === '{pair}'")
    assert nb.dialogs == []
    if frontend == "lab":
        assert page.locator(".jp-MarkdownCell").count() == 0  # "1"/"2" never hit the notebook

    # Reveal: every prompt shows, the hostile one as text; nothing ran.
    view.get_by_role("button", name="Reveal").click()
    prompts = view.locator(".nbw-rank-prompt")
    expect(prompts.filter(has_text="<img src=x onerror=alert(1)>")).to_have_count(1)
    assert view.locator("img[src='x']").count() == 0
    assert nb.dialogs == []
    if frontend == "lab":
        set_theme(page, "JupyterLab Dark")
        _shot(view, "issue14", "tournament-revealed-lab-dark")
        set_theme(page, "JupyterLab Light")
    _shot(view, "issue14", f"tournament-revealed-{frontend}")

    # The votes are in the history on disk: three decisive or tied, one skip, one more.
    from nanobanana_widgets.store import History

    history = History(nb.folder / ".nanobanana")
    try:
        votes = history.votes()
    finally:
        history.close()
    assert [v.outcome for v in votes] == ["left", "right", "tie", "skip", "left"]
    assert all(v.blind for v in votes) and all(v.left.record_id for v in votes)


COMPARE_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "dusk = nbw.generate('a lighthouse at dusk, oil painting')\n"
    "dawn = nbw.generate('a lighthouse at dawn, oil painting')\n"
    "c = nbw.compare(dusk, dawn, labels=['dusk', 'dawn'])\n"
    "c",
]

# The right-hand inset of the top image's clip-path, in percent.
_CLIP_RIGHT = """
() => {
  const top = document.querySelector('.nbw-cmp .nbw-cmp-top');
  const m = top && getComputedStyle(top).clipPath.match(/inset\\(\\s*0(?:px)?\\s+([\\d.]+)%/);
  return m ? Number(m[1]) : null;
}
"""


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_the_divider_is_dragged_on_the_image_and_moved_with_the_arrow_keys(
    nb: NotebookPage, frontend: str, emulator: Any
) -> None:
    nb.open_and_run(COMPARE_CELLS)
    page = nb.page
    cmp = nb.widget(".nbw-cmp")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-card img", 2])
    nb.assert_widgets_rendered()
    _shot(cmp, "issue14", f"compare-side-{frontend}")
    cmp.locator(".widget-toggle-button", has_text="Slider").click()
    stage = cmp.locator(".nbw-cmp-stage")
    stage.wait_for()
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-stage img", 2])
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === 50")
    # The pick buttons and the tie stay under the slider view.
    for name in ("dusk is better", "dawn is better", "Tie"):
        expect(cmp.get_by_role("button", name=name)).to_be_visible()

    # Drag on the image itself, from 30% to 80% of its width.
    box = stage.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=5)
    page.mouse.up()
    page.wait_for_function(f"() => Math.abs(({_CLIP_RIGHT})() - 20) <= 1")
    readout = cmp.locator(".widget-slider .widget-readout").first
    expect(readout).to_have_text(re.compile(r"^\s*(79|80|81)\s*$"))  # Python heard it
    assert page.evaluate("() => String(window.getSelection())") == ""  # nothing selected
    _shot(cmp, "issue13", f"item13-after-drag-{frontend}")

    # A touch drag works the same way.
    page.evaluate("""([x0, x1, y]) => {
      const stage = document.querySelector('.nbw-cmp .nbw-cmp-stage');
      const opts = (x) => ({pointerId: 7, pointerType: 'touch', isPrimary: true, button: 0,
                            buttons: 1, clientX: x, clientY: y, bubbles: true});
      stage.dispatchEvent(new PointerEvent('pointerdown', opts(x0)));
      stage.dispatchEvent(new PointerEvent('pointermove', opts((x0 + x1) / 2)));
      stage.dispatchEvent(new PointerEvent('pointermove', opts(x1)));
      stage.dispatchEvent(new PointerEvent('pointerup', opts(x1)));
    }""", [box["x"] + box["width"] * 0.8, box["x"] + box["width"] * 0.25, y])
    page.wait_for_function(f"() => Math.abs(({_CLIP_RIGHT})() - 75) <= 1")

    # With the stage focused (it is, after the drag), the arrow keys move the divider.
    stage.focus()
    before = page.evaluate(_CLIP_RIGHT)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === {before - 4}")
    page.keyboard.press("Shift+ArrowLeft")
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === {before + 6}")
    page.keyboard.press("End")
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === 0")
    expect(readout).to_have_text(re.compile(r"^\s*100\s*$"))
    page.keyboard.press("Home")
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === 100")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => ({_CLIP_RIGHT})() === 98")
    if frontend == "lab":  # the keys moved the divider, not the notebook's cells
        assert page.locator(".jp-Notebook .jp-Cell.jp-mod-selected").count() <= 1

    # A pick from the slider view.
    cmp.get_by_role("button", name="dawn is better").click()
    expect(cmp.get_by_role("button", name="✓ dawn picked")).to_be_visible()
    _shot(cmp, "issue13", f"item14-after-pick-in-slider-{frontend}")

    # The difference view: a heat map and the share of changed pixels.
    cmp.locator(".widget-toggle-button", has_text="Difference").click()
    heat = cmp.locator(".nbw-cmp-diffstat")
    expect(heat).to_contain_text("of the pixels changed between dusk and dawn")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-heat img", 1])
    expect(cmp.get_by_role("button", name="✓ dawn picked")).to_be_visible()
    if frontend == "lab":
        set_theme(page, "JupyterLab Dark")
        _shot(cmp, "issue14", "compare-difference-lab-dark")
        cmp.locator(".widget-toggle-button", has_text="Slider").click()
        _shot(cmp, "issue13", "item13-after-slider-lab-dark")
        cmp.locator(".widget-toggle-button", has_text="Difference").click()
        set_theme(page, "JupyterLab Light")
    _shot(cmp, "issue14", f"compare-difference-{frontend}")


NWAY_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "rs = [nbw.generate(f'a paper boat, {s}', aspect_ratio=r) for s, r in "
    "[('watercolour', '1:1'), ('ink', '16:9'), ('pastel', '3:4'), ('pencil', '1:1')]]\n"
    "nbw.compare(*rs)",
]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_a_four_way_comparison_of_different_shapes(
    nb: NotebookPage, frontend: str, emulator: Any, page: Any
) -> None:
    page.set_viewport_size({"width": 1280, "height": 1800})
    nb.open_and_run(NWAY_CELLS)
    cmp = nb.widget(".nbw-cmp")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-cmp .nbw-cmp-card img", 4])
    nb.assert_widgets_rendered()
    for label in "ABCD":
        expect(cmp.get_by_role("button", name=f"{label} is better")).to_be_visible()
    _shot(cmp, "issue14", f"compare-4way-{frontend}")
    if frontend == "lab":
        set_theme(page, "JupyterLab Dark")
        _shot(cmp, "issue14", "compare-4way-lab-dark")
        set_theme(page, "JupyterLab Light")


AB_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "ab = nbw.ab_test('a lighthouse at dusk', 'a lighthouse at dusk, cinematic', samples=4)\n"
    "ab",
]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_an_ab_test_voted_blind_then_its_verdict(
    nb: NotebookPage, frontend: str, emulator: Any, page: Any
) -> None:
    page.set_viewport_size({"width": 1280, "height": 2400})  # the whole test in one picture
    sent = emulator.submissions
    nb.open_and_run(AB_CELLS)
    view = nb.widget(".nbw-ab")
    expect(view).to_contain_text("8 paid generations: 4 images per arm, in 1 request each")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-ab .nbw-trn-stage img", 2],
                           timeout=60_000)
    assert emulator.submissions - sent == 2  # one request of four images per arm
    nb.assert_widgets_rendered()
    assert "cinematic" not in view.locator(".nbw-trn-stage").inner_text()
    _shot(view, "issue14", f"abtest-voting-{frontend}")
    view.locator(".nbw-trn-head").click()
    for n in range(2, 10):
        page.keyboard.press("1")
        page.wait_for_function(f"() => document.querySelector('.nbw-ab .nbw-trn-stage')"
                               f".dataset.pair === '{n}'")
    expect(view.locator(".nbw-trn-reveal")).to_contain_text("stays hidden until the end")
    view.get_by_role("button", name="Show the verdict").click()
    verdict = view.locator(".nbw-ab-verdict")
    expect(verdict).to_contain_text(re.compile(r"preferred in \d of 8 votes|Neither arm"))
    expect(view.locator(".nbw-ab-variation")).to_be_visible()
    if frontend == "lab":
        set_theme(page, "JupyterLab Dark")
        _shot(view, "issue14", "abtest-verdict-lab-dark")
        set_theme(page, "JupyterLab Light")
    _shot(view, "issue14", f"abtest-verdict-{frontend}")
