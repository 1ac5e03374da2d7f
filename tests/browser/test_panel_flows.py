"""The PromptPanel as a person uses it, in JupyterLab and another front end.

Each test opens its own notebook (one kernel) on the shared servers; the kernels talk to the
session's emulator, which the tests slow down or fault from here.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import EMULATOR_LATENCY, expect
from .notebook_page import NotebookPage

pytestmark = pytest.mark.browser

PANEL = ".nbw-panel"
PROMPT = f"{PANEL} .nbw-prompt textarea"
RESULT_CARD = ".nbw-results .nbw-result-card"  # inside a panel locator
RESULT_IMG = f"{PANEL} {RESULT_CARD} img"
INPUT_IMG = f"{PANEL} .nbw-input-card img"

PANEL_CELLS = [
    "from nanobanana_widgets import PromptPanel\npanel = PromptPanel()\npanel",
]

# Decoded and drawn: an <img> whose bytes did not arrive has naturalWidth 0.
_IMG_SHOWN = "img => img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0"


class Service:
    """The session's emulator as one test sees it: its knobs and the requests of this test."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.base_url: str = emulator.base_url
        self._start = len(emulator.requests_log)

    def image_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the images requests sent since the test began."""
        return [
            body for path, body in self.emulator.requests_log[self._start :]
            if path.endswith("/images") and isinstance(body, dict)
        ]


@pytest.fixture
def service(browser_emulator: Any) -> Iterator[Service]:
    """The session's emulator; latency and faults set by a test are undone after it."""
    browser_emulator.clear_faults()
    browser_emulator.set_latency(EMULATOR_LATENCY)
    yield Service(browser_emulator)
    browser_emulator.clear_faults()
    browser_emulator.set_latency(EMULATOR_LATENCY)
    browser_emulator.finish_all()


def png_file(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (48, 32)) -> Path:
    """A small real PNG on disk, for the file chooser."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def open_panel(nb: NotebookPage, cells: list[str] | None = None) -> Any:
    """Open and run the notebook; return the first panel once its controls are real."""
    nb.open_and_run(cells or PANEL_CELLS)
    nb.widget(PROMPT)
    nb.assert_widgets_rendered()
    panel = nb.page.locator(PANEL).first
    assert_real_controls(nb, panel)
    return panel


def assert_real_controls(nb: NotebookPage, panel: Any) -> None:
    """The panel's controls are live HTML controls, not a placeholder or the text repr."""
    assert panel.locator(".nbw-prompt textarea").is_editable()
    assert generate_button(panel).inner_text().strip() == "Generate"
    toggles = panel.locator(".widget-toggle-button").all_inner_texts()
    assert [t.strip() for t in toggles] == ["Text to image", "Edit images"]
    models = panel.locator("select").first.locator("option").all_inner_texts()
    assert "nano-banana" in models and "nano-banana-pro" in models
    assert panel.locator(".widget-slider").count() >= 1  # count
    assert "Add images" in panel.locator(".widget-upload").first.inner_text()
    assert "PromptPanel(" not in nb.output_text()


def generate_button(panel: Any) -> Any:
    # The primary button ("Generate" or "Apply edit"; the mode toggle says "Text to image"
    # and "Edit images").
    return panel.locator("button.mod-primary").first


def wait_results(nb: NotebookPage, count: int, timeout_ms: int = 60_000) -> Any:
    """Wait until ``count`` result images are shown (decoded); return the newest."""
    nb.page.wait_for_function(
        """([sel, n]) => {
            const imgs = [...document.querySelectorAll(sel)];
            return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0);
        }""",
        arg=[RESULT_IMG, count],
        timeout=timeout_ms,
    )
    return nb.page.locator(RESULT_IMG).first


def upload(nb: NotebookPage, panel: Any, files: list[Path]) -> None:
    """Click "Add images" and pick ``files`` in the file chooser, as a person would."""
    with nb.page.expect_file_chooser() as chooser:
        panel.locator("button.widget-upload, .widget-upload button").first.click()
    assert chooser.value.is_multiple()
    chooser.value.set_files([str(f) for f in files])


# --------------------------------------------------------------------------------------------


# JupyterLab and Notebook 7 check the same in every test below (open_panel); Voilà here.
@pytest.mark.parametrize("frontend", ["voila"])
def test_panel_renders_real_controls(
    nb: NotebookPage, frontend: str, screenshot: Callable[..., Path]
) -> None:
    panel = open_panel(nb)
    assert panel.is_visible()
    screenshot(panel, f"panel-{frontend}")


@pytest.mark.parametrize("frontend", ["lab", "notebook"])
def test_generate_shows_progress_then_the_image_and_cancel_stops_a_run(
    nb: NotebookPage, frontend: str, service: Service, screenshot: Callable[..., Path]
) -> None:
    panel = open_panel(nb)
    screenshot(panel, f"panel-{frontend}")
    # The emulator holds the task until told to finish it: the panel must show it waiting.
    service.emulator.set_latency(float("inf"))

    nb.page.locator(PROMPT).fill("a lighthouse at dusk, oil painting")
    generate_button(panel).click()
    row = panel.locator(".nbw-run").first
    row.locator(".nbw-stage", has_text="waiting").wait_for()
    assert row.get_by_role("button", name="Cancel").is_visible()
    assert "a lighthouse at dusk, oil painting" in row.inner_text()
    assert panel.locator(RESULT_CARD).count() == 0
    screenshot(panel, f"panel-progress-{frontend}")

    service.emulator.finish_all()
    image = wait_results(nb, 1)
    assert image.evaluate(_IMG_SHOWN)
    row.locator(".nbw-stage", has_text="done").wait_for()
    expect(panel.locator(".nbw-status")).to_contain_text("1 image ready")
    assert "a lighthouse at dusk, oil painting" in panel.locator(RESULT_CARD).first.inner_text()
    assert [r["prompt"] for r in service.image_requests()] == ["a lighthouse at dusk, oil painting"]
    screenshot(panel, f"panel-result-{frontend}")

    # A run that would never finish: Cancel stops the waiting and says what it means.
    nb.page.locator(PROMPT).fill("a storm that never ends")
    generate_button(panel).click()
    row = panel.locator(".nbw-run", has_text="a storm that never ends").first
    row.locator(".nbw-stage", has_text="waiting").wait_for()
    row.get_by_role("button", name="Cancel").click()
    row.locator(".nbw-stage", has_text="cancelled").wait_for()
    status = panel.locator(".nbw-status")
    expect(status).to_contain_text("Run #2 cancelled")
    expect(status).to_contain_text("may still finish it and bill it")  # it was sent: say so
    assert panel.locator(RESULT_CARD).count() == 1  # no image came of it
    assert len(service.image_requests()) == 2  # cancel did not resend anything


@pytest.mark.parametrize("frontend", ["lab", "notebook"])
def test_edit_with_two_uploads_then_use_the_result_as_input(
    nb: NotebookPage, frontend: str, service: Service, tmp_path: Path,
    screenshot: Callable[..., Path],
) -> None:
    panel = open_panel(nb)
    red = png_file(tmp_path / "red square.png", (220, 30, 30), (40, 40))
    blue = png_file(tmp_path / "blue banner.png", (30, 60, 220), (64, 24))

    panel.locator(".widget-toggle-button", has_text="Edit").click()
    expect(generate_button(panel)).to_have_text("Apply edit")
    upload(nb, panel, [red, blue])
    nb.page.wait_for_function(
        "(sel) => { const imgs = [...document.querySelectorAll(sel)];"
        " return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=INPUT_IMG,
    )
    cards = panel.locator(".nbw-input-card")
    assert "red square.png" in cards.nth(0).inner_text()
    assert "blue banner.png" in cards.nth(1).inner_text()
    expect(panel.locator(".nbw-inputs")).to_contain_text("2 input images")

    nb.page.locator(PROMPT).fill("paint both in the style of a stained-glass window")
    generate_button(panel).click()
    wait_results(nb, 1)
    sent = service.image_requests()
    assert [r["action"] for r in sent] == ["edit"]
    assert len(sent[0]["image_urls"]) == 2
    assert all(u.startswith("data:image/") for u in sent[0]["image_urls"])
    screenshot(panel, f"panel-edit-{frontend}")

    # "+" puts the result next to the uploads and the next edit sends all three
    # ("Use as input" would continue from it alone).
    panel.locator(RESULT_CARD).first.locator("button.nbw-add-input").click()
    nb.page.wait_for_function("(sel) => document.querySelectorAll(sel).length === 3",
                              arg=INPUT_IMG)
    expect(panel.locator(".nbw-inputs")).to_contain_text("3 input images")
    nb.page.locator(PROMPT).fill("now make it night")
    generate_button(panel).click()
    wait_results(nb, 2)
    sent = service.image_requests()
    assert len(sent) == 2 and sent[1]["action"] == "edit"
    urls = sent[1]["image_urls"]
    assert len(urls) == 3
    first_result_url = f"{service.base_url}/files/"
    assert urls[2].startswith(first_result_url) or urls[2].startswith("data:image/"), urls[2]
    assert urls[:2] == sent[0]["image_urls"]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_refused_token_and_refused_content_show_readable_messages(
    nb: NotebookPage, frontend: str, service: Service, screenshot: Callable[..., Path]
) -> None:
    from nanobanana_widgets.emulator import Emulator

    with Emulator(tokens={"the-only-good-token"}) as strict:
        cells = [
            "from nanobanana_widgets import Client, PromptPanel\n"
            f"strict = PromptPanel(client=Client(base_url={strict.base_url!r}),"
            " prompt='a cat in a hat')\n"
            "strict",
            "refused = PromptPanel(prompt='something the filter dislikes')\nrefused",
        ]
        nb.open_and_run(cells)
        nb.widget(PROMPT)
        nb.assert_widgets_rendered()
        panels = nb.page.locator(PANEL)
        assert panels.count() == 2

        generate_button(panels.nth(0)).click()
        error = panels.nth(0).locator(".nbw-status .nbw-msg-error").first
        error.wait_for()
        text = error.inner_text()
        assert "Run #1 failed" in text
        assert "token" in text.lower()  # names the problem ...
        assert "ACEDATACLOUD_API_TOKEN" in text  # ... and what to do
        assert "Traceback" not in text
        assert "browser-test-token" not in panels.nth(0).inner_text()  # the token stays secret
        assert strict.billed_images == 0  # refused at the door: nothing billed

    service.emulator.inject("task_forbidden")
    generate_button(panels.nth(1)).click()
    error = panels.nth(1).locator(".nbw-status .nbw-msg-error").first
    error.wait_for()
    text = error.inner_text()
    assert "Run #1 failed" in text
    assert "refused" in text.lower()
    assert "Traceback" not in text
    assert panels.nth(1).locator(".nbw-results img").count() == 0
    screenshot(panels.nth(1), f"panel-error-{frontend}")


HOSTILE_PROMPT = "<img src=x onerror=alert('prompt')><script>alert('script')</script>"
HOSTILE_FILES = ["<img src=x onerror=alert('file')>.png", "<svg onload=alert('svg')>.png"]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_hostile_prompt_and_file_names_render_as_text(
    nb: NotebookPage, frontend: str, service: Service, tmp_path: Path,
    screenshot: Callable[..., Path],
) -> None:
    panel = open_panel(nb)
    files = [png_file(tmp_path / name, (90, 160, 90)) for name in HOSTILE_FILES]

    panel.locator(".widget-toggle-button", has_text="Edit").click()
    expect(generate_button(panel)).to_have_text("Apply edit")
    upload(nb, panel, files)
    nb.page.wait_for_function("(sel) => document.querySelectorAll(sel).length === 2",
                              arg=INPUT_IMG)
    nb.page.locator(PROMPT).fill(HOSTILE_PROMPT)
    generate_button(panel).click()
    wait_results(nb, 1)

    # Shown as the very characters typed ...
    card_text = panel.locator(RESULT_CARD).first.inner_text()
    assert HOSTILE_PROMPT in card_text
    run_text = panel.locator(".nbw-run").first.inner_text()
    assert "<img src=x onerror=alert('prompt')>" in run_text
    status = panel.locator(".nbw-status")
    expect(status).to_contain_text(HOSTILE_FILES[0])
    expect(status).to_contain_text(HOSTILE_FILES[1])
    labels = panel.locator(".nbw-input-card").all_inner_texts()
    assert any("<img src=x" in label for label in labels)
    assert any("<svg onload" in label for label in labels)
    # ... and never as markup: no element came of them, nothing ran.
    injected = nb.page.evaluate(
        """() => document.querySelectorAll(
            '.nbw-panel img[src="x"], .nbw-panel script, .nbw-panel svg[onload]').length"""
    )
    assert injected == 0
    nb.page.wait_for_timeout(300)  # give a stray onerror handler its chance to fire
    assert nb.dialogs == []
    screenshot(panel, f"panel-hostile-{frontend}")


@pytest.mark.parametrize("frontend", ["lab", "notebook"])
def test_saved_notebook_shows_the_last_result_after_reload(
    nb: NotebookPage, frontend: str, service: Service, screenshot: Callable[..., Path]
) -> None:
    panel = open_panel(nb)
    nb.page.locator(PROMPT).fill("a paper boat on a pond")
    generate_button(panel).click()
    wait_results(nb, 1)

    saved = nb.save()
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
    assert "a paper boat on a pond" in str(state)
    # Only the saved state can bring the result back: the kernel that made it is gone.
    nb.server.shutdown_kernels()
    nb.reload()

    image = wait_results(nb, 1)
    assert image.evaluate(_IMG_SHOWN)
    panel = nb.page.locator(PANEL).first
    assert "a paper boat on a pond" in panel.locator(RESULT_CARD).first.inner_text()
    assert nb.page.get_by_text("Loading widget...").count() == 0
    # Drawn from the notebook file: the new kernel has no such widgets, so the views say
    # they are disconnected from it.
    assert panel.locator(".jupyter-widgets-disconnected").count() > 0
    screenshot(panel, f"panel-reloaded-{frontend}")
