"""PromptPanel in pure Python: real buttons, a real client, the emulator over a socket.

Each test builds the panel, sets its controls, clicks, waits on the run handle and
asserts on what a person would see (widget values) and on what reached the emulator.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
from ipywidgets.widgets.widget import _remove_buffers
from PIL import Image

from conftest import TEST_TOKEN
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import InvalidParameterError, WaitTimeoutError
from nanobanana_widgets.service.models import MODELS
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.widgets.panel import PromptPanel
from nanobanana_widgets.widgets.panel.run import PanelRun

XSS = "<script>alert(1)</script> <img src=x onerror=alert(1)>"
NEVER = float("inf")


# --- helpers -----------------------------------------------------------------------------


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (96, 64), color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def upload_entry(name: str, content: bytes, mime: str = "image/png") -> dict[str, Any]:
    """One entry of a FileUpload value, as the front end sends it."""
    import datetime as dt

    return {"name": name, "type": mime, "size": len(content), "content": memoryview(content),
            "last_modified": dt.datetime.now(dt.timezone.utc)}


def huge_png_header(width: int = 40_000, height: int = 40_000) -> bytes:
    """A tiny file that claims to be a 1.6-gigapixel PNG (a decompression bomb)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def descendants(root: w.Widget) -> Iterator[w.Widget]:
    """Every widget reachable from ``root`` (children, layouts, styles), once each."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        widget = stack.pop()
        if widget.model_id in seen:
            continue
        seen.add(widget.model_id)
        yield widget
        for name in widget.keys:
            value = getattr(widget, name)
            if isinstance(value, w.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, w.Widget))


def state_size(root: w.Widget) -> int:
    """Bytes the widget state of ``root`` and its descendants takes in a saved notebook."""
    total = 0
    for widget in descendants(root):
        state, _paths, buffers = _remove_buffers(widget.get_state())
        total += len(json.dumps(state))
        total += sum(4 * ((memoryview(b).nbytes + 2) // 3) for b in buffers)  # base64
    return total


def all_html(root: w.Widget) -> str:
    """Every HTML-ish string value in the widget tree (what the browser would render)."""
    parts = []
    for widget in descendants(root):
        for name in ("value", "description", "tooltip", "placeholder"):
            value = getattr(widget, name, None)
            if isinstance(value, str):
                parts.append(value)
    return "\n".join(parts)


def status_text(panel: PromptPanel) -> str:
    return str(panel.status_area.value)


def result_cards(panel: PromptPanel) -> list[w.VBox]:
    return list(panel.results_box.children)


def card_buttons(card: w.VBox) -> dict[str, w.Button]:
    bar = card.children[1]
    return {b.description: b for b in bar.children}


def input_cards(panel: PromptPanel) -> list[w.VBox]:
    return list(panel.inputs_box.children)


def requests_sent(emulator: Emulator) -> list[dict[str, Any]]:
    return [body for path, body in emulator.requests_log
            if path.endswith("/images") and isinstance(body, dict)]


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def panel(client: Client, make_panel: Callable[..., PromptPanel]) -> PromptPanel:
    return make_panel(client)


@pytest.fixture
def slow() -> Iterator[Emulator]:
    """An emulator whose tasks never finish until ``finish_all()``."""
    with Emulator(latency=NEVER) as emu:
        yield emu


@pytest.fixture
def slow_client(slow: Emulator) -> Iterator[Client]:
    c = Client(TEST_TOKEN, base_url=slow.base_url, poll_interval=0.05)
    yield c
    c.close()


def click_and_wait(panel: PromptPanel, timeout: float = 10.0) -> PanelRun:
    before = len(panel.runs)
    panel.generate_button.click()
    assert len(panel.runs) == before + 1, status_text(panel)
    run = panel.runs[-1]
    run.wait(timeout)
    return run


# --- layout and controls -----------------------------------------------------------------


def test_panel_is_a_vbox_with_every_control(panel: PromptPanel) -> None:
    assert isinstance(panel, w.VBox)
    assert isinstance(panel.prompt_box, w.Textarea)
    assert isinstance(panel.action_toggle, w.ToggleButtons)
    assert panel.upload.accept == "image/*" and panel.upload.multiple is True
    assert list(panel.model_dropdown.options) == list(MODELS)
    assert "nano-banana-pro:official" in panel.model_dropdown.options
    assert (panel.count_slider.min, panel.count_slider.max) == (1, 4)
    assert panel.aspect_dropdown.options == ("auto", "1:1", "3:2", "2:3", "16:9", "9:16", "4:3",
                                             "3:4")
    assert panel.resolution_dropdown.options == ("1K",)  # nano-banana can only do 1K
    assert panel.generate_button.description == "Generate"
    assert isinstance(panel.history_box, w.VBox)
    assert panel.history_box.children == (panel.history_strip,)  # the default history's strip
    assert panel.layout.width == "100%"
    html_out = all_html(panel)
    assert "Ctrl/Cmd+Enter" in html_out


def test_defaults_and_properties_mirror_the_controls(client: Client,
                                                     make_panel: Callable[..., PromptPanel]
                                                     ) -> None:
    from nanobanana_widgets.store import History

    history = History("kept-here")
    panel = make_panel(client, history=history, prompt="a kite", model="nano-banana-pro",
                       resolution="4K", count=3, aspect_ratio="16:9", action="edit")
    assert panel.history is history
    assert (panel.prompt, panel.model, panel.resolution, panel.count, panel.aspect_ratio,
            panel.action) == ("a kite", "nano-banana-pro", "4K", 3, "16:9", "edit")
    assert panel.prompt_box.value == "a kite"
    assert panel.resolution_dropdown.value == "4K"
    assert panel.count_slider.value == 3
    assert panel.generate_button.description == "Edit"
    panel.aspect_ratio = "auto"
    assert panel.aspect_ratio is None
    with pytest.raises(InvalidParameterError, match="model"):
        panel.model = "dall-e"
    with pytest.raises(InvalidParameterError, match="count"):
        panel.count = 5
    with pytest.raises(InvalidParameterError, match="resolution"):
        make_panel(client, model="nano-banana", resolution="4K")
    with pytest.raises(TypeError, match="colour"):
        make_panel(client, colour="red")
    with pytest.raises(TypeError, match=r"History, None .* or False"):
        make_panel(client, history=object())


def test_choosing_a_model_that_cannot_do_the_resolution_resets_it_with_a_note(
        panel: PromptPanel) -> None:
    panel.model = "nano-banana-2"
    assert panel.resolution_dropdown.options == ("1K", "2K", "4K")
    panel.resolution = "4K"
    panel.model = "nano-banana-pro:official"  # also does 4K: kept, no note
    assert panel.resolution == "4K"
    assert "resolution changed" not in status_text(panel)
    panel.model_dropdown.value = "nano-banana-2-lite"  # as a person would, in the dropdown
    assert panel.resolution == "1K"
    assert panel.resolution_dropdown.value == "1K"
    assert panel.resolution_dropdown.options == ("1K",)
    assert "nano-banana-2-lite supports only 1K: resolution changed from 4K to 1K." in (
        status_text(panel))


# --- generate ----------------------------------------------------------------------------


def test_generate_shows_progress_results_and_thumbnails(panel: PromptPanel,
                                                        emulator: Emulator) -> None:
    panel.prompt = "a lighthouse at dusk"
    panel.count = 2
    panel.aspect_ratio = "16:9"
    run = click_and_wait(panel)
    assert run.status == "done", status_text(panel)
    result = run.result
    assert isinstance(result, Result) and len(result.images) == 2
    assert panel.results == [result]
    sent = requests_sent(emulator)
    assert sent[-1]["prompt"] == "a lighthouse at dusk"
    assert sent[-1]["count"] == 2 and sent[-1]["aspect_ratio"] == "16:9"
    cards = result_cards(panel)
    assert len(cards) == 2
    for card, image in zip(cards, result.images, strict=True):
        markup = card.children[0].value
        assert "data:image/jpeg;base64," in markup
        assert f'href="{image.url}"' in markup  # the thumbnail opens the full image
        assert "a lighthouse at dusk" in markup and result.task_id in markup
        assert set(card_buttons(card)) == {"Use as input", "Save", "Run again"}
    row = panel.runs_box.children[0].children[0].value
    assert "#1 done" in row and "2 images" in row and result.task_id in row
    assert panel.runs[-1].cancel_button.layout.display == "none"  # nothing left to cancel
    assert "Run #1: 2 images ready" in status_text(panel)


def test_click_returns_before_the_run_finishes(slow: Emulator, slow_client: Client,
                                               make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(slow_client, prompt="a slow painting")
    panel.generate_button.click()
    (run,) = panel.runs
    assert not run.done()  # the click handler came back while the task still runs
    wait_until(lambda: run.status == "waiting", "the run to be waiting")
    assert not run.done()
    assert "waiting" in run.label.value and " s ·" in run.label.value
    slow.finish_all()
    assert run.wait(10) is not None
    assert run.status == "done"


def test_progress_goes_submitted_waiting_downloading_done(
        slow: Emulator, slow_client: Client, make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(slow_client, prompt="stages")
    seen: list[str] = []
    run = panel.run()
    run.label.observe(
        lambda ch: seen.append(re.search(r"#\d+ (\w+)", ch["new"]).group(1)),  # type: ignore[union-attr]
        names="value",
    )
    wait_until(lambda: run.status == "waiting", "waiting")
    slow.finish_all()
    run.wait(10)
    order = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    for earlier, later in [("waiting", "downloading"), ("downloading", "done")]:
        assert earlier in order and later in order, order
        assert order.index(earlier) < order.index(later), order


def test_shortcut_message_generates_like_a_click(panel: PromptPanel) -> None:
    keys = panel.shortcut
    assert keys.panel_class == panel.css_class
    assert panel.css_class in panel._dom_classes
    assert "nbw-prompt" in panel.prompt_box._dom_classes
    assert "closest" in keys._esm and "model.send" in keys._esm
    keys._handle_custom_msg({"event": "something else"}, [])
    assert panel.runs == []
    keys._handle_custom_msg({"event": "submit", "value": "typed, then Ctrl+Enter"}, [])
    (run,) = panel.runs
    run.wait(10)
    assert run.status == "done"
    assert panel.prompt == "typed, then Ctrl+Enter"
    assert panel.results[0].prompt == "typed, then Ctrl+Enter"


def test_front_end_sends_the_prompt_before_a_generate_click(panel: PromptPanel) -> None:
    # ipywidgets may hold back the textarea's last update while an earlier one is
    # unanswered; the front-end helper sends the box's text just ahead of the click.
    assert "nbw-generate" in panel.generate_button._dom_classes
    assert ".nbw-generate" in panel.shortcut._esm
    panel.prompt = "stale words"
    panel.shortcut._handle_custom_msg({"event": "prompt", "value": "the words on screen"}, [])
    assert panel.prompt_box.value == "the words on screen"
    run = click_and_wait(panel)
    assert run.result is not None and run.result.prompt == "the words on screen"


# --- edit ----------------------------------------------------------------------------------


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


# --- cancel and concurrency ----------------------------------------------------------------


def test_cancel_a_waiting_run(slow: Emulator, slow_client: Client,
                              make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(slow_client, prompt="never mind")
    panel.generate_button.click()
    (run,) = panel.runs
    wait_until(lambda: run.status == "waiting", "waiting")
    run.cancel_button.click()
    assert run.wait(10) is None
    assert run.status == "cancelled"
    assert "#1 cancelled" in run.label.value
    assert run.cancel_button.layout.display == "none"
    assert "Run #1 cancelled" in status_text(panel)
    assert "may still finish it and bill it" in status_text(panel)
    assert panel.results == [] and result_cards(panel) == []
    # the panel stays usable
    slow.set_latency(0)
    again = click_and_wait(panel)
    assert again.status == "done"


def test_cancel_before_sending_sends_nothing(slow: Emulator, slow_client: Client,
                                             make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(slow_client, prompt="first", max_workers=1)
    first = panel.run()
    wait_until(lambda: first.status == "waiting", "the first run to wait")
    panel.prompt = "second, queued behind the first"
    second = panel.run()
    assert second.status == "queued"
    second.cancel()
    slow.finish_all()
    first.wait(10)
    assert second.wait(10) is None
    assert second.status == "cancelled"
    assert slow.submissions == 1
    assert "cancelled before it was sent; nothing was billed" in status_text(panel)


def test_two_concurrent_runs_keep_their_outputs_apart(
        slow: Emulator, slow_client: Client, make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(slow_client)
    panel.prompt = "a red fox"
    fox = panel.run()
    panel.prompt = "a blue whale"
    panel.count = 2
    whale = panel.run()
    wait_until(lambda: fox.status == "waiting" and whale.status == "waiting", "both waiting")
    assert len(panel.runs_box.children) == 2
    slow.finish_all()
    fox_result, whale_result = fox.wait(10), whale.wait(10)
    assert fox_result is not None and whale_result is not None
    assert fox_result.prompt == "a red fox" and len(fox_result.images) == 1
    assert whale_result.prompt == "a blue whale" and len(whale_result.images) == 2
    assert fox_result.task_id != whale_result.task_id
    cards = result_cards(panel)
    assert len(cards) == 3
    for card in cards:
        markup = card.children[0].value
        if fox_result.task_id in markup:
            assert "a red fox" in markup and "a blue whale" not in markup
        else:
            assert whale_result.task_id in markup
            assert "a blue whale" in markup and "a red fox" not in markup


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("unauthorized", "token was refused"),
        ("forbidden", "refused this content"),
        ("used_up", "no balance left"),
        ("task_forbidden", "refused this content"),
        ("server_error", "internal error"),
    ],
)
def test_service_errors_show_in_plain_words_with_the_trace_id(
        kind: str, expected: str, panel: PromptPanel, emulator: Emulator) -> None:
    emulator.inject(kind)
    panel.prompt = "anything"
    run = click_and_wait(panel)
    assert run.status == "failed"
    text = status_text(panel)
    assert "Run #1 failed:" in text
    assert expected in text.lower() or expected in text
    assert "trace id" in text
    assert "Traceback" not in all_html(panel)
    assert panel.results == []
    # the panel stays usable
    again = click_and_wait(panel)
    assert again.status == "done", status_text(panel)


def test_rate_limited_after_retries(emulator: Emulator,
                                    make_panel: Callable[..., PromptPanel]) -> None:
    client = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05, max_retries=1)
    client.backoff_base = 0.01
    try:
        emulator.inject("rate_limit", times=2, retry_after=0.01)
        panel = make_panel(client, prompt="busy")
        run = click_and_wait(panel)
        assert run.status == "failed"
        assert "Rate limited" in status_text(panel)
        assert "Gave up after 2 attempts" in status_text(panel)
    finally:
        client.close()


def test_missing_token(emulator: Emulator, make_panel: Callable[..., PromptPanel]) -> None:
    # No token anywhere (conftest clears the env) and the real service's address: a loopback
    # address would be taken for a local emulator, which needs no token.
    client = Client()
    try:
        panel = make_panel(client, prompt="hello")
        run = click_and_wait(panel)
        assert run.status == "failed"
        assert "No API token" in status_text(panel)
        assert "ACEDATACLOUD_API_TOKEN" in status_text(panel)
        assert emulator.submissions == 0
    finally:
        client.close()


def test_wait_deadline(slow: Emulator, make_panel: Callable[..., PromptPanel]) -> None:
    client = Client(TEST_TOKEN, base_url=slow.base_url, poll_interval=0.05, wait_timeout=0.3)
    try:
        panel = make_panel(client, prompt="takes forever")
        run = click_and_wait(panel)
        assert run.status == "failed"
        assert "still running after 0.3 s" in status_text(panel)
        assert run.task_id is not None and run.task_id in status_text(panel)
    finally:
        client.close()


def test_request_timeout_is_not_resent(emulator: Emulator,
                                       make_panel: Callable[..., PromptPanel]) -> None:
    client = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05, timeout=0.3)
    try:
        emulator.inject("slow_headers", delay=1.0)
        panel = make_panel(client, prompt="slow answer")
        run = click_and_wait(panel)
        assert run.status == "failed"
        text = status_text(panel)
        assert "may have reached the service" in text
        assert emulator.submissions == 1
    finally:
        client.close()


def test_mistakes_before_sending(panel: PromptPanel, emulator: Emulator) -> None:
    panel.prompt = "   "
    panel.generate_button.click()
    assert "Type a prompt first" in status_text(panel)
    panel.prompt = "edit what?"
    panel.action = "edit"
    panel.generate_button.click()
    assert "Edit needs at least one input image" in status_text(panel)
    run = panel.run()
    assert run.done() and run.status == "failed" and run.wait(0) is None
    assert emulator.submissions == 0
    assert panel.runs == []  # no progress rows for runs that never started


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


def test_wrapped_text_gets_an_ordinary_line_height(panel: PromptPanel) -> None:
    css = re.sub(r"\s+", " ", panel.shortcut._css)
    assert ".nbw-panel .widget-html-content { line-height: 1.4; }" in css


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
    from nanobanana_widgets.service.types import ImageRequest
    from nanobanana_widgets.widgets.panel.run import Thumb

    full = "data:image/png;base64," + base64.b64encode(image_bytes(size=(600, 400))).decode()
    request = ImageRequest(action="generate", prompt="inline")
    image = GeneratedImage(url=full, prompt="inline", task_id="t-1", request=request)
    card = panel._gallery.card(Thumb(image=image, jpeg=image_bytes("JPEG"), run_number=1))
    markup = card.children[0].value
    assert full not in markup and "href=" not in markup  # only the thumbnail is kept
    card_buttons(card)["Open"].click()
    assert panel.viewer.layout.display == "flex"
    close, view = panel.viewer.children
    assert full in view.value
    close.click()
    assert panel.viewer.children == () and panel.viewer.layout.display == "none"


# --- escaping and size ---------------------------------------------------------------------


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


def test_close_cancels_runs_in_flight(slow: Emulator, slow_client: Client) -> None:
    panel = PromptPanel(slow_client, prompt="left running")
    run = panel.run()
    wait_until(lambda: run.status == "waiting", "waiting")
    panel.close()
    assert run.wait(10) is None
    assert run.status == "cancelled"
    refused = panel.run()
    assert refused.status == "failed" and "closed" in str(refused.error)


def test_wait_on_a_run_has_a_deadline(slow: Emulator, slow_client: Client,
                                      make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(slow_client, prompt="patience")
    run = panel.run()
    with pytest.raises(WaitTimeoutError, match="still"):
        run.wait(0.05)
    slow.finish_all()
    assert isinstance(run.wait(10), Result)
    assert isinstance(panel.results[0].image, GeneratedImage)


def test_runs_are_recorded_in_the_given_history(client: Client, tmp_path: Path,
                                                make_panel: Callable[..., PromptPanel]) -> None:
    from nanobanana_widgets.store import History

    with History(tmp_path / "history") as history:
        panel = make_panel(client, history=history, prompt="remember me")
        assert panel.history is history
        run = click_and_wait(panel)
        assert run.status == "done"
        history.flush(10)
        assert len(history) == 1
        assert "remember me" in history.html()
