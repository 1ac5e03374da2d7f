"""The emulator draws prompts in any common script (issue 13, item 17): accented Latin,
Greek, Cyrillic, kana, CJK ideographs and Hangul each get their own glyphs, and what no
shipped font has is drawn as a clean box instead of breaking the line."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw

from nanobanana_widgets.emulator import drawing
from nanobanana_widgets.emulator.typeface import FONT_FILES, coverage, lettering, missing

SAMPLES = ["é", "ü", "ç", "ő", "ω", "λ", "ж", "ы", "猫", "館", "の", "カ", "고", "양"]
PROMPTS = {
    "French": "a tabby cat in a Paris café",
    "Vietnamese": "con mèo ở quán cà phê Sài Gòn",
    "Greek": "μια γάτα σε ένα καφέ",
    "Cyrillic": "кот в кафе, Москва",
    "Japanese": "東京のカフェにいる猫",
    "Chinese": "巴黎咖啡馆里的猫 · 巴黎咖啡館裡的貓",
    "Korean": "파리 카페의 고양이",
}


def drawn(text: str, size: int = 48) -> Image.Image:
    """``text`` drawn by the emulator's own text routine, as a mask."""
    img = Image.new("RGB", (size * 2 * len(text), size * 2), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    drawing._text_block(draw, [text], drawing._font(size), (0, 0, *img.size),
                        fill=(255, 255, 255), shadow=(0, 0, 0))
    return img.convert("L")


def test_every_sample_character_has_a_glyph_of_its_own() -> None:
    masks = {ch: drawn(ch) for ch in SAMPLES}
    for ch, mask in masks.items():
        assert mask.getbbox() is not None, f"{ch!r} drew nothing"
    for a, b in itertools.combinations(SAMPLES, 2):
        # A missing glyph is the same box whatever the character: two of them would match.
        assert ImageChops.difference(masks[a], masks[b]).getbbox() is not None, (a, b)


@pytest.mark.parametrize("language", PROMPTS)
def test_common_scripts_are_covered(language: str) -> None:
    assert missing(PROMPTS[language]) == ""


def test_what_no_font_has_is_a_box_of_the_text_height_and_the_line_goes_on() -> None:
    assert missing("a cat 🐱 and 𝔘") == "🐱𝔘"
    font = lettering(40)
    assert font.getlength("🐱") == pytest.approx(24.0)
    assert font.getlength("ab🐱cd") == pytest.approx(font.getlength("abcd") + 24.0)
    img = drawing.render_generate("a cat 🐱 in a café", (320, 200))
    assert img.size == (320, 200)


def test_the_drawings_stay_deterministic() -> None:
    a = drawing.encode_png(drawing.render_generate("東京の猫 café", (256, 256)))
    b = drawing.encode_png(drawing.render_generate("東京の猫 café", (256, 256)))
    assert a == b


def test_the_fonts_and_their_licences_ship_with_the_package() -> None:
    folder = FONT_FILES[0].parent
    for path in FONT_FILES:
        assert path.is_file() and coverage(path), path
    for name in ("LICENSE-DejaVu.txt", "LICENSE-Droid.txt", "LICENSE-Baekmuk.txt", "README.txt"):
        assert (folder / name).is_file(), name
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    text = pyproject.read_text()
    assert '"emulator/fonts/*.ttf"' in text and '"emulator/fonts/*.txt"' in text
    total = sum(path.stat().st_size for path in FONT_FILES)
    assert total < 2_200_000, total  # subsets, not whole CJK fonts (tens of MB)
