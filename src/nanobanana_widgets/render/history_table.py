"""The history as an HTML table: one row per record (thumbnail, prompt, model, parameters,
status, rating, created, task), the way a history view and a single record show in a notebook.

Pure functions over plain data: a row is a mapping of a record's fields (a database row or
``Record.to_dict()``), a record is anything with ``id``, ``to_dict()``, ``results`` and
``inputs`` (whose items carry a ``thumbnail``). Every string from a record is escaped.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from nanobanana_widgets.render.styles import style_element
from nanobanana_widgets.service.text import data_uri, shorten

__all__ = ["RecordLike", "first_thumbnail", "history_page_html", "history_row", "history_table",
           "record_html"]

_HEADERS = ("prompt", "model", "parameters", "status", "rating", "created", "task")
_PROMPT_CHARS = 300
_TITLE_CHARS = 2000
_NOTES_CHARS = 200


class _Thumbnailed(Protocol):
    @property
    def thumbnail(self) -> bytes | None: ...


class RecordLike(Protocol):
    """What :func:`record_html` reads of a record."""

    @property
    def id(self) -> int: ...
    @property
    def results(self) -> Sequence[_Thumbnailed]: ...
    @property
    def inputs(self) -> Sequence[_Thumbnailed]: ...
    def to_dict(self) -> dict[str, Any]: ...


def history_row(position: int | str, row: Mapping[str, Any], thumb: bytes | None) -> list[str]:
    """The cells of one table row; ``position`` is the row's position in a view, or a
    label such as ``"id 7"`` for a record shown alone (the id is in the tooltip)."""
    esc = html.escape
    img = f'<img src="{data_uri(thumb)}" alt="">' if thumb else ""
    prompt = str(row.get("prompt") or "")
    params = [str(row.get(k)) for k in ("action", "aspect_ratio", "resolution")
              if row.get(k)]
    count = row.get("count")
    if count and count != 1:
        params.append(f"×{count}")
    if row.get("grid_id"):
        params.append(f"grid {row['grid_id']}" + (f" [{row['grid_cell']}]"
                                                  if row.get("grid_cell") else ""))
    status = str(row.get("status") or "")
    err = row.get("error_code") or row.get("error_class") or row.get("error_type")
    status_html = f'<span class="{esc(status)}">{esc(status)}</span>'
    if err and status != "succeeded":
        message = str(row.get("error_message") or "")
        status_html += f'<br><span title="{esc(message)}">{esc(str(err))}</span>'
    rating = int(row.get("rating") or 0)
    stars = "★" * rating + "☆" * (5 - rating) if rating else ""
    if row.get("favourite"):
        stars = "♥ " + stars
    created = row.get("created_at")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if created else ""
    notes = str(row.get("notes") or "")
    prompt_html = esc(shorten(prompt, _PROMPT_CHARS))
    if notes:
        prompt_html += f"<br><i>{esc(notes[:_NOTES_CHARS])}</i>"
    rid = row.get("id")
    first = (f'<span title="id {esc(str(rid))}">{esc(str(position))}</span>'
             if isinstance(position, int) and rid is not None else esc(str(position)))
    return [first, img,
            f'<div class="p" title="{esc(prompt[:_TITLE_CHARS])}">{prompt_html}</div>',
            esc(str(row.get("model") or "")), esc(" · ".join(params)), status_html,
            esc(stars), esc(when), esc(str(row.get("task_id") or ""))]


def history_table(rows: Sequence[Sequence[str]], *, caption: str | None,
                  first_header: str = "#") -> str:
    """The table of ``rows`` (cells from :func:`history_row`), its stylesheet, and
    ``caption`` (escaped) above it."""
    head = "".join(f"<th>{h}</th>" for h in (first_header, "", *_HEADERS))
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows)
    cap = f"<div>{html.escape(caption)}</div>" if caption else ""
    table = f'<table class="nbw-history"><tr>{head}</tr>{body}</table>'
    return f'{style_element("history")}{cap}{table}'


def history_page_html(rows: Sequence[Mapping[str, Any]], *, offset: int, total: int,
                      page: int, pages: int) -> str:
    """One page of a view: ``rows`` (database rows with ``result_thumb``/``input_thumb``)
    start at position ``offset`` of ``total`` records; the caption says where it is."""
    cells = [history_row(offset + k, row, row.get("result_thumb") or row.get("input_thumb"))
             for k, row in enumerate(rows)]
    if total:
        caption = (f"showing {offset + 1}–{offset + len(rows)} of {total:,} records"
                   f" (page {page} of {pages})")
        if pages > 1:
            caption += f"; more with .page({min(page + 1, pages)}) or slicing"
    else:
        caption = "no records"
    return history_table(cells, caption=caption)


def first_thumbnail(record: RecordLike) -> bytes | None:
    """The first thumbnail of a record's results, else of its inputs."""
    for item in (*record.results, *record.inputs):
        if item.thumbnail:
            return item.thumbnail
    return None


def record_html(record: RecordLike) -> str:
    """One record alone: its row, labelled with its id (``"id 7"``) since it has no
    position."""
    row = history_row(f"id {record.id}", record.to_dict(), first_thumbnail(record))
    return history_table([row], caption=None, first_header="")
