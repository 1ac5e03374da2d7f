"""Figures measured without the network: 6 (camera JPEG), 7 (history), 9 (import time)."""

from __future__ import annotations

import base64
import io
import math
import subprocess
import sys
from pathlib import Path

from PIL import Image

from nanobanana_widgets.images import thumbnail, to_image_url
from nanobanana_widgets.service.errors import ContentRefusedError
from nanobanana_widgets.service.models import MAX_IMAGE_BYTES
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result, Timings
from nanobanana_widgets.store import History

from .common import Figure, Sizes, Stopwatch, kib, median, seconds
from .synth import camera_jpeg, photo_png

# --- figure 6 ----------------------------------------------------------------------------


def camera_input(sizes: Sizes) -> Figure:
    """A 24-megapixel camera JPEG prepared as an edit input by ``images.to_image_url``."""
    width, height = sizes.jpeg_size
    data = camera_jpeg(width, height, quality=92)
    times: list[float] = []
    uri = ""
    for _ in range(sizes.jpeg_repeats):
        with Stopwatch() as sw:
            uri = to_image_url(data)
        times.append(sw.seconds)
    took = median(times)
    payload = len(uri)
    header, b64 = uri.split(",", 1)
    with Image.open(io.BytesIO(base64.b64decode(b64))) as sent:
        sent_size = sent.size
    raw_uri = len("data:image/jpeg;base64,") + 4 * math.ceil(len(data) / 3)
    limit_mb = MAX_IMAGE_BYTES / (1024 * 1024)
    met = payload < MAX_IMAGE_BYTES and took <= 1.5
    verdict = "over the limit: refused with 413" if raw_uri > MAX_IMAGE_BYTES else "fits"
    return Figure(
        6, f"{width * height / 1e6:.0f}-megapixel camera JPEG as an edit input",
        f"{kib(payload)} in {seconds(took)}", f"< {limit_mb:g} MB, ≤ 1.5 s",
        f"file as a data URI: {kib(raw_uri)} ({verdict})", met,
        notes=[
            f"Input: a synthetic camera JPEG ({width}×{height}, quality 92, gradients and "
            f"sensor-like noise) of {kib(len(data))}.",
            f"Ours: `to_image_url` sends {header.split(';')[0][5:]} at "
            f"{sent_size[0]}×{sent_size[1]} (scaled to the 4096 px default max side); "
            f"median of {len(times)} runs.",
            "Baseline: base64 of the file as it is, what a user without a normaliser sends.",
        ],
        raw={"payload": payload, "seconds": took, "raw_uri": raw_uri},
    )


# --- figure 7 ----------------------------------------------------------------------------

_SUBJECTS = ("a lighthouse at dusk", "a red bicycle", "a siamese cat", "a bowl of ramen",
             "a mountain lake", "a robot gardener", "an old library", "a neon street")
_STYLES = ("watercolour", "photo", "isometric", "oil painting", "pencil sketch")
_MODELS = ("nano-banana", "nano-banana-2", "nano-banana-pro", "nano-banana-2-lite")
_RATIOS = ("1:1", "16:9", "3:2", "9:16")


def build_history(folder: Path, n: int) -> float:
    """A history of ``n`` records (one in ten failed) with thumbnails; returns seconds."""
    thumbs = [thumbnail(photo_png(192, seed=i), max_side=128, quality=70) for i in range(8)]
    with Stopwatch() as sw:
        history = History(folder)
        ids: list[int] = []
        with history.batch():
            for i in range(n):
                prompt = f"{_SUBJECTS[i % 8]}, {_STYLES[i % 5]}, variant {i}"
                req = ImageRequest(action="generate", prompt=prompt, model=_MODELS[i % 4],
                                   aspect_ratio=_RATIOS[i % 4])
                t = 1_750_000_000.0 + 20 * i
                if i % 10 == 9:
                    err = ContentRefusedError(status_code=403, code="forbidden",
                                              trace_id=f"trace-{i:05d}")
                    history.add(req, error=err, task_id=f"task-{i:05d}", created_at=t)
                    continue
                image = GeneratedImage(url=f"https://cdn.example.invalid/{i:05d}.png",
                                       prompt=prompt, task_id=f"task-{i:05d}", index=0,
                                       request=req)
                result = Result(task_id=f"task-{i:05d}", trace_id=f"trace-{i:05d}",
                                request=req, images=(image,),
                                timings=Timings(submitted_at=t, created_at=t + 0.1,
                                                started_at=t + 0.2, finished_at=t + 12.0,
                                                received_at=t + 12.4))
                ids.append(history.add(req, result, status="succeeded", created_at=t).id)
            # The thumbnails a download would have stored (set directly: no 10,000 downloads).
            store = history._store
            for k, rid in enumerate(ids):
                store.set_result_file(rid, 0, sha256=None, path=None, thumbnail=thumbs[k % 8])
        history.close()
    return sw.seconds


def history_view(sizes: Sizes, workdir: Path) -> Figure:
    """Open, filter and render a history of 10,000 records."""
    n = sizes.history_records
    folder = workdir / "history-bench"
    built = build_history(folder, n)
    opens, filters, renders = [], [], []
    shown = found = 0
    page = ""
    for _ in range(sizes.history_repeats):
        with Stopwatch() as t_open:
            history = History(folder)
            total = len(history)
        with Stopwatch() as t_filter:
            view = history.filter(model="nano-banana-pro", status="succeeded").search("cat")
            found = len(view)
            shown = len(list(view.tail(20)))
        with Stopwatch() as t_render:
            page = history._repr_html_()
        history.close()
        assert total == n
        opens.append(t_open.seconds)
        filters.append(t_filter.seconds)
        renders.append(t_render.seconds)
    o, f, r = median(opens), median(filters), median(renders)
    return Figure(
        7, f"history of {n:,} records: open, filter, render its HTML view",
        f"{seconds(o)}, {seconds(f)}, {seconds(r)}", "≤ 1 s, ≤ 0.2 s, ≤ 0.2 s",
        "— (targets only)", o <= 1.0 and f <= 0.2 and r <= 0.2,
        notes=[
            f"{n:,} records (one in ten failed, thumbnails in the database) built in "
            f"{built:.1f} s (not timed). Medians of {len(opens)} rounds, each on a fresh "
            "`History` object:",
            "open = `History(folder)` + `len()`; filter = `filter(model=..., status=...)"
            f".search('cat')` + `len()` + loading its last {shown} records ({found:,} match); "
            f"render = `_repr_html_()`, the first page ({kib(len(page))} of HTML with "
            "thumbnails).",
        ],
        raw={"open": o, "filter": f, "render": r, "build": built},
    )


# --- figure 9 ----------------------------------------------------------------------------

_IMPORT_PROBE = (
    "import time; t0 = time.perf_counter(); {stmt}; print(time.perf_counter() - t0)"
)


def _import_seconds(stmt: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE.format(stmt=stmt)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    return float(out.stdout.strip().splitlines()[-1])


def import_time(sizes: Sizes) -> Figure:
    """``import nanobanana_widgets`` against ``import ipywidgets`` in fresh interpreters."""
    stmts = {
        "ours": "import nanobanana_widgets",
        "ipywidgets": "import ipywidgets",
        "panel": "from nanobanana_widgets import PromptPanel",
    }
    times: dict[str, list[float]] = {k: [] for k in stmts}
    for _ in range(sizes.import_repeats):
        for key, stmt in stmts.items():
            times[key].append(_import_seconds(stmt))
    med = {k: median(v) for k, v in times.items()}
    ratio = med["ours"] / med["ipywidgets"]
    return Figure(
        9, "`import nanobanana_widgets` against `import ipywidgets`",
        f"{ratio:.2f}×", "≤ 1.3×", f"1.00× (`import ipywidgets`: {seconds(med['ipywidgets'])})",
        ratio <= 1.3,
        notes=[
            f"Medians of {sizes.import_repeats} fresh interpreters each: "
            f"`import nanobanana_widgets` {seconds(med['ours'])}, `import ipywidgets` "
            f"{seconds(med['ipywidgets'])}. The package imports its names lazily; "
            f"`from nanobanana_widgets import PromptPanel` (which needs ipywidgets) takes "
            f"{seconds(med['panel'])}, {med['panel'] / med['ipywidgets']:.2f}× ipywidgets.",
        ],
        raw=med,
    )
