"""A comparison as a shareable report: one HTML page, readable offline, to mail to someone.

``comparison.to_html(path)`` writes the page: each image's card (label, thumbnail linked to
its full-size copy in the folder beside the page, or embedded with ``embed=True``, prompt and
parameters, with a record's rating), the prompt changes and the pick.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nanobanana_widgets.images.published import ReportAssets
from nanobanana_widgets.render.compare import card_html
from nanobanana_widgets.render.links import lasting_url
from nanobanana_widgets.render.report import full_size_html, report_document
from nanobanana_widgets.render.static import cards_html
from nanobanana_widgets.service.types import GeneratedImage

__all__ = ["write_comparison_report"]


def _full_size(side: Any, assets: ReportAssets) -> str | None:
    """Where the report finds ``side``'s full-size image (``None``: only its thumbnail)."""
    source = side.source
    stem = side.label
    try:
        if isinstance(source, GeneratedImage):
            return assets.add(source.bytes(), stem=stem, metadata=source.metadata())
        if isinstance(source, bytes) and side.kind != "record":  # a record's bytes: a thumbnail
            return assets.add(source, stem=stem)
        if isinstance(source, (str, Path)) and not str(source).startswith(
                ("data:", "http://", "https://")) and Path(source).is_file():
            return assets.add(Path(source), stem=stem)
    except Exception:  # the thumbnail still shows; the card says nothing false
        return None
    return lasting_url(side.link)


def write_comparison_report(sides: Sequence[Any], thumbs: Sequence[str | None],
                            problems: Sequence[str | None], *, picked: int | None,
                            header: str, diff: str, status: str, title: str,
                            path: str | os.PathLike[str], embed: bool = False) -> Path:
    """Write one page at ``path``: the cards of ``sides`` (their thumbnail data URIs
    ``thumbs``, or ``problems``), the ``picked`` one marked, then the view's ``header``,
    ``diff`` and pick ``status`` (HTML as the view shows them). Returns the page's path."""
    assets = ReportAssets(path, embed=embed)
    first = sides[0].params if sides else None
    cards = []
    for i, side in enumerate(sides):
        target = _full_size(side, assets)
        embedded = target is not None and target.startswith("data:")
        linked = dataclasses.replace(side, link=None if embedded else target)
        cards.append(card_html(linked, thumbs[i], problems[i], first=first if i else None)
                     + (full_size_html(target, name=side.label) if embedded else ""))
    body = (f'<div class="nbw-static-cmp">{header}{cards_html(cards, picked=picked, width=300)}'
            f"{diff}{status}</div>")
    return assets.write(report_document(title, body, sheets=("frame", "compare")))
