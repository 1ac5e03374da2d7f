"""Synthetic but realistic test images: camera-like JPEGs and photo-like PNGs.

A flat or smooth image compresses to almost nothing and would flatter every size figure,
so these add sensor-like noise over gradients and a few soft shapes, which is what makes
real photographs large.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def photo_like(width: int, height: int, *, seed: int = 0, noise: float = 11.0) -> Image.Image:
    """An RGB image with gradients, soft blobs and per-pixel noise (like a camera photo)."""
    rng = np.random.default_rng(seed)
    # The smooth scene is drawn at 1/8 size and scaled up (it has no fine detail anyway).
    sw, sh = max(2, width // 8), max(2, height // 8)
    y = np.linspace(0.0, 1.0, sh, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, sw, dtype=np.float32)[None, :]
    red = 70 + 120 * x + 25 * np.sin(7 * y + 3 * x)
    green = 50 + 150 * y + 20 * np.cos(5 * x)
    blue = 90 + 90 * (1 - x) * y + 15 * np.sin(11 * x * y)
    planes = [red + 0 * y, green + 0 * x, blue + 0 * x]
    for _ in range(6):  # soft blobs: subjects in the scene
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.25)
        blob = np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)))
        tint = rng.uniform(-60, 60, size=3)
        planes = [p + t * blob for p, t in zip(planes, tint, strict=True)]
    small = Image.fromarray(np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8), "RGB")
    scene = np.asarray(small.resize((width, height), Image.Resampling.BILINEAR), np.int16)
    grain = rng.normal(0.0, noise, size=(height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(scene + grain, 0, 255).astype(np.uint8), "RGB")


def camera_jpeg(width: int = 6000, height: int = 4000, *, quality: int = 92,
                seed: int = 0) -> bytes:
    """A camera-like JPEG (24 megapixels at the default size, quality 92)."""
    buf = io.BytesIO()
    photo_like(width, height, seed=seed).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def photo_png(side: int = 1024, *, seed: int = 1) -> bytes:
    """A photo-like square PNG (a 1K generated image as the service would return it)."""
    buf = io.BytesIO()
    photo_like(side, side, seed=seed).save(buf, "PNG")
    return buf.getvalue()
