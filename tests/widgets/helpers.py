"""What the widget tests share: images and uploads to feed a view, and reading what a view
shows (its HTML, its size in a saved notebook, the panel's cards, rows and status)."""

from __future__ import annotations

import datetime as dt
import io
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import ipywidgets as w
from ipywidgets.widgets.widget import _remove_buffers
from PIL import Image

from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.widgets.panel import PromptPanel
from nanobanana_widgets.widgets.panel.run import PanelRun

XSS = "<script>alert(1)</script> <img src=x onerror=alert(1)>"
HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]
NEVER = float("inf")


# --- what goes in --------------------------------------------------------------------------


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (96, 64), color: str = "teal") -> bytes:
    """A solid-colour image encoded as ``fmt`` (PNG, JPEG, ...)."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def upload_entry(name: str, content: bytes, mime: str = "image/png") -> dict[str, Any]:
    """One entry of a FileUpload value, as the front end sends it."""
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


# --- what a view shows ---------------------------------------------------------------------


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


def html_of(widget: w.Widget) -> str:
    """The HTML values of ``widget`` and its children, depth first."""
    parts = []
    if isinstance(widget, w.HTML):
        parts.append(widget.value)
    for child in getattr(widget, "children", ()):
        parts.append(html_of(child))
    return "\n".join(parts)


# --- the panel -----------------------------------------------------------------------------


def status_text(panel: PromptPanel) -> str:
    """Everything the status area holds as HTML: the messages shown and the folded ones."""
    return html_of(panel.status_area)


def result_cards(panel: PromptPanel) -> list[w.VBox]:
    return list(panel.results_box.children)


def card_buttons(card: w.VBox) -> dict[str, w.Button]:
    """A result card's buttons by their words ("+" for the icon-only add button)."""
    bar = card.children[1]
    return {b.description or "+": b for b in bar.children}


def input_cards(panel: PromptPanel) -> list[w.VBox]:
    return list(panel.inputs_box.children)


def requests_sent(emulator: Emulator) -> list[dict[str, Any]]:
    return [body for path, body in emulator.requests_log
            if path.endswith("/images") and isinstance(body, dict)]


def click_and_wait(panel: PromptPanel, timeout: float = 10.0) -> PanelRun:
    """Click Generate as a person would and wait for the run it started."""
    before = len(panel.runs)
    panel.generate_button.click()
    assert len(panel.runs) == before + 1, status_text(panel)
    run = panel.runs[-1]
    run.wait(timeout)
    return run
