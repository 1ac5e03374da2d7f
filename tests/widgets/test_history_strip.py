"""The panel's history strip in pure Python: real buttons, a real client, the emulator over a
socket, a real SQLite history.

Each test clicks what a person would click (Generate, Load, Use as input, Refresh, More…)
and asserts on the strip's rows, the panel's controls and what reached the emulator.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
from PIL import Image

from nanobanana_widgets import session
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import (
    ContentRefusedError,
)
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.panel import PromptPanel
from support import TEST_TOKEN

from .helpers import (
    HOSTILE,
    XSS,
    all_html,
    card_buttons,
    click_and_wait,
    descendants,
    image_bytes,
    input_cards,
    requests_sent,
    result_cards,
    state_size,
    status_text,
    upload_entry,
)

JPEG_SRC = re.compile(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"')


def rows(panel: PromptPanel) -> list[w.Box]:
    assert panel.history_strip is not None
    return panel.history_strip.rows


def row_html(row: w.Box) -> str:
    return str(row.children[0].value)


def row_buttons(row: w.Box) -> dict[str, w.Button]:
    """A strip row's buttons by their words ("+" for the icon-only add button)."""
    found: dict[str, w.Button] = {}
    stack = list(row.children[1:])
    while stack:
        widget = stack.pop()
        if isinstance(widget, w.Button):
            found[widget.description or "+"] = widget
        stack.extend(getattr(widget, "children", ()))
    return found


def strip_html(panel: PromptPanel) -> str:
    assert panel.history_strip is not None
    return all_html(panel.history_strip)


def jpeg_sides(markup: str) -> list[int]:
    return [max(Image.open(io.BytesIO(base64.b64decode(b64))).size)
            for b64 in JPEG_SRC.findall(markup)]


@pytest.fixture
def panel(client: Client, history: History,
          make_panel: Callable[..., PromptPanel]) -> PromptPanel:
    """A panel recording into the test's own history, so its strip shows this test's runs."""
    return make_panel(client, history=history)



# --- the strip shows what ran ----------------------------------------------------------


def test_strip_shows_runs_as_they_finish_newest_first(
        history: History, make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
    with Emulator(latency=float("inf")) as slow, Client(
            TEST_TOKEN, base_url=slow.base_url, poll_interval=0.05) as client:
        panel = make_panel(client, history=history)
        assert rows(panel) == []
        assert "no requests recorded yet" in strip_html(panel)
        panel.prompt = "a red kite over the dunes"
        panel.generate_button.click()
        (run,) = panel.runs
        wait_until(lambda: run.status == "waiting", "the run to wait")
        slow.finish_all()
        run.wait(10)
    assert run.status == "done" and run.result is not None
    (row,) = rows(panel)
    markup = row_html(row)
    record = history[-1]
    assert "a red kite over the dunes" in markup
    assert f"id {record.id} · generate · nano-banana · 1K" in markup
    assert "✓ 1 image" in markup
    assert jpeg_sides(markup) and max(jpeg_sides(markup)) <= 128  # a thumbnail at once
    assert set(row_buttons(row)) == {"Use as input", "+", "Load"}
    assert "1 record" in panel.history_strip.title.value  # type: ignore[union-attr]


def test_each_finished_run_is_added_on_top(panel: PromptPanel, history: History) -> None:
    panel.prompt = "first: a lighthouse"
    click_and_wait(panel)
    panel.prompt = "second: a windmill"
    panel.model = "nano-banana-2"
    panel.resolution = "2K"
    click_and_wait(panel)
    first, second = history[0], history[1]
    assert [r.id for r in panel.history_strip.records] == [second.id, first.id]  # type: ignore[union-attr]
    assert f"id {second.id} · generate" in row_html(rows(panel)[0])
    top = row_html(rows(panel)[0])
    assert "second: a windmill" in top and "nano-banana-2 · 2K" in top
    assert "first: a lighthouse" in row_html(rows(panel)[1])
    assert "2 records" in panel.history_strip.title.value  # type: ignore[union-attr]


def test_failed_records_show_their_error(panel: PromptPanel, emulator: Emulator) -> None:
    emulator.inject("forbidden")
    panel.prompt = "something the filter dislikes"
    assert click_and_wait(panel).status == "failed"
    (row,) = rows(panel)
    markup = row_html(row)
    assert "⚠ failed: " in markup and "refused" in markup.lower()
    assert "code forbidden" in markup and "trace id" in markup  # in the status tooltip
    assert "nbw-hs-item-failed" in row._dom_classes
    assert set(row_buttons(row)) == {"Load"}  # no image to use as input
    row_buttons(row)["Load"].click()
    assert panel.prompt == "something the filter dislikes"


def test_a_history_that_cannot_be_read_says_so(panel: PromptPanel, history: History) -> None:
    history.add(ImageRequest("generate", "still shown"), status="failed")
    panel.refresh_history()
    history.close()
    panel.history_strip.refresh_button.click()  # type: ignore[union-attr]
    assert "Could not read the history" in strip_html(panel)
    assert "still shown" in row_html(rows(panel)[0])  # the rows already shown stay


def test_hostile_strings_are_escaped_in_the_strip(panel: PromptPanel,
                                                  history: History) -> None:
    panel.prompt = XSS
    assert click_and_wait(panel).status == "done"
    for payload in HOSTILE:
        req = ImageRequest("generate", payload, model=payload, aspect_ratio=payload,
                           resolution=payload)
        history.add(req, error=ContentRefusedError(payload, code=payload, trace_id=payload),
                    task_id=payload)
    panel.history_strip.refresh_button.click()  # type: ignore[union-attr]
    assert len(rows(panel)) == 3
    for widget in descendants(panel.history_strip):
        value = getattr(widget, "value", None)
        if isinstance(value, str):
            assert "<script" not in value and "<img src=x" not in value
        for name in getattr(widget, "_dom_classes", ()):
            assert "<" not in name and " " not in name
    markup = strip_html(panel)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in markup


def test_strip_state_stays_small(client: Client, history: History,
                                 make_panel: Callable[..., PromptPanel]) -> None:
    history.attach(client)
    tasks = [client.submit(f"landscape number {i}", aspect_ratio="16:9") for i in range(14)]
    client.wait_all(tasks)
    assert history.flush(30)
    panel = make_panel(client, history=history)
    strip = panel.history_strip
    assert strip is not None and len(strip.rows) == 12
    assert strip.pager.layout.display == "flex" and not strip.older_button.disabled
    size = state_size(strip)
    assert size <= 12 * 9_000 + 12_000, size  # a thumbnail and a little text per row
    markup = all_html(strip)
    assert "data:image/png" not in markup
    sides = jpeg_sides(markup)
    assert len(sides) == 12 and max(sides) <= 128
    # Rows share their layout and style models: not one of each per widget.
    layouts = {child.layout.model_id for row in strip.rows for child in row.children}
    assert len(layouts) <= 2


def test_ten_thousand_records_open_with_one_page(client: Client, tmp_path: Path,
                                                 make_panel: Callable[..., PromptPanel]) -> None:
    big = History(tmp_path / "big")
    with big.batch():
        for i in range(10_000):
            big.add(ImageRequest("generate", f"prompt {i}"), status="succeeded")
    try:
        panel = make_panel(client, history=big)
        strip = panel.history_strip
        assert strip is not None and strip.total == 10_000
        assert len(strip.rows) == 12
        assert "prompt 9999<" in row_html(strip.rows[0])
        assert "prompt 9988<" in row_html(strip.rows[11])
        assert "10,000 records · newest 12 of 10,000 shown" in strip.title.value
        page = big.newest(12, before=strip.records[-1].id)
        assert [r.prompt for r in page[:2]] == ["prompt 9987", "prompt 9986"]
        strip.older_button.click()
        assert len(strip.rows) == 12 and strip.page == 2  # a page at a time: bounded
        assert "prompt 9987<" in row_html(strip.rows[0])
        assert "13–24 of 10,000 shown" in strip.title.value
        assert "page 2 of 834" in strip.page_label.value
        assert "prompt 9976<" in row_html(strip.rows[11])
        strip.newer_button.click()
        assert strip.page == 1 and "prompt 9999<" in row_html(strip.rows[0])
        assert strip.newer_button.disabled
    finally:
        big.close()


def test_more_then_refresh_keeps_the_rows_and_their_widgets(
        client: Client, history: History, make_panel: Callable[..., PromptPanel]) -> None:
    with history.batch():
        for i in range(15):
            history.add(ImageRequest("generate", f"old {i}"), status="succeeded")
    panel = make_panel(client, history=history)
    strip = panel.history_strip
    assert strip is not None and len(strip.rows) == 12
    strip.older_button.click()
    assert len(strip.rows) == 3 and strip.page == 2
    assert strip.older_button.disabled  # nothing older left
    before = strip.rows
    strip.refresh_button.click()
    assert strip.rows == before  # unchanged records keep their widgets
    history.rate(0, 4)
    history.favourite(0)
    strip.refresh_button.click()
    assert strip.rows[:-1] == before[:-1] and strip.rows[-1] is not before[-1]
    assert "★★★★☆" in row_html(strip.rows[-1]) and "♥" in row_html(strip.rows[-1])


def test_refresh_shows_records_written_by_another_process(
        panel: PromptPanel, history: History) -> None:
    code = textwrap.dedent(f"""
        from nanobanana_widgets.store import History
        from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
        with History({str(history.folder)!r}) as h:
            h.add(ImageRequest("generate", "written by another kernel"), status="failed")
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    panel.history_strip.refresh_button.click()  # type: ignore[union-attr]
    (row,) = rows(panel)
    assert "written by another kernel" in row_html(row)


def test_strip_alone_without_callbacks_and_with_an_extra_thumbnail(history: History) -> None:
    from nanobanana_widgets.widgets.panel.strip import HistoryStrip

    request = ImageRequest("generate", "not downloaded yet")
    image = GeneratedImage(url="http://127.0.0.1:9/later.png", prompt=request.prompt,
                           task_id="t-later", request=request)
    history.add(request, Result(task_id="t-later", trace_id=None, request=request,
                                images=(image,)))
    jpeg = image_bytes("JPEG", size=(40, 30), color="purple")
    seen: list[str] = []

    def extra(rec: Any) -> bytes | None:
        seen.append(rec.task_id)
        return jpeg

    strip = HistoryStrip(history, extra_thumb=extra, page_size=5)
    try:
        (row,) = strip.rows
        assert row.children[1:] == ()  # no callbacks, no buttons
        assert seen == ["t-later"]
        assert base64.b64encode(jpeg).decode() in row_html(row)
        with pytest.raises(ValueError, match="page_size"):
            HistoryStrip(history, page_size=0)
    finally:
        strip.close()


def test_the_panel_keeps_a_small_thumbnail_of_its_results_for_the_strip(
        panel: PromptPanel, history: History) -> None:
    panel.prompt = "a glass of water"
    run = click_and_wait(panel)
    assert run.result is not None
    thumb = panel._strip_thumbs.get(history[-1])
    assert thumb is not None and thumb[:2] == b"\xff\xd8"
    assert max(Image.open(io.BytesIO(thumb)).size) <= 128


# --- Load and Use as input, and which history ------------------------------------------


def test_load_puts_the_parameters_back_and_generate_repeats_the_request(
        panel: PromptPanel, emulator: Emulator) -> None:
    panel.prompt = "a paper lantern festival"
    panel.model = "nano-banana-2"
    panel.resolution = "2K"
    panel.count = 2
    panel.aspect_ratio = "16:9"
    assert click_and_wait(panel).status == "done"
    original = requests_sent(emulator)[-1]

    panel.prompt = "something else entirely"
    panel.model = "nano-banana"  # resets the resolution to 1K, with a note
    panel.count = 1
    panel.aspect_ratio = None
    row_buttons(rows(panel)[0])["Load"].click()
    assert (panel.prompt, panel.action, panel.model, panel.resolution, panel.count,
            panel.aspect_ratio) == ("a paper lantern festival", "generate", "nano-banana-2",
                                    "2K", 2, "16:9")
    assert panel.resolution_dropdown.value == "2K" and panel.count_slider.value == 2
    assert "Loaded id 1 into the controls" in status_text(panel)
    assert "Click Generate to run it again" in status_text(panel)

    assert click_and_wait(panel).status == "done"
    assert emulator.submissions == 2
    assert requests_sent(emulator)[-1] == original


def test_load_an_edit_restores_its_stored_input_images(
        panel: PromptPanel, emulator: Emulator) -> None:
    panel.action = "edit"
    panel.upload.value = [upload_entry("cat.png", image_bytes("PNG", color="orange")),
                          upload_entry("dog.jpg", image_bytes("JPEG", color="navy"),
                                       "image/jpeg")]
    panel.wait_idle(10)
    panel.prompt = "put them on a sofa"
    assert click_and_wait(panel).status == "done", status_text(panel)
    original = requests_sent(emulator)[-1]
    assert len(original["image_urls"]) == 2

    panel.clear_inputs()
    panel.action = "generate"
    panel.prompt = "unrelated"
    row_buttons(rows(panel)[0])["Load"].click()
    assert panel.action == "edit" and panel.prompt == "put them on a sofa"
    assert len(panel.inputs) == 2  # at once: the history stored their thumbnails
    cards = input_cards(panel)
    assert len(cards) == 2 and "id 1 input 1" in cards[0].children[0].value
    assert "data:image/jpeg;base64," in cards[0].children[0].value
    assert "with its 2 input images" in status_text(panel)
    assert "Click Edit to run it again" in status_text(panel)

    assert click_and_wait(panel).status == "done", status_text(panel)
    assert requests_sent(emulator)[-1] == original


def test_load_an_edit_of_an_earlier_result_sends_the_same_url(
        panel: PromptPanel, emulator: Emulator) -> None:
    panel.prompt = "a plain teapot"
    first = click_and_wait(panel).result
    assert first is not None
    card_buttons(result_cards(panel)[0])["Use as input"].click()
    panel.prompt = "paint it with stripes"
    assert click_and_wait(panel).status == "done"
    original = requests_sent(emulator)[-1]
    assert original["image_urls"] == [first.image.url]

    panel.clear_inputs()
    row_buttons(rows(panel)[0])["Load"].click()
    panel.wait_idle(10)  # a URL input has no stored thumbnail: made in the background
    assert panel.inputs == [first.image.url]
    assert len(input_cards(panel)) == 1
    assert click_and_wait(panel).status == "done"
    assert requests_sent(emulator)[-1] == original


def test_load_from_python_by_id_and_what_cannot_be_loaded(
        panel: PromptPanel, history: History) -> None:
    request = ImageRequest("edit", "a record from elsewhere", model="nano-banana-9",
                           count=7, aspect_ratio="5:4",
                           image_urls=("data:image/png;base64,"
                                       + base64.b64encode(image_bytes()).decode(),))
    rec = history.add(request, status="failed")
    assert rec.inputs[0].path is not None
    rec.inputs[0].path.unlink()  # the stored copy is gone
    panel.model = "nano-banana-pro"
    panel.resolution = "4K"
    panel.load_record(rec.id)
    assert panel.prompt == "a record from elsewhere" and panel.action == "edit"
    assert panel.model == "nano-banana-pro" and panel.count == 1
    text = "\n".join(panel.messages)
    assert "model 'nano-banana-9' is unknown here; kept nano-banana-pro" in text
    assert "count 7 is outside 1–4" in text
    assert "aspect ratio '5:4' is unknown here" in text
    assert "id 1 input 1 is missing from the history folder" in text
    assert panel.inputs == []
    with pytest.raises(KeyError, match="no history record with id 99"):
        panel.load_record(99)


def test_use_as_input_from_the_strip(panel: PromptPanel, history: History,
                                     emulator: Emulator) -> None:
    panel.prompt = "a brass compass"
    assert click_and_wait(panel).status == "done"
    history.flush(10)
    panel.history_strip.refresh_button.click()  # type: ignore[union-attr]
    stored = history[-1].results[0]
    assert stored.local and stored.path is not None

    row_buttons(rows(panel)[0])["Use as input"].click()
    assert panel.action == "edit"
    assert panel.inputs == [stored.path]  # the history's own copy outlives the URL
    assert "id 1 result" in input_cards(panel)[0].children[0].value
    assert "Continuing from id 1 result: it is the input image" in status_text(panel)
    panel.prompt = "engrave a map on it"
    assert click_and_wait(panel).status == "done", status_text(panel)
    (url,) = requests_sent(emulator)[-1]["image_urls"]
    sent = base64.b64decode(url.split(",", 1)[1])
    assert sent == stored.path.read_bytes()
    assert history[-1].action == "edit" and history[-1].inputs[0].sha256 == stored.sha256


def test_an_image_that_cannot_be_fetched_is_named_in_the_status_area(
        panel: PromptPanel, history: History) -> None:
    request = ImageRequest("generate", "an image whose URL has expired")
    image = GeneratedImage(url="http://127.0.0.1:9/expired.png", prompt=request.prompt,
                           task_id="t-expired", request=request)
    history.add(request, Result(task_id="t-expired", trace_id=None, request=request,
                                images=(image,)))
    panel.refresh_history()
    row_buttons(rows(panel)[0])["Use as input"].click()
    panel.wait_idle(30)
    text = "\n".join(panel.messages)
    assert "id 1 result" in text and "expired.png" in text
    assert panel.inputs == []
    assert "Traceback" not in text


def test_history_false_records_nothing(client: Client, emulator: Emulator,
                                       make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(client, history=False, prompt="not remembered")
    assert panel.history is None and panel.history_strip is None
    assert panel.history_box.layout.display == "none"
    assert panel.status_area.layout.display != "none"  # its layout is its own
    assert click_and_wait(panel).status == "done"
    assert emulator.submissions == 1
    assert session._default_history is None
    assert not (Path.cwd() / ".nanobanana").exists()


def test_without_a_history_the_default_one_records_the_given_client(
        client: Client, make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(client, prompt="kept by default")
    default = session.default_history()
    assert panel.history is default
    assert default.folder == Path.cwd() / ".nanobanana"
    assert click_and_wait(panel).status == "done"
    assert [r.prompt for r in default] == ["kept by default"]
    assert "kept by default" in row_html(rows(panel)[0])
    # the module functions on that client are recorded too (one listener, one history)
    client.generate("a helper call")
    assert [r.prompt for r in default] == ["kept by default", "a helper call"]


def test_the_default_client_is_recorded_in_the_default_history(
        client: Client, make_panel: Callable[..., PromptPanel]) -> None:
    from nanobanana_widgets import session

    session.set_default_client(client)
    try:
        panel = make_panel(prompt="on the default client")
        assert click_and_wait(panel).status == "done"
        assert panel.client is client
        assert [r.prompt for r in session.default_history()] == ["on the default client"]
    finally:
        session.set_default_client(None)


def test_history_env_switch_turns_the_default_off(client: Client, emulator: Emulator,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  make_panel: Callable[..., PromptPanel]
                                                  ) -> None:
    monkeypatch.setenv("NANOBANANA_HISTORY", "0")
    panel = make_panel(client, prompt="off by environment")
    assert panel.history is None
    assert click_and_wait(panel).status == "done"
    assert not (Path.cwd() / ".nanobanana").exists()
