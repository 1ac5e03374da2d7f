"""nb.batch's progress view in a browser: it shows as the job runs, its real buttons pause
and resume it, the last errors are listed with hostile prompts escaped, and it reads in the
light and dark themes (JupyterLab) and in Voilà."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .notebook_page import NotebookPage
from .page_scripts import CONTRAST, set_theme

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"


def cells(name: str) -> list[str]:
    return [
        "import nanobanana_widgets as nbw\n"
        f"rows = [f'row {{i}}: a paper lantern {HOSTILE}' for i in range(12)]\n"
        f"job = nbw.batch(rows, concurrency=4, name={name!r})",
    ]


@pytest.mark.parametrize("frontend", ["lab", "voila"])
def test_progress_view_pause_resume_and_errors(
    nb: NotebookPage, frontend: str, browser_emulator: Any, screenshot: Callable[..., Path]
) -> None:
    browser_emulator.set_latency(float("inf"))  # rows stay in flight until told
    browser_emulator.inject("forbidden", times=2)
    try:
        nb.open_and_run(cells(f"lanterns-{frontend}"))
        page = nb.page
        view = nb.widget(".nbw-batch")
        view.get_by_text("⟳ 4 running").wait_for(timeout=60_000)
        assert "12 rows → 12 paid generations" in view.inner_text()
        errors = view.locator(".nbw-batch-errors li")
        errors.first.wait_for(timeout=30_000)
        assert HOSTILE in errors.first.inner_text()  # shown as text ...
        assert view.locator(".nbw-batch-errors img").count() == 0  # ... never as markup
        assert page.evaluate(CONTRAST, ".nbw-batch .nbw-batch-counts") >= 4.5
        screenshot(view, f"batch-running-{frontend}")

        view.get_by_role("button", name="Pause").click()
        view.locator(".nbw-batch-state", has_text="paused").wait_for(timeout=30_000)
        browser_emulator.set_latency(0.2)
        browser_emulator.finish_all()
        view.get_by_text("✓ 4 succeeded").wait_for(timeout=30_000)
        assert view.get_by_text("6 queued").count() == 1  # 2 refused + 4 done; none sent
        screenshot(view, f"batch-paused-{frontend}")
        if frontend == "lab":
            set_theme(page, "JupyterLab Dark")
            assert page.evaluate(CONTRAST, ".nbw-batch .nbw-batch-counts") >= 4.5
            screenshot(view, "batch-paused-lab-dark")
            set_theme(page, "JupyterLab Light")

        view.get_by_role("button", name="Resume").click()
        view.get_by_text("12 / 12").wait_for(timeout=60_000)
        view.locator(".nbw-batch-state", has_text="done").wait_for(timeout=30_000)
        assert "✓ 10 succeeded" in view.inner_text() and "✗ 2 failed" in view.inner_text()
        assert view.get_by_role("button", name="Pause").count() == 0 or not view.get_by_role(
            "button", name="Pause").is_visible()
        nb.assert_widgets_rendered()
        screenshot(view, f"batch-done-{frontend}")
        if frontend == "lab":
            # The saved notebook's static HTML is the job's end, not its start (nbconvert,
            # GitHub and a closed kernel show that), with the hostile prompt escaped.
            saved = nb.save()
            html = "".join(
                "".join(out.get("data", {}).get("text/html", ""))
                for cell in saved["cells"] for out in cell.get("outputs", []))
            assert "nbw-batch" in html and "12 / 12" in html and ">done<" in html
            assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    finally:
        browser_emulator.clear_faults()
        browser_emulator.set_latency(0.2)
