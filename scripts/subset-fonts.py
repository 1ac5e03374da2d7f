"""Make the emulator's two fonts (src/nanobanana_widgets/emulator/fonts/) from their sources.

The offline emulator draws each prompt into its placeholder images. Pillow's own font is
Latin only, so "a tabby cat in a Paris café" came out as "caf⊠". The package ships two
subsets instead, drawn in this order per character:

* DejaVu Sans 2.37 (Bitstream Vera licence + public-domain changes): Latin with Vietnamese
  and IPA, combining marks, Greek (polytonic too), Cyrillic and its supplement,
  punctuation, currency, letterlike signs, arrows, maths, box drawing, shapes, dingbats.
* Droid Sans Fallback (Apache 2.0): kana, CJK punctuation, full-width forms and the common
  ideographs: GB 2312 level 1, Big5 level 1 and JIS X 0208 level 1 (about 7,700).
* Baekmuk Dotum (Baekmuk licence, MIT-like; Droid Sans Fallback has no Hangul): Hangul
  letters and the 2,350 Hangul syllables of KS X 1001.

A character neither has is drawn as an outlined box (see ``emulator/typeface.py``).

Run with fontTools installed (a development tool, not a dependency of the package):

    apt-get install fonts-dejavu-core fonts-droid-fallback fonts-baekmuk
    pip install fonttools
    python scripts/subset-fonts.py
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

OUT = Path(__file__).resolve().parents[1] / "src" / "nanobanana_widgets" / "emulator" / "fonts"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DROID = Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf")
DOTUM = Path("/usr/share/fonts/truetype/baekmuk/dotum.ttf")

LATIN_GREEK_CYRILLIC = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF),
    (0x400, 0x52F), (0x1E00, 0x1EFF), (0x1F00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x209F),
    (0x20A0, 0x20CF), (0x2100, 0x218F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF),
    (0x2500, 0x257F), (0x25A0, 0x25FF), (0x2600, 0x26FF), (0x2700, 0x27BF), (0xFB00, 0xFB06),
    (0xFFFD, 0xFFFD),
]
CJK_BLOCKS = [(0x3000, 0x303F), (0x3040, 0x309F), (0x30A0, 0x30FF), (0xFF00, 0xFFEF)]


def _codec_rows(codec: str, rows: range, cells: list[int]) -> set[str]:
    found = set()
    for hi in rows:
        for lo in cells:
            with contextlib.suppress(UnicodeDecodeError):
                found.add(bytes([hi, lo]).decode(codec))
    return found


EUC = list(range(0xA1, 0xFF))


def cjk_characters() -> set[str]:
    """Kana and the common ideographs of Chinese (simplified and traditional) and
    Japanese."""
    chars = {chr(c) for a, b in CJK_BLOCKS for c in range(a, b + 1)}
    chars |= _codec_rows("gb2312", range(0xB0, 0xD8), EUC)  # GB 2312 level 1
    chars |= _codec_rows("euc_jp", range(0xB0, 0xD0), EUC)  # JIS X 0208 level 1
    chars |= _codec_rows("big5", range(0xA4, 0xC7),
                         list(range(0x40, 0x7F)) + EUC)  # Big5 level 1
    return chars


def hangul_characters() -> set[str]:
    """Hangul letters and the syllables of KS X 1001."""
    chars = {chr(c) for c in range(0x3130, 0x3190)}
    return chars | _codec_rows("euc_kr", range(0xB0, 0xC9), EUC)


def make(source: Path, text: str, target: Path) -> None:
    options = subset.Options()
    options.hinting = False  # drawn large; hinting only adds bytes
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.layout_features = ["kern", "liga", "ccmp", "locl", "mark", "mkmk"]
    font = TTFont(source)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    font.save(target)
    print(f"{target.name}: {target.stat().st_size:,} bytes")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    latin = "".join(chr(c) for a, b in LATIN_GREEK_CYRILLIC for c in range(a, b + 1))
    make(DEJAVU, latin, OUT / "DejaVuSans-subset.ttf")
    make(DROID, "".join(sorted(cjk_characters())), OUT / "DroidSansFallback-subset.ttf")
    make(DOTUM, "".join(sorted(hangul_characters())), OUT / "BaekmukDotum-subset.ttf")


if __name__ == "__main__":
    main()
