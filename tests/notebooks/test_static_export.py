"""A notebook saved after a run shows every view's final state, with no kernel.

The notebook of :mod:`.static_export` (panel with runs, compare with a pick, grid, show, a
comparison of a file with a hostile name) is executed offline and saved, then exported
with nbconvert. Each view's output carries, beside the widget, a ``text/html`` copy of the
view as it ended (not as it was when the cell first displayed it), with its images, every
hostile string escaped, and links that outlive the kernel: relative paths to files beside
the notebook, never a loopback address. (What Chromium shows of the export:
``tests/browser/test_static_export.py``.)
"""

from __future__ import annotations

import html
import re
import urllib.parse
from pathlib import Path

import pytest

from .static_export import (
    HOSTILE,
    HOSTILE_FILE,
    IMAGES,
    VIEWS,
    WIDGET_MIME,
    Export,
    cell_index,
    execute_and_export,
    outputs_html,
    urls_in,
)

pytestmark = pytest.mark.notebooks

LOOPBACK = re.compile(r"^[a-z]+://(?:127\.|localhost|\[::1\]|0\.0\.0\.0)", re.IGNORECASE)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    done = execute_and_export(tmp_path_factory.mktemp("static-export"))
    assert done.error is None, done.error
    return done


def test_each_view_shows_its_widget_then_a_copy_of_its_final_state(export: Export) -> None:
    nb = export.read()
    for name in VIEWS:
        outputs = nb.cells[cell_index(name)].outputs
        assert len(outputs) == 2, (name, outputs)
        widget, copy = outputs
        assert WIDGET_MIME in widget.data and widget.data["text/plain"] == ""  # no stale repr
        assert list(copy.data) == ["text/html"]
        markup = outputs_html(copy)
        assert markup.count("<img ") == IMAGES[name], name
        assert markup.count("data:image/jpeg;base64,") == IMAGES[name], name  # thumbnails
        assert "Saved copy of an interactive view" in markup
    panel = outputs_html(nb.cells[cell_index("panel")].outputs[1])
    assert "Run #2: 1 image ready" in panel and "Run #1: 1 image ready" in panel
    assert "2 records" in panel  # the history strip, refreshed after the runs
    grid = outputs_html(nb.cells[cell_index("grid")].outputs[1])
    assert "Done: 4 of 4 cells done: 4 succeeded, 0 failed" in grid  # not "running; 0 of 4"
    cells = re.sub(r"<style>.*?</style>", "", grid, flags=re.DOTALL)
    assert "nbw-matrix-waiting" not in cells  # no cell left "queued" or "waiting"
    compare = outputs_html(nb.cells[cell_index("compare")].outputs[1])
    assert "dawn picked" in compare and "nbw-picked" in compare  # the pick made later
    assert nb.metadata["widgets"], "nbclient saved the widget state too"


def test_user_strings_are_escaped_in_every_copy(export: Export) -> None:
    nb = export.read()
    for name in (*VIEWS, "show"):
        for output in nb.cells[cell_index(name)].outputs:
            markup = outputs_html(output)
            assert "<script" not in markup and "<img src=x" not in markup, name
            assert "<svg" not in markup, name
    cmp = outputs_html(nb.cells[cell_index("compare")].outputs[1])
    assert html.escape(HOSTILE) in cmp  # the label and the prompt, as typed
    files = outputs_html(nb.cells[cell_index("files")].outputs[1])
    assert html.escape(HOSTILE_FILE) in files  # the file name, as text


def test_links_last_and_point_at_files_beside_the_notebook(export: Export) -> None:
    nb = export.read()
    exported = export.html.read_text(encoding="utf-8")
    checked = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for url in urls_in(outputs_html(output)):
                assert not LOOPBACK.match(url), url
                if url.startswith("data:"):
                    continue
                assert not re.match(r"^[a-z]+:", url) and not url.startswith("/"), url
                target = export.folder / urllib.parse.unquote(url)
                assert target.is_file(), url
                assert target.relative_to(export.folder).parts[0] == "nanobanana-files"
                checked += 1
    assert checked >= 10  # every result, compared image and grid cell links its copy
    for url in urls_in(exported):
        assert not LOOPBACK.match(url), url
    assert not (export.folder / "nanobanana-files").name.startswith(".")


def test_the_export_keeps_each_copy_and_no_stale_text(export: Export) -> None:
    exported = export.html.read_text(encoding="utf-8")
    assert exported.count('class="nbw-static ') == len(VIEWS)
    for stale in ("PromptPanel(", "<Grid ", "<Comparison ", "IntProgress("):
        assert html.escape(stale) not in exported and stale not in exported, stale
    assert "Done: 4 of 4 cells done" in exported


def test_the_saved_notebook_stays_light(export: Export) -> None:
    nb = export.read()
    copies = sum(len(outputs_html(o)) for c in nb.cells for o in c.get("outputs", []))
    images = sum(IMAGES.values())
    assert copies / images <= 60_000, copies / images  # thumbnails only, as figure 5 asks
    assert Path(export.notebook).stat().st_size < 2_000_000
