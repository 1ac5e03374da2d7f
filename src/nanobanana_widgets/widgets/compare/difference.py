"""Where two images differ: a heat map from Pillow's ``ImageChops`` and the share of pixels
that changed.

Both images are decoded (the second scaled to the first's size when they differ, at most
:data:`WORK_SIDE` px on the longer side), their per-pixel difference taken
(``ImageChops.difference``, the largest of the three channels), and a pixel counts as
changed when that difference is above :data:`THRESHOLD` (of 255), which leaves out JPEG
noise. The heat map lays the difference, from dark red to yellow, over a dimmed grey copy
of the first image, so the changed places show where they are. No widget here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageChops, ImageOps

from nanobanana_widgets.images import load_image
from nanobanana_widgets.service.types import GeneratedImage

__all__ = ["THRESHOLD", "WORK_SIDE", "Difference", "difference"]

THRESHOLD = 24
"""A pixel whose largest channel difference is above this (of 255) counts as changed."""
WORK_SIDE = 1024
"""The longest side the difference is computed at."""
_HEAT_SIDE = 512
_GAIN = 3


@dataclass(frozen=True)
class Difference:
    """What :func:`difference` found: ``share`` of pixels changed (0 to 1), ``mean``
    difference (0 to 1), the ``size`` compared at, the two images' own ``sizes``, a
    ``note`` when they had to be scaled, and the ``heatmap`` (JPEG bytes)."""

    share: float
    mean: float
    size: tuple[int, int]
    sizes: tuple[tuple[int, int], tuple[int, int]]
    note: str | None
    heatmap: bytes = field(repr=False)


def _decode(source: Any) -> Image.Image:
    if isinstance(source, GeneratedImage):
        source = source.bytes()  # downloaded once, kept by the image
    return load_image(source).convert("RGB")


def _ratio(size: tuple[int, int]) -> float:
    return size[0] / size[1] if size[1] else 1.0


def difference(a: Any, b: Any, *, labels: tuple[str, str] = ("A", "B")) -> Difference:
    """The difference of images ``a`` and ``b`` (anything :func:`load_image` takes, or a
    generated image)."""
    first, second = _decode(a), _decode(b)
    sizes = (first.size, second.size)
    work = first
    if max(work.size) > WORK_SIDE:
        scale = WORK_SIDE / max(work.size)
        work = work.resize((max(1, round(work.width * scale)), max(1, round(work.height * scale))),
                           Image.Resampling.LANCZOS)
    note = None
    if second.size != work.size:
        if abs(_ratio(second.size) - _ratio(first.size)) > 0.01 * _ratio(first.size):
            note = (f"{labels[1]} ({second.width}×{second.height}) was stretched to "
                    f"{labels[0]}'s shape ({first.width}×{first.height}) to compare them: "
                    "their aspect ratios differ.")
        elif second.size != first.size:
            note = (f"{labels[1]} was scaled from {second.width}×{second.height} to "
                    f"{work.width}×{work.height} to match {labels[0]}.")
        second = second.resize(work.size, Image.Resampling.LANCZOS)
    diff = ImageChops.difference(work, second)
    red, green, blue = diff.split()
    strength = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    histogram = strength.histogram()
    total = work.width * work.height
    changed = sum(histogram[THRESHOLD + 1:])
    mean = sum(v * n for v, n in enumerate(histogram)) / (255.0 * total)
    amplified = strength.point(lambda v: min(255, v * _GAIN))
    heat = ImageOps.colorize(amplified, black=(40, 0, 0), mid=(225, 35, 35),
                             white=(255, 240, 120))
    base = ImageOps.grayscale(work).point(lambda v: int(v * 0.35)).convert("RGB")
    picture = Image.composite(heat, base, amplified)
    picture.thumbnail((_HEAT_SIDE, _HEAT_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    picture.save(buf, "JPEG", quality=85)
    return Difference(share=changed / total, mean=mean, size=work.size, sizes=sizes, note=note,
                      heatmap=buf.getvalue())
