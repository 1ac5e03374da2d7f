"""compare() of 2 to 6 images of different sizes, the difference view (a heat map and the
share of changed pixels, images scaled when their sizes differ, an edit against its
input), and picks of several images recorded as votes."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from nanobanana_widgets.client import Client
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.compare import compare
from nanobanana_widgets.widgets.compare.difference import THRESHOLD, difference
from support import wait_until

from .helpers import HOSTILE, all_html

IMG_SRC = re.compile(r'<img[^>]*\bsrc="(data:image/jpeg;base64,[^"]+)"')


def decode(uri: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(uri.partition(",")[2])))
    img.load()
    return img.convert("RGB")


def with_box(size: tuple[int, int], box: tuple[int, int, int, int],
             colour: tuple[int, int, int] = (0, 0, 0)) -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(img).rectangle(box, fill=colour)
    return img


def test_two_to_six_images_of_different_sizes_side_by_side() -> None:
    sizes = [(64, 40), (40, 64), (100, 100), (300, 120), (16, 16), (700, 500)]
    images = [Image.new("RGB", s, (30 * k, 90, 200 - 30 * k)) for k, s in enumerate(sizes)]
    for n in range(2, 7):
        c = compare(*images[:n])
        assert [s.label for s in c.sides] == list("ABCDEF"[:n])
        assert len(c.cards) == n and len(c.buttons) == n
        shown = [decode(IMG_SRC.findall(all_html(card))[0]).size for card in c.cards]
        for (w0, h0), (w1, h1) in zip(sizes[:n], shown, strict=True):
            assert max(w1, h1) <= 512
            assert abs(w0 / h0 - w1 / h1) < 0.05  # each keeps its own shape
        assert (c.view_toggle is not None) == (n == 2)
    with pytest.raises(InvalidParameterError, match=r"2 to 6 images.*nb\.tournament"):
        compare(*images, images[0])


def test_the_difference_of_two_images_of_one_size_counts_the_changed_pixels() -> None:
    a = Image.new("RGB", (100, 80), (255, 255, 255))
    b = with_box((100, 80), (10, 10, 29, 19))  # 20 × 10 = 200 of 8000 pixels
    found = difference(a, b)
    assert found.share == pytest.approx(200 / 8000)
    assert found.size == (100, 80) and found.sizes == ((100, 80), (100, 80))
    assert found.note is None
    assert found.mean == pytest.approx(200 / 8000, rel=1e-6)  # black on white: all 255
    heat = Image.open(io.BytesIO(found.heatmap)).convert("RGB")
    inside, outside = heat.getpixel((20, 15)), heat.getpixel((70, 60))
    assert isinstance(inside, tuple) and isinstance(outside, tuple)
    assert inside[0] > 200 and inside[1] > 150  # hot: yellow
    assert max(outside) < 100  # a dimmed grey copy of A
    # a faint change (JPEG noise) does not count
    faint = with_box((100, 80), (0, 0, 99, 79), (255 - THRESHOLD, 255 - THRESHOLD, 255))
    assert difference(a, faint).share == 0.0
    assert difference(a, a.copy()).share == 0.0


def test_the_difference_view_scales_images_of_other_sizes_and_says_so(
        client: Client, history: History) -> None:
    a = with_box((200, 100), (0, 0, 49, 99))  # the left quarter black
    same_shape = with_box((100, 50), (0, 0, 24, 49))
    found = difference(a, same_shape, labels=("before", "after"))
    assert found.size == (200, 100) and found.sizes == ((200, 100), (100, 50))
    assert found.note == "after was scaled from 100×50 to 200×100 to match before."
    assert found.share < 0.02  # the same picture, only resampled edges differ
    square = Image.new("RGB", (80, 80), (255, 255, 255))
    other = difference(a, square)
    assert other.note is not None and "stretched" in other.note and "aspect ratios" in other.note
    assert other.share == pytest.approx(0.25, abs=0.01)
    big = Image.new("RGB", (3000, 1500), (255, 255, 255))
    assert difference(big, big.copy()).size == (1024, 512)

    c = compare(a, square, labels=[HOSTILE[0], HOSTILE[1]], history=history)
    c.view = "difference"
    wait_until(lambda: "nbw-cmp-diffstat" in c.heat.value, "the heat map in the view")
    shown = c.heat.value
    assert "25.0% of the pixels changed" in shown
    assert "stretched" in shown and "compared at 200×100" in shown
    assert "<script>" not in shown and "<img src=x" not in shown
    assert "&lt;script&gt;" in shown
    assert len(IMG_SRC.findall(shown)) == 1
    assert c.difference.share == pytest.approx(0.25, abs=0.01)


def test_the_difference_of_an_edit_shows_what_the_edit_changed(
        client: Client, history: History, png: Callable[..., bytes]) -> None:
    edited = client.edit("add a night sky", png((250, 20, 20), (64, 48)))
    assert history.flush(timeout=10)
    c = compare(edited, history=history)
    assert c.edit and c.view_toggle is not None
    assert "difference" in [v for _, v in c.view_toggle.options]
    c.view = "difference"
    found = c.difference
    assert found.sizes[0] == (64, 48) and found.sizes[1] != (64, 48)
    assert found.note is not None and "output" in found.note
    assert 0.0 < found.share <= 1.0
    wait_until(lambda: "of the pixels changed between input and output" in c.heat.value,
               "the edit's heat map")


def test_the_difference_of_a_missing_image_says_why(client: Client, history: History) -> None:
    ok = Image.new("RGB", (20, 20))
    c = compare(ok, "/no/such/file.png", history=history)
    c.view = "difference"
    wait_until(lambda: "Could not compute the difference" in c.heat.value, "the reason")
    assert "nbw-cmp-heat-wait" in c.heat.value
    assert c.status.value  # the view still works: a pick is possible
    c.pick("A")
    assert c.picked == "A"


def test_three_images_a_pick_records_a_vote_over_each_other_recorded_image(
        client: Client, history: History) -> None:
    results = [client.generate(f"a paper boat, {style}")
               for style in ("watercolour", "ink", "pastel")]
    assert history.flush(timeout=10)
    ids = [history.find(task_id=r.task_id).id for r in results]  # type: ignore[union-attr]
    c = compare(*results, history=history)
    c.pick("C")
    votes = History(history.path).votes(c.id)
    assert sorted((v.left.record_id, v.right.record_id, v.outcome) for v in votes) == [
        (ids[2], ids[0], "left"), (ids[2], ids[1], "left")]
    assert all(v.left.prompt == "a paper boat, pastel" for v in votes)
    ranking = History(history.path).rankings(by="record")
    assert ranking[0].item == f"#{ids[2]}" and ranking[0].wins == 2
    c.pick("A")  # changing one's mind withdraws C's votes
    votes = History(history.path).votes(c.id)
    assert sorted((v.left.record_id, v.right.record_id) for v in votes) == [
        (ids[0], ids[1]), (ids[0], ids[2])]
    c.tie()
    votes = History(history.path).votes(c.id)
    assert [v.outcome for v in votes] == ["tie"] * 3
    assert not History(history.path).find(task_id=results[0].task_id).favourite  # type: ignore[union-attr]


def test_the_static_rendition_shows_the_view_as_it_is(client: Client, history: History,
                                                       tmp_path: Path) -> None:
    a = with_box((120, 80), (0, 0, 59, 79))
    b = Image.new("RGB", (120, 80), (255, 255, 255))
    c = compare(a, b, labels=[HOSTILE[0], "plain"], history=history)
    c.pick(1)
    side = c.to_html(tmp_path / "side.html").read_text()
    assert side.lower().startswith("<!doctype html>") and "<script>" not in side
    assert side.count("nbw-cmp-card") >= 2 and "nbw-picked" in side
    assert "&lt;script&gt;" in side and "plain picked" in side
    c.view = "slider"
    c.slider.value = 25
    slider = c.static_html()
    assert "clip-path:inset(0 75% 0 0)" in slider and 'aria-valuenow="25"' in slider
    c.view = "difference"
    wait_until(lambda: "nbw-cmp-diffstat" in c.heat.value, "the heat map")
    assert "50.0% of the pixels changed" in c.static_html()
