"""What the history strip shows, as HTML: its title and one row per history record.

Pure functions over duck-typed records (anything with ``id``, ``prompt``, ``action``,
``model``, ``aspect_ratio``, ``resolution``, ``count``, ``inputs``, ``results``,
``status``, ``error``, ``rating``, ``favourite``, ``created_at`` and ``task_id``, as the
history's ``Record`` has); they import no widget and no store. Every string from the
history is escaped.
"""

from __future__ import annotations

import html
import time
from typing import Any

from nanobanana_widgets.render.parts import plural
from nanobanana_widgets.service.text import data_uri, shorten

__all__ = ["error_headline", "pager_html", "record_summary", "strip_message_html",
           "strip_row_html", "strip_title_html"]

_PROMPT_CHARS = 160
_HEADLINE_CHARS = 110


def error_headline(rec: Any) -> str:
    """The first sentence of a record's error (short), or ``""`` when it has none."""
    err = rec.error
    if err is None:
        return ""
    message = " ".join(err.message.split()) or err.type
    first, dot, _rest = message.partition(". ")
    return shorten(first + "." if dot else message, _HEADLINE_CHARS)


def record_summary(rec: Any) -> str:
    """``"generate · nano-banana-2 · 16:9 · 2K · ×2"``: what a record asked for, in one line."""
    parts = [rec.action, rec.model]
    if rec.aspect_ratio:
        parts.append(rec.aspect_ratio)
    if rec.resolution:
        parts.append(rec.resolution)
    if rec.count != 1:
        parts.append(f"×{rec.count}")
    if rec.inputs:
        parts.append(plural(len(rec.inputs), "input"))
    return " · ".join(parts)


def _when(created: float) -> tuple[str, str]:
    """A short time for the row and a full one for its tooltip."""
    local = time.localtime(created)
    full = time.strftime("%Y-%m-%d %H:%M:%S", local)
    if time.strftime("%Y-%m-%d", local) == time.strftime("%Y-%m-%d"):
        return time.strftime("%H:%M", local), full
    return time.strftime("%Y-%m-%d", local), full


def strip_title_html(shown: int, total: int, *, first: int = 1, query: str = "",
                     matching: int | None = None) -> str:
    """``History · 40 records · newest 12 of 40 shown``; on a later page ``· 13–24 of 40
    shown``; with a search ``· 3 match “cat” · all 3 shown``."""
    if not total:
        return ('<span class="nbw-hs-title">History</span> '
                '<span class="nbw-muted">· no requests recorded yet</span>')
    of = total if matching is None else matching
    last = first + shown - 1
    if not shown:
        what = "none shown"
    elif shown >= of:
        what = f"all {of:,} shown"
    elif first == 1:
        what = f"newest {shown} of {of:,} shown"
    else:
        what = f"{first:,}–{last:,} of {of:,} shown"
    text = f"{total:,} record{'s' if total != 1 else ''}"
    if query:
        text += f" · {matching or 0:,} match “{query}”"
    return ('<span class="nbw-hs-title">History</span> '
            f'<span class="nbw-muted">· {html.escape(text)} · {html.escape(what)}</span>')


def pager_html(page: int, pages: int) -> str:
    """``page 2 of 4`` between the strip's Newer and Older buttons."""
    return f'<span class="nbw-muted">page {page:,} of {max(page, pages):,}</span>'


def strip_message_html(text: str, level: str = "error") -> str:
    """The strip's message line (a problem, or what it is doing); empty when none."""
    if not text:
        return ""
    return f'<div class="nbw-msg nbw-msg-{html.escape(level)}">{html.escape(text)}</div>'


def _thumb_html(status: str, jpeg: bytes | None, kind: str) -> str:
    if jpeg is not None:
        alt = "input image" if kind == "input" else "result image"
        cls = "nbw-hs-thumb nbw-hs-input" if kind == "input" else "nbw-hs-thumb"
        return (f'<img class="{cls}" alt="{alt}" src="{data_uri(jpeg)}" '
                'style="width:56px;height:56px;object-fit:cover;border-radius:4px;'
                'flex:0 0 56px;">')
    glyph = {"failed": "⚠", "cancelled": "✕", "succeeded": "✓"}.get(status, "…")
    return ('<div class="nbw-hs-thumb nbw-hs-noimg" aria-hidden="true" '
            'style="width:56px;height:56px;flex:0 0 56px;display:flex;'
            'align-items:center;justify-content:center;border-radius:4px;">'
            f"{glyph}</div>")


def _status_html(rec: Any) -> str:
    esc = html.escape
    marks = ""
    if rec.rating:
        stars = "★" * rec.rating + "☆" * (5 - rec.rating)
        marks += (f' <span class="nbw-hs-stars" title="rated {rec.rating} of 5">'
                  f"{stars}</span>")
    if rec.favourite:
        marks += ' <span class="nbw-hs-fav" title="favourite">♥</span>'
    if rec.status == "succeeded":
        text = f"✓ {plural(len(rec.results), 'image')}"
        return f'<div class="nbw-hs-status nbw-hs-succeeded">{esc(text)}{marks}</div>'
    if rec.status in ("failed", "cancelled"):
        headline = error_headline(rec)
        err = rec.error
        details = []
        if err is not None:
            details.append(f"{err.type}: {err.message}")
            if err.code:
                details.append(f"code {err.code}")
            if err.trace_id:
                details.append(f"trace id {err.trace_id}")
        word = "failed" if rec.status == "failed" else "cancelled"
        text = f"⚠ {word}" + (f": {headline}" if headline else "")
        return (f'<div class="nbw-hs-status nbw-hs-{word}" '
                f'title="{esc(chr(10).join(details), quote=True)}" '
                f'style="overflow-wrap:anywhere;">{esc(text)}{marks}</div>')
    return ('<div class="nbw-hs-status nbw-hs-pending" title="Still running, or its '
            'process stopped waiting before it finished: Refresh looks it up again.">'
            f"… not finished when last looked up ({esc(rec.status)}){marks}</div>")


def strip_row_html(rec: Any, jpeg: bytes | None, kind: str = "result") -> str:
    """One record's row: its thumbnail (``kind`` ``"result"`` or ``"input"``; ``None``
    shows a glyph of its status), prompt, id, parameters, time, status and rating."""
    esc = html.escape
    prompt = " ".join(rec.prompt.split())
    short_time, full_time = _when(rec.created_at)
    meta = f"id {rec.id} · {record_summary(rec)} · {short_time}"
    tooltip = f"{prompt}\n\nid {rec.id} · {full_time}"
    if rec.task_id:
        tooltip += f"\ntask {rec.task_id}"
    return (
        f'<div class="nbw-hs-item-body" title="{esc(tooltip, quote=True)}" '
        'style="display:flex;gap:8px;align-items:center;min-width:0;">'
        f"{_thumb_html(rec.status, jpeg, kind)}"
        '<div style="min-width:0;flex:1 1 auto;">'
        f'<div class="nbw-hs-prompt">{esc(shorten(prompt, _PROMPT_CHARS)) or "(empty prompt)"}'
        '</div>'
        f'<div class="nbw-muted" style="overflow-wrap:anywhere;">{esc(meta)}</div>'
        f"{_status_html(rec)}</div></div>"
    )
