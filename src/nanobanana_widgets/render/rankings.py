"""Rankings as HTML and text: a table whose last column charts each score with its interval.

Pure functions over duck-typed rows (anything with ``item, prompt, model, wins, losses,
ties, score, low, high`` and ``key``, as ``store.rankings.RankingRow`` has). ``thumbs``
maps a row's key to a thumbnail ``data:`` URI; ``blind=True`` leaves out every label,
prompt and model (a blind tournament shows only the images and their scores until it is
revealed). Every string is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from nanobanana_widgets.render.parts import MUTED_STYLE, plural
from nanobanana_widgets.render.styles import style_element

__all__ = ["rankings_html", "rankings_styles", "rankings_text"]

_PROMPT_CHARS = 140


def rankings_styles() -> str:
    """The rankings' stylesheet."""
    return style_element("rankings")


def _axis(rows: Sequence[Any]) -> tuple[float, float]:
    lows = [float(r.low) for r in rows]
    highs = [float(r.high) for r in rows]
    lo, hi = min(lows, default=900.0), max(highs, default=1100.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 100.0, hi + 100.0
    pad = (hi - lo) * 0.04
    return lo - pad, hi + pad


def _pct(value: float, lo: float, hi: float) -> float:
    return max(0.0, min(100.0, (value - lo) / (hi - lo) * 100.0))


def _bar(row: Any, lo: float, hi: float, best: bool) -> str:
    left = _pct(float(row.low), lo, hi)
    right = _pct(float(row.high), lo, hi)
    mid = _pct(float(row.score), lo, hi)
    cls = "nbw-rank-bar nbw-rank-best" if best else "nbw-rank-bar"
    title = html.escape(f"score {row.score:.0f}, 95% interval {row.low:.0f} to {row.high:.0f}",
                        quote=True)
    return (f'<div class="{cls}" title="{title}" style="position:relative;height:14px;'
            f'min-width:120px;">'
            f'<div class="nbw-rank-axis" style="position:absolute;left:0;right:0;top:6px;'
            f'height:1px;background:rgba(128,128,128,0.35);"></div>'
            f'<div class="nbw-rank-ci" style="position:absolute;top:3px;height:8px;'
            f'left:{left:.1f}%;width:{max(right - left, 0.5):.1f}%;border-radius:4px;'
            f'background:rgba(33,150,243,0.35);"></div>'
            f'<div class="nbw-rank-dot" style="position:absolute;top:1px;width:12px;'
            f'height:12px;margin-left:-6px;left:{mid:.1f}%;border-radius:50%;'
            f'background:#1976d2;"></div></div>')


def rankings_html(rows: Sequence[Any], *, votes: int = 0, title: str = "",
                  thumbs: Mapping[Any, str] | None = None, blind: bool = False,
                  styles: bool = True, limit: int | None = None) -> str:
    """The rankings table, best first, with the interval chart in its last column (the
    first ``limit`` rows, and how many more there are)."""
    esc = html.escape
    head = f'<div class="nbw-title">{esc(title)}</div>' if title else ""
    if not rows:
        return (f'{rankings_styles() if styles else ""}<div class="nbw-rank-wrap">{head}'
                f'<div class="nbw-muted" style="{MUTED_STYLE}">Nothing ranked yet: no votes '
                "between these items.</div></div>")
    more = 0
    if limit is not None and len(rows) > limit:
        rows, more = rows[:limit], len(rows) - limit
    lo, hi = _axis(rows)
    show_text = not blind
    cells = ['<th scope="col">#</th>', '<th scope="col">image</th>' if thumbs else ""]
    if show_text:
        cells += ['<th scope="col">item</th>', '<th scope="col">prompt</th>',
                  '<th scope="col">model</th>']
    cells += ['<th scope="col" title="wins – losses – ties">W–L–T</th>',
              '<th scope="col" title="Bradley–Terry score on the Elo scale (1000 is the '
              'average item), 95% interval">score</th>',
              f'<th scope="col" class="nbw-rank-chart-head">{esc(f"{lo:.0f}")} … '
              f'{esc(f"{hi:.0f}")}</th>']
    body = []
    for k, row in enumerate(rows):
        tds = [f'<td class="nbw-rank-pos">{k + 1}</td>']
        if thumbs:
            uri = thumbs.get(row.key)
            img = (f'<img src="{esc(uri, quote=True)}" alt="" loading="lazy" '
                   'style="display:block;max-width:56px;max-height:56px;border-radius:3px;">'
                   if uri and uri.startswith("data:image/") else "")
            tds.append(f'<td class="nbw-rank-thumb">{img}</td>')
        if show_text:
            prompt = str(row.prompt or "")
            short = prompt if len(prompt) <= _PROMPT_CHARS else prompt[:_PROMPT_CHARS] + "…"
            tds += [f'<td class="nbw-rank-item">{esc(str(row.item))}</td>',
                    f'<td class="nbw-rank-prompt" title="{esc(prompt, quote=True)}">'
                    f"{esc(short)}</td>",
                    f'<td class="nbw-rank-model">{esc(str(row.model or ""))}</td>']
        tds += [f'<td class="nbw-rank-wlt">{row.wins}–{row.losses}–{row.ties}</td>',
                f'<td class="nbw-rank-score">{row.score:.0f} '
                f'<span class="nbw-muted" style="{MUTED_STYLE}">({row.low:.0f}–'
                f"{row.high:.0f})</span></td>",
                f'<td class="nbw-rank-chart">{_bar(row, lo, hi, k == 0 and votes > 0)}</td>']
        body.append(f"<tr>{''.join(tds)}</tr>")
    rest = f" The {more} more are in rankings()." if more else ""
    note = (f'<div class="nbw-muted" style="{MUTED_STYLE}">{esc(plural(votes, "vote"))} '
            "(ties count half). Bars: 95% intervals; two items whose bars do not overlap "
            f"are told apart by the votes.{rest}</div>")
    return (f'{rankings_styles() if styles else ""}<div class="nbw-rank-wrap">{head}'
            f'<table class="nbw-rank"><thead><tr>{"".join(cells)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>{note}</div>')


def rankings_text(rows: Sequence[Any], *, votes: int = 0) -> str:
    """The rankings as an aligned text table (the ``repr``)."""
    header = ("#", "item", "prompt", "model", "W-L-T", "score", "interval")
    lines = [header]
    for k, r in enumerate(rows):
        prompt = str(r.prompt or "")
        lines.append((str(k + 1), str(r.item)[:24], prompt[:40] + ("…" if len(prompt) > 40
                                                                  else ""),
                       str(r.model or ""), f"{r.wins}-{r.losses}-{r.ties}", f"{r.score:.0f}",
                       f"{r.low:.0f}–{r.high:.0f}"))
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(line)).rstrip()
                     for line in lines)
    return f"<Rankings of {plural(len(rows), 'item')} from {plural(votes, 'vote')}>\n{text}"
