"""A notebook that uses every view, executed offline and exported with nbconvert to HTML.

Shared by ``tests/notebooks/test_static_export.py`` (what the saved notebook and its HTML
hold) and ``tests/browser/test_static_export.py`` (what Chromium shows of that HTML from a
``file://`` URL with no server and no network). The notebook runs the panel (two runs),
``compare`` (with a pick, and again with a file of a hostile name), ``grid`` (2 x 2) and
``show``, in a kernel of its own against the in-kernel emulator, with hostile prompts,
labels and file names. It is saved as nbclient saves it (with the widget state), then
exported with nbconvert's HTML exporter beside the notebook, so relative links to
``nanobanana-files/`` resolve as they would next to a tutorial notebook.

The batch progress view does not exist yet (issue 15): when it does, it takes its static
rendition with one ``StaticRendition(self, self.static_html)`` call, and a cell here.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_notebook

from ._notebook_runner import run_all

HOSTILE = "<img src=x onerror=alert('xss')><script>alert('xss')</script>"
HOSTILE_FILE = "<svg onload=alert(1)>&\"q'.png"

CELLS = {
    "setup": ("import nanobanana_widgets as nbw\n"
              "from pathlib import Path\n"
              f"HOSTILE = {HOSTILE!r}\n"
              "nbw.use_emulator(latency=0.3);"),
    "panel": "panel = nbw.PromptPanel(prompt='a lighthouse ' + HOSTILE)\npanel",
    "runs": "for _ in range(2):\n    panel.run().wait(60)\npanel.wait_idle(60)",
    "compare": ("dusk = nbw.generate('a lighthouse at dusk ' + HOSTILE)\n"
                "dawn = nbw.generate('a lighthouse at dawn')\n"
                "cmp = nbw.compare(dusk, dawn, labels=[HOSTILE, 'dawn'])\n"
                "cmp"),
    "pick": "cmp.pick(1);",
    "grid": ("g = nbw.grid(['a red kite ' + HOSTILE, 'a blue kite'], "
             "aspect_ratios=['1:1', '16:9'])\ng"),
    "wait": "g.wait(120);",
    "show": "nbw.show([dusk, dawn])",
    "files": (f"hostile = Path({HOSTILE_FILE!r})\n"
              "dusk.image.save(hostile)\n"
              "nbw.compare(hostile, dawn, labels=['file', 'dawn'])"),
}
VIEWS = ("panel", "compare", "grid", "files")
"""Cells whose output is a view: a widget, then its static rendition."""

IMAGES = {"panel": 2, "compare": 2, "grid": 4, "show": 2, "files": 2}
"""Images each cell's output shows: the panel's two results (its history strip's rows of
the same runs show no second copy), two compared, four cells, two shown, two compared."""

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Export:
    """The executed notebook, its HTML export (beside it) and the folder they are in."""

    folder: Path
    notebook: Path
    html: Path
    error: str | None

    def read(self) -> Any:
        return nbformat.read(self.notebook, as_version=4)


def cell_index(name: str) -> int:
    return list(CELLS).index(name)


def execute_and_export(scratch: Path, *, budget: float = 150.0) -> Export:
    """Write the notebook, execute it offline in its own kernel, export it to HTML."""
    source_dir = scratch / "source"
    source_dir.mkdir(parents=True)
    nb = new_notebook(cells=[new_code_cell(src) for src in CELLS.values()])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    source = source_dir / "views.ipynb"
    nbformat.write(nb, source)
    run = run_all(Path(sys.executable), [source], scratch, budget=budget)["views"]
    folder = scratch / "work" / "views"
    saved = folder / "views.ipynb"
    saved.write_bytes(run.executed.read_bytes())  # saved beside its files, as a user would
    html = folder / "views.html"
    body, _resources = HTMLExporter().from_filename(str(saved))
    html.write_text(body, encoding="utf-8")
    return Export(folder, saved, html, run.error)


def outputs_html(output: Any) -> str:
    return str(output.get("data", {}).get("text/html", ""))


ATTR_URL = re.compile(r"""(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


def urls_in(markup: str) -> list[str]:
    """Every ``href`` and ``src`` value in ``markup`` (data URIs shortened)."""
    return [u[:40] if u.startswith("data:") else u for u in ATTR_URL.findall(markup)]
