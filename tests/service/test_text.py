"""Text made safe: server strings cleaned, URL credentials masked (issue 11)."""

from __future__ import annotations

from nanobanana_widgets.service.text import clean_text, mask_url, short_url


def test_clean_text_replaces_what_hurts_and_keeps_the_rest() -> None:
    assert clean_text("a\ud800b") == "a\ufffdb"
    assert clean_text("nul\x00 esc\x1b bidi\u202e del\x7f c1\x85") == (
        "nul\ufffd esc\ufffd bidi\ufffd del\ufffd c1\ufffd")
    assert clean_text("tab\tline\nret\r émoji 🍌 中文") == "tab\tline\nret\r émoji 🍌 中文"


def test_mask_url() -> None:
    assert mask_url("http://user:pass@host:8/x?q=a@b") == "http://***@host:8/x?q=a@b"
    assert mask_url("https://token@cdn.example/") == "https://***@cdn.example/"
    assert mask_url("https://cdn.example/a@b.png") == "https://cdn.example/a@b.png"
    assert mask_url("data:image/png;base64,xx") == "data:image/png;base64,xx"
    assert "pass" not in short_url("http://user:pass@host/x")
