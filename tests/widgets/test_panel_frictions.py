"""What a new user trips over in the panel (issue 13), each clicked as a person would.

Use as input continues the chain; the status area shows the current state; runs show a
clock and a bar; mode and action are told apart; big inputs say they are scaled down;
cards keep ids out of the way and save once; cancel names ``nb.task``; a long session
keeps a bounded number of live widgets.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import ipywidgets as w
from ipywidgets.widgets.widget import _instances
from PIL import Image

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.panel import PromptPanel
from nanobanana_widgets.widgets.panel.controls import MODE_WORDS
from nanobanana_widgets.widgets.panel.gallery import LIVE_CARDS
from nanobanana_widgets.widgets.panel.strip import HistoryStrip

from .helpers import (
    card_buttons,
    click_and_wait,
    descendants,
    html_of,
    image_bytes,
    input_cards,
    requests_sent,
    result_cards,
    status_text,
)


def image_file(path: Path, size: tuple[int, int], color: str = "gold") -> Path:
    path.write_bytes(image_bytes("JPEG" if path.suffix == ".jpg" else "PNG", size, color))
    return path


def row_text(panel: PromptPanel) -> str:
    return str(panel.runs_box.children[0].children[0].value)


# --- 1. Use as input continues the chain ---------------------------------------------------


def test_use_as_input_replaces_the_inputs_and_plus_adds_instead(
        panel: PromptPanel, emulator: Emulator, tmp_path: Path) -> None:
    sun = image_file(tmp_path / "sun.png", (64, 64), "gold")
    field = image_file(tmp_path / "field.jpg", (96, 64), "green")
    panel.inputs = [sun, field]
    panel.action = "edit"
    panel.prompt = "paint both as stained glass"
    first = click_and_wait(panel).result
    assert first is not None and len(requests_sent(emulator)[-1]["image_urls"]) == 2

    card_buttons(result_cards(panel)[0])["Use as input"].click()
    assert panel.inputs == [first.image]  # continue from this image: the chain goes on
    assert len(input_cards(panel)) == 1
    said = panel.shown_messages[0]
    assert "replaces the 2 earlier input images (sun.png, field.jpg)" in said
    panel.prompt = "now at night"
    second = click_and_wait(panel).result
    assert second is not None
    assert requests_sent(emulator)[-1]["image_urls"] == [first.image.url]

    card_buttons(result_cards(panel)[1])["+"].click()  # the older result, added
    assert panel.inputs == [first.image, first.image]
    assert "input image 2 of 2" in panel.shown_messages[0]
    panel.use_as_input(second, add=True)
    assert panel.inputs == [first.image, first.image, second.image]
    panel.use_as_input(second)
    assert panel.inputs == [second.image]


# --- 2. the status area shows the current state -------------------------------------------


def test_a_refused_click_says_why_and_uses_no_run_number(
        panel: PromptPanel, emulator: Emulator) -> None:
    panel.prompt = "   "
    panel.generate_button.click()
    refused = panel.shown_messages
    assert refused and refused[0].startswith("Type a prompt first")
    panel.prompt = "a kite"
    assert panel.shown_messages == []  # the cause is fixed: the message folded away
    assert "1 earlier message" in status_text(panel)
    run = click_and_wait(panel)
    assert run.number == 1 and "#1 done" in row_text(panel)
    assert emulator.submissions == 1


def test_an_error_folds_when_its_cause_is_fixed_or_the_next_run_starts(
        panel: PromptPanel, tmp_path: Path) -> None:
    panel.prompt = "make it autumn"
    panel.action = "edit"
    panel.generate_button.click()
    assert panel.shown_messages[0].startswith("Edit needs at least one input image")
    panel.inputs = [image_file(tmp_path / "leaf.png", (40, 40))]
    assert not any("Edit needs" in m for m in panel.shown_messages)
    panel.action = "generate"
    panel.prompt = ""
    panel.generate_button.click()
    panel.notify("a note that stays until the next run", "warning")
    panel.prompt = "a lighthouse"  # fixes the prompt: only that message folds
    assert panel.shown_messages == ["a note that stays until the next run"]
    run = click_and_wait(panel)
    assert panel.shown_messages == [f"Run #{run.number}: 1 image ready in "
                                    f"{run.elapsed:.1f} s."]
    assert "a note that stays until the next run" in panel.messages  # kept for Python


def test_older_messages_fold_and_each_can_be_dismissed(panel: PromptPanel) -> None:
    for n in range(5):
        panel.notify(f"message {n}")
    assert panel.shown_messages == ["message 4", "message 3", "message 2"]
    folded = panel.status_area.children[-1].value
    assert "2 earlier messages" in folded and "message 1" in folded
    row = panel._status.row("message 3")
    dismiss = row.children[1]
    assert isinstance(dismiss, w.Button) and dismiss.tooltip == "Dismiss this message"
    dismiss.click()
    assert panel.shown_messages == ["message 4", "message 2"]
    assert row.comm is None  # its widgets are closed
    assert panel.messages == [f"message {n}" for n in range(5)]


# --- 3. progress: a clock and a bar --------------------------------------------------------


def test_a_waiting_run_shows_a_bar_and_a_clock_that_the_header_shares(
        slow: Emulator, slow_client: Client, make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
    panel = make_panel(slow_client)
    panel.prompt = "a storm that takes its time"
    panel.generate_button.click()
    (run,) = panel.runs
    wait_until(lambda: run.status == "waiting", "the run to wait")
    assert 'class="nbw-bar nbw-bar-indeterminate"' in run.label.value
    # The clock moves on by itself while nothing else changes.
    wait_until(lambda: re.search(r"· [1-9]\.\d s", run.label.value) is not None,
               "the row's clock to pass one second", timeout=15)
    assert "1 running" in panel.activity.value
    # One reading of the time paints the rows and the header: they agree.
    panel._clock.stop()
    panel._tick(run._t0 + 12.34)
    assert "· 12 s" in run.label.value and "1 running · 12 s" in panel.activity.value
    # A progress figure from the service becomes a determinate bar.
    run._on_progress(SimpleNamespace(task_id=run.task_id, status="pending", stage="waiting",
                                     elapsed=3.0, progress=0.42))
    assert run.progress == 0.42
    assert "42%" in run.label.value and "width:42.0%" in run.label.value
    slow.finish_all()
    run.wait(10)
    panel._tick()
    assert "nbw-bar" not in run.label.value and panel.activity.value == ""


# --- 4. mode and action ---------------------------------------------------------------------


def test_the_mode_and_the_action_never_share_a_name(panel: PromptPanel) -> None:
    for mode in ("generate", "edit"):
        panel.action = mode
        toggles = [label for label, _value in panel.action_toggle.options]
        assert toggles == [MODE_WORDS["generate"], MODE_WORDS["edit"]]
        assert panel.generate_button.description not in toggles
    assert panel.generate_button.description == "Apply edit"
    panel.action = "generate"
    assert panel.generate_button.description == "Generate"
    assert "nbw-mode" in panel.action_toggle._dom_classes


# --- 5. big inputs say they are scaled down -------------------------------------------------


def test_a_big_input_says_its_original_and_sent_size(
        panel: PromptPanel, emulator: Emulator, tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (6000, 4000), "teal").save(photo, quality=60)
    small = image_file(tmp_path / "small.png", (300, 200))
    panel.inputs = [photo, small]
    big_card, small_card = (html_of(card) for card in input_cards(panel))
    assert "6000×4000 → sent at 4096×2731" in big_card
    assert "sent at" not in small_card
    panel.action = "edit"
    panel.prompt = "brighter"
    assert click_and_wait(panel, timeout=60).status == "done", status_text(panel)
    sent = requests_sent(emulator)[-1]["image_urls"][0]
    with Image.open(io.BytesIO(base64.b64decode(sent.split(",", 1)[1]))) as img:
        assert img.size == (4096, 2731)  # what the card said


# --- 7. result cards -----------------------------------------------------------------------


def test_ids_are_off_the_card_face_with_a_copy_control(panel: PromptPanel) -> None:
    panel.prompt = "a teapot"
    result = click_and_wait(panel).result
    assert result is not None and result.trace_id
    markup = result_cards(panel)[0].children[0].value
    face, _sep, details = markup.partition('<details class="nbw-ids">')
    visible = re.sub(r"<[^>]+>", " ", face)  # the text on the card's face
    assert result.task_id not in visible and result.trace_id not in visible
    assert f'data-nbw-copy="{result.task_id}"' in details
    assert f'data-nbw-copy="{result.trace_id}"' in details
    assert "#1 · nano-banana · 1K" in face


def test_saving_twice_writes_once_and_says_where(panel: PromptPanel, tmp_path: Path) -> None:
    panel.prompt = "a compass"
    click_and_wait(panel)
    save = card_buttons(result_cards(panel)[0])["Save"]
    save.click()
    panel.wait_idle(10)
    (path,) = (tmp_path / "saved").iterdir()
    assert panel.shown_messages[0] == f"Saved {path}"
    assert save.description == "Saved" and str(path) in save.tooltip
    card_buttons(result_cards(panel)[0])["Saved"].click()
    panel.wait_idle(10)
    assert list((tmp_path / "saved").iterdir()) == [path]
    assert panel.shown_messages[0] == f"Already saved: {path}"
    assert sum(m.startswith("Saved ") for m in panel.messages) == 1


# --- 9. cancel names what the user can call -------------------------------------------------


def test_cancel_after_sending_names_nb_task(slow: Emulator, slow_client: Client,
                                            make_panel: Callable[..., PromptPanel],
                                            wait_until: Callable[..., None]) -> None:
    panel = make_panel(slow_client)
    panel.prompt = "a storm that never ends"
    run = panel.run()
    wait_until(lambda: run.status == "waiting", "the run to wait")
    run.cancel_button.click()
    run.wait(10)
    assert run.status == "cancelled"
    shown = html.unescape(status_text(panel) + run.label.value)
    assert f"nb.task({run.task_id!r})" in shown
    assert "client.task" not in shown


# --- 16. a long session stays light ---------------------------------------------------------


def test_live_widgets_stay_bounded_over_many_runs(
        client: Client, history: History, emulator: Emulator,
        make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(client, history=history)

    def runs(n: int) -> None:
        for i in range(n):
            panel.prompt = f"iteration {i} of a long afternoon"
            assert click_and_wait(panel).status == "done"

    runs(LIVE_CARDS + 2)
    tree, live = len(list(descendants(panel))), len(_instances)
    runs(12)
    assert len(result_cards(panel)) == LIVE_CARDS
    assert len(panel.results) == LIVE_CARDS + 14  # every result is still there for Python
    assert len(panel.runs_box.children) == 3
    assert len(list(descendants(panel))) <= tree + 2
    assert len(_instances) <= live + 2, len(_instances) - live
    assert all(run.closed for run in panel.runs[:-3])
    # The saved copy shows more results than the live cards; painting it again links the
    # older ones to their copies without downloading (and keeping) their bytes again.
    downloads = emulator.downloads
    panel.static.html()
    panel.static.html()
    assert emulator.downloads == downloads
    kept = [r.image for r in panel.results if r.image._cache.get("data") is not None]
    assert len(kept) <= LIVE_CARDS


def test_a_closed_panel_stops_its_clock(client: Client, make_panel: Callable[..., PromptPanel],
                                        wait_until: Callable[..., None]) -> None:
    panel = make_panel(client)
    panel.prompt = "a quick one"
    click_and_wait(panel)
    panel.close()
    wait_until(lambda: not panel._clock.running, "the clock to stop")


# --- 8. the history strip: pages, search, other writers, pending records ----------------


def _strip(panel: PromptPanel) -> HistoryStrip:
    assert panel.history_strip is not None
    return panel.history_strip


def test_search_keeps_the_matching_records(client: Client, history: History,
                                           make_panel: Callable[..., PromptPanel]) -> None:
    with history.batch():
        for i in range(20):
            history.add(ImageRequest("generate", f"{'cat' if i % 4 == 0 else 'dog'} {i}"),
                        status="succeeded")
    strip = _strip(make_panel(client, history=history))
    assert len(strip.rows) == 12 and strip.pager.layout.display == "flex"
    strip.search.value = "cat"  # as typed in the box
    assert [r.prompt for r in strip.records] == ["cat 16", "cat 12", "cat 8", "cat 4", "cat 0"]
    assert "20 records · 5 match “cat” · all 5 shown" in strip.title.value
    assert strip.pager.layout.display == "none"
    strip.search.value = ""
    assert len(strip.rows) == 12


def test_records_written_elsewhere_appear_without_refresh(
        history: History, wait_until: Callable[..., None]) -> None:
    strip = HistoryStrip(history, watch_interval=0.1)
    try:
        assert strip.rows == []
        with History(history.folder) as other:  # another kernel's history on the same folder
            other.add(ImageRequest("generate", "from another notebook"), status="failed")
        wait_until(lambda: [r.prompt for r in strip.records] == ["from another notebook"],
                   "the watcher to read the new record")
    finally:
        strip.close()
    wait_until(lambda: strip._watcher is not None and not strip._watcher.running,
               "the watcher to stop")


def test_refresh_looks_up_a_cancelled_task_whose_result_arrived(
        slow: Emulator, slow_client: Client, history: History,
        make_panel: Callable[..., PromptPanel], wait_until: Callable[..., None]) -> None:
    panel = make_panel(slow_client, history=history)
    panel.prompt = "a late bloomer"
    run = panel.run()
    wait_until(lambda: run.status == "waiting", "the run to wait")
    run.cancel()
    run.wait(10)
    strip = _strip(panel)
    wait_until(lambda: bool(strip.records), "the strip to show the record")
    assert strip.records[0].status != "succeeded"
    assert "not finished" in html_of(strip.rows[0])
    slow.finish_all()  # the service finished it after all
    strip.refresh_button.click()
    wait_until(lambda: strip.records[0].status == "succeeded",
               "Refresh to look the record up")
    assert "✓ 1 image" in html_of(strip.rows[0])
    assert slow.submissions == 1  # looked up, never sent again


def test_use_as_input_from_the_strip_replaces_and_plus_adds(
        panel: PromptPanel, tmp_path: Path) -> None:
    panel.prompt = "a brass compass"
    click_and_wait(panel)
    panel.inputs = [image_file(tmp_path / "a.png", (40, 40)), image_file(tmp_path / "b.png",
                                                                         (40, 40))]
    strip = _strip(panel)
    strip.refresh()
    buttons = {b.description or "+": b for b in descendants(strip.rows[0])
               if isinstance(b, w.Button)}
    buttons["Use as input"].click()
    panel.wait_idle(10)
    assert len(panel.inputs) == 1 and panel.action == "edit"
    buttons["+"].click()
    panel.wait_idle(10)
    assert len(panel.inputs) == 2


# --- 6. dropped and pasted images ----------------------------------------------------------


def test_a_dropped_or_pasted_image_becomes_an_input(panel: PromptPanel) -> None:
    """What the front-end piece sends for a drop or a paste (one message per file, its
    bytes as the buffer), received as the kernel receives it."""
    keys = panel.shortcut
    keys._handle_message(keys, {"event": "file", "name": "dropped.png", "how": "dropped"},
                         [memoryview(image_bytes("PNG", (50, 40)))])
    panel.wait_idle(10)
    assert panel.action == "edit" and len(panel.inputs) == 1
    assert "dropped.png" in html_of(input_cards(panel)[0])
    keys._handle_message(keys, {"event": "file", "name": "", "how": "pasted"},
                         [memoryview(image_bytes("JPEG", (30, 30)))])
    panel.wait_idle(10)
    assert len(panel.inputs) == 2 and "pasted image" in panel.shown_messages[0]
    keys._handle_message(keys, {"event": "file-refused", "name": "huge.tif",
                                "size": 90_000_000, "how": "dropped"}, [])
    assert "huge.tif (90 MB) is too big to be dropped here" in panel.shown_messages[0]
    keys._handle_message(keys, {"event": "file", "name": "notes.png", "how": "pasted"},
                         [memoryview(b"not an image at all")])
    panel.wait_idle(10)
    assert len(panel.inputs) == 2 and "notes.png" in panel.shown_messages[0]
