"""Text made safe to store, embed and export: one function for every string the history keeps.

Server text is not trusted. A lone surrogate (``"\\ud800"``, valid JSON) cannot be encoded
as UTF-8, so SQLite, PNG text chunks and UTF-8 files refuse it; a token echoed by a server
must never reach the database, an image's metadata or an export. :func:`clean_text` fixes
both (surrogates and NULs become ``U+FFFD``, registered secrets become ``***``), and
:func:`clean_value` applies it through dicts and lists. The store calls them on everything
it writes, so no caller has to remember to.

:func:`csv_cell` neutralises spreadsheet formulas (a cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is prefixed with ``'``), for every CSV the history writes.
:func:`clean_image` keeps only the pixels of image bytes a server wrote a secret into (a
text chunk, a comment), before they are kept or exported.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

from nanobanana_widgets.images import decode
from nanobanana_widgets.service.secrets import scrub, secrets_pattern

__all__ = ["clean_image", "clean_text", "clean_value", "csv_cell"]

_UNENCODABLE = re.compile("[\ud800-\udfff\x00]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates and NULs replaced by ``U+FFFD`` and every registered
    secret replaced by ``***`` (see :mod:`nanobanana_widgets.service.secrets`)."""
    return scrub(_UNENCODABLE.sub("\ufffd", text))


def clean_value(value: Any) -> Any:
    """``value`` with :func:`clean_text` applied to every string in it (dict keys too)."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_value(k): clean_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_value(v) for v in value]
    return value


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula: text starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return gets a leading ``'``; other values as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def clean_image(data: bytes) -> bytes:
    """``data`` as it is, unless a registered secret appears in its bytes (a server can
    write one into a PNG text chunk or a JPEG comment): then its pixels re-encoded as PNG,
    without any of its metadata. Raises when such bytes cannot be decoded."""
    pattern = secrets_pattern()
    if pattern is None or not pattern.search(data.decode("latin-1")):
        return data
    image = decode(data)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()
