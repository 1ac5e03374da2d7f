"""Copies that outputs and reports link to: safe names, one file per image, atomic writes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.images.published import (
    ReportAssets,
    publish_copy,
    safe_filename,
    write_text_atomic,
)
from support import png


@pytest.mark.parametrize(("text", "expected"), [
    ("task-1 #2", "task-1-2"),
    ("<script>alert(1)</script>", "script-alert-1-script"),
    ("../../etc/passwd", "etc-passwd"),
    (".hidden", "hidden"),
    ("café ☕ 東京", "cafe"),
    ("CON", "image"),
    ("", "image"),
    ("a" * 200, "a" * 60),
])
def test_safe_file_names(text: str, expected: str) -> None:
    assert safe_filename(text) == expected


def test_a_copy_is_named_by_content_and_written_once(tmp_path: Path) -> None:
    data = png(size=(40, 30))
    first = publish_copy(data, tmp_path / "files", stem="<b>t-1</b> 1")
    digest = hashlib.sha256(data).hexdigest()[:16]
    assert first.name == f"b-t-1-b-1-{digest}.png"
    assert first.read_bytes() == data
    mtime = first.stat().st_mtime_ns
    again = publish_copy(data, tmp_path / "files", stem="<b>t-1</b> 1")
    assert again == first and again.stat().st_mtime_ns == mtime  # idempotent
    assert [p.name for p in (tmp_path / "files").iterdir()] == [first.name]  # no temp left


def test_a_file_is_hard_linked_and_metadata_goes_into_written_bytes(tmp_path: Path) -> None:
    source = tmp_path / "history" / "ab.png"
    source.parent.mkdir()
    source.write_bytes(png())
    copy = publish_copy(source, tmp_path / "out", digest="f" * 64)
    assert copy.name == "ffffffffffffffff.png" and copy.read_bytes() == source.read_bytes()
    assert os.path.samefile(copy, source) or copy.stat().st_nlink == 1  # linked where it can
    meta = publish_copy(png(size=(8, 8)), tmp_path / "out", metadata={"prompt": "p"})
    assert read_metadata(meta)["prompt"] == "p"


def test_report_assets_beside_the_page_or_embedded(tmp_path: Path) -> None:
    data = png(size=(20, 20))
    assets = ReportAssets(tmp_path / "my report.html")
    href = assets.add(data, stem="A")
    assert href.startswith("my-report_files/A-") and href.endswith(".png")
    assert (tmp_path / href).read_bytes() == data
    page = assets.write("<p>hi</p>")
    assert page.read_text() == "<p>hi</p>"
    embedded = ReportAssets(tmp_path / "e.html", embed=True)
    assert embedded.add(data).startswith("data:image/png;base64,")
    assert not (tmp_path / "e_files").exists()


def test_text_is_written_whole(tmp_path: Path) -> None:
    target = write_text_atomic(tmp_path / "a" / "b.html", "é")
    assert target.read_bytes() == "é".encode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.html"]
