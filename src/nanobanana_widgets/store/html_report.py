"""A history view as a shareable report: one HTML page of its records, readable offline.

``history_view.to_html(path)`` writes a table of the records (thumbnail, prompt, model,
parameters, status, rating, favourite mark, created, task id, notes in full: the picks of
comparisons are notes) with each record's full-size images in a folder beside the page, or
embedded in it with ``embed=True``. Images not downloaded yet are downloaded now (and kept
in the history folder), as for :meth:`HistoryView.export`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from nanobanana_widgets.images.published import ReportAssets
from nanobanana_widgets.render.history_table import first_thumbnail
from nanobanana_widgets.render.links import lasting_url
from nanobanana_widgets.render.report import history_report_html, report_document
from nanobanana_widgets.store.records import Record, ResultImage, image_metadata

__all__ = ["write_history_report"]


def _target(rec: Record, img: ResultImage, assets: ReportAssets,
            image_bytes: Callable[[Record, ResultImage], bytes | None]) -> str:
    stem = f"{rec.id:06d}-{img.position + 1}"
    try:
        if img.local and img.path is not None:
            return assets.add(img.path, stem=stem, digest=img.sha256)
        data = image_bytes(rec, img)
        if data:
            meta = image_metadata(rec.to_dict(), img.position, img.url, img.prompt)
            return assets.add(data, stem=stem, metadata=meta)
    except Exception:  # the row still shows its thumbnail and says where the image was
        pass
    return lasting_url(img.url) or ""


def write_history_report(records: Iterable[Record], path: str | os.PathLike[str], *,
                         title: str, embed: bool = False,
                         image_bytes: Callable[[Record, ResultImage], bytes | None]) -> Path:
    """Write ``records`` as one HTML page at ``path``; ``image_bytes(record, image)`` gives
    an image that has no local copy (``None``: leave it out). Returns the page's path."""
    assets = ReportAssets(path, embed=embed)
    rows = [(rec.to_dict(), first_thumbnail(rec),
             [_target(rec, img, assets, image_bytes) for img in rec.results])
            for rec in records]
    page = report_document(title, history_report_html(rows), sheets=("history",))
    return assets.write(page)
