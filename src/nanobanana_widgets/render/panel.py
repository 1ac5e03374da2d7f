"""What the prompt panel shows, as HTML: its status messages, input cards, result cards and
run rows.

Pure functions over plain values and duck-typed images (anything with ``url``,
``task_id``, ``index``, ``prompt`` and ``request``); they import no widget. Every
user-supplied string is escaped; thumbnails arrive as JPEG bytes and become data URIs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from nanobanana_widgets.render.parts import plural, seconds
from nanobanana_widgets.render.results import safe_link
from nanobanana_widgets.service.text import data_uri, shorten, squash

__all__ = [
    "SHORTCUT_HINT_HTML",
    "TITLE_HTML",
    "activity_html",
    "folded_messages_html",
    "full_image_html",
    "ids_html",
    "input_card_html",
    "inputs_hint_html",
    "message_html",
    "messages_html",
    "progress_bar_html",
    "result_card_html",
    "run_row_html",
    "size_note",
]

TITLE_HTML = '<span class="nbw-title">Nano Banana</span>'
SHORTCUT_HINT_HTML = '<span class="nbw-hint">Ctrl/Cmd+Enter in the prompt box also runs</span>'

_RUN_PROMPT_CHARS = 70
_CARD_PROMPT_CHARS = 120
_INPUT_LABEL_CHARS = 24

_FINISHED = frozenset({"done", "failed", "cancelled"})
_STAGE_WORDS = {
    "queued": "queued",
    "preparing": "preparing inputs",
    "sending": "sending",
    "submitted": "submitted",
    "waiting": "waiting",
    "downloading": "downloading",
    "done": "done",
    "failed": "failed",
    "cancelled": "cancelled",
}


_BAR_PERIOD = 1.6
"""Seconds one sweep of the indeterminate progress bar takes (panel.css has the same)."""


def message_html(level: str, text: str) -> str:
    """One status message (escaped), styled by its level."""
    return f'<div class="nbw-msg nbw-msg-{html.escape(level)}">{html.escape(text)}</div>'


def messages_html(messages: Sequence[tuple[str, str]]) -> str:
    """Status messages: ``(level, text)``, oldest first, shown the newest first."""
    return "".join(message_html(level, text) for level, text in reversed(messages))


def folded_messages_html(messages: Sequence[tuple[str, str]]) -> str:
    """Earlier messages (newest first), folded under a disclosure; ``""`` when none."""
    if not messages:
        return ""
    items = "".join(f'<li class="nbw-folded-{html.escape(level)}">{html.escape(text)}</li>'
                    for level, text in messages)
    return ('<details class="nbw-earlier"><summary class="nbw-muted">'
            f"{html.escape(plural(len(messages), 'earlier message'))}</summary>"
            f'<ul class="nbw-muted" style="margin:2px 0 0 0;padding-left:18px;">{items}</ul>'
            "</details>")


def activity_html(running: int, elapsed: float | None) -> str:
    """The panel header's summary of the runs in flight: ``2 running · 12 s``; ``""`` when
    none runs. ``elapsed`` is the oldest run's (the rows show the same clock)."""
    if running <= 0:
        return ""
    text = f"{running} running"
    if elapsed is not None:
        text += f" · {seconds(elapsed)}"
    return (f'<span class="nbw-activity"><span class="nbw-pulse" aria-hidden="true">●</span> '
            f"{html.escape(text)}</span>")


def progress_bar_html(fraction: float | None, elapsed: float) -> str:
    """A thin progress bar: the service's figure (0–1) when it gave one, else an
    indeterminate sweep whose phase follows ``elapsed`` (so a repaint continues it)."""
    track = ("display:block;position:relative;overflow:hidden;height:4px;margin-top:3px;"
             "border-radius:2px;background:var(--jp-layout-color3, rgba(128,128,128,0.25));")
    fill = "display:block;position:absolute;top:0;bottom:0;border-radius:2px;" \
           "background:var(--jp-brand-color1, #1976d2);"
    if fraction is not None:
        pct = max(0.0, min(1.0, fraction)) * 100
        return (f'<span class="nbw-bar" role="progressbar" aria-valuenow="{pct:.0f}" '
                f'aria-valuemin="0" aria-valuemax="100" style="{track}">'
                f'<span class="nbw-bar-fill" style="{fill}left:0;width:{pct:.1f}%;"></span></span>')
    delay = -(elapsed % _BAR_PERIOD)
    return (f'<span class="nbw-bar nbw-bar-indeterminate" role="progressbar" style="{track}">'
            f'<span class="nbw-bar-fill" style="{fill}left:0;width:30%;'
            f'animation-delay:{delay:.2f}s;"></span></span>')


def size_note(original: tuple[int, int], sent: tuple[int, int]) -> str:
    """``6720×4480 → sent at 4096×2731`` (plain text)."""
    return f"{original[0]}×{original[1]} → sent at {sent[0]}×{sent[1]}"


def inputs_hint_html(n: int, *, editing: bool) -> str:
    """How many input images there are, and what they are for."""
    if editing:
        text = plural(n, "input image") if n else "Add at least one image to edit"
    else:
        text = (f"{plural(n, 'input image')} (used in Edit mode)" if n
                else "Input images are used in Edit mode")
    return f'<span class="nbw-hint">{html.escape(text)}</span>'


def input_card_html(label: str, jpeg: bytes, *, side: int,
                    original: tuple[int, int] | None = None,
                    sent: tuple[int, int] | None = None) -> str:
    """An input image's thumbnail (at most ``side`` px) above its (shortened) label, and,
    when it is scaled down before sending, its original and sent size."""
    esc = html.escape
    note = ""
    if original is not None and sent is not None and sent != original:
        text = size_note(original, sent)
        tip = (f"{label}: {original[0]}×{original[1]} pixels, larger than the service takes; "
               f"it is scaled down to {sent[0]}×{sent[1]} when sent (your file is unchanged).")
        note = (f'<div class="nbw-shrunk" title="{esc(tip, quote=True)}" '
                'style="text-align:center;overflow-wrap:anywhere;font-size:'
                'var(--jp-ui-font-size0, 11px);color:var(--jp-warn-color0, #e65100);">'
                f"⚠ {esc(text)}</div>")
    return (
        f'<img src="{data_uri(jpeg)}" alt="{esc(label, quote=True)}" '
        f'title="{esc(label, quote=True)}" '
        f'style="display:block;max-width:{side}px;'
        f'max-height:{side}px;margin:0 auto;border-radius:4px;">'
        f'<div class="nbw-hint" style="text-align:center;overflow-wrap:anywhere;">'
        f"{esc(shorten(label, _INPUT_LABEL_CHARS))}</div>{note}"
    )


def ids_html(ids: Sequence[tuple[str, str]]) -> str:
    """Ids folded under a small "ids" disclosure, each with a one-click copy control
    (``data-nbw-copy``; the panel's front-end piece copies it). ``ids`` are
    ``(name, value)`` pairs; ``""`` when there are none."""
    if not ids:
        return ""
    esc = html.escape
    rows = "".join(
        f'<div class="nbw-id">{esc(name)} <code style="overflow-wrap:anywhere;'
        f'user-select:all;">{esc(value)}</code> <span class="nbw-copy" role="button" '
        f'tabindex="0" data-nbw-copy="{esc(value, quote=True)}" '
        f'title="Copy the {esc(name, quote=True)} to the clipboard">copy</span></div>'
        for name, value in ids)
    return (f'<details class="nbw-ids"><summary class="nbw-muted" title="'
            f'{esc(" · ".join(f"{n} {v}" for n, v in ids), quote=True)}">ids</summary>'
            f'<div class="nbw-muted">{rows}</div></details>')


def result_card_html(image: Any, jpeg: bytes | None, *, error: str | None = None,
                     run_number: int = 0, trace_id: str | None = None,
                     link: str | None = None) -> str:
    """A result image: its thumbnail (linked to ``link``, the full image, by default its
    URL when that may go into an output) or why there is none, its prompt, then
    ``#run · model · …``; the task and trace ids are folded under "ids" (with a copy
    control each)."""
    esc = html.escape
    req = image.request
    prompt = " ".join((req.prompt if req is not None else image.prompt).split())
    short = shorten(prompt, _CARD_PROMPT_CHARS)
    link = link if link is not None else safe_link(image.url)
    if jpeg is not None:
        img = (f'<img src="{data_uri(jpeg)}" alt="{esc(short, quote=True)}" '
               'style="display:block;max-width:100%;height:auto;margin:0 auto;'
               'border-radius:4px;">')
        if link:
            img = (f'<a href="{esc(link, quote=True)}" target="_blank" '
                   f'rel="noopener noreferrer" title="Open the full-size image">{img}</a>')
    else:
        img = (f'<div class="nbw-msg nbw-msg-error">Could not show this image: '
               f"{esc(error or '')}</div>")
    meta = [f"#{run_number}"]
    if req is not None:
        meta.append(req.model)
        if req.action == "edit":
            meta.append("edit")
        if req.aspect_ratio:
            meta.append(req.aspect_ratio)
        if req.resolution:
            meta.append(req.resolution)
        if req.count > 1:
            meta.append(f"image {image.index + 1} of {req.count}")
    ids = [("task id", image.task_id)] if image.task_id else []
    if trace_id:
        ids.append(("trace id", trace_id))
    return (
        f'{img}<div title="{esc(prompt, quote=True)}" '
        f'style="margin-top:4px;overflow-wrap:anywhere;">{esc(short)}</div>'
        f'<div class="nbw-card-meta" style="display:flex;gap:6px;align-items:baseline;'
        f'flex-wrap:wrap;"><span class="nbw-hint">{esc(" · ".join(meta))}</span>'
        f"{ids_html(ids)}</div>"
    )


def full_image_html(src: str) -> str:
    """The full-size image, shown on demand."""
    return (f'<img src="{html.escape(src, quote=True)}" alt="full-size image" '
            'style="max-width:100%;height:auto;display:block;">')


def run_row_html(*, number: int, stage: str, cancelling: bool, prompt: str, elapsed: float,
                 images: int | None, action: str, model: str, count: int,
                 task_id: str | None, error: str | None,
                 fraction: float | None = None) -> str:
    """A run's progress row: ``#3 waiting “prompt” · 4.2 s · generate · model``, a
    progress bar while it is in flight (the service's figure ``fraction`` when it gave
    one, else an indeterminate sweep), and the error below when it failed or was
    cancelled. ``images`` is the number of images of a run that is done (``None``
    before); the task id is in the row's tooltip."""
    esc = html.escape
    word = "cancelling" if cancelling else _STAGE_WORDS[stage]
    details = [seconds(elapsed)]
    if images is not None:
        details.insert(0, plural(images, "image"))
    if fraction is not None and stage not in _FINISHED:
        details.insert(0, f"{max(0.0, min(1.0, fraction)) * 100:.0f}%")
    details.append(f"{action} · {model}" + (f" ×{count}" if count > 1 else ""))
    tip = f"task {task_id}" if task_id is not None else "not sent yet"
    text = (
        f'<div title="{esc(tip, quote=True)}">'
        f'<span class="nbw-stage" style="font-weight:600;">#{number} {esc(word)}</span>'
        f' <span style="overflow-wrap:anywhere;">“{esc(squash(prompt, _RUN_PROMPT_CHARS))}”'
        f'</span> <span class="nbw-muted nbw-run-details">· {esc(" · ".join(details))}</span>'
        "</div>"
    )
    if stage not in _FINISHED:
        text += progress_bar_html(fraction, elapsed)
    if error is not None:
        text += f'<div class="nbw-muted" style="overflow-wrap:anywhere;">{esc(error)}</div>'
    return text
