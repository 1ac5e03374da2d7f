"""Links that last, the static renditions' frame and the reports' pages, as pure HTML.

Every user-supplied string is escaped: a ``<script>`` / ``onerror=`` payload comes out as
text. No link in an output may point at a loopback address; a relative link must stay
inside the notebook's folder and avoid hidden folders, which Jupyter does not serve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nanobanana_widgets.render.links import (
    download_link_html,
    is_loopback,
    lasting_url,
    relative_href,
    served_path,
)
from nanobanana_widgets.render.report import (
    full_size_html,
    history_report_html,
    report_document,
)
from nanobanana_widgets.render.static import (
    cards_html,
    hide_static_css,
    matrix_html,
    rows_html,
    section_html,
    static_class,
    static_frame,
    static_styles,
)

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8888/files/a.png", "http://127.9.9.9/x", "https://localhost/x",
    "http://LOCALHOST.:80/x", "http://app.localhost/x", "http://[::1]:9000/x",
    "http://0.0.0.0:5000/x", "http://[::ffff:127.0.0.1]/x", "http://[::1/bad",
])
def test_loopback_addresses_are_recognised(url: str) -> None:
    assert is_loopback(url)
    assert lasting_url(url) is None


@pytest.mark.parametrize("url", [
    "https://cdn.acedata.cloud/a.png", "http://10.0.0.5/x.png", "https://example.org/127.0.0.1",
])
def test_other_http_urls_last(url: str) -> None:
    assert not is_loopback(url)
    assert lasting_url(url) == url


@pytest.mark.parametrize("url", [None, "", "data:image/png;base64,AAAA", "file:///etc/passwd",
                                 "javascript:alert(1)", "nanobanana-files/a.png"])
def test_only_http_urls_are_lasting_urls(url: str | None) -> None:
    assert lasting_url(url) is None


def test_relative_links_stay_inside_the_folder_and_out_of_hidden_ones(tmp_path: Path) -> None:
    base = tmp_path / "notebooks"
    assert relative_href(base / "nanobanana-files" / "a b#?.png", base) == \
        "nanobanana-files/a%20b%23%3F.png"
    assert relative_href(base / ".nanobanana" / "images" / "a.png", base) is None  # not served
    assert relative_href(tmp_path / "elsewhere.png", base) is None  # outside the folder
    assert relative_href(base / "sub" / ".." / "x.png", base) == "x.png"
    assert served_path("nanobanana-files/a.png")
    assert not served_path(".nanobanana/images/a.png")
    assert not served_path("a/.hidden/b.png")
    assert not served_path("")


def test_download_links_escape_their_name_and_target() -> None:
    markup = download_link_html('x" onclick="alert(1).png', XSS)
    assert "<script" not in markup and 'onclick="' not in markup
    assert 'download="&lt;script&gt;' in markup and markup.startswith('<a class="nbw-download"')


def test_a_live_view_hides_its_own_copy_only() -> None:
    rule = hide_static_css("abc123")
    assert ".nbw-static-abc123{display:none !important}" in rule
    assert ":has(.nbw-static-abc123)" in rule
    assert static_class("x<y>z\"") == "nbw-static-xyz"  # nothing but the id gets in


def test_the_frame_escapes_and_renames_the_live_views_classes() -> None:
    markup = static_frame("v1", XSS, "<b>body</b>", styles=static_styles("panel", "grid"),
                          note=XSS)
    assert "<b>body</b>" in markup  # the body is HTML already made by render functions
    assert "<script" not in markup.replace("<style>", "")
    assert "&lt;script&gt;" in markup
    styles = re.search(r"<style>(.*?)</style>", markup, re.DOTALL)
    assert styles is not None
    css = styles.group(1)
    assert ".nbw-static-panel .nbw-status" in css and ".nbw-static-matrix .nbw-matrix-cell" in css
    assert not re.search(r"\.nbw-(panel|matrix|cmp)(?![\w-])", css)  # never a live view's
    assert "/*" not in css  # comments cost bytes in every saved notebook
    assert "animation: nbw-static-wait" in css  # waits in live front ends, never flashes


def test_layouts_hold_their_parts_in_order() -> None:
    cards = cards_html(["<i>a</i>", "<i>b</i>"], picked=1)
    assert cards.index("<i>a</i>") < cards.index("<i>b</i>")
    assert cards.count("nbw-picked") == 1 and cards.index("nbw-picked") > cards.index("<i>a</i>")
    rows = rows_html(["r1", "r2"])
    assert rows.count('class="nbw-static-row"') == 2
    matrix = matrix_html([("head", 2, ""), ("cell", 1, "nbw-matrix-cell")], 'repeat(2, 1fr)"x')
    assert "grid-column:span 2" in matrix and 'repeat(2, 1fr)&quot;x' in matrix
    assert XSS not in section_html(XSS, XSS)


def test_a_report_is_one_escaped_page() -> None:
    page = report_document(XSS, "<p>body</p>", subtitle=XSS, sheets=("compare",))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "&lt;script&gt;" in page
    assert '<meta charset="utf-8">' in page and "<p>body</p>" in page
    assert "http" not in re.sub(r"<style>.*?</style>", "", page, flags=re.DOTALL)  # offline


def test_full_size_images_are_linked_or_embedded() -> None:
    link = full_size_html('report_files/a"b.png', name=XSS)
    assert 'href="report_files/a&quot;b.png"' in link and "<script" not in link
    embedded = full_size_html("data:image/png;base64,AAAA", name="A")
    assert embedded.startswith("<details") and 'src="data:image/png;base64,AAAA"' in embedded
    assert full_size_html(None) == ""


def test_a_history_report_shows_notes_whole_and_escaped() -> None:
    row = {"id": 7, "prompt": XSS, "model": "nano-banana", "status": "succeeded",
           "rating": 4, "favourite": True, "notes": "Picked over #3 " + XSS + "\n" + "x" * 300,
           "created_at": 1_700_000_000.0, "task_id": XSS, "action": "generate"}
    markup = history_report_html([(row, None, ["r_files/0007-1.png", ""])])
    assert "<script" not in markup and "<img src=x" not in markup
    assert "x" * 300 in markup  # notes whole (the notebook table shortens them)
    assert markup.count("Full size") == 1 and "r_files/0007-1.png" in markup
    assert "★★★★☆" in markup and "♥" in markup
