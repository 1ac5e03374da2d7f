"""Shareable reports: one self-contained HTML page for a comparison, a grid or a history view.

A report is read offline, in any browser, by someone without Jupyter: its styles are inline
in the page, its thumbnails are embedded (JPEG data URIs), and each full-size image is
either a file in a folder beside the report (linked by a relative path) or embedded too
(``embed=True``: shown on demand under a "Full size" disclosure, no script). Everything
user-supplied (prompts, labels, parameters, notes, file names) is escaped.

Pure functions over strings and plain values; the files are written by the caller
(``images.published``).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from nanobanana_widgets.render.history_table import history_row, history_table
from nanobanana_widgets.render.static import static_styles

__all__ = ["full_size_html", "history_report_html", "report_document"]

_PAGE_CSS = """
body.nbw-report { margin: 0; padding: 24px; background: #fff; color: #1f1f1f;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; font-size: 14px; }
.nbw-report main { max-width: 1280px; margin: 0 auto; }
.nbw-report h1 { font-size: 20px; margin: 0 0 4px; overflow-wrap: anywhere; }
.nbw-report .nbw-report-sub { color: #666; font-size: 12px; margin-bottom: 16px; }
.nbw-report .nbw-report-foot { color: #666; font-size: 11px; margin-top: 24px; }
.nbw-report details.nbw-full { margin-top: 4px; font-size: 12px; }
.nbw-report details.nbw-full img { display: block; max-width: 100%; height: auto;
  margin-top: 4px; border-radius: 4px; }
.nbw-report a.nbw-full-link { font-size: 12px; }
@media (prefers-color-scheme: dark) {
  body.nbw-report { background: #111; color: #e6e6e6; }
  .nbw-report .nbw-report-sub, .nbw-report .nbw-report-foot { color: #aaa; }
  .nbw-report a { color: #8ab4f8; }
}
"""


def report_document(title: str, body: str, *, subtitle: str = "",
                    sheets: Sequence[str] = ()) -> str:
    """A whole HTML page: ``title`` (escaped) as its heading, ``subtitle`` (escaped) under
    it, ``body`` (HTML) inside a rendition frame styled by the views' ``sheets``."""
    esc = html.escape
    sub = f'<div class="nbw-report-sub">{esc(subtitle)}</div>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="nanobanana-widgets">'
        f"<title>{esc(title)}</title><style>{_PAGE_CSS}</style>"
        f"{static_styles(*sheets)}</head>"
        f'<body class="nbw-report"><main><h1>{esc(title)}</h1>{sub}'
        f'<div class="nbw-static nbw-report-body">{body}</div>'
        '<div class="nbw-report-foot">Made with nanobanana-widgets. Thumbnails are '
        "embedded; full-size images are in the folder beside this file or embedded below "
        "each thumbnail.</div></main></body></html>\n"
    )


def full_size_html(target: str | None, *, name: str = "") -> str:
    """Where a thumbnail's full-size image is: a link to the copy beside the report, or,
    for an embedded image (a ``data:`` URI), the image itself under a disclosure. Empty
    when there is none."""
    if not target:
        return ""
    esc = html.escape
    label = esc(name or "full-size image", quote=True)
    if target.startswith("data:"):
        return (f'<details class="nbw-full"><summary>Full size</summary>'
                f'<img src="{esc(target, quote=True)}" alt="{label}"></details>')
    return (f'<a class="nbw-full-link" href="{esc(target, quote=True)}" target="_blank" '
            f'rel="noopener noreferrer" title="{label}">Full size ↗</a>')


def history_report_html(rows: Sequence[tuple[Mapping[str, Any], bytes | None,
                                             Sequence[str]]]) -> str:
    """The table of a history report: per record its fields (``Record.to_dict()``), its
    thumbnail (JPEG bytes or ``None``) and where its full-size images are (see
    :func:`full_size_html`), with its notes (picks are notes) in full."""
    esc = html.escape
    cells: list[list[str]] = []
    for position, (row, thumb, targets) in enumerate(rows):
        from_row = _history_cells(position, row, thumb)
        links = "".join(f"<div>{full_size_html(t, name=f'image {k + 1}')}</div>"
                        for k, t in enumerate(targets) if t)
        notes = str(row.get("notes") or "")
        extra = f'<div style="white-space:pre-wrap;">{esc(notes)}</div>' if notes else ""
        from_row[2] = from_row[2] + extra + links
        cells.append(from_row)
    caption = f"{len(rows)} record{'s' if len(rows) != 1 else ''}"
    return history_table(cells, caption=caption)


def _history_cells(position: int, row: Mapping[str, Any], thumb: bytes | None) -> list[str]:
    # The table's own row, without the notes it shortens (the report shows them whole).
    trimmed = {k: v for k, v in row.items() if k != "notes"}
    return history_row(position, trimmed, thumb)
