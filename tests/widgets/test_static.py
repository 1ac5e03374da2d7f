"""Static renditions, links that last, reports and Colab, driven through the real views.

Displaying a view sends two outputs: the live widget, then a ``text/html`` copy of the
view's state under a display id. As the state settles the copy (and only the copy) is sent
again through that id, throttled, so the live view is never re-rendered. The copies and the
reports are made by the same render functions as the live views, with every user string
escaped and every full-size link pointing at a file beside the notebook or the report.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
from PIL import Image

from nanobanana_widgets.client import Client
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets import _static
from nanobanana_widgets.widgets._static import StaticRendition
from nanobanana_widgets.widgets._ui import ViewSync
from nanobanana_widgets.widgets.compare import compare
from nanobanana_widgets.widgets.grid import Grid, grid
from nanobanana_widgets.widgets.panel import PromptPanel

from .helpers import card_buttons, click_and_wait, result_cards

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"

Call = tuple[dict[str, Any], str | None, bool]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """What the views publish (``display`` and ``update_display``), in order."""
    calls: list[Call] = []

    def publish(data: dict[str, Any], *, display_id: str | None = None,
                update: bool = False) -> None:
        calls.append((data, display_id, update))

    monkeypatch.setattr(_static, "publish_display", publish)
    return calls


@pytest.fixture
def small_grid(client: Client, history: History) -> Iterator[Grid]:
    g = grid([f"a kite {XSS}", "a boat"], aspect_ratios=["1:1", "16:9"], client=client,
             history=history)
    yield g
    g.wait(60)
    g.close()


def body(markup: str) -> str:
    """A rendition without its stylesheet."""
    return re.sub(r"<style>.*?</style>", "", markup, flags=re.DOTALL)


def images_in(markup: str) -> int:
    return len(re.findall(r'<img [^>]*src="data:image/jpeg;base64,', markup))


def hrefs(markup: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', markup)


# --- the mechanism ---------------------------------------------------------------------------


def test_display_sends_the_live_widget_then_its_copy_under_a_display_id(
        sent: list[Call], small_grid: Grid) -> None:
    small_grid._ipython_display_()
    (widget, no_id, _), (copy, display_id, update) = [
        s for s in sent if s[1] == small_grid.static.display_id
        or s[0].get(WIDGET_MIME, {}).get("model_id") == small_grid.model_id][:2]
    assert widget[WIDGET_MIME]["model_id"] == small_grid.model_id and no_id is None
    assert list(copy) == ["text/html"] and display_id == small_grid.static.display_id
    assert not update
    cls = f"nbw-static-{small_grid.static.view_id}"
    assert f'class="nbw-static {cls}"' in copy["text/html"]
    # the live view hides exactly this copy while it is shown, with a core widget (it
    # renders wherever the view does), kept among the view's children
    marker = small_grid.static.marker
    assert marker in small_grid.children and marker.layout.display == "none"
    assert marker.value.startswith(f"<style>.{cls}{{display:none")
    small_grid.children = small_grid.children[:-1]
    assert small_grid.children[-1] is marker
    assert "nbw-view" in small_grid._dom_classes


def test_the_copy_follows_the_grid_and_never_resends_the_widget(
        sent: list[Call], small_grid: Grid) -> None:
    small_grid._ipython_display_()
    cells_before = [small_grid.cell_widget(c) for c in small_grid.cells]
    small_grid.wait(60)
    small_grid.static.flush()  # the last update of a throttled series, now
    updates = [s for s in sent[2:] if s[1] == small_grid.static.display_id]
    assert not [s for s in sent[2:] if WIDGET_MIME in s[0]]  # the widget is never resent
    assert updates, "the settled grid was not sent again"
    for data, display_id, update in updates:
        assert list(data) == ["text/html"] and update
        assert display_id == small_grid.static.display_id
    final = updates[-1][0]["text/html"]
    assert "Done: 4 of 4 cells done: 4 succeeded" in final and images_in(final) == 4
    assert "nbw-matrix-waiting" not in body(final)
    # the live view is the same widgets, never re-made
    assert [small_grid.cell_widget(c) for c in small_grid.cells] == cells_before


def test_updates_are_throttled_and_unchanged_copies_not_resent(sent: list[Call]) -> None:
    box = w.VBox()
    box.children = (ViewSync(box),)
    renders: list[int] = []
    state = {"text": "a"}

    def render() -> str:
        renders.append(1)
        return f"<p>{state['text']}</p>"

    rendition = StaticRendition(box, render, interval=3600.0)

    def copies(r: StaticRendition) -> list[str]:
        return [s[0]["text/html"] for s in sent if s[1] == r.display_id]

    rendition.update()
    assert copies(rendition) == [] and renders == []  # nothing before the view is displayed
    box._ipython_display_()
    assert copies(rendition) == ["<p>a</p>"] and len(renders) == 1
    for i in range(100):  # a storm of settles ...
        state["text"] = f"b{i}"
        rendition.update()
    assert len(copies(rendition)) == 1 and len(renders) == 1  # ... waits for the interval
    rendition.flush()
    assert copies(rendition) == ["<p>a</p>", "<p>b99</p>"]  # only the last state
    fast = StaticRendition(box, render, interval=0.0)
    box._ipython_display_()
    fast.update()  # the same state again: rendered, not sent
    assert copies(fast) == ["<p>b99</p>"]
    state["text"] = "c"
    fast.update()
    assert copies(fast) == ["<p>b99</p>", "<p>c</p>"]
    assert [s[2] for s in sent if s[1] == fast.display_id] == [False, True]


def test_after_a_cell_a_copy_that_changed_is_sent_again(sent: list[Call]) -> None:
    box = w.VBox()
    box.children = (ViewSync(box),)
    state = {"n": 0}
    rendition = StaticRendition(box, lambda: f"<p>{state['n']}</p>", interval=0.0)
    box._ipython_display_()

    def mine() -> list[str]:
        return [s[0]["text/html"] for s in sent if s[1] == rendition.display_id]

    _static._flush_after_cell()
    assert mine() == ["<p>0</p>"]  # unchanged since displayed: nothing to send
    state["n"] = 1
    rendition.update()  # sent at once (from a thread, a runner may not see it) ...
    _static._flush_after_cell()  # ... so again while a cell runs
    assert mine() == ["<p>0</p>", "<p>1</p>", "<p>1</p>"]
    _static._flush_after_cell()
    assert len(mine()) == 3


def test_a_view_without_view_sync_gets_no_rendition() -> None:
    with pytest.raises(TypeError, match="ViewSync"):
        StaticRendition(w.VBox(), lambda: "")


def test_a_rendition_that_fails_says_so_instead_of_a_traceback(sent: list[Call]) -> None:
    box = w.VBox()
    box.children = (ViewSync(box),)

    def broken() -> str:
        raise RuntimeError("boom")

    rendition = StaticRendition(box, broken)
    box._ipython_display_()
    (copy,) = [s[0] for s in sent if s[1] == rendition.display_id]
    assert "No saved copy of this view: RuntimeError" in copy["text/html"]


def test_colab_gets_its_widget_manager_once(sent: list[Call], monkeypatch: pytest.MonkeyPatch,
                                            small_grid: Grid) -> None:
    assert _static.enable_colab_widgets() is False  # not in Colab: nothing to do
    calls: list[int] = []
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append(1)  # type: ignore[attr-defined]
    colab = types.ModuleType("google.colab")
    colab.output = output  # type: ignore[attr-defined]
    google = types.ModuleType("google")
    google.colab = colab  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    monkeypatch.setattr(_static, "_colab_done", False)
    small_grid._ipython_display_()
    small_grid._ipython_display_()
    assert calls == [1]


# --- each view's copy -----------------------------------------------------------------------


def test_the_panel_copy_shows_results_status_and_strip_escaped(
        sent: list[Call], panel: PromptPanel) -> None:
    panel._ipython_display_()
    panel.prompt = f"a lighthouse {XSS}"
    click_and_wait(panel)
    click_and_wait(panel)
    panel.static.flush()
    (copy, _id, update) = [s for s in sent if s[1] == panel.static.display_id][-1]
    assert update
    copy = copy["text/html"]
    shown = body(copy)
    assert "<script" not in shown and "<img src=x" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "Run #2: 1 image ready" in shown and "Run #1: 1 image ready" in shown
    assert images_in(copy) == 2  # two result cards; the strip's rows do not repeat them
    assert "History" in shown and "2 records" in shown
    assert shown.count("nbw-hs-noimg") == 2 and shown.count("✓ 1 image") == 2
    links = hrefs(shown)
    assert len(links) == 2 and all(Path(h).is_file() for h in links)
    assert all(h.startswith("nanobanana-files/") for h in links)


def test_the_comparison_copy_shows_the_pick(sent: list[Call], client: Client,
                                            history: History) -> None:
    a = client.generate("a fox in the snow")
    b = client.generate("a fox at night")
    c = compare(a, b, labels=[XSS, "night"], history=history)
    c._ipython_display_()
    c.pick("night")
    c.static.flush()
    copy = body([s for s in sent if s[1] == c.static.display_id][-1][0]["text/html"])
    assert "night picked" in copy
    cards = re.findall(r'class="nbw-static-card(?: [^"]*)?"', copy)
    assert cards == ['class="nbw-static-card"', 'class="nbw-static-card nbw-picked"']
    assert "<script" not in copy and "&lt;script&gt;" in copy
    assert images_in(copy) == 2
    assert all(Path(h).is_file() for h in hrefs(copy))
    assert a.image.url not in copy  # the emulator's loopback address never gets in


# --- links and downloads ----------------------------------------------------------------------


def test_save_offers_a_browser_download_of_the_saved_file(panel: PromptPanel) -> None:
    panel.save_dir = "saved-here"  # beside the notebook (the working directory)
    panel.prompt = "a red barn"
    click_and_wait(panel)
    (card,) = result_cards(panel)
    shown = len(card.children)  # a card never saved carries no download widget
    card_buttons(card)["Save"].click()
    panel.wait_idle(10)
    assert len(card.children) == shown + 1
    download = card.children[-1]
    assert download.layout.display is None
    match = re.search(r'href="([^"]+)" download="([^"]+)"', download.value)
    assert match is not None
    href, name = match.groups()
    assert href == f"saved-here/{name}" and Path(href).is_file()
    assert Image.open(href).size == panel.results[0].image.pil().size


def test_records_link_to_copies_beside_the_notebook(client: Client, history: History) -> None:
    g = grid(["a teapot"], client=client, history=history)
    g.wait(60)
    history.flush()
    reopened = Grid.open(g.id, history=history)
    markup = reopened.cell_widget(reopened.cells[0]).value
    (href,) = hrefs(markup)
    assert href.startswith("nanobanana-files/") and Path(href).is_file()
    live = hrefs(g.cell_widget(g.cells[0]).value)
    assert live == [href]  # one copy per task image, whoever made it
    assert not any(".nanobanana" in h for h in hrefs(markup))  # hidden: Jupyter won't serve it
    g.close()
    reopened.close()


# --- reports ---------------------------------------------------------------------------------


def _decodes(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()
        return img.size


def test_a_comparison_report_is_one_page_with_its_images_beside_it(
        client: Client, history: History, tmp_path: Path) -> None:
    a = client.generate("a cat on a mat")
    b = client.generate("a dog on a mat", aspect_ratio="16:9")
    c = compare(a, b, labels=[XSS, "dog"], history=history)
    c.pick(1)
    page = c.to_html(tmp_path / "mail me.html")
    text = page.read_text(encoding="utf-8")
    assert "<script" not in body(text) and "&lt;script&gt;alert(1)" in text
    assert "dog picked" in text and "a cat on a mat" in text and "aspect ratio: 16:9" in text
    links = [h for h in hrefs(text) if not h.startswith("http")]
    assert len(links) == 2
    for href in links:
        assert href.startswith("mail-me_files/")
        assert _decodes(tmp_path / href.replace("%20", " ")) in (_decodes_bytes(a),
                                                                  _decodes_bytes(b))
    assert "127.0.0.1" not in text
    embedded = c.to_html(tmp_path / "all-in-one.html", embed=True)
    text = embedded.read_text(encoding="utf-8")
    assert not (tmp_path / "all-in-one_files").exists()
    assert text.count("<details") == 2 and text.count("data:image/png;base64,") == 2


def _decodes_bytes(result: Any) -> tuple[int, int]:
    return result.image.pil().size  # type: ignore[no-any-return]


def test_a_grid_report_links_every_cell_and_shows_ratings(
        client: Client, history: History, tmp_path: Path) -> None:
    g = grid(["a red kite", "a blue kite"], aspect_ratios=["1:1", "16:9"], client=client,
             history=history)
    g.wait(60)
    history.flush()
    history.rate(history.filter(grid_id=g.id)[0], 5)
    page = g.to_html(tmp_path / "grid.html")
    text = page.read_text(encoding="utf-8")
    links = [h for h in hrefs(text) if h.startswith("grid_files/")]
    assert len(links) == 4 and all(_decodes(tmp_path / h) for h in links)
    assert images_in(text) == 4 and "★★★★★" in text
    assert "a red kite" in text and "nano-banana · 16:9" in text
    reopened = Grid.open(g.id, history=history)
    again = reopened.to_html(tmp_path / "reopened.html", embed=True).read_text(encoding="utf-8")
    assert again.count("<details") == 4 and "★★★★★" in again
    g.close()
    reopened.close()


def test_reports_do_not_need_the_notebook_folder(client: Client, history: History,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = client.generate("one"), client.generate("two")
    c = compare(a, b, history=history)
    report = tmp_path / "elsewhere" / "r.html"
    c.to_html(report)
    monkeypatch.chdir(tmp_path)  # wherever the reader opens it, the links are beside it
    for href in hrefs(report.read_text(encoding="utf-8")):
        assert (report.parent / href).is_file(), href


def test_rendition_helpers_are_used_by_every_view(client: Client, history: History,
                                                  panel: PromptPanel,
                                                  small_grid: Grid) -> None:
    c = compare(client.generate("x"), client.generate("y"), history=history)
    for view in (panel, small_grid, c):
        assert isinstance(view.static, StaticRendition)
        assert callable(view.static_html) and view.static_html().startswith(
            f'<div class="nbw-static nbw-static-{view.static.view_id}"')

