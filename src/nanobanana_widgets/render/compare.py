"""What a comparison shows, as HTML: the word-level prompt diff, a card per image, the
prompt changes, the before/after slider stage, the difference heat map and the pick status.

Pure functions over plain values and duck-typed sides (anything with ``label``,
``prompt``, ``params`` (``(name, value)`` pairs), ``kind``, ``task_id`` and ``link``, as
the comparison's ``Side`` has); they import no widget and no store. Everything
user-supplied (labels, prompts, parameters, file names, errors) is escaped.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Sequence
from typing import Any, Literal

from nanobanana_widgets.render.parts import ERROR_STYLE, IMG_STYLE, MUTED_STYLE
from nanobanana_widgets.render.styles import style_element

__all__ = [
    "COMPARED_PARAMS",
    "DiffOp",
    "card_html",
    "clip_css",
    "comparison_styles",
    "comparison_title_html",
    "diff_html",
    "difference_html",
    "difference_waiting_html",
    "pick_status_html",
    "prompt_diff_html",
    "stage_html",
    "word_diff",
]

DiffOp = Literal["equal", "delete", "insert"]

COMPARED_PARAMS = frozenset({"action", "model", "aspect ratio", "resolution", "count",
                             "inputs"})
"""Parameters emphasised on a card when they differ from the first image's."""

_INS_STYLE = "text-decoration:none;background:rgba(46,160,67,0.28);border-radius:3px;"
_DEL_STYLE = "text-decoration:line-through;background:rgba(248,81,73,0.25);border-radius:3px;"


def comparison_styles() -> str:
    """The comparison's stylesheet (the views' shared frame, then its own rules)."""
    return style_element("frame") + style_element("compare")


# --- the prompt diff ---------------------------------------------------------------------


_TRAILING = re.compile(r"^(.*?\w)([,.;:!?]+)$")


def _tokens(text: str) -> list[str]:
    """Words, with punctuation that ends a word (``dusk,``) as a token of its own."""
    out: list[str] = []
    for word in text.split():
        m = _TRAILING.match(word)
        out.extend([m.group(1), m.group(2)] if m else [word])
    return out


def _join(tokens: list[str]) -> str:
    """Tokens back into text: a space between words, none before trailing punctuation."""
    text = ""
    for token in tokens:
        glue = "" if not text or _is_punct(token) else " "
        text += glue + token
    return text


def _is_punct(token: str) -> bool:
    return bool(token) and all(c in ",.;:!?" for c in token)


def word_diff(a: str, b: str) -> list[tuple[DiffOp, str]]:
    """The word-level edit from prompt ``a`` to prompt ``b``.

    A list of ``(op, words)`` where ``op`` is ``"equal"``, ``"delete"`` (words only in
    ``a``) or ``"insert"`` (words only in ``b``); a replacement is a delete followed by an
    insert. Words are runs of non-blank characters, punctuation that ends a word apart
    (``dusk,`` against ``dawn,`` changes only the word); whitespace differences are
    ignored.
    """
    wa, wb = _tokens(a), _tokens(b)
    out: list[tuple[DiffOp, str]] = []
    matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.append(("equal", _join(wa[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            out.append(("delete", _join(wa[i1:i2])))
        if tag in ("insert", "replace"):
            out.append(("insert", _join(wb[j1:j2])))
    return out


def prompt_diff_html(a: str, b: str) -> str:
    """``b`` as HTML with the words not in ``a`` in ``<ins>`` and the removed ones in ``<del>``.

    Everything is escaped; the marks carry classes ``nbw-ins`` / ``nbw-del`` and inline
    styles, so the diff reads without the stylesheet too.
    """
    esc = html.escape
    text = ""
    for op, words in word_diff(a, b):
        if op == "equal":
            part = esc(words)
        elif op == "insert":
            part = f'<ins class="nbw-ins" style="{_INS_STYLE}">{esc(words)}</ins>'
        else:
            part = f'<del class="nbw-del" style="{_DEL_STYLE}">{esc(words)}</del>'
        glue = "" if not text or _is_punct(words.split(" ", 1)[0]) else " "
        text += glue + part
    return text


# --- the parts of a comparison -----------------------------------------------------------


def comparison_title_html(sides: Sequence[Any], comparison_id: str, *, edit: bool) -> str:
    """``Comparing 3 images`` or ``Edit: input → output``, with the comparison's id."""
    esc = html.escape
    if edit:
        what = f"Edit: {sides[0].label} → {sides[1].label}"
    else:
        what = f"Comparing {len(sides)} images"
    return (f'<div><span class="nbw-title">{esc(what)}</span> '
            f'<span class="nbw-muted">comparison {esc(comparison_id)}</span></div>')


def card_html(side: Any, uri: str | None, problem: str | None, *,
              first: Sequence[tuple[str, str]] | None = None) -> str:
    """An image's card: its label and kind, the thumbnail ``uri`` (linked to the full image
    when the side has a link) or the ``problem``, the prompt and the parameters; those that
    differ from ``first`` (the first image's parameters) are emphasised."""
    esc = html.escape
    base = dict(first) if first is not None else {}
    parts = [f'<div style="display:flex;gap:6px;align-items:baseline;margin-bottom:4px;">'
             f'<span class="nbw-cmp-badge">{esc(side.label)}</span>'
             f'<span class="nbw-muted">{esc(side.kind)}</span></div>']
    if uri is not None:
        alt = esc((side.prompt or side.label)[:200], quote=True)
        img = f'<img src="{uri}" alt="{alt}" style="{IMG_STYLE}">'
        if side.link:
            img = (f'<a href="{esc(side.link, quote=True)}" target="_blank" '
                   f'rel="noopener noreferrer" title="Open the full-size image">{img}</a>')
        parts.append(img)
    else:
        parts.append(f'<div style="{ERROR_STYLE}padding:8px;min-height:48px;">'
                     f'{esc(problem or "No image.")}</div>')
    if side.prompt is not None:
        parts.append(f'<div class="nbw-cmp-prompt" style="margin-top:6px;white-space:'
                     f'pre-wrap;overflow-wrap:anywhere;">{esc(side.prompt)}</div>')
    else:
        parts.append(f'<div style="{MUTED_STYLE}margin-top:6px;">(no prompt known)</div>')
    params = []
    for key, value in side.params:
        text = f"{esc(key)}: {esc(value)}"
        if key in COMPARED_PARAMS and key in base and base[key] != value:
            text = f'<span class="nbw-cmp-changed" style="font-weight:600;">{text}</span>'
        params.append(text)
    task = f' title="task {esc(side.task_id, quote=True)}"' if side.task_id else ""
    if params:
        parts.append(f'<div class="nbw-muted" style="{MUTED_STYLE}overflow-wrap:anywhere;"'
                     f'{task}>{" · ".join(params)}</div>')
    return "".join(parts)


def diff_html(sides: Sequence[Any], *, edit: bool) -> str:
    """The prompt changes against the first side with a prompt (an edit: its instruction)."""
    esc = html.escape
    base = next((s for s in sides if s.prompt is not None), None)
    head = '<div class="nbw-title" style="font-size:var(--jp-ui-font-size1, 13px);">'
    if base is None:
        return (f'{head}Prompts</div>'
                '<div class="nbw-muted">No prompt is known for these images.</div>')
    if edit:
        out = sides[1]
        rows = [f'<div class="nbw-cmp-prompt">{esc(out.prompt or "")}</div>']
        if sides[0].prompt is not None and out.prompt is not None:
            rows.append(f'<div class="nbw-muted">{esc(sides[0].label)} was made from: '
                        f'{esc(sides[0].prompt)}</div>')
        return f'{head}Edit instruction</div>{"".join(rows)}'
    rows = []
    for side in sides:
        if side is base:
            continue
        label = f"{base.label} → {side.label}"
        if side.prompt is None:
            body = '<span class="nbw-muted">(no prompt known)</span>'
        elif side.prompt.split() == base.prompt.split():
            body = '<span class="nbw-muted">same prompt</span>'
        else:
            body = prompt_diff_html(base.prompt or "", side.prompt)
        rows.append(f'<div class="nbw-cmp-diff" style="margin:2px 0;overflow-wrap:anywhere;">'
                    f'<span class="nbw-cmp-badge">{esc(label)}</span> {body}</div>')
    return f'{head}Prompt changes</div>{"".join(rows)}'


def clip_css(value: int) -> str:
    """The CSS that shows the left ``value`` % of the top image."""
    return f"clip-path:inset(0 {100 - value}% 0 0);"


def stage_html(a: Any, b: Any, top: str | None, bottom: str | None, *,
               aspect: tuple[int, int], max_side: int, value: int = 50) -> str:
    """Side ``a`` (thumbnail ``top``) stacked over side ``b`` (``bottom``), at most
    ``max_side`` px wide, the left ``value`` % of ``a`` showing. The stage is a focusable
    ``role="slider"``: the front end moves the divider by dragging on the images and with
    the arrow keys (``widgets/static/divider.js``); here it is drawn where ``value`` says."""
    esc = html.escape
    if top is None or bottom is None:
        missing = a if top is None else b
        return (f'<div style="{ERROR_STYLE}padding:8px;">The slider needs both images; '
                f'{esc(missing.label)} has none.</div>')
    w_, h_ = aspect
    value = max(0, min(100, int(value)))
    fill = ("position:absolute;inset:0;width:100%;height:100%;object-fit:contain;"
            "pointer-events:none;user-select:none;-webkit-user-drag:none;")
    tag = ("position:absolute;top:6px;padding:1px 6px;border-radius:4px;font-size:12px;"
           "background:rgba(0,0,0,0.6);color:#fff;max-width:45%;overflow:hidden;"
           "text-overflow:ellipsis;white-space:nowrap;pointer-events:none;")
    label = esc(f"Divider between {a.label} (left) and {b.label} (right): drag on the "
                "images, or use the arrow keys", quote=True)
    return (
        f'<div class="nbw-cmp-stage" role="slider" tabindex="0" aria-label="{label}" '
        f'aria-valuemin="0" aria-valuemax="100" aria-valuenow="{value}" '
        f'style="position:relative;width:100%;max-width:{max_side}px;'
        f"aspect-ratio:{w_} / {h_};margin:0 auto;overflow:hidden;border-radius:4px;"
        f'cursor:ew-resize;touch-action:none;user-select:none;-webkit-user-select:none;">'
        f'<img class="nbw-cmp-bottom" src="{bottom}" alt="{esc(b.label, quote=True)}" '
        f'draggable="false" style="{fill}">'
        f'<img class="nbw-cmp-top" src="{top}" alt="{esc(a.label, quote=True)}" '
        f'draggable="false" style="{fill}{clip_css(value)}">'
        f'<div class="nbw-cmp-divider" style="position:absolute;top:0;bottom:0;width:2px;'
        f'margin-left:-1px;left:{value}%;background:#fff;pointer-events:none;">'
        f'<div class="nbw-cmp-handle" style="position:absolute;top:50%;left:50%;width:28px;'
        f"height:28px;margin:-14px 0 0 -14px;border-radius:50%;background:#fff;color:#222;"
        f'font-size:12px;line-height:28px;text-align:center;">&#9664;&#9654;</div></div>'
        f'<span class="nbw-cmp-tag" style="{tag}left:6px;">{esc(a.label)}</span>'
        f'<span class="nbw-cmp-tag" style="{tag}right:6px;">{esc(b.label)}</span>'
        f"</div>"
    )


def difference_html(a: Any, b: Any, heatmap: str, *, share: float, mean: float,
                    size: tuple[int, int], note: str | None, threshold: int,
                    max_side: int = 512) -> str:
    """The difference view: the heat map (data URI ``heatmap``) with the share of changed
    pixels, the mean difference, the size compared at, a note on scaling, and a legend."""
    esc = html.escape
    pct = share * 100.0
    share_text = f"{pct:.1f}%" if pct >= 0.1 or pct == 0 else "under 0.1%"
    what = (f"{share_text} of the pixels changed between {a.label} and {b.label}")
    legend = ('<span class="nbw-cmp-legend" style="display:inline-block;width:90px;height:10px;'
              'vertical-align:middle;border-radius:2px;background:linear-gradient(90deg,'
              'rgb(40,0,0),rgb(225,35,35),rgb(255,240,120));"></span>')
    details = (f"by more than {threshold / 255:.0%} of their range · mean difference "
               f"{mean * 100:.1f}% · compared at {size[0]}×{size[1]}")
    parts = [
        f'<div class="nbw-cmp-heat" style="max-width:{min(max(size[0], 1), max_side)}px;'
        f'margin:0 auto;">'
        f'<img src="{heatmap}" alt="{esc(f"Where {a.label} and {b.label} differ", quote=True)}"'
        f' style="display:block;width:100%;height:auto;border-radius:4px;"></div>',
        f'<div class="nbw-cmp-diffstat" style="margin-top:6px;"><b>{esc(what)}</b> '
        f'<span class="nbw-muted" style="{MUTED_STYLE}">{esc(details)}</span></div>',
        f'<div class="nbw-muted" style="{MUTED_STYLE}">unchanged {legend} most changed, over a '
        f"dimmed copy of {esc(a.label)}</div>",
    ]
    if note:
        parts.append(f'<div class="nbw-cmp-note" style="{MUTED_STYLE}">{esc(note)}</div>')
    return "".join(parts)


def difference_waiting_html(text: str, *, error: bool = False) -> str:
    """What the difference view shows while it is computed, or why it cannot be."""
    style = ERROR_STYLE if error else MUTED_STYLE
    return f'<div class="nbw-cmp-heat-wait" style="{style}padding:8px;">{html.escape(text)}</div>'


def pick_status_html(text: str, css: str) -> str:
    """The pick status line; ``css`` is ``nbw-ok``, ``nbw-warn`` or ``nbw-muted``."""
    return (f'<div class="nbw-cmp-status {css}" style="overflow-wrap:anywhere;">'
            f"{html.escape(text)}</div>")
