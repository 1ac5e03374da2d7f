"""Static renditions of the views: the HTML a notebook keeps beside each live widget.

A view's notebook output carries, beside the widget, a ``text/html`` copy of the view's
current state, made from the same render functions as the live view (the same cards, cells
and rows, the same thumbnails). nbconvert, GitHub, nbviewer and a notebook reopened without
its kernel show this copy; where the live view is on the page, a hidden marker among its
widgets hides it with :func:`hide_static_css`.

These are the frame and the layouts the renditions share; the parts come from each view's
render module. Pure functions over strings (already escaped HTML parts) and plain values;
every plain string given here is escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from nanobanana_widgets.render.styles import css

__all__ = [
    "STATIC_NOTE",
    "cards_html",
    "hide_static_css",
    "matrix_html",
    "rows_html",
    "section_html",
    "static_class",
    "static_frame",
    "static_styles",
]

STATIC_NOTE = "Saved copy of an interactive view: run the notebook for the live widget."
"""What a rendition says under itself."""

_BORDER = "1px solid rgba(128,128,128,0.35)"  # no var(): sanitizers drop it
# Inline as well as in the sheet: JupyterLab drops <style> from an untrusted notebook's
# outputs (one reopened from disk), and keeps inline styles.
_FRAME_STYLE = (f"box-sizing:border-box;max-width:100%;overflow-x:auto;padding:10px 12px;"
                f"border:{_BORDER};border-radius:8px;")
_CARD_STYLE = (f"box-sizing:border-box;max-width:100%;padding:6px;border:{_BORDER};"
               "border-radius:6px;")
_ROOTS = re.compile(r"\.nbw-(panel|cmp|matrix|hstrip)(?![\w-])")
_COMMENTS = re.compile(r"/\*.*?\*/", re.DOTALL)
_CONTROLS = re.compile(r"widget-|jupyter-|button|textarea|nbw-(upload|keys|gap|prompt|input|run)")
_SPACE = re.compile(r"\s*\n\s*")
_PUNCT = re.compile(r"\s*([{};,>])\s*")
_ID = re.compile(r"[^A-Za-z0-9_-]")


def static_class(view_id: str) -> str:
    """The class naming one view's renditions (``nbw-static-<id>``)."""
    return "nbw-static-" + _ID.sub("", view_id)


def hide_static_css(view_id: str) -> str:
    """The rule a live view puts on the page: its own renditions (and, where ``:has`` is
    supported, the output areas holding them) are hidden while it is shown."""
    cls = static_class(view_id)
    return (f".{cls}{{display:none !important}}"
            f".jp-OutputArea-child:has(.{cls}){{display:none !important}}")


def _rules(text: str) -> list[tuple[str, str]]:
    """The top-level ``(selector, block)`` pairs of a stylesheet (an at-rule's block whole)."""
    out: list[tuple[str, str]] = []
    depth, start, head = 0, 0, ""
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                head, start = text[start:i].strip(), i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                out.append((head, text[start:i + 1]))
                start = i + 1
    return out


def static_styles(*sheets: str) -> str:
    """``<style>`` with the renditions' own sheet and the views' ``sheets`` (names in
    ``render/static``), their root classes renamed (``.nbw-panel`` → ``.nbw-static-panel``)
    so that a rendition never matches what is meant for a live view, nor the reverse. Rules
    for controls a rendition does not have (buttons, text boxes, ipywidgets' own classes)
    are left out: every saved notebook carries these bytes."""
    text = css("static") + "".join(_ROOTS.sub(r".nbw-static-\1", css(name)) for name in sheets)
    kept = "".join(f"{head}{block}" for head, block in _rules(_COMMENTS.sub("", text))
                   if not _CONTROLS.search(head))
    minified = _PUNCT.sub(r"\1", _SPACE.sub(" ", kept)).strip()
    return f"<style>{minified}</style>"


def static_frame(view_id: str, kind: str, body: str, *, styles: str,
                 note: str = STATIC_NOTE) -> str:
    """One view's rendition: ``body`` inside a frame of class ``nbw-static-<kind>`` (the
    view's look) and :func:`static_class` (what its live view hides), its ``styles``, and
    ``note`` under it."""
    kind_class = "nbw-static-" + _ID.sub("", kind)
    note_html = (f'<div class="nbw-static-note" style="margin-top:6px;font-size:11px;'
                 f'opacity:0.75;">{html.escape(note)}</div>' if note else "")
    return (f'<div class="nbw-static {static_class(view_id)}" data-nbw-static="'
            f'{html.escape(kind, quote=True)}">{styles}'
            f'<div class="{kind_class}" style="{_FRAME_STYLE}">{body}{note_html}</div></div>')


def section_html(title: str, detail: str = "") -> str:
    """A heading inside a rendition, with a muted ``detail``."""
    extra = f' <span class="nbw-muted">{html.escape(detail)}</span>' if detail else ""
    return f'<div class="nbw-static-section">{html.escape(title)}{extra}</div>'


def cards_html(cards: Sequence[str], *, picked: int | None = None,
               width: int = 272) -> str:
    """Cards (HTML parts) side by side, wrapping; the ``picked`` one is marked."""
    parts = []
    for i, card in enumerate(cards):
        mark = " nbw-picked" if i == picked else ""
        ring = "border-color:#388e3c;box-shadow:0 0 0 2px #388e3c;" if i == picked else ""
        parts.append(f'<div class="nbw-static-card{mark}" style="{_CARD_STYLE}'
                     f'width:{width}px;{ring}">{card}</div>')
    return ('<div class="nbw-static-cards" style="display:flex;flex-wrap:wrap;'
            f'gap:10px 16px;align-items:flex-start;">{"".join(parts)}</div>')


def rows_html(rows: Sequence[str]) -> str:
    """Rows (HTML parts) one under the other, in a bordered list."""
    body = "".join(f'<div class="nbw-static-row" style="padding:4px 8px;border-bottom:'
                   f'{_BORDER};">{row}</div>' for row in rows)
    return ('<div class="nbw-static-rows" style="border:1px solid var(--jp-border-color2, '
            f'rgba(128,128,128,0.35));border-radius:6px;">{body}</div>')


def matrix_html(cells: Sequence[tuple[str, int, str]], columns: str) -> str:
    """A CSS grid of ``(HTML part, columns spanned, class)`` in order, its columns sized
    by the ``grid-template-columns`` value ``columns`` (the live grid's own)."""
    template = html.escape(columns, quote=True)
    body = "".join(
        f'<div class="{html.escape(cls, quote=True)}" style="box-sizing:border-box;'
        f'min-width:0;padding:4px;{f"grid-column:span {span};" if span > 1 else ""}">'
        f"{part}</div>"
        for part, span, cls in cells)
    return (f'<div class="nbw-static-matrix-cells" style="display:grid;'
            f'grid-template-columns:{template};gap:6px;align-items:start;">{body}</div>')
