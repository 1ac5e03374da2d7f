"""Figure 14, measured on a real export: bytes per image in the nbconvert HTML of a notebook.

A notebook with a 2 x 2 grid, a comparison of two images and a panel that made four
results is executed with nbclient against the emulator (running here, in the benchmark's
process), saved as JupyterLab saves it by default (without the widget state) and exported
with nbconvert's HTML exporter. Every image then shows in the views' static copies. The
images are photo-like (the emulator's drawings are swapped for noisy photo-like ones, as
the service's are): flat placeholders would flatter the figure. The baseline is the same
page with ``display(PIL.Image)`` of a photo-like 1K PNG.
"""

from __future__ import annotations

import copy
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_notebook

from nanobanana_widgets.emulator import files as emulator_files

from .common import TOKEN, Figure, Sizes, emulator_and_client, kib
from .notebooks import execute
from .synth import photo_like, photo_png

IMAGES = 10
"""What the notebook makes: 4 grid cells, 2 compared images, 4 panel results."""


@contextmanager
def photo_images() -> Iterator[None]:
    """The emulator (in this process) draws photo-like images instead of placeholders."""
    original = emulator_files.ImageFiles._render

    def render(self: Any, task: Any, index: int, depth: int) -> Any:
        size = original(self, task, index, depth).size
        return photo_like(*size, seed=zlib.crc32(f"{task.id}:{index}".encode()))

    emulator_files.ImageFiles._render = render  # type: ignore[method-assign]
    try:
        yield
    finally:
        emulator_files.ImageFiles._render = original  # type: ignore[method-assign]


def html_bytes(nb: Any, *, state: bool) -> tuple[int, str]:
    """The nbconvert HTML of ``nb`` (with or without its saved widget state)."""
    page_nb = copy.deepcopy(nb)
    if not state:
        page_nb.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(page_nb)  # type: ignore[no-untyped-call]
    return len(body.encode("utf-8")), body


def _cells(base_url: str) -> list[str]:
    return [
        "import nanobanana_widgets as nbw\n"
        f"client = nbw.Client({TOKEN!r}, base_url={base_url!r})\n"
        "nbw.set_default_client(client)",
        "g = nbw.grid(['a red kite over the sea', 'a blue kite over a field'], "
        "aspect_ratios=['1:1', '16:9'])\ng",
        "g.wait(300);",
        "a = nbw.generate('a lighthouse at dusk')\n"
        "b = nbw.generate('a lighthouse at dawn')\n"
        "c = nbw.compare(a, b)\nc",
        "c.pick(1);",
        "panel = nbw.PromptPanel(prompt='a harbour at night, oil painting')\npanel",
        "for _ in range(4):\n    panel.run().wait(300)\npanel.wait_idle(300)",
    ]


def static_export(sizes: Sizes, workdir: Path) -> Figure:
    """Figure 14 (bytes per image in the nbconvert HTML of a saved notebook)."""
    folder = workdir / "static-export"
    folder.mkdir()
    with photo_images(), emulator_and_client(0.3 if not sizes.quick else 0.05) as (emu, _c):
        nb = execute(_cells(emu.base_url), folder, timeout=600)
    nbformat.write(nb, str(folder / "views.ipynb"))  # type: ignore[no-untyped-call]
    size, page = html_bytes(nb, state=False)
    with_state, _ = html_bytes(nb, state=True)
    empty = new_notebook(cells=[new_code_cell(c.source) for c in nb.cells])  # type: ignore[no-untyped-call]
    frame, _ = html_bytes(empty, state=False)
    thumbs = len(re.findall(r'<img [^>]*src="data:image/jpeg;base64,', page))
    copies = page.count('class="nbw-static ')
    per_image = size / IMAGES

    png = folder / "photo-1k.png"
    png.write_bytes(photo_png(1024 if not sizes.quick else 256))
    base_nb = execute([f"from PIL import Image\ndisplay(Image.open({str(png)!r}))"], folder)
    base_size, _ = html_bytes(base_nb, state=False)
    base_frame, _ = html_bytes(
        new_notebook(cells=[new_code_cell(base_nb.cells[0].source)]),  # type: ignore[no-untyped-call]
        state=False)
    baseline = base_size - base_frame

    return Figure(
        14, "nbconvert HTML bytes per image: 2×2 grid, comparison, panel with 4 results",
        kib(per_image), "≤ 60 KB", f"{kib(baseline)} (`display(PIL.Image)` of a 1K PNG)",
        per_image <= 60 * 1024,
        notes=[
            f"A notebook with a 2×2 grid, a comparison (with a pick) and a panel that made "
            f"four results, executed with nbclient against the emulator drawing photo-like "
            f"images, saved without widget state (JupyterLab's default) and exported with "
            f"nbconvert: {kib(size)} for {IMAGES} images, {kib(per_image)} per image, every "
            f"one shown in the views' {copies} static copies ({thumbs} JPEG thumbnails in "
            f"all: the panel's history strip adds small ones). Of that, {kib(frame)} is "
            f"nbconvert's page with no output at all; the outputs add "
            f"{kib((size - frame) / IMAGES)} per image.",
            f"Saved with the widget state too (nbclient's default, or JupyterLab's \"save "
            f"widget state\"), the page is {kib(with_state)}, {kib(with_state / IMAGES)} per "
            "image: the live widgets' thumbnails come again in the state, for the HTML widget "
            "manager (the static copies are what shows when it cannot load).",
            "Baseline: a photo-like 1024×1024 PNG shown with `display(PIL.Image)`, embedded "
            "in full as base64 (its page less nbconvert's empty page).",
        ],
        raw={"per_image": per_image, "bytes": size, "with_state": with_state,
             "frame": frame, "baseline": baseline, "thumbnails": thumbs},
    )
