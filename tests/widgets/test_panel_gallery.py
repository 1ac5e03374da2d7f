"""The panel's result cards in pure Python: Save and Run again, images that cannot be shown,
partial results, the full-size viewer, escaping and the size of the widget state."""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import ipywidgets as w
from PIL import Image

from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest
from nanobanana_widgets.widgets.panel import PromptPanel

from .helpers import (
    XSS,
    all_html,
    card_buttons,
    click_and_wait,
    descendants,
    image_bytes,
    requests_sent,
    result_cards,
    state_size,
    status_text,
    upload_entry,
)


def test_save_and_run_again(panel: PromptPanel, emulator: Emulator, tmp_path: Path) -> None:
    panel.prompt = "a paper boat"
    panel.model = "nano-banana-2"
    panel.resolution = "2K"
    click_and_wait(panel)
    buttons = card_buttons(result_cards(panel)[0])
    buttons["Save"].click()
    panel.wait_idle(10)
    saved = list((tmp_path / "saved").iterdir())
    assert len(saved) == 1 and saved[0].suffix == ".png"
    assert f"Saved {saved[0]}" in status_text(panel)
    panel.prompt = "something else typed meanwhile"
    buttons["Run again"].click()
    run = panel.runs[-1]
    run.wait(10)
    assert run.status == "done"
    assert emulator.submissions == 2
    again = requests_sent(emulator)[-1]
    assert again["prompt"] == "a paper boat"
    assert again["model"] == "nano-banana-2" and again["resolution"] == "2K"
    assert len(panel.results) == 2


def test_a_failing_save_is_reported(panel: PromptPanel, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    panel.save_dir = blocker / "sub"  # cannot make a folder under a file
    panel.prompt = "to be saved"
    click_and_wait(panel)
    card_buttons(result_cards(panel)[0])["Save"].click()
    panel.wait_idle(10)
    assert "a-file" in status_text(panel)
    assert "Traceback" not in status_text(panel)


def test_an_image_that_cannot_be_downloaded_gets_a_card_saying_so(
        panel: PromptPanel, emulator: Emulator) -> None:
    emulator.inject("server_error", endpoint="files", times=20)
    panel.prompt = "a picture that will not arrive"
    run = click_and_wait(panel, timeout=30)
    assert run.status == "done"
    (card,) = result_cards(panel)
    assert "Could not show this image" in card.children[0].value
    assert card_buttons(card)["Use as input"].disabled
    assert "image 1 could not be shown" in "\n".join(panel.messages)
    emulator.clear_faults()


def test_partial_results_say_what_was_missing(panel: PromptPanel, emulator: Emulator) -> None:
    emulator.inject("partial")
    panel.prompt = "three kites"
    panel.count = 3
    run = click_and_wait(panel)
    assert run.status == "done" and run.result is not None
    assert len(run.result.images) == 1 and len(result_cards(panel)) == 1
    assert "1 image ready (2 of 3 failed; only successes are billed)" in status_text(panel)


def test_data_url_images_open_full_size_on_demand(panel: PromptPanel) -> None:
    from nanobanana_widgets.widgets.panel.run import Thumb

    full = "data:image/png;base64," + base64.b64encode(image_bytes(size=(600, 400))).decode()
    request = ImageRequest(action="generate", prompt="inline")
    image = GeneratedImage(url=full, prompt="inline", task_id="t-1", request=request)
    card = panel._gallery.card(Thumb(image=image, jpeg=image_bytes("JPEG"), run_number=1))
    markup = card.children[0].value
    assert full not in markup  # only the thumbnail is kept; it links to a copy on disk
    href = re.search(r'href="(nanobanana-files/[^"]+\.png)"', markup)
    assert href is not None and Image.open(Path(href.group(1))).size == (600, 400)
    assert "Open" not in card_buttons(card)
    # Where no copy can be written, "Open" shows the full image on demand instead.
    shutil.rmtree("nanobanana-files")
    Path("nanobanana-files").write_text("a file where the folder would go")
    card = panel._gallery.card(Thumb(image=image, jpeg=image_bytes("JPEG"), run_number=1))
    assert "href=" not in card.children[0].value
    card_buttons(card)["Open"].click()
    assert panel.viewer.layout.display == "flex"
    close, view = panel.viewer.children
    assert full in view.value
    close.click()
    assert panel.viewer.children == () and panel.viewer.layout.display == "none"


def test_user_text_is_escaped_everywhere(panel: PromptPanel) -> None:
    name = "<img src=x onerror=alert(1)>.png"
    panel.upload.value = [upload_entry(name, image_bytes()),
                          upload_entry("<script>alert(1)</script>.txt", b"text")]
    panel.wait_idle(10)
    panel.action = "edit"
    panel.prompt = XSS
    run = click_and_wait(panel)
    assert run.status == "done", status_text(panel)
    panel.inputs = [Path("<b>missing</b>.png")]
    markup = all_html(panel)
    for widget in descendants(panel):
        if isinstance(widget, w.Textarea):
            continue
        value = getattr(widget, "value", None)
        if isinstance(value, str):
            assert "<script" not in value
            assert "<img src=x" not in value
            assert "<b>missing" not in value
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in markup


def test_widget_state_stays_small_per_image(panel: PromptPanel) -> None:
    panel.prompt = "a detailed landscape"
    panel.count = 4
    before = state_size(panel)
    run = click_and_wait(panel)
    assert run.result is not None and len(run.result.images) == 4
    after = state_size(panel)
    per_image = (after - before) / 4
    assert per_image <= 60_000, per_image
    full_png = len(run.result.images[0].bytes())
    assert per_image < full_png  # thumbnails, not the images themselves
    for widget in descendants(panel):
        value = getattr(widget, "value", None)
        if isinstance(value, str):
            assert "data:image/png" not in value
            for b64 in re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", value):
                side = max(Image.open(io.BytesIO(base64.b64decode(b64))).size)
                assert side <= 512
