"""The panel's edit inputs in pure Python: uploads, inputs from Python, Remove and Clear, the
upload button's count, unusable files named, and results used as inputs."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image

from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.widgets.panel import PromptPanel

from .helpers import (
    card_buttons,
    click_and_wait,
    huge_png_header,
    image_bytes,
    input_cards,
    requests_sent,
    result_cards,
    status_text,
    upload_entry,
)


def test_edit_with_uploaded_files(panel: PromptPanel, emulator: Emulator) -> None:
    panel.action = "edit"
    panel.upload.value = [upload_entry("cat.png", image_bytes("PNG", color="orange")),
                          upload_entry("dog.jpg", image_bytes("JPEG", color="navy"),
                                       "image/jpeg")]
    assert panel.upload.value == ()  # the file contents never stay in the widget state
    panel.wait_idle(10)
    assert [i["name"] for i in panel.inputs] == ["cat.png", "dog.jpg"]
    cards = input_cards(panel)
    assert len(cards) == 2
    assert "cat.png" in cards[0].children[0].value
    assert "data:image/jpeg;base64," in cards[0].children[0].value
    panel.prompt = "put them on a sofa"
    run = click_and_wait(panel)
    assert run.status == "done", status_text(panel)
    body = requests_sent(emulator)[-1]
    assert body["action"] == "edit"
    assert len(body["image_urls"]) == 2
    assert all(u.startswith("data:image/") for u in body["image_urls"])


def test_edit_with_inputs_from_python_and_remove_buttons(
        panel: PromptPanel, emulator: Emulator, tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes(color="red"))
    pil = Image.new("RGB", (80, 80), "green")
    panel.inputs = [path, pil, image_bytes("JPEG", color="blue")]
    assert len(input_cards(panel)) == 3
    assert "photo.png" in input_cards(panel)[0].children[0].value
    remove = input_cards(panel)[1].children[1]
    assert remove.description == "Remove"
    remove.click()
    assert panel.inputs[0] == path and len(panel.inputs) == 2
    assert len(input_cards(panel)) == 2
    panel.action = "edit"
    panel.prompt = "make it autumn"
    run = click_and_wait(panel)
    assert run.status == "done", status_text(panel)
    assert len(requests_sent(emulator)[-1]["image_urls"]) == 2
    panel.clear_inputs_button.click()
    assert panel.inputs == [] and input_cards(panel) == []


def test_use_as_input_loop(panel: PromptPanel, emulator: Emulator) -> None:
    panel.prompt = "a plain teapot"
    first = click_and_wait(panel).result
    assert first is not None
    card_buttons(result_cards(panel)[0])["Use as input"].click()
    assert panel.action == "edit"
    assert panel.inputs == [first.image]
    assert len(input_cards(panel)) == 1
    assert "switched to Edit" in status_text(panel)
    panel.prompt = "paint it with stripes"
    second = click_and_wait(panel).result
    assert second is not None
    assert requests_sent(emulator)[-1]["image_urls"] == [first.image.url]
    # and again, from the newest card (newest first)
    panel.inputs = []
    card_buttons(result_cards(panel)[0])["Use as input"].click()
    assert panel.inputs == [second.image]
    panel.prompt = "now in gold"
    third = click_and_wait(panel).result
    assert third is not None
    assert requests_sent(emulator)[-1]["image_urls"] == [second.image.url]
    assert panel.results == [first, second, third]


def test_results_and_images_can_be_inputs_from_python(panel: PromptPanel) -> None:
    panel.prompt = "a vase"
    result = click_and_wait(panel).result
    assert result is not None
    panel.inputs = [result, result.image]
    assert panel.inputs == [result.image, result.image]


def test_upload_button_counts_the_input_images(panel: PromptPanel) -> None:
    # ipywidgets labels the button with the size of its own value, which the panel empties
    # at once ("Add images (0)"); a class picks a label with the number of inputs instead.
    def label_classes() -> list[str]:
        return [c for c in panel.upload._dom_classes if c.startswith("nbw-upload-")]

    assert "nbw-upload" in panel.upload._dom_classes
    assert label_classes() == ["nbw-upload-n0"]
    panel.upload.value = [upload_entry("a.png", image_bytes()),
                          upload_entry("b.png", image_bytes(color="red"))]
    panel.wait_idle(10)
    assert panel.upload.value == () and label_classes() == ["nbw-upload-n2"]
    input_cards(panel)[0].children[1].click()  # Remove
    assert label_classes() == ["nbw-upload-n1"]
    panel.inputs = [image_bytes()] * 17
    assert label_classes() == ["nbw-upload-many"]
    panel.clear_inputs_button.click()
    assert label_classes() == ["nbw-upload-n0"]
    css = panel.shortcut._css
    assert '.nbw-panel button.nbw-upload.nbw-upload-n2::after { content: "Add images (2)"; }' in css
    assert "font-size: 0;" in css


def test_bad_uploads_are_named_and_left_out(panel: PromptPanel) -> None:
    good = image_bytes("PNG", color="purple")
    noisy = Image.frombytes("RGB", (200, 200), random.Random(1).randbytes(200 * 200 * 3))
    buf = io.BytesIO()
    noisy.save(buf, "PNG")
    cut = buf.getvalue()[: len(buf.getvalue()) // 2]
    panel.upload.value = [
        upload_entry("notes.txt", b"shopping list: eggs, milk\n", "text/plain"),
        upload_entry("half.png", cut),
        upload_entry("bomb.png", huge_png_header()),
        upload_entry("fine.png", good),
    ]
    panel.wait_idle(10)
    assert [i["name"] for i in panel.inputs] == ["fine.png"]
    text = "\n".join(panel.messages)  # the status area shows the newest three
    assert "notes.txt" in text and "not an image" in text
    assert "half.png" in text and "truncated" in text
    assert "bomb.png" in text and "too many pixels" in text
    assert "Traceback" not in text


def test_bad_inputs_from_python_are_named(panel: PromptPanel, tmp_path: Path) -> None:
    notes = tmp_path / "todo.txt"
    notes.write_text("not a picture")
    good = tmp_path / "ok.png"
    good.write_bytes(image_bytes())
    panel.inputs = [notes, tmp_path / "missing.png", good]
    assert panel.inputs == [good]
    text = status_text(panel)
    assert "todo.txt" in text and "missing.png" in text
