"""What a tournament and an A/B test show, as HTML: the pair to vote on, the vote just cast
(revealed), the header and hints; the A/B test's plan, budget, verdict, variation and arms.

Pure functions over plain values and duck-typed items (anything with ``label``, ``prompt``,
``model`` and ``params`` (``(name, value)`` pairs), as the tournament's ``Item`` has). A
*blind* pair shows no label, prompt or model, not even in an ``alt`` or ``title``: only
"left" and "right". Everything user-supplied is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from nanobanana_widgets.render.compare import prompt_diff_html
from nanobanana_widgets.render.parts import ERROR_STYLE, MUTED_STYLE, plural
from nanobanana_widgets.render.styles import style_element

__all__ = [
    "ab_budget_html",
    "ab_plan_html",
    "arms_html",
    "pair_html",
    "pair_waiting_html",
    "reveal_html",
    "status_html",
    "tournament_header_html",
    "tournament_styles",
    "variation_html",
    "verdict_html",
]

_PROMPT_CHARS = 300
_KEYS = {"left": "1", "right": "2"}
_CARD_IMG = ("display:block;width:100%;height:100%;object-fit:contain;border-radius:4px;"
             "user-select:none;-webkit-user-drag:none;")


def tournament_styles() -> str:
    """The tournament's stylesheet, and the rankings' (its chart)."""
    return style_element("tournament") + style_element("rankings")


def _short(text: str, n: int = _PROMPT_CHARS) -> str:
    return text if len(text) <= n else text[:n] + "…"


def _details(item: Any) -> str:
    """An item's label, prompt and parameters (shown once it is not blind)."""
    esc = html.escape
    bits = [f'<span class="nbw-trn-label">{esc(str(item.label))}</span>']
    if item.prompt:
        bits.append(f'<span class="nbw-trn-prompt">{esc(_short(str(item.prompt)))}</span>')
    else:
        bits.append(f'<span class="nbw-muted" style="{MUTED_STYLE}">(no prompt known)</span>')
    params = " · ".join(f"{esc(str(k))}: {esc(str(v))}" for k, v in item.params)
    if params:
        bits.append(f'<span class="nbw-muted" style="{MUTED_STYLE}">{params}</span>')
    return "".join(f"<div>{b}</div>" for b in bits)


def tournament_header_html(*, title: str, blind: bool, n_items: int, pair: int | None,
                           votes: int, suggested: int, reveal: str) -> str:
    """``Blind tournament · 8 images · pair 5 · 4 votes (about 16 suggested)``."""
    esc = html.escape
    kind = "Blind tournament" if blind else "Tournament"
    bits = [plural(n_items, "image"), plural(votes, "vote")]
    if pair is not None:
        bits.insert(1, f"pair {pair}")
    if votes < suggested:
        bits[-1] += f" (about {suggested} give a first ranking)"
    else:
        bits[-1] += " (enough for a first ranking; more narrow the intervals)"
    hidden = ""
    if blind:
        hidden = ("prompts, models and labels are hidden until you vote" if reveal == "vote"
                  else "prompts, models and labels are hidden until the end")
    return (f'<div class="nbw-trn-head"><span class="nbw-title">{esc(kind)}</span> '
            f'<span class="nbw-muted" style="{MUTED_STYLE}">{esc(title)}</span>'
            f'<div class="nbw-muted" style="{MUTED_STYLE}">{esc(" · ".join(bits))}'
            f'{" · " + esc(hidden) if hidden else ""}</div></div>')


def _card(item: Any, uri: str, side: str, *, blind: bool, max_side: int,
          aspect: tuple[int, int]) -> str:
    esc = html.escape
    key = _KEYS[side]
    alt = (f"{side} image" if blind else
           f"{side} image: {_short(str(item.prompt or item.label), 200)}")
    caption = (f'<div class="nbw-trn-caption"><b>{key}</b> · {side}</div>' if blind else
               f'<div class="nbw-trn-caption"><b>{key}</b> · {side}{_details(item)}</div>')
    return (f'<figure class="nbw-trn-card" data-side="{side}" title="{side} image: click '
            f'or press {key} if it is the better one" style="margin:0;flex:1 1 0;min-width:0;'
            f'max-width:{max_side}px;cursor:pointer;">'
            f'<div class="nbw-trn-frame" style="aspect-ratio:{aspect[0]} / {aspect[1]};'
            f'width:100%;">'
            f'<img src="{esc(uri, quote=True)}" alt="{esc(alt, quote=True)}" '
            f'draggable="false" style="{_CARD_IMG}"></div>{caption}</figure>')


def pair_html(left: Any, right: Any, left_uri: str, right_uri: str, *, number: int,
              blind: bool, max_side: int = 480, aspect: tuple[int, int] = (1, 1)) -> str:
    """The pair to vote on: two cards of one shape (``aspect``, the wider image's), with
    ``data-pair`` naming the pair (a key press for an older pair is ignored) and
    ``data-ready="1"`` (the images are there)."""
    return (f'<div class="nbw-trn-stage" data-pair="{int(number)}" data-ready="1" '
            f'style="display:flex;gap:12px;align-items:flex-start;justify-content:center;'
            f'width:100%;user-select:none;-webkit-user-select:none;">'
            f'{_card(left, left_uri, "left", blind=blind, max_side=max_side, aspect=aspect)}'
            f'<div class="nbw-trn-vs" style="align-self:center;">vs</div>'
            f'{_card(right, right_uri, "right", blind=blind, max_side=max_side, aspect=aspect)}'
            "</div>")


def pair_waiting_html(text: str, *, number: int | None = None, error: bool = False) -> str:
    """The stage while the pair's images load, or when there is nothing to vote on."""
    style = ERROR_STYLE if error else MUTED_STYLE
    pair = f' data-pair="{int(number)}"' if number is not None else ""
    return (f'<div class="nbw-trn-stage nbw-trn-waiting"{pair} data-ready="0" '
            f'style="{style}padding:24px 8px;text-align:center;">{html.escape(text)}</div>')


_VERDICT_WORDS = {"left": "you preferred the left image", "right": "you preferred the right image",
                  "tie": "a tie", "skip": "skipped"}


def reveal_html(left: Any, right: Any, outcome: str, number: int, *,
                thumbs: tuple[str | None, str | None], identities: bool) -> str:
    """The vote just cast: ``Pair 4: you preferred the left image``, and (``identities``)
    who the two were, with small thumbnails, the preferred one marked."""
    esc = html.escape
    head = (f'<div class="nbw-trn-reveal-head"><b>Pair {int(number)}</b>: '
            f"{esc(_VERDICT_WORDS.get(outcome, outcome))}.</div>")
    if not identities:
        return (f'<div class="nbw-trn-reveal">{head}<div class="nbw-muted" '
                f'style="{MUTED_STYLE}">Which image is which stays hidden until the end.'
                "</div></div>")
    sides = []
    for item, uri, side in ((left, thumbs[0], "left"), (right, thumbs[1], "right")):
        won = outcome == side
        img = (f'<img src="{esc(uri, quote=True)}" alt="" style="width:48px;height:48px;'
               'object-fit:cover;border-radius:3px;flex:none;">' if uri else "")
        mark = ' <span class="nbw-trn-won">preferred</span>' if won else ""
        sides.append(f'<div class="nbw-trn-side{" nbw-trn-winner" if won else ""}" '
                     f'style="display:flex;gap:8px;align-items:flex-start;flex:1 1 0;'
                     f'min-width:0;overflow-wrap:anywhere;">{img}<div><b>{side}</b>{mark}'
                     f"{_details(item)}</div></div>")
    return (f'<div class="nbw-trn-reveal">{head}<div style="display:flex;gap:12px;'
            f'flex-wrap:wrap;">{"".join(sides)}</div></div>')


def status_html(text: str, css: str = "nbw-muted") -> str:
    """The one status line (``nbw-muted``, ``nbw-ok`` or ``nbw-warn``)."""
    return (f'<div class="nbw-trn-status {css}" style="overflow-wrap:anywhere;">'
            f"{html.escape(text)}</div>")


# --- A/B tests -----------------------------------------------------------------------------


def ab_plan_html(test_id: str, arms: Sequence[tuple[str, str, Sequence[tuple[str, str]]]], *,
                 samples: int, requests: int, paid: int, replay: bool) -> str:
    """The test's title and what it will cost: each arm (label, prompt, parameters; the
    second prompt diffed against the first), then ``8 paid generations (...)``."""
    esc = html.escape
    rows = []
    base = arms[0][1] if arms else ""
    for k, (label, prompt, params) in enumerate(arms):
        text = esc(prompt) if k == 0 else prompt_diff_html(base, prompt)
        extra = " · ".join(f"{esc(a)}: {esc(b)}" for a, b in params)
        rows.append(f'<div class="nbw-ab-arm"><span class="nbw-ab-badge">{esc(label)}</span> '
                    f'<span class="nbw-trn-prompt">{text}</span>'
                    f'{f" <span class=nbw-muted>· {extra}</span>" if extra else ""}</div>')
    cost = (f"{plural(paid, 'paid generation')}: {plural(samples, 'image')} per arm, in "
            f"{plural(requests, 'request')} each (up to 4 images per request)")
    if replay:
        cost += "; replay is on, so requests identical to recorded ones are not paid again"
    return (f'<div><span class="nbw-title">A/B test</span> <span class="nbw-muted" '
            f'style="{MUTED_STYLE}">{esc(test_id)}</span></div>{"".join(rows)}'
            f'<div class="nbw-ab-cost">{esc(cost)}.</div>')


def ab_budget_html(paid: int, max_calls: int) -> str:
    """Why nothing was sent: the test costs more than ``max_calls`` paid generations."""
    return (f'<div class="nbw-budget">This A/B test would make {paid} paid generations, '
            f"more than max_calls={max_calls}. Nothing has been sent. Click the button (or call "
            f"ab.confirm()) to run them.</div>")


def verdict_html(text: str, wins: Mapping[str, int], ties: int, p_value: float | None, *,
                 conclusive: bool) -> str:
    """The verdict in plain words, the wins per arm and the p-value."""
    esc = html.escape
    cells = "".join(f'<td><span class="nbw-ab-badge">{esc(k)}</span> '
                    f"{esc(plural(v, 'win'))}</td>" for k, v in wins.items())
    p = "–" if p_value is None else (f"{p_value:.3f}" if p_value >= 0.001 else "< 0.001")
    cls = "nbw-ab-verdict nbw-ab-conclusive" if conclusive else "nbw-ab-verdict"
    return (f'<div class="{cls}">{esc(text)}</div>'
            f'<table class="nbw-ab-wins"><tr>{cells}<td>{esc(plural(ties, "tie"))} '
            f'(set aside)</td><td title="exact two-sided sign test">p = {esc(p)}</td></tr>'
            "</table>")


def variation_html(within: Mapping[str, float], between: float | None, note: str) -> str:
    """How much images of one arm differ from each other, against images of different
    arms (mean pixel difference, in percent), with a sentence saying what it means."""
    esc = html.escape
    if between is None:
        return f'<div class="nbw-muted" style="{MUTED_STYLE}">{esc(note)}</div>'
    scale = max([between, *within.values(), 1e-9])
    rows = []
    for label, value in [*((f"within {k}", v) for k, v in within.items()),
                         ("between arms", between)]:
        width = value / scale * 100.0
        rows.append(f'<tr><td>{esc(label)}</td><td style="width:60%;"><div class="nbw-ab-bar" '
                    f'style="height:10px;border-radius:3px;width:{width:.1f}%;'
                    f'background:rgba(33,150,243,0.5);"></div></td>'
                    f"<td>{value * 100:.1f}%</td></tr>")
    return (f'<div class="nbw-title" style="font-size:var(--jp-ui-font-size1, 13px);">How much '
            f'the images differ</div><table class="nbw-ab-variation">{"".join(rows)}</table>'
            f'<div class="nbw-ab-note">{esc(note)}</div>')


def arms_html(arms: Sequence[tuple[str, Sequence[tuple[str | None, Mapping[str, int]]]]]) -> str:
    """Each arm's images (thumbnail URI, and the image's ``wins``/``losses``/``ties``)."""
    esc = html.escape
    rows = []
    for label, images in arms:
        cards = []
        for uri, tally in images:
            img = (f'<img src="{esc(uri, quote=True)}" alt="" style="display:block;width:100%;'
                   f'border-radius:3px;">' if uri else "")
            score = f"{tally.get('wins', 0)}–{tally.get('losses', 0)}–{tally.get('ties', 0)}"
            cards.append(f'<figure style="margin:0;width:96px;">{img}<figcaption '
                         f'class="nbw-muted" style="{MUTED_STYLE}">W–L–T {esc(score)}'
                         "</figcaption></figure>")
        rows.append(f'<div class="nbw-ab-row"><span class="nbw-ab-badge">{esc(label)}</span>'
                    f'<div style="display:flex;gap:8px;flex-wrap:wrap;">{"".join(cards)}</div>'
                    "</div>")
    return "".join(rows)
