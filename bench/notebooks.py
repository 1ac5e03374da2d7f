"""Figures 4 and 5, measured in a real kernel: the panel's Generate click and the weight
of a saved notebook.

A notebook is executed with nbclient against the emulator (which runs here, in the
benchmark's process, like a remote service). It creates a panel, clicks Generate a few
times (timing each click inside the kernel), and dumps the kernel's widget state as
JupyterLab saves it: ``Widget.get_manager_state(drop_defaults=True)`` stored in the
notebook metadata under ``widgets`` / ``application/vnd.jupyter.widget-state+json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from nanobanana_widgets.images import thumbnail

from .common import TOKEN, Figure, Sizes, emulator_and_client, kib, median, seconds
from .synth import photo_png

WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"

_SAVE_STATE = """\
import json, ipywidgets
def save_widget_state(path):
    with open(path, "w") as fh:
        json.dump(ipywidgets.Widget.get_manager_state(drop_defaults=True), fh)
"""


def execute(cells: list[str], workdir: Path, timeout: int = 180) -> Any:
    """Run ``cells`` in a fresh python3 kernel (working directory ``workdir``)."""
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def saved_bytes(nb: Any, state: dict[str, Any] | None) -> int:
    """Bytes of the notebook saved as JupyterLab would (with the widget state, if any)."""
    copy_nb = copy.deepcopy(nb)
    if state is not None:
        copy_nb.metadata["widgets"] = {WIDGET_STATE_MIME: state}
    return len(nbformat.writes(copy_nb).encode("utf-8"))  # type: ignore[no-untyped-call]


def panel_notebook(sizes: Sizes, workdir: Path, blocking_seconds: float) -> tuple[Figure,
                                                                                    Figure]:
    """Figures 4 (click time) and 5 (saved bytes per image) from one executed notebook."""
    n = sizes.notebook_images
    state0, state1, clicks_file = (workdir / "state0.json", workdir / "state1.json",
                                   workdir / "clicks.json")
    with emulator_and_client(0.5 if not sizes.quick else 0.05) as (emu, _client):
        cells = [
            "import json, time\n"
            "from nanobanana_widgets import Client, PromptPanel\n"
            f"client = Client({TOKEN!r}, base_url={emu.base_url!r})\n"
            "panel = PromptPanel(client=client, prompt='a lighthouse at dusk, watercolour')\n"
            "panel",
            _SAVE_STATE + f"save_widget_state({str(state0)!r})",
            "clicks = []\n"
            f"for _ in range({n}):\n"
            "    t0 = time.perf_counter()\n"
            "    panel.generate_button.click()\n"
            "    clicks.append(time.perf_counter() - t0)\n"
            "    panel.runs[-1].wait(120)\n"
            "panel.wait_idle(120)\n"
            "print(len(panel.results), 'results;', [r.status for r in panel.runs])",
            f"save_widget_state({str(state1)!r})\n"
            f"json.dump(clicks, open({str(clicks_file)!r}, 'w'))\n"
            "client.close()",
        ]
        nb = execute(cells, workdir)
    images_shown = int(str(nb.cells[2].outputs[0]["text"]).split()[0])
    assert images_shown == n, f"the panel showed {images_shown} results, expected {n}"
    clicks: list[float] = json.loads(clicks_file.read_text())
    with_images = saved_bytes(nb, json.loads(state1.read_text()))
    without = saved_bytes(nb, json.loads(state0.read_text()))
    per_image = with_images / n
    marginal = (with_images - without) / n
    nbformat.write(nb, str(workdir / "panel.ipynb"))  # type: ignore[no-untyped-call]

    # Baseline: display(PIL.Image) of a photo-like 1K PNG.
    png = workdir / "photo-1k.png"
    png.write_bytes(photo_png(1024 if not sizes.quick else 256))
    base_nb = execute([f"from PIL import Image\ndisplay(Image.open({str(png)!r}))"], workdir)
    base_bytes = saved_bytes(base_nb, None)
    photo_thumb = 4 * len(thumbnail(png.read_bytes(), max_side=256, quality=80)) / 3

    click = median(clicks)
    fig4 = Figure(
        4, "kernel time blocked by one Generate click in the panel",
        seconds(click), "≤ 50 ms", f"{seconds(blocking_seconds)} (blocking `generate()`)",
        max(clicks) <= 0.05,
        notes=[
            f"Measured inside a real kernel (nbclient): `panel.generate_button.click()` "
            f"returning, {len(clicks)} clicks: median {seconds(click)}, slowest "
            f"{seconds(max(clicks))} (the target is held by the slowest).",
            f"Baseline: a blocking `generate()` at L = {sizes.grid_latency:g} s holds the "
            "kernel for the whole generation.",
        ],
        raw={"median": click, "max": max(clicks), "baseline": blocking_seconds},
    )
    fig5 = Figure(
        5, "saved .ipynb bytes per generated image shown by the panel",
        kib(per_image), "≤ 60 KB", f"{kib(base_bytes)} (`display(PIL.Image)` of a 1K PNG)",
        per_image <= 60 * 1024,
        notes=[
            f"A notebook with a panel that generated {n} images, saved with its widget state "
            f"as JupyterLab does: {kib(with_images)} in all, {kib(per_image)} per image "
            f"({kib(marginal)} per image over the panel with no image: thumbnails in widget "
            "state, never full images).",
            f"The emulator's images are flat placeholders whose thumbnails are small; a "
            f"photo-like 1K image's 256 px JPEG thumbnail weighs {kib(photo_thumb)} in "
            f"base64, so an upper estimate for real photos is {kib(per_image + photo_thumb)} "
            "per image.",
            "Baseline: a photo-like 1024×1024 PNG shown with `display(PIL.Image)`, "
            "embedded in full as base64.",
        ],
        raw={"per_image": per_image, "marginal": marginal, "baseline": base_bytes,
             "photo_thumb_b64": photo_thumb},
    )
    return fig4, fig5
