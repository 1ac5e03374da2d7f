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
    "full_image_html",
    "input_card_html",
    "inputs_hint_html",
    "messages_html",
    "result_card_html",
    "run_row_html",
]

TITLE_HTML = '<span class="nbw-title">Nano Banana</span>'
SHORTCUT_HINT_HTML = '<span class="nbw-hint">Ctrl/Cmd+Enter in the prompt box also runs</span>'

_RUN_PROMPT_CHARS = 70
_CARD_PROMPT_CHARS = 120
_INPUT_LABEL_CHARS = 24

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


def messages_html(messages: Sequence[tuple[str, str]]) -> str:
    """The status area: ``(level, text)`` messages, the newest first, each escaped."""
    return "".join(f'<div class="nbw-msg nbw-msg-{level}">{html.escape(text)}</div>'
                   for level, text in reversed(messages))


def inputs_hint_html(n: int, *, editing: bool) -> str:
    """How many input images there are, and what they are for."""
    if editing:
        text = plural(n, "input image") if n else "Add at least one image to edit"
    else:
        text = (f"{plural(n, 'input image')} (used in Edit mode)" if n
                else "Input images are used in Edit mode")
    return f'<span class="nbw-hint">{html.escape(text)}</span>'


def input_card_html(label: str, jpeg: bytes, *, side: int) -> str:
    """An input image's thumbnail (at most ``side`` px) above its (shortened) label."""
    esc = html.escape
    return (
        f'<img src="{data_uri(jpeg)}" alt="{esc(label, quote=True)}" '
        f'title="{esc(label, quote=True)}" '
        f'style="display:block;max-width:{side}px;'
        f'max-height:{side}px;margin:0 auto;border-radius:4px;">'
        f'<div class="nbw-hint" style="text-align:center;overflow-wrap:anywhere;">'
        f"{esc(shorten(label, _INPUT_LABEL_CHARS))}</div>"
    )


def result_card_html(image: Any, jpeg: bytes | None, *, error: str | None = None,
                     run_number: int = 0, link: str | None = None) -> str:
    """A result image: its thumbnail (linked to ``link``, the full image, by default its
    URL when that may go into an output) or why there is none, its prompt, then
    ``#run · model · … · task id``."""
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
    task_id = image.task_id
    short_id = task_id if len(task_id) <= 12 else task_id[:8] + "…"
    meta.append(f"task {short_id}" + (f" #{image.index + 1}"
                                       if req is not None and req.count > 1 else ""))
    return (
        f'{img}<div title="{esc(prompt, quote=True)}" '
        f'style="margin-top:4px;overflow-wrap:anywhere;">{esc(short)}</div>'
        f'<div class="nbw-hint" style="overflow-wrap:anywhere;" '
        f'title="task {esc(task_id, quote=True)}">{esc(" · ".join(meta))}</div>'
    )


def full_image_html(src: str) -> str:
    """The full-size image, shown on demand."""
    return (f'<img src="{html.escape(src, quote=True)}" alt="full-size image" '
            'style="max-width:100%;height:auto;display:block;">')


def run_row_html(*, number: int, stage: str, cancelling: bool, prompt: str, elapsed: float,
                 images: int | None, action: str, model: str, count: int,
                 task_id: str | None, error: str | None) -> str:
    """A run's progress row: ``#3 waiting “prompt” · 4.2 s · generate · model · task …``,
    with the error below when it failed or was cancelled. ``images`` is the number of
    images of a run that is done (``None`` before)."""
    esc = html.escape
    word = "cancelling" if cancelling else _STAGE_WORDS[stage]
    details = [seconds(elapsed)]
    if images is not None:
        details.insert(0, plural(images, "image"))
    details.append(f"{action} · {model}" + (f" ×{count}" if count > 1 else ""))
    if task_id is not None:
        details.append(f"task {task_id}")
    text = (
        f'<span class="nbw-stage" style="font-weight:600;">#{number} {esc(word)}</span>'
        f' <span style="overflow-wrap:anywhere;">“{esc(squash(prompt, _RUN_PROMPT_CHARS))}”'
        f'</span> <span class="nbw-muted">· {esc(" · ".join(details))}</span>'
    )
    if error is not None:
        text += f'<div class="nbw-muted" style="overflow-wrap:anywhere;">{esc(error)}</div>'
    return text
