"""What a batch job shows, as HTML: its title, its plan, a tqdm-like progress block (bar,
done / failed / running / queued, rate, ETA, paid so far) and the last errors.

Pure functions over duck-typed summaries (``name``, ``state``, ``total``, ``succeeded``,
``failed``, ``uncertain``, ``running``, ``queued``, ``cancelled``, ``paid``, ``paid_so_far``,
``rate``, ``eta``, ``elapsed``, ``pace``, ``rate_limited``, ``reason``, ``errors`` of
``row``/``prompt``/``kind``/``message``/``trace_id``): the live view and the static rendition
(``job_html``) show the same. Every user-supplied string is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from nanobanana_widgets.render.parts import plural
from nanobanana_widgets.render.styles import style_element
from nanobanana_widgets.service.text import shorten

__all__ = ["batch_styles", "budget_html", "duration", "errors_html", "job_html",
           "notice_html", "plan_html", "progress_html", "title_html"]

_PROMPT_CHARS = 80
_MESSAGE_CHARS = 200


def batch_styles() -> str:
    """The progress view's stylesheet."""
    return style_element("batch")


def duration(seconds: float | None) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"`` (``"—"`` when unknown)."""
    if seconds is None:
        return "—"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def title_html(name: str, state: str) -> str:
    """``Batch job <name>`` and its state."""
    esc = html.escape
    return (f'<div><span class="nbw-title">Batch job</span> '
            f'<span class="nbw-muted">{esc(name)}</span>'
            f'<span class="nbw-batch-state">{esc(state)}</span></div>')


def plan_html(total: int, paid: int, models: Sequence[str], source: str = "") -> str:
    """What the job asks for and costs: ``1,000 rows → 1,000 paid generations (nano-banana)``."""
    esc = html.escape
    text = f"{total:,} {'row' if total == 1 else 'rows'} → {plural(paid, 'paid generation')}"
    if models:
        text += f" ({', '.join(models)})"
    if source:
        text += f" · from {source}"
    return f'<div style="overflow-wrap:anywhere;">{esc(text)}</div>'


def budget_html(paid: int, max_calls: int | None) -> str:
    """Why nothing was sent: the job costs more than ``max_calls`` paid generations."""
    return (f'<div class="nbw-batch-notice">This job would make {paid:,} paid generations, '
            f"more than max_calls={max_calls}. Nothing has been sent. Click the button (or "
            "call job.confirm()) to run them.</div>")


def notice_html(text: str) -> str:
    """A notice (why the job paused, what cancelling left running)."""
    return f'<div class="nbw-batch-notice">{html.escape(text)}</div>'


def _bar(s: Any) -> str:
    total = max(1, int(s.total))

    def part(n: int, cls: str) -> str:
        if n <= 0:
            return ""
        return f'<div class="{cls}" style="width:{100 * n / total:.3f}%"></div>'

    return (f'<div class="nbw-batch-bar" role="progressbar" aria-valuemin="0" '
            f'aria-valuemax="{total}" aria-valuenow="{int(s.succeeded) + int(s.failed)}">'
            + part(int(s.succeeded), "nbw-batch-ok") + part(int(s.failed), "nbw-batch-bad")
            + part(int(s.running), "nbw-batch-run") + "</div>")


def progress_html(s: Any) -> str:
    """The bar and the counts: done / failed / running / queued, rate, ETA, paid so far."""
    esc = html.escape
    done = int(s.succeeded) + int(s.failed)
    pct = 100 * done / s.total if s.total else 100.0
    texts = [f"✓ {int(s.succeeded):,} succeeded"]
    failed = f"✗ {int(s.failed):,} failed"
    if s.uncertain:
        failed += f" ({int(s.uncertain):,} may have been billed)"
    texts += [failed, f"⟳ {int(s.running):,} running", f"{int(s.queued):,} queued"]
    if s.cancelled:
        texts.append(f"{int(s.cancelled):,} not sent")
    texts.append(f"{s.rate:.1f} rows/s" if s.rate else "— rows/s")
    if s.state == "running":
        texts.append(f"ETA {duration(s.eta)}")
    texts.append(f"elapsed {duration(s.elapsed)}")
    texts.append(f"paid so far {int(s.paid_so_far):,} of {int(s.paid):,}")
    if s.rate_limited:
        pace = f", pacing {s.pace:.1f} submits/s" if s.pace else ""
        texts.append(f"{int(s.rate_limited):,} rate-limited (429, not billed){pace}")
    counts = f"<span><b>{done:,} / {int(s.total):,}</b> ({pct:.0f}%)</span>" + "".join(
        f"<span>{esc(t)}</span>" for t in texts)
    return _bar(s) + f'<div class="nbw-batch-counts">{counts}</div>'


def errors_html(errors: Sequence[Any]) -> str:
    """The last errors: row number, prompt (shortened), error class and message."""
    if not errors:
        return ""
    esc = html.escape
    items = []
    for e in errors:
        trace = f" (trace id {e.trace_id})" if e.trace_id else ""
        title = f"{e.prompt}\n\n{e.kind}: {e.message}{trace}"
        items.append(
            f'<li title="{esc(title, quote=True)}">row {int(e.row)} · '
            f"<i>{esc(shorten(e.prompt, _PROMPT_CHARS))}</i> · <b>{esc(e.kind)}</b>: "
            f"{esc(shorten(e.message, _MESSAGE_CHARS))}{esc(trace)}</li>")
    return (f'<div class="nbw-muted" style="margin-top:6px;">Last '
            f"{plural(len(errors), 'error')}:</div>"
            f'<ul class="nbw-batch-errors">{"".join(items)}</ul>')


def job_html(s: Any, *, models: Sequence[str] = (), source: str = "",
             max_calls: int | None = None) -> str:
    """The whole job as one static block (for saved notebooks and exported HTML)."""
    body = [title_html(s.name, s.state), plan_html(s.total, s.paid, models, source)]
    if s.state == "awaiting confirmation":
        body.append(budget_html(s.paid, max_calls))
    body.append(progress_html(s))
    if s.reason:
        body.append(notice_html(s.reason))
    body.append(errors_html(s.errors))
    return (batch_styles() + '<div class="nbw-batch" style="max-width:100%;">'
            + "".join(body) + "</div>")
