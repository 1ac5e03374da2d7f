"""Pillow drawings for the emulator: real, deterministic PNGs tied to the request.

A generated image shows a gradient and shapes coloured from the prompt's hash, the prompt's
words in large text (in any common script: :mod:`.typeface`), a corner label "offline
emulator" and the image index when there are several. An edited image tiles the input
images and lays a band with the prompt over them.
The same inputs always give the same bytes; any change of prompt or parameters changes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps

from nanobanana_widgets.emulator.typeface import Lettering, lettering
from nanobanana_widgets.service.models import ASPECT_RATIOS

__all__ = [
    "InputImage",
    "decode_data_uri",
    "encode_png",
    "nearest_aspect_ratio",
    "render_edit",
    "render_generate",
]

Font = Lettering

LABEL = "offline emulator"


@dataclass(frozen=True)
class InputImage:
    """One input of an edit: a decoded image, or a placeholder naming where it came from."""

    image: Image.Image | None
    placeholder: str = ""


def _font(size: int) -> Font:
    """Lettering of ``size`` pixels in the package's fonts (see :mod:`.typeface`)."""
    return lettering(size)


def _digest(*parts: str) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.digest()


def _colour(rng: random.Random, *, light: bool) -> tuple[int, int, int]:
    lo, hi = (110, 255) if light else (10, 150)
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _gradient(size: tuple[int, int], top: tuple[int, int, int],
              bottom: tuple[int, int, int], angle: int) -> Image.Image:
    mask = Image.linear_gradient("L").rotate(angle, expand=False).resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)


def _wrap(text: str, font: Font, max_width: int, max_lines: int) -> list[str]:
    """Wrap ``text`` to lines no wider than ``max_width`` (ellipsis past ``max_lines``)."""
    avg = max(1.0, font.getlength("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ") / 37)
    width = max(4, int(max_width / avg))
    lines = textwrap.wrap(" ".join(text.split()), width=width, break_long_words=True) or [""]
    while width > 4 and any(font.getlength(line) > max_width for line in lines):
        width -= 1
        lines = textwrap.wrap(" ".join(text.split()), width=width, break_long_words=True)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, len(lines[-1]) - 1)] + "…"
    return lines


def _text_block(draw: ImageDraw.ImageDraw, lines: Sequence[str], font: Font,
                box: tuple[int, int, int, int], fill: tuple[int, int, int],
                shadow: tuple[int, int, int]) -> None:
    """Draw ``lines`` centred in ``box`` with a one-pixel-per-20 shadow for legibility."""
    x0, y0, x1, y1 = box
    size = getattr(font, "size", 10)
    line_h = int(size * 1.25)
    total = line_h * len(lines)
    y = y0 + max(0, (y1 - y0 - total) // 2)
    off = max(1, int(size) // 20)
    for line in lines:
        w = font.getlength(line)
        x = x0 + max(0, int((x1 - x0 - w) // 2))
        font.text(draw, (x + off, y + off), line, shadow)
        font.text(draw, (x, y), line, fill)
        y += line_h


def _corner_label(draw: ImageDraw.ImageDraw, size: tuple[int, int], index: int,
                  count: int) -> None:
    w, h = size
    font = _font(max(10, min(w, h) // 40))
    text = LABEL if count <= 1 else f"{LABEL} · {index + 1}/{count}"
    pad = max(4, min(w, h) // 100)
    tw = int(font.getlength(text))
    th = int(getattr(font, "size", 10) * 1.3)
    box = (w - tw - 3 * pad, h - th - 2 * pad, w - pad, h - pad)
    draw.rectangle(box, fill=(0, 0, 0))
    font.text(draw, (box[0] + pad, box[1] + pad // 2), text, (255, 255, 255))


def _index_badge(draw: ImageDraw.ImageDraw, size: tuple[int, int], index: int) -> None:
    w, h = size
    r = max(12, min(w, h) // 14)
    pad = max(4, min(w, h) // 40)
    draw.ellipse((pad, pad, pad + 2 * r, pad + 2 * r), fill=(0, 0, 0), outline=(255, 255, 255),
                 width=max(1, r // 10))
    font = _font(int(r * 1.1))
    text = str(index + 1)
    tw = font.getlength(text)
    th = getattr(font, "size", 10)
    font.text(draw, (pad + r - tw / 2, pad + r - th * 0.6), text, (255, 255, 255))


def render_generate(prompt: str, size: tuple[int, int], *, index: int = 0, count: int = 1,
                    key: str = "") -> Image.Image:
    """An image for a ``generate`` request: gradient, shapes and the prompt as large text.

    ``key`` identifies the request's other parameters (model, ratio, ...) so that they change
    the picture too; ``index`` tells the images of one request apart.
    """
    digest = _digest("generate", prompt, key, str(index))
    rng = random.Random(digest)
    w, h = size
    img = _gradient(size, _colour(rng, light=False), _colour(rng, light=True),
                    rng.choice((0, 45, 90, 135, 180, 225, 270, 315)))
    draw = ImageDraw.Draw(img)
    short = min(w, h)
    for _ in range(rng.randint(4, 8)):
        cx, cy = rng.randint(0, w), rng.randint(0, h)
        r = rng.randint(short // 12, short // 4)
        colour = _colour(rng, light=rng.random() < 0.5)
        box = (cx - r, cy - r, cx + r, cy + r)
        shape = rng.randrange(3)
        if shape == 0:
            draw.ellipse(box, fill=colour)
        elif shape == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
    # a translucent panel behind the text keeps it legible over any shapes
    panel = (w // 14, h // 5, w - w // 14, h - h // 5)
    # the mask covers only the panel's box (pasting a whole-image mask, zero outside the
    # panel, gave the same pixels at twice the cost)
    box = (panel[0], panel[1], panel[2] + 1, panel[3] + 1)
    overlay = Image.new("L", (box[2] - box[0], box[3] - box[1]), 0)
    ImageDraw.Draw(overlay).rounded_rectangle(
        (0, 0, panel[2] - panel[0], panel[3] - panel[1]), radius=short // 30, fill=150)
    img.paste((0, 0, 0), box, overlay)
    font = _font(max(12, short // 12))
    lines = _wrap(prompt, font, panel[2] - panel[0] - short // 20, max_lines=6)
    _text_block(draw, lines, font, panel, fill=(255, 255, 255), shadow=(0, 0, 0))
    if count > 1:
        _index_badge(draw, size, index)
    _corner_label(draw, size, index, count)
    return img


def _placeholder_tile(size: tuple[int, int], text: str, seed: bytes) -> Image.Image:
    rng = random.Random(seed)
    tile = _gradient(size, _colour(rng, light=True), (128, 128, 128), 90)
    draw = ImageDraw.Draw(tile)
    draw.line((0, 0, size[0], size[1]), fill=(90, 90, 90), width=max(1, min(size) // 80))
    draw.line((0, size[1], size[0], 0), fill=(90, 90, 90), width=max(1, min(size) // 80))
    font = _font(max(10, min(size) // 10))
    lines = _wrap(text, font, int(size[0] * 0.9), max_lines=3)
    _text_block(draw, lines, font, (0, 0, size[0], size[1]), fill=(0, 0, 0),
                shadow=(255, 255, 255))
    return tile


def _grid(n: int) -> tuple[int, int]:
    cols = 1
    while cols * cols < n:
        cols += 1
    rows = (n + cols - 1) // cols
    return cols, rows


def render_edit(prompt: str, inputs: Sequence[InputImage], size: tuple[int, int], *,
                index: int = 0, count: int = 1, key: str = "") -> Image.Image:
    """An image for an ``edit`` request: the inputs tiled, with a band showing the prompt."""
    digest = _digest("edit", prompt, key, str(index))
    rng = random.Random(digest)
    w, h = size
    img = Image.new("RGB", size, _colour(rng, light=False))
    tiles = list(inputs) or [InputImage(None, "no input")]
    cols, rows = _grid(len(tiles))
    for i, item in enumerate(tiles):
        c, r = i % cols, i // cols
        x0, y0 = c * w // cols, r * h // rows
        x1, y1 = (c + 1) * w // cols, (r + 1) * h // rows
        cell = (max(1, x1 - x0), max(1, y1 - y0))
        if item.image is not None:
            tile = ImageOps.fit(item.image.convert("RGB"), cell, Image.Resampling.BILINEAR)
        else:
            tile = _placeholder_tile(cell, item.placeholder, digest + bytes([i % 256]))
        img.paste(tile, (x0, y0))
    draw = ImageDraw.Draw(img)
    short = min(w, h)
    # the band with the prompt: a thin strip, so the inputs stay the bulk of the picture
    font = _font(max(12, short // 22))
    lines = _wrap(prompt, font, int(w * 0.9), max_lines=2)
    band_h = int(getattr(font, "size", 12) * 1.25 * len(lines) + short // 20)
    band = (0, h - band_h, w, h)
    accent = _colour(rng, light=True)
    draw.rectangle(band, fill=(20, 20, 20))
    draw.rectangle((0, h - band_h, w, h - band_h + max(2, short // 150)), fill=accent)
    _text_block(draw, lines, font, (0, h - band_h, w, h - short // 25), fill=(255, 255, 255),
                shadow=(0, 0, 0))
    if count > 1:
        _index_badge(draw, size, index)
    _corner_label(draw, (w, h - band_h + short // 30), index, count)
    return img


def encode_png(img: Image.Image, *, compress_level: int = 1) -> bytes:
    """PNG bytes of ``img`` (fast compression: the emulator favours speed over size)."""
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=compress_level)
    return out.getvalue()


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a ``data:...;base64,`` URI; raises ``ValueError`` if it is not one."""
    if not uri.startswith("data:"):
        raise ValueError("not a data: URI")
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ValueError("data: URI without a comma")
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"bad base64 in data: URI: {exc}") from None
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(payload)


def data_uri_size(uri: str) -> int:
    """Decoded size in bytes of a base64 ``data:`` URI, computed without decoding it."""
    header, _, payload = uri.partition(",")
    if not header.endswith(";base64"):
        return len(payload)
    n = len(payload.strip())
    padding = len(payload) - len(payload.rstrip("=")) if payload.endswith("=") else 0
    return max(0, n * 3 // 4 - padding)


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The allowed aspect ratio closest to ``width``:``height`` (in log space)."""
    import math

    if width <= 0 or height <= 0:
        return "1:1"
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        a, b = (int(p) for p in ratio.split(":"))
        return abs(math.log(a / b) - target)

    return min(ASPECT_RATIOS, key=distance)
