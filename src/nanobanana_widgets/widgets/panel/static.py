"""What a saved notebook shows of the panel (its static rendition's body): the status
messages, the newest results as cards linked to full-size copies beside the notebook, and
the history strip, without repeating a thumbnail already shown above it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nanobanana_widgets.render.panel import TITLE_HTML, result_card_html
from nanobanana_widgets.render.static import cards_html
from nanobanana_widgets.widgets._static import image_link

__all__ = ["STATIC_RESULTS", "panel_static_body"]

STATIC_RESULTS = 24
"""Newest results a saved copy of the panel shows (every one stays in the history)."""


def panel_static_body(thumbs: Sequence[Any], status: str, strip: Any | None) -> str:
    """The body for ``thumbs`` (the results' thumbnails, newest first), the ``status``
    markup and the history ``strip`` (``None``: the panel records nothing)."""
    shown = thumbs[:STATIC_RESULTS]
    cards = [result_card_html(t.image, t.jpeg, error=t.error, run_number=t.run_number,
                              trace_id=t.trace_id,
                              link=image_link(t.image) if t.jpeg is not None else None)
             for t in shown]
    parts = [f"<div>{TITLE_HTML}</div>", f'<div class="nbw-status">{status}</div>',
             cards_html(cards)]
    more = len(thumbs) - len(shown)
    if more > 0:
        parts.append(f'<div class="nbw-muted">and {more} older result(s), in the history'
                     "</div>")
    if strip is not None:
        parts.append(strip.static_html(frozenset(t.image.task_id for t in shown)))
    return "".join(parts)
