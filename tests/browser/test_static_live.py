"""Static renditions and lasting links in live front ends (JupyterLab, Notebook 7, Voilà).

* A grid settles: its static copy (the next output, hidden while the live view is shown)
  was updated to the final cells, while the live grid kept its very DOM (no re-render);
  the static copy never showed on the page (no flicker). In a comparison, a pick updates
  the copy and the slider stays where it was moved. The notebook saved afterwards holds
  the final copy.
* Full-size links are relative to the notebook, and a click takes them to the server's
  files route (``/files/`` or Voilà's ``/voila/files/``), which serves the copy beside the
  notebook; the panel's Save offers a real browser download.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from notebooks.static_export import IMAGES, VIEWS, Export, cell_index, execute_and_export

from .conftest import EMULATOR_LATENCY, expect
from .notebook_page import NotebookPage
from .page_scripts import ALL_DECODED

pytestmark = pytest.mark.browser

# Before any page script: watch every frame for a static copy that takes up room on screen.
_WATCH_COPIES = """
window.__nbwCopySeen = 0;
(function watch() {
  for (const el of document.querySelectorAll('.nbw-static')) {
    const box = el.getBoundingClientRect();
    if (box.height > 0 && getComputedStyle(el).visibility !== 'hidden') {
      window.__nbwCopySeen += 1;
    }
  }
  requestAnimationFrame(watch);
})();
"""
# The (hidden) static copy of kind `kind`: its decoded images and its text.
_COPY = """
(kind) => {
  const el = document.querySelector(`.nbw-static[data-nbw-static="${kind}"]`);
  if (!el) return null;
  return {imgs: el.querySelectorAll('img').length, text: el.textContent,
          display: getComputedStyle(el).display};
}
"""


@pytest.fixture
def emulator(browser_emulator: Any) -> Iterator[Any]:
    """The session's emulator, slower for this test (a grid still running when looked at)."""
    browser_emulator.clear_faults()
    browser_emulator.set_latency(2.5)
    yield browser_emulator
    browser_emulator.set_latency(EMULATOR_LATENCY)
    browser_emulator.finish_all()


GRID_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "g = nbw.grid(['a red kite', 'a blue kite'], aspect_ratios=['1:1', '16:9'])\n"
    "g",
    "dusk = nbw.generate('a lighthouse at dusk')\n"
    "dawn = nbw.generate('a lighthouse at dawn')\n"
    "c = nbw.compare(dusk, dawn, labels=['dusk', 'dawn'])\n"
    "c",
]


@pytest.mark.parametrize("frontend", ["lab"])
def test_a_settled_grid_updates_its_copy_while_the_live_grid_keeps_its_state(
        nb: NotebookPage, frontend: str, emulator: Any,
        screenshot: Callable[..., Path]) -> None:
    page = nb.page
    page.add_init_script(_WATCH_COPIES)
    nb.write(GRID_CELLS)
    nb.open()
    nb.menu("Run", "runmenu:run-all")
    matrix = nb.widget(".nbw-matrix")
    # Mark the live grid while it still runs: a re-rendered view would lose the marks.
    page.wait_for_function("() => !!document.querySelector('.nbw-matrix .nbw-matrix-cell')")
    page.evaluate("""() => {
      const m = document.querySelector('.nbw-matrix');
      m.dataset.mark = 'live';
      window.__nbwCell = m.querySelector('.nbw-matrix-cell');
    }""")
    copy = page.evaluate(_COPY, "matrix")
    assert copy is not None and "Done:" not in copy["text"]  # still running when marked
    page.wait_for_function(ALL_DECODED, arg=[".nbw-matrix .nbw-matrix-cell img", 4],
                           timeout=60_000)
    page.wait_for_function(
        "(kind) => { const c = (" + _COPY + ")(kind); "
        "return c && c.imgs === 4 && c.text.includes('Done: 4 of 4'); }",
        arg="matrix", timeout=30_000)
    assert page.evaluate("() => document.querySelector('.nbw-matrix').dataset.mark") == "live"
    assert page.evaluate("() => window.__nbwCell.isConnected")  # the same node: not re-made
    assert page.evaluate(_COPY, "matrix")["display"] == "none"

    # The comparison: slide, then pick; the copy follows the pick, the slider stays put.
    cmp = nb.widget(".nbw-cmp")
    cmp.locator(".widget-toggle-button", has_text="Slider").click()
    track = cmp.locator(".widget-slider .noUi-target, .widget-slider .slider").first
    track.wait_for()
    box = track.bounding_box()
    assert box is not None
    track.click(position={"x": box["width"] * 0.2, "y": box["height"] / 2})
    readout = cmp.locator(".widget-slider .widget-readout").first
    expect(readout).not_to_have_text("50")
    slid = readout.inner_text()
    page.evaluate("() => { window.__nbwStage = document.querySelector('.nbw-cmp-stage'); }")
    cmp.locator(".widget-toggle-button", has_text="Side by side").click()
    cmp.get_by_role("button", name="dawn is better").click()
    page.wait_for_function(
        "(kind) => { const c = (" + _COPY + ")(kind); "
        "return c && c.text.includes('dawn picked'); }", arg="cmp", timeout=30_000)
    cmp.locator(".widget-toggle-button", has_text="Slider").click()
    expect(readout).to_have_text(slid)
    assert page.evaluate("() => window.__nbwStage.isConnected")
    nb.wait_kernel_idle()
    assert page.evaluate("() => window.__nbwCopySeen") == 0  # never on screen: no flicker
    screenshot(matrix, "static-live-grid-lab")

    saved = nb.save()
    grid_copy = saved["cells"][0]["outputs"][1]["data"]["text/html"]
    text = "".join(grid_copy) if isinstance(grid_copy, list) else grid_copy
    assert text.count("<img ") == 4 and "Done: 4 of 4 cells done" in text
    cmp_copy = saved["cells"][1]["outputs"][1]["data"]["text/html"]
    assert "dawn picked" in ("".join(cmp_copy) if isinstance(cmp_copy, list) else cmp_copy)


LINK_CELLS = [
    "import nanobanana_widgets as nbw\n"
    "g = nbw.grid(['a lighthouse'])\n"
    "g.wait(60)\n"
    "g",
    "panel = nbw.PromptPanel(prompt='a red barn', save_dir='saved images')\n"
    "panel.run().wait(60)\n"
    "panel.wait_idle(60)\n"
    "panel",
]


@pytest.fixture
def quick(browser_emulator: Any) -> Iterator[Any]:
    browser_emulator.clear_faults()
    browser_emulator.set_latency(EMULATOR_LATENCY)
    yield browser_emulator
    browser_emulator.finish_all()


@pytest.mark.parametrize("frontend", ["lab", "notebook", "voila"])
def test_full_size_links_reach_the_copy_through_the_server_and_save_downloads(
        nb: NotebookPage, frontend: str, quick: Any) -> None:
    page = nb.page
    page.add_init_script(_WATCH_COPIES)
    nb.open_and_run(LINK_CELLS)
    page.wait_for_function(ALL_DECODED, arg=[".nbw-matrix .nbw-matrix-cell img", 1],
                           timeout=60_000)
    link = page.locator(".nbw-matrix .nbw-matrix-cell a").first
    relative = link.get_attribute("href")
    assert relative is not None and relative.startswith("nanobanana-files/")
    assert (nb.folder / relative).is_file()
    link.dispatch_event("mousedown")  # what a click does first
    href = link.get_attribute("href")
    assert href is not None
    files = "/voila/files/" if frontend == "voila" else "/files/"
    rel_folder = nb.folder.relative_to(nb.root_dir).as_posix()
    assert re.search(rf"{re.escape(files)}{re.escape(rel_folder)}/nanobanana-files/", href), href
    answer = page.evaluate("""async (url) => {
      const r = await fetch(url, {credentials: 'same-origin'});
      const b = new Uint8Array(await r.arrayBuffer());
      return {status: r.status, type: r.headers.get('content-type'), head: [...b.slice(0, 4)]};
    }""", href)
    assert answer["status"] == 200, answer
    assert answer["head"] == [0x89, 0x50, 0x4E, 0x47]  # the PNG itself

    panel = nb.widget(".nbw-panel")
    page.wait_for_function(ALL_DECODED, arg=[".nbw-panel .nbw-result-card img", 1],
                           timeout=60_000)
    panel.locator(".nbw-result-card").first.get_by_role("button", name="Save").click()
    anchor = panel.locator("a.nbw-download").first
    anchor.wait_for(timeout=30_000)
    with page.expect_download() as got:
        anchor.click()
    download = got.value
    saved = next((nb.folder / "saved images").iterdir())
    assert download.suggested_filename == saved.name
    assert Path(download.path()).read_bytes() == saved.read_bytes()
    assert page.evaluate("() => window.__nbwCopySeen") == 0


@pytest.fixture(scope="module")
def saved_export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    done = execute_and_export(tmp_path_factory.mktemp("reopen"))
    assert done.error is None, done.error
    return done


# Decoded images inside the static copy of the n-th code cell.
_CELL_COPY_DECODED = """
([n, want]) => {
  const cell = document.querySelectorAll('.jp-CodeCell')[n];
  const imgs = cell ? [...cell.querySelectorAll('.nbw-static img')] : [];
  return imgs.length === want && imgs.every(i => i.complete && i.naturalWidth > 0);
}
"""


@pytest.mark.parametrize("frontend", ["lab"])
@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_a_notebook_reopened_without_kernel_or_widget_state_shows_the_copies(
        nb: NotebookPage, frontend: str, theme: str, saved_export: Export,
        screenshot: Callable[..., Path]) -> None:
    """Saved as JupyterLab saves by default (no widget state), reopened later: the widgets
    cannot come back, their copies show, with images and links the server serves."""
    notebook = saved_export.read()
    notebook.metadata.pop("widgets", None)
    folder = nb.root_dir / nb.name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(saved_export.folder / "nanobanana-files", folder / "nanobanana-files")
    nb.path = folder / f"{nb.name}.ipynb"
    nbformat.write(notebook, nb.path)
    nb.open()
    page = nb.page
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{theme: t})", theme)
    page.wait_for_function("(t) => document.body.dataset.jpThemeName === t", arg=theme)
    copies = page.locator(".nbw-static")
    expect(copies).to_have_count(len(VIEWS))
    for i, name in enumerate(VIEWS):
        expect(copies.nth(i)).to_be_visible(timeout=30_000)
        page.wait_for_function(_CELL_COPY_DECODED, arg=[cell_index(name), IMAGES[name]])
    # JupyterLab resolves the copy's relative link (as saved) to its files route.
    url = page.locator(".nbw-static-matrix a").first.get_attribute("href")
    assert url is not None and re.search(rf"/files/{re.escape(nb.name)}/nanobanana-files/", url)
    assert page.evaluate("async (u) => (await fetch(u)).status", url) == 200
    tag = "dark" if "Dark" in theme else "light"
    screenshot(copies.nth(0), f"static-reopened-panel-{tag}")
    screenshot(copies.nth(2), f"static-reopened-grid-{tag}")
