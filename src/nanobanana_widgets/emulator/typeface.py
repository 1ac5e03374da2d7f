"""The emulator's lettering: prompts in any common script, with a clean fallback.

Pillow's own font covers Latin only ("café" came out as "caf⊠"). The package ships three
font subsets (``emulator/fonts/``, see its README): DejaVu Sans for Latin, Greek and
Cyrillic, Droid Sans Fallback for kana and the common CJK ideographs, and Baekmuk Dotum
for Hangul. Each
character is drawn with the first font that has it; a character neither has is drawn as a
thin outlined box of the text's height (never the font's tofu glyph squeezed in another
font's metrics). Coverage is read from the fonts' own ``cmap`` tables.

Without FreeType (a Pillow built without it) the text falls back to Pillow's bitmap font.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

__all__ = ["FONT_FILES", "Lettering", "coverage", "lettering", "missing"]

_FONTS = Path(__file__).parent / "fonts"
FONT_FILES: tuple[Path, ...] = (_FONTS / "DejaVuSans-subset.ttf",
                                _FONTS / "DroidSansFallback-subset.ttf",
                                _FONTS / "BaekmukDotum-subset.ttf")
"""The fonts, in the order a character is looked for."""

Colour = tuple[int, int, int]


def _cmap_format4(data: bytes, at: int) -> Iterator[int]:
    seg2 = struct.unpack_from(">H", data, at + 6)[0]
    ends = at + 14
    starts = ends + seg2 + 2
    deltas = starts + seg2
    offsets = deltas + seg2
    for i in range(seg2 // 2):
        end, start = (struct.unpack_from(">H", data, p + 2 * i)[0] for p in (ends, starts))
        delta = struct.unpack_from(">h", data, deltas + 2 * i)[0]
        offset = struct.unpack_from(">H", data, offsets + 2 * i)[0]
        for code in range(start, end + 1):
            if code == 0xFFFF:
                continue
            if offset == 0:
                glyph = (code + delta) & 0xFFFF
            else:
                where = offsets + 2 * i + offset + 2 * (code - start)
                glyph = struct.unpack_from(">H", data, where)[0]
                glyph = (glyph + delta) & 0xFFFF if glyph else 0
            if glyph:
                yield code


def _cmap_format12(data: bytes, at: int) -> Iterator[int]:
    groups = struct.unpack_from(">I", data, at + 12)[0]
    for i in range(groups):
        start, end, glyph = struct.unpack_from(">III", data, at + 16 + 12 * i)
        for k, code in enumerate(range(start, end + 1)):
            if glyph + k:
                yield code


@lru_cache(maxsize=4)
def coverage(path: Path) -> frozenset[int]:
    """The code points a TrueType font has glyphs for (its Unicode ``cmap``)."""
    data = path.read_bytes()
    tables = struct.unpack_from(">H", data, 4)[0]
    cmap = None
    for i in range(tables):
        tag, _sum, offset, _length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
        if tag == b"cmap":
            cmap = offset
    if cmap is None:
        return frozenset()
    found: set[int] = set()
    subtables = struct.unpack_from(">H", data, cmap + 2)[0]
    for i in range(subtables):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
        if (platform, encoding) not in ((3, 1), (3, 10), (0, 3), (0, 4)):
            continue
        at = cmap + offset
        fmt = struct.unpack_from(">H", data, at)[0]
        if fmt == 4:
            found.update(_cmap_format4(data, at))
        elif fmt == 12:
            found.update(_cmap_format12(data, at))
    return frozenset(found)


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


class Lettering:
    """Text at one size in the chain of fonts: measure it, draw it.

    ``size`` is in pixels; ``getlength(text)`` and ``text(draw, xy, text, fill)`` work
    like Pillow's, run by run of characters that share a font."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._fonts: list[tuple[Font, frozenset[int] | None]] = []
        try:
            for path in FONT_FILES:
                self._fonts.append((ImageFont.truetype(str(path), size), coverage(path)))
        except (OSError, ImportError):  # no FreeType, or the files are missing
            self._fonts = [(self._fallback(size), None)]

    @staticmethod
    def _fallback(size: int) -> Font:
        try:
            return ImageFont.load_default(size=size)
        except Exception:  # Pillow built without FreeType
            return ImageFont.load_default()

    def _font_for(self, char: str) -> Font | None:
        """The first font with a glyph for ``char`` (``None``: none has one)."""
        if char.isspace():
            return self._fonts[0][0]
        code = ord(char)
        for font, covered in self._fonts:
            if covered is None or code in covered:
                return font
        return None

    def runs(self, text: str) -> list[tuple[Font | None, str]]:
        """``text`` cut into runs that share a font (``None``: drawn as boxes)."""
        out: list[tuple[Font | None, str]] = []
        for char in text:
            font = self._font_for(char)
            if out and out[-1][0] is font:
                out[-1] = (font, out[-1][1] + char)
            else:
                out.append((font, char))
        return out

    def _box_width(self) -> float:
        return self.size * 0.6

    def getlength(self, text: str) -> float:
        """The width of ``text`` in pixels."""
        total = 0.0
        for font, run in self.runs(text):
            total += font.getlength(run) if font is not None else self._box_width() * len(run)
        return total

    def text(self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
             fill: Colour) -> None:
        """Draw ``text`` with its top-left at ``xy``."""
        x, y = xy
        top = self._fonts[0][0]
        ascent = top.getmetrics()[0] if isinstance(top, ImageFont.FreeTypeFont) else self.size
        for font, run in self.runs(text):
            if font is None:
                width = self._box_width()
                line = max(1, self.size // 16)
                for _ in run:
                    box = (x + width * 0.12, y + ascent - self.size * 0.72,
                           x + width * 0.88, y + ascent)
                    draw.rectangle(box, outline=fill, width=line)
                    x += width
                continue
            offset = 0.0
            if isinstance(font, ImageFont.FreeTypeFont) and font is not top:
                offset = ascent - font.getmetrics()[0]  # share one baseline
            draw.text((x, y + offset), run, font=font, fill=fill)
            x += font.getlength(run)


@lru_cache(maxsize=32)
def lettering(size: int) -> Lettering:
    """The :class:`Lettering` of ``size`` pixels (kept: fonts load once per size)."""
    return Lettering(size)


def missing(text: str) -> str:
    """The characters of ``text`` that no font has (drawn as boxes)."""
    return "".join(run for font, run in lettering(20).runs(text) if font is None)
