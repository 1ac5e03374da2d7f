"""compare(): side-by-side cards, the word-level prompt diff, the before/after slider, picks
recorded in the history, edit input vs output, and escaping, against the emulator."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import ipywidgets as w
import numpy as np
import pytest
from PIL import Image

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.render.compare import prompt_diff_html, word_diff
from nanobanana_widgets.service.errors import ContentRefusedError, InvalidParameterError
from nanobanana_widgets.service.types import ImageRequest, Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.compare import Comparison, compare
from support import wait_until

from .helpers import HOSTILE, descendants

IMG_SRC = re.compile(r'<img[^>]*\bsrc="(data:image/jpeg;base64,[^"]+)"')


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Tasks take 0.05 s here."""
    with Emulator(latency=0.05) as e:
        yield e


def decode(uri: str) -> Image.Image:
    head, _, body = uri.partition(",")
    assert head == "data:image/jpeg;base64"
    img = Image.open(io.BytesIO(base64.b64decode(body)))
    img.load()
    return img


def html_values(widget: w.Widget) -> Iterator[str]:
    """Every HTML string and text label in a widget tree."""
    if isinstance(widget, (w.HTML, w.HTMLMath)):
        yield widget.value
    if isinstance(widget, w.Button):
        yield widget.description
        yield widget.tooltip or ""
    if isinstance(widget, w.ToggleButtons):
        yield from (str(label) for label in widget._options_labels)
    if isinstance(widget, w.IntSlider):
        yield widget.description
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


def all_html(widget: w.Widget) -> str:
    return "\n".join(html_values(widget))


def marked(html_text: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}\b[^>]*>(.*?)</{tag}>", html_text)


# --- the diff --------------------------------------------------------------------------


def test_word_diff_marks_inserted_deleted_and_replaced_words() -> None:
    ops = word_diff("a red fox in the snow", "a blue fox in   the snow at night")
    assert ops == [("equal", "a"), ("delete", "red"), ("insert", "blue"),
                   ("equal", "fox in the snow"), ("insert", "at night")]
    assert word_diff("same words", " same\twords ") == [("equal", "same words")]
    assert word_diff("", "new") == [("insert", "new")]
    assert word_diff("old", "") == [("delete", "old")]
    # punctuation that ends a word is apart: only the word changed
    assert word_diff("a lighthouse at dusk, oil painting", "a lighthouse at dawn, oil painting") \
        == [("equal", "a lighthouse at"), ("delete", "dusk"), ("insert", "dawn"),
            ("equal", ", oil painting")]
    assert word_diff("at dusk", "at dusk, cinematic") == [("equal", "at dusk"),
                                                          ("insert", ", cinematic")]
    assert prompt_diff_html("at dusk", "at dusk, cinematic").startswith("at dusk<ins")


def test_prompt_diff_html_escapes_and_marks() -> None:
    out = prompt_diff_html("a cat", "a <b>cat</b> & <script>x</script>")
    assert "<script>" not in out and "<b>" not in out
    assert marked(out, "ins") == ["&lt;b&gt;cat&lt;/b&gt; &amp; &lt;script&gt;x&lt;/script&gt;"]
    assert marked(out, "del") == ["cat"]


def test_two_results_side_by_side_with_thumbnails_params_and_prompt_diff(
        client: Client, history: History) -> None:
    a = client.generate("a red fox in the snow", aspect_ratio="3:2")
    b = client.generate("a blue fox in the snow at night", model="nano-banana-pro",
                    aspect_ratio="3:2")
    c = compare(a, b, history=history)
    assert isinstance(c, Comparison) and isinstance(c, w.VBox)
    assert [s.label for s in c.sides] == ["A", "B"]
    cards = [all_html(card) for card in c.cards]
    thumbs = [IMG_SRC.findall(card) for card in cards]
    assert [len(t) for t in thumbs] == [1, 1]
    images = [decode(t[0]) for t in thumbs]
    assert all(max(img.size) <= 512 for img in images)
    assert images[0].tobytes() != images[1].tobytes()  # two different images
    assert "a red fox in the snow" in cards[0] and "at night" in cards[1]
    # parameters shown; the ones that differ from A's are emphasised on B's card
    assert "model: nano-banana" in cards[0] and "aspect ratio: 3:2" in cards[0]
    assert re.search(r'nbw-cmp-changed[^>]*>model: nano-banana-pro<', cards[1])
    assert "nbw-cmp-changed" not in cards[0]
    assert len(re.findall(r'class="nbw-cmp-changed"', cards[1])) == 1  # not time, not task
    assert f"task {a.task_id}" in cards[0] and f"task {b.task_id}" in cards[1]
    # the prompt diff marks exactly the changed words
    diff = c.diff.value
    assert marked(diff, "del") == ["red"]
    assert marked(diff, "ins") == ["blue", "at night"]
    assert "fox in the snow" in re.sub(r"<(ins|del)\b.*?</\1>", "", diff)
    # cards link to a full-size copy beside the notebook (never to the loopback service,
    # never embedded): the file is the image itself
    href = re.search(r'href="(nanobanana-files/[^"]+\.png)"', cards[0])
    assert href is not None and a.image.url not in all_html(c)
    assert Image.open(Path(href.group(1))).size == Image.open(io.BytesIO(a.image.bytes())).size
    assert "image/png" not in all_html(c)


def test_slider_view_reveals_the_first_image_by_the_slider_value(
        client: Client, history: History) -> None:
    a = client.generate("before", aspect_ratio="16:9")
    b = client.generate("after", aspect_ratio="16:9")
    c = compare(a, b, labels=["before", "after"], history=history)
    assert c.view == "side" and c.slider_box.layout.display == "none"
    assert c.divider.html == ""  # built on first use only: no duplicate thumbnails
    c.view = "slider"
    assert c.view_toggle is not None and c.view_toggle.value == "slider"
    assert c.slider_box.layout.display == "flex" and c.cards_box.layout.display == "none"
    stage = c.divider.html
    srcs = IMG_SRC.findall(stage)
    assert len(srcs) == 2
    top = re.search(r'<img class="nbw-cmp-top" src="([^"]+)"', stage)
    bottom = re.search(r'<img class="nbw-cmp-bottom" src="([^"]+)"', stage)
    assert top and bottom
    assert top.group(1) == IMG_SRC.findall(all_html(c.cards[0]))[0]  # "before" on top
    assert bottom.group(1) == IMG_SRC.findall(all_html(c.cards[1]))[0]
    bw, bh = decode(bottom.group(1)).size
    assert f"aspect-ratio:{bw} / {bh}" in stage and bw > bh  # 16:9, as the images
    # drawn at the slider's value; the stage is a focusable slider that cannot be dragged
    # away or selected (the front end moves it: static/divider.js)
    assert "clip-path:inset(0 50% 0 0)" in stage and 'aria-valuenow="50"' in stage
    assert 'role="slider"' in stage and 'tabindex="0"' in stage
    assert stage.count('draggable="false"') == 2 and "user-select:none" in stage
    assert "touch-action:none" in stage
    # the slider and the divider are one value, whichever moves
    c.slider.value = 30
    assert c.divider.value == 30 and c.clip_style == "clip-path:inset(0 70% 0 0);"
    c.divider.value = 80  # a drag on the image, as the front end reports it
    assert c.slider.value == 80 and c.clip_style == "clip-path:inset(0 20% 0 0);"
    c.divider.value = 140  # never past the ends
    assert c.divider.value == 100 and c.slider.value == 100
    c.view = "side"
    assert c.slider_box.layout.display == "none" and c.cards_box.layout.display == "grid"
    c.view = "slider"
    assert 'aria-valuenow="50"' in stage and c.divider.html == stage  # built once


def test_the_pick_buttons_and_a_tie_stay_under_every_view(client: Client,
                                                          history: History) -> None:
    a = client.generate("a kite over the sea")
    b = client.generate("a kite over the hills")
    c = compare(a, b, history=history)
    assert history.flush(timeout=10)
    assert [x.description for x in c.pick_bar.children] == ["A is better", "B is better", "Tie"]
    for view in ("side", "slider", "difference", "side"):
        c.view = view
        shown = [box for box in (c.cards_box, c.slider_box, c.heat_box)
                 if box.layout.display != "none"]
        assert len(shown) == 1  # one view at a time ...
        assert c.pick_bar in c.children and c.pick_bar.layout.display != "none"
        assert all(button not in shown[0].children for button in c.buttons)  # ... buttons apart
    c.view = "slider"
    c.tie_button.click()
    assert c.picked == "tie" and c.winner is None
    assert c.tie_button.button_style == "success" and c.tie_button.description == "✓ Tie"
    assert all(x.button_style == "" for x in c.buttons)
    assert "Tie: recorded in the history (1 tie vote)" in c.status.value
    votes = History(history.path).votes(c.id)
    assert [v.outcome for v in votes] == ["tie"]
    assert not any(r.favourite for r in history)
    c.buttons[1].click()  # a pick replaces the tie
    assert c.picked == "B" and c.tie_button.button_style == ""
    votes = History(history.path).votes(c.id)
    assert [(v.outcome, v.left.record_id, v.right.record_id) for v in votes] == [
        ("left", history.find(task_id=b.task_id).id, history.find(task_id=a.task_id).id)]


def test_picking_a_winner_is_recorded_in_the_history(client: Client, history: History) -> None:
    a = client.generate("a lighthouse at dawn")
    b = client.generate("a lighthouse at dusk")
    assert history.flush(timeout=10)
    history.note(a.task_id, "my own note")
    c = compare(a, b, history=history)
    ids = {r.task_id: r.id for r in history}
    c.buttons[1].click()  # "B is better"
    assert c.picked == "B" and c.winner is c.sides[1]
    assert c.buttons[1].button_style == "success" and "picked" in c.buttons[1].description
    assert c.buttons[0].button_style == "" and c.buttons[0].description == "A is better"
    assert "nbw-picked" in c.cards[1]._dom_classes
    assert "nbw-picked" not in c.cards[0]._dom_classes
    assert f"record #{ids[b.task_id]} marked favourite" in c.status.value

    fresh = History(history.path)  # a new connection: what is on disk
    rec_b = fresh.filter(task_id=b.task_id)[0]
    rec_a = fresh.filter(task_id=a.task_id)[0]
    assert rec_b.favourite and not rec_a.favourite
    assert rec_b.notes == f"Picked in comparison {c.id} over #{ids[a.task_id]} (A)."
    assert rec_b.rating == 0  # the rating stays the user's
    fresh.close()

    # changing one's mind moves the pick and undoes only what the comparison did
    history.favourite(a.task_id)  # the user had A as a favourite already
    c.pick("A")
    fresh = History(history.path)
    rec_a = fresh.filter(task_id=a.task_id)[0]
    rec_b = fresh.filter(task_id=b.task_id)[0]
    assert not rec_b.favourite and rec_b.notes == ""
    assert rec_a.favourite
    assert rec_a.notes == ("my own note\n"
                           f"Picked in comparison {c.id} over #{ids[b.task_id]} (B).")
    fresh.close()
    c.pick(1)
    fresh = History(history.path)
    rec_a = fresh.filter(task_id=a.task_id)[0]
    assert rec_a.favourite and rec_a.notes == "my own note"  # was a favourite before
    fresh.close()
    assert c.buttons[0].button_style == "" and c.buttons[1].button_style == "success"


def test_compare_history_records_and_lists(client: Client, history: History) -> None:
    for prompt in ("one small boat", "two small boats", "three big boats"):
        client.generate(prompt)
    assert history.flush(timeout=10)
    c = compare(history[:], history=history)  # a view as the only argument
    assert [s.label for s in c.sides] == ["A", "B", "C"]
    assert all(s.kind == "record" for s in c.sides)
    assert [b.description for b in c.buttons] == ["A is better", "B is better", "C is better"]
    assert c.view_toggle is None  # the slider is for two images only
    with pytest.raises(InvalidParameterError):
        c.view = "slider"
    rows = re.findall(r'class="nbw-cmp-diff".*?</div>', c.diff.value)
    assert len(rows) == 2 and "A → B" in rows[0] and "A → C" in rows[1]
    assert marked(rows[0], "ins") == ["two", "boats"] and marked(rows[0], "del") == ["one", "boat"]
    assert all(len(IMG_SRC.findall(all_html(card))) == 1 for card in c.cards)
    assert "record: #1" in all_html(c.cards[0])
    c.buttons[2].click()
    rec = History(history.path)[2]
    assert rec.favourite and rec.notes.endswith("over #1 (A), #2 (B).")


def test_files_pil_images_arrays_and_bytes(client: Client, history: History, tmp_path: Path,
                                           png: Callable[..., bytes]) -> None:
    result = client.generate("a saved painting of a pear", aspect_ratio="1:1")
    saved = result.image.save(tmp_path / "pear.png")  # metadata embedded
    c = compare(saved, Image.new("RGB", (64, 40), (0, 90, 200)),
                np.full((30, 50, 3), 200, dtype=np.uint8), png((10, 200, 10), (48, 32)),
                history=history)
    assert [s.kind for s in c.sides] == ["file"] * 4
    assert c.sides[0].prompt == "a saved painting of a pear"  # read from the file
    assert c.sides[0].task_id == result.task_id
    assert c.sides[1].prompt is None
    assert "(no prompt known)" in all_html(c.cards[1])
    colour = decode(IMG_SRC.findall(all_html(c.cards[1]))[0]).convert("RGB").getpixel((5, 5))
    assert isinstance(colour, tuple) and abs(colour[2] - 200) < 12 and colour[0] < 15
    n = len(history)
    c.pick("B")  # a PIL image: shown as picked, nothing written
    assert "not recorded" in c.status.value and c.picked == "B"
    assert len(history) == n and not any(r.favourite for r in history)
    c.pick("A")  # the saved file knows its task id: recorded
    assert history.filter(task_id=result.task_id)[0].favourite


def test_compare_an_edit_shows_its_input_against_its_output(
        client: Client, history: History, png: Callable[..., bytes]) -> None:
    source = png((250, 20, 20), (64, 48))
    edited = client.edit("make it night", source)
    assert history.flush(timeout=10)
    for c in (compare(edited, history=history), compare(history[-1], history=history),
              compare(history[-1].result(), history=history)):
        assert c.edit and [s.label for s in c.sides] == ["input", "output"]
        assert c.sides[0].kind == "input" and c.sides[1].kind in ("result", "record")
        assert "Edit: input → output" in c.title.value
        assert [b.description for b in c.buttons] == ["input is better", "output is better"]
        inp = decode(IMG_SRC.findall(all_html(c.cards[0]))[0]).convert("RGB")
        out = decode(IMG_SRC.findall(all_html(c.cards[1]))[0]).convert("RGB")
        assert inp.size == (64, 48)  # the input itself, not a generated image
        r, g, b = inp.getpixel((10, 10))  # type: ignore[misc]
        assert r > 200 and g < 60 and b < 60
        assert out.size != inp.size
        assert "Edit instruction" in c.diff.value and "make it night" in c.diff.value
        c.view = "slider"
        assert len(IMG_SRC.findall(c.divider.html)) == 2
    c.buttons[1].click()
    rec = History(history.path).filter(task_id=edited.task_id)[0]
    assert rec.favourite and f"comparison {c.id}" in rec.notes


def test_one_image_that_is_not_an_edit_is_refused(client: Client, history: History) -> None:
    result = client.generate("just one")
    with pytest.raises(InvalidParameterError, match="two or more images"):
        compare(result, history=history)
    with pytest.raises(InvalidParameterError, match="labels"):
        compare(result, result, labels=["only one"], history=history)
    with pytest.raises(InvalidParameterError, match="labels that differ"):
        compare(result, result, labels=["x", "x"], history=history)
    with pytest.raises(TypeError, match="cannot show int"):
        compare(result, 3, history=history)
    with pytest.raises(InvalidParameterError):
        compare(result, result, history=history).pick("Z")


def test_hostile_prompts_labels_and_errors_are_escaped_everywhere(
        client: Client, history: History, emulator: Emulator) -> None:
    a = client.generate(f"a cat {HOSTILE[0]}")
    b = client.generate(f"a dog {HOSTILE[1]} at noon")
    request = ImageRequest("generate", HOSTILE[1], model="nano-banana")
    failed = Result(task_id="t-x", trace_id=None, request=request, images=(), status="failed",
                    error=ContentRefusedError(f"refused {HOSTILE[0]}"))
    c = compare(a, b, failed, labels=[HOSTILE[0], "B", HOSTILE[1]], history=history)
    c.pick(0)
    pair = compare(a, b, labels=[HOSTILE[1], HOSTILE[0]], history=history)
    pair.view = "slider"
    assert HOSTILE[1].replace("<", "&lt;").replace(">", "&gt;") in pair.divider.html
    pair.pick(1)
    for comparison in (c, pair):
        text = all_html(comparison)
        html_only = "\n".join([*(x.value for x in _html_widgets(comparison)),
                               comparison.divider.html])
        assert "<script>" not in html_only and "<img src=x" not in html_only
        assert "onerror=alert(1)>" not in html_only.replace("onerror=alert(1)&gt;", "")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_only
        assert "&lt;img src=x onerror=alert(1)&gt;" in html_only
        assert text  # labels in buttons are plain text (not HTML) and may hold anything
    assert "No image:" in all_html(c.cards[2])


def _html_widgets(widget: w.Widget) -> Iterator[w.HTML]:
    if isinstance(widget, w.HTML):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from _html_widgets(child)


def test_widget_state_holds_only_small_jpeg_thumbnails(client: Client, history: History) -> None:
    a = client.generate("large one", model="nano-banana-pro", resolution="2K")
    b = client.generate("large two", model="nano-banana-pro", resolution="2K")
    c = compare(a, b, history=history)
    c.view = "slider"
    c.view = "difference"
    c.difference  # noqa: B018 - waits for the heat map
    wait_until(lambda: "nbw-cmp-diffstat" in c.heat.value, "the heat map")
    text = "\n".join(json.dumps(x.get_state(), default=str) for x in descendants(c))
    uris = re.findall(r'src=\\?"(data:[^"\\]+)', text)
    assert len(uris) == 5  # two cards, the stage's two images, the heat map
    assert all(u.startswith("data:image/jpeg;base64,") for u in uris)
    assert all(max(decode(u).size) <= 512 for u in uris)
    assert len(text) < 500_000


def test_repr_is_cheap_and_names_the_images(client: Client, history: History) -> None:
    a = client.generate("left")
    b = client.generate("right")
    c = compare(a, b, history=history)
    assert repr(c).startswith(f"<Comparison {c.id} of A, B")
    c.pick("B")
    assert "picked='B'" in repr(c)

