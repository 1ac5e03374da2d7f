"""A history view as a shareable report: one HTML page, its images beside it or embedded."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import History

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def _links(page: str, folder: str) -> list[str]:
    return re.findall(rf'href="({re.escape(folder)}/[^"]+)"', page)


def test_a_view_report_shows_its_records_ratings_and_notes(
        history: History, tmp_path: Path, populate: Callable[..., None]) -> None:
    h = history
    populate(h, 4)
    h.add(ImageRequest("generate", XSS))  # no image: a row without a link
    h.note(0, f"Picked in comparison c-1 over #2 (B). {XSS}")
    h.favourite(0)
    view = h.filter(model=["nano-banana", "nano-banana-pro"])
    page_path = view.to_html(tmp_path / "share" / "history.html")
    page = page_path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert f"History: {len(view)} records" in page
    shown = re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL)
    assert "<script" not in shown and "<img src=x" not in shown
    assert "Picked in comparison c-1 over #2 (B)." in page and "♥" in page
    assert "★" in page  # populate rates them
    links = _links(page, "history_files")
    assert len(links) == sum(len(r.results) for r in view)
    for href in links:
        with Image.open(page_path.parent / href) as img:
            img.load()
    assert str(h.folder) not in page  # a mailed page does not give away local paths


def test_all_embedded_when_asked(history: History, tmp_path: Path,
                                 populate: Callable[..., None]) -> None:
    populate(history, 2)
    page = history.to_html(tmp_path / "one.html", embed=True).read_text(encoding="utf-8")
    assert not (tmp_path / "one_files").exists()
    assert page.count("<details") == 2 and page.count("data:image/png;base64,") == 2
