"""What a prompt grid shows, as HTML: its title, plan and status lines, the matrix heads and
each cell (images, an error, or waiting).

Pure functions over plain values, errors and duck-typed plans (``prompts``, ``columns``,
``repeats``, ``calls``, ``paid``, ``count``, ``action``, ``images``) and records (``id``,
``prompt``, ``model``, ``aspect_ratio``, ``resolution``, ``task_id``, ``trace_id``,
``elapsed``, ``rating``, ``favourite``); they import no widget and no store. Every
user-supplied string is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from nanobanana_widgets.render.parts import ERROR_STYLE, IMG_STYLE, MUTED_STYLE, plural, seconds
from nanobanana_widgets.render.styles import style_element
from nanobanana_widgets.service.errors import NanoBananaError, describe_error
from nanobanana_widgets.service.text import shorten

__all__ = [
    "CellImage",
    "budget_html",
    "cell_error_html",
    "cell_images_html",
    "cell_waiting_html",
    "column_head_html",
    "column_label",
    "corner_html",
    "grid_status_text",
    "grid_styles",
    "grid_title_html",
    "not_resent_note",
    "plan_html",
    "record_caption",
    "record_cell_title",
    "repeat_head_html",
    "row_head_html",
    "status_line_html",
    "thumb_box",
]

CellImage = tuple[str | None, str | None, str | None]
"""One image of a cell: ``(data URI, link, problem)``; no URI shows the problem instead."""

_CELL_ERROR_STYLE = ERROR_STYLE + "font-size:var(--jp-ui-font-size1, 13px);"
_HEADLINE_CHARS = 160
_ROW_HEAD_CHARS = 160


def grid_styles() -> str:
    """The grid's stylesheet (the views' shared frame, then the grid's own rules)."""
    return style_element("frame") + style_element("grid")


def column_label(column: Sequence[str | None]) -> str:
    """``nano-banana · 16:9 · 2K`` (unset parameters left out)."""
    return " · ".join(p for p in column if p)


def grid_title_html(grid_id: str, *, reopened: bool) -> str:
    """``Prompt grid g-1a2b… (reopened from the history)``."""
    esc = html.escape
    where = " (reopened from the history)" if reopened else ""
    return (f'<div><span class="nbw-title">Prompt grid</span> '
            f'<span class="nbw-muted">{esc(grid_id)}{esc(where)}</span></div>')


def plan_html(plan: Any, *, reopened: bool, replay: bool) -> str:
    """What the grid asks for and what it costs: ``2 prompts × 4 columns (2 models × 2
    aspect ratios) = 8 requests; makes 8 paid generations.``"""
    esc = html.escape
    p = plan
    axes = []
    for name, index in (("models", 0), ("aspect ratios", 1), ("resolutions", 2)):
        values = {c[index] for c in p.columns}
        if len(values) > 1:
            axes.append(f"{len(values)} {name}")
    shape = f"{plural(len(p.prompts), 'prompt')} × {plural(len(p.columns), 'column')}"
    if axes:
        shape += f" ({' × '.join(axes)})"
    if p.repeats > 1:
        shape += f" × {p.repeats} repeats"
    verb = "made" if reopened else "makes"
    text = (f"{shape} = {plural(p.calls, 'request')}; {verb} "
            f"{plural(p.paid, 'paid generation')}"
            f"{f' ({p.count} images each)' if p.count != 1 else ''}.")
    if p.action == "edit":
        text += f" Edits of {plural(len(p.images), 'input image')}."
    extra = ""
    if not reopened and replay:
        extra = (' <span class="nbw-muted">Replay mode is on: a cell identical to a '
                 "recorded success is answered from the history and not paid again."
                 "</span>")
    return f'<div style="overflow-wrap:anywhere;">{esc(text)}{extra}</div>'


def budget_html(paid: int, max_calls: int) -> str:
    """Why nothing was sent: the grid costs more than ``max_calls`` paid generations."""
    return (f'<div class="nbw-budget">This grid would make {paid} paid generations, '
            f"more than max_calls={max_calls}. Nothing has been sent. Click the button (or "
            f"call grid.confirm()) to run them.</div>")


def grid_status_text(state: str, summary: str, *, elapsed: float | None, sent: int) -> str:
    """The grid's status line in words, for its ``state`` (``"awaiting confirmation"``,
    ``"ready"``, ``"reopened"``, ``"running"``, ``"cancelled"``, ``"done"``), its
    ``summary``, the seconds since it started and how many cells were ``sent``."""
    if state == "awaiting confirmation":
        return "Waiting for confirmation; nothing has been sent."
    if state == "ready":
        return "Not started."
    if state == "reopened":
        return f"From the history: {summary}."
    if state == "cancelled" and sent == 0:
        return "Cancelled before anything was sent; nothing was billed."
    text = summary + (f" · {seconds(elapsed)}" if elapsed is not None else "")
    if state == "running":
        text = "Running: " + text
    elif state == "cancelled":
        text = (f"Cancelled: {text}. {plural(sent, 'cell')} had been sent: "
                f"{'they' if sent != 1 else 'it'} may still finish and be billed; "
                "grid.history.resume() looks them up.")
    else:
        text = "Done: " + text
    return text + ("" if text.endswith(".") else ".")


def not_resent_note(kept: int) -> str:
    """What the status line adds when ``kept`` failed cells were not retried because they
    were sent and may still be billed (``""`` when none)."""
    if not kept:
        return ""
    return (f"{kept} failed cell{'s were' if kept != 1 else ' was'} sent and may still "
            "finish (and be billed): not sent again; grid.history.resume() looks "
            f"{'them' if kept != 1 else 'it'} up.")


def status_line_html(text: str, *, error: bool = False) -> str:
    """The grid's one status line."""
    style = _CELL_ERROR_STYLE if error else "overflow-wrap:anywhere;"
    return f'<div style="{style}">{html.escape(text)}</div>'


def corner_html() -> str:
    """The matrix's top-left corner, over the prompts."""
    return '<div class="nbw-muted">prompt</div>'


def repeat_head_html(repeat: int) -> str:
    """The head of a repeat's column (from 0): ``#1``, ``#2``, ..."""
    return f'<div class="nbw-muted">#{repeat + 1}</div>'


def column_head_html(column: Sequence[str | None]) -> str:
    """A column's head: its parameters, or ``defaults``."""
    return (f'<div class="nbw-matrix-head" style="overflow-wrap:anywhere;">'
            f"{html.escape(column_label(column) or 'defaults')}</div>")


def row_head_html(prompt: str, row: int) -> str:
    """A row's head: its prompt (shortened; all of it in the tooltip)."""
    esc = html.escape
    label = prompt or f"(row {row + 1} not recorded)"
    return (f'<div class="nbw-matrix-rowhead" title="{esc(label, quote=True)}" '
            f'style="overflow-wrap:anywhere;">'
            f"{esc(shorten(prompt, _ROW_HEAD_CHARS) or label)}</div>")


def cell_images_html(images: Sequence[CellImage], caption: str, title: str) -> str:
    """A cell's thumbnails, ``(data uri, link, problem)`` per image, then a caption."""
    esc = html.escape
    parts = []
    for uri, link, problem in images:
        if uri is None:
            text = esc(problem or "No image.")
            if link:
                text = (f'<a href="{esc(link, quote=True)}" target="_blank" '
                        f'rel="noopener noreferrer">{text}</a>')
            parts.append(f'<div style="{_CELL_ERROR_STYLE}">{text}</div>')
            continue
        img = f'<img src="{uri}" alt="" style="{IMG_STYLE}">'
        if link:
            img = (f'<a href="{esc(link, quote=True)}" target="_blank" rel="noopener noreferrer"'
                   f' title="Open the full-size image">{img}</a>')
        parts.append(f'<div style="flex:1 1 0;min-width:0;">{img}</div>')
    body = "".join(parts)
    return (f'<div title="{esc(title, quote=True)}">'
            f'<div style="display:flex;gap:4px;flex-wrap:wrap;">{body}</div>'
            f'<div style="{MUTED_STYLE}margin-top:2px;overflow-wrap:anywhere;">'
            f"{esc(caption)}</div></div>")


def cell_error_html(error: BaseException, title: str) -> str:
    """A failed cell: the error class, the first sentence of its message (all of it in the
    tooltip), the service's code and the trace id."""
    esc = html.escape
    message = error.message if isinstance(error, NanoBananaError) else describe_error(error)
    first, dot, _rest = message.partition(". ")
    short = shorten(first + "." if dot and len(first) < _HEADLINE_CHARS else message,
                    _HEADLINE_CHARS)
    details = []
    code = getattr(error, "code", None)
    if code:
        details.append(f"code {code}")
    trace = getattr(error, "trace_id", None)
    if trace:
        details.append(f"trace id {trace}")
    tooltip = f"{title}\n\n{describe_error(error)}"
    return (f'<div class="nbw-matrix-failed" title="{esc(tooltip, quote=True)}" '
            f'style="{_CELL_ERROR_STYLE}padding:4px;"><b>⚠ {esc(type(error).__name__)}</b><br>'
            f"{esc(short)}"
            + (f'<div style="{MUTED_STYLE}margin-top:2px;">{esc(" · ".join(details))}</div>'
               if details else "")
            + "</div>")


def thumb_box(aspect_ratio: str | None, images: int, *, side: int) -> tuple[int, int]:
    """The size in pixels of one thumbnail of a cell: ``side`` on its longest side, in
    the shape of ``aspect_ratio`` (``None``: square, the service's default)."""
    w, h = (int(p) for p in (aspect_ratio or "1:1").split(":"))
    if w >= h:
        return side, max(1, round(side * h / w))
    return max(1, round(side * w / h)), side


def cell_waiting_html(text: str, *, spin: bool = True, aspect_ratio: str | None = None,
                      images: int = 0, side: int = 256) -> str:
    """A cell without an outcome yet: ``queued``, ``sending…``, ``waiting 4 s``.

    With ``images`` (how many the cell will show), the cell keeps the room its images will
    take (``aspect_ratio``, thumbnails of ``side`` px, laid out as
    :func:`cell_images_html` lays them), with the text as its caption: the matrix does
    not jump when they arrive."""
    spinner = '<span class="nbw-spin" aria-hidden="true">◌</span> ' if spin else ""
    if images <= 0:
        return (f'<div class="nbw-matrix-waiting" style="{MUTED_STYLE}padding:4px;">'
                f"{spinner}{html.escape(text)}</div>")
    w, h = thumb_box(aspect_ratio, images, side=side)
    # width 100% up to the thumbnail's width: like the image it stands for, it never
    # makes its column wider than the column would be with the image
    box = (f"display:flex;align-items:center;justify-content:center;width:100%;"
           f"max-width:{w}px;aspect-ratio:{w} / {h};margin:0 auto;border-radius:4px;"
           "background:var(--jp-layout-color2, rgba(128,128,128,0.15));")
    glyph = '<span class="nbw-spin" aria-hidden="true">◌</span>' if spin else ""
    boxes = "".join(f'<div style="flex:1 1 0;min-width:0;"><div class="nbw-matrix-slot" '
                    f'style="{box}">{glyph}</div></div>' for _ in range(images))
    return (f'<div class="nbw-matrix-waiting"><div style="display:flex;gap:4px;'
            f'flex-wrap:wrap;">{boxes}</div>'
            f'<div style="{MUTED_STYLE}margin-top:2px;overflow-wrap:anywhere;">'
            f"{html.escape(text)}</div></div>")


def record_cell_title(rec: Any, tag: str) -> str:
    """The tooltip of a cell reopened from its history record."""
    return "\n".join([rec.prompt, column_label((rec.model, rec.aspect_ratio, rec.resolution)),
                      f"record #{rec.id}", f"task {rec.task_id or '—'}",
                      f"trace id {rec.trace_id or '—'}", f"cell {tag}"])


def record_caption(rec: Any) -> str:
    """A reopened cell's caption: its time, rating and favourite mark."""
    bits = []
    if rec.elapsed is not None:
        bits.append(seconds(rec.elapsed))
    if rec.rating:
        bits.append("★" * rec.rating)
    if rec.favourite:
        bits.append("♥")
    return " · ".join(bits)
