"""Panel runs in pure Python: real buttons, a real client, the emulator over a socket.

Each test builds the panel, sets its controls, clicks, waits on the run handle and asserts on
what a person would see (widget values) and on what reached the emulator: progress, results,
cancelling, concurrent runs, the service's errors and the mistakes caught before sending.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import (
    WaitTimeoutError,
)
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.panel import PromptPanel
from support import TEST_TOKEN

from .helpers import (
    all_html,
    card_buttons,
    click_and_wait,
    requests_sent,
    result_cards,
    status_text,
)


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
        # the thumbnail opens a full-size copy that outlives the kernel, not the service
        href = re.search(r'href="(nanobanana-files/[^"]+)"', markup)
        assert href is not None and Path(href.group(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert image.url not in markup
        assert "a lighthouse at dusk" in markup and result.task_id in markup
        assert set(card_buttons(card)) == {"Use as input", "+", "Save", "Run again"}
    row = panel.runs_box.children[0].children[0].value
    assert "#1 done" in row and "2 images" in row and result.task_id in row
    assert panel.runs[-1].cancel_button.layout.display == "none"  # nothing left to cancel
    assert "Run #1: 2 images ready" in status_text(panel)


def test_click_returns_before_the_run_finishes(slow: Emulator, slow_client: Client,
                                               make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
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
        slow: Emulator, slow_client: Client, make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
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


def test_cancel_a_waiting_run(slow: Emulator, slow_client: Client,
                              make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
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
                                             make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
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
        slow: Emulator, slow_client: Client, make_panel: Callable[..., PromptPanel],
        wait_until: Callable[..., None]) -> None:
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


def test_close_cancels_runs_in_flight(slow: Emulator, slow_client: Client,
        wait_until: Callable[..., None]) -> None:
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


def test_runs_are_recorded_in_the_given_history(client: Client, history: History,
                                                make_panel: Callable[..., PromptPanel]) -> None:
    panel = make_panel(client, history=history, prompt="remember me")
    assert panel.history is history
    run = click_and_wait(panel)
    assert run.status == "done"
    history.flush(10)
    assert len(history) == 1
    assert "remember me" in history.html()
