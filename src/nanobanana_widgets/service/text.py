"""Small text helpers every layer shares: cutting text short and data URIs.

One truncation rule (``…`` at the cut) and one data-URI builder and parser, so that
captions, reprs, error messages and HTML cut and encode the same way everywhere.
"""

from __future__ import annotations

import base64
import binascii
import math
import urllib.parse
from typing import Any

__all__ = ["data_uri", "data_uri_length", "parse_data_uri", "short_repr", "short_url",
           "shorten", "squash"]


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``…`` when it was cut."""
    if limit < 1:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def squash(text: str, limit: int = 200) -> str:
    """``text`` on one line (runs of white space folded), cut to ``limit`` characters."""
    return shorten(" ".join(text.split()), limit)


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` at the cut, as Python prints)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_url(url: str, limit: int = 80) -> str:
    """A URL fit for a message or a repr: a data URI is cut after its header."""
    if url[:5].lower() == "data:":
        head = url.split(",", 1)[0]
        return f"{shorten(head, 40)},…({len(url)} chars)"
    return shorten(url, limit)


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    """``data:<mime>;base64,...`` for already encoded bytes."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def data_uri_length(nbytes: int, mime: str) -> int:
    """The length of :func:`data_uri` for ``nbytes`` bytes, without encoding them."""
    return len(f"data:{mime};base64,") + 4 * math.ceil(nbytes / 3)


def parse_data_uri(uri: str) -> tuple[bytes, str] | None:
    """``(bytes, mime)`` of a ``data:`` URI (base64 or percent-encoded); ``None`` when
    ``uri`` is not one or cannot be decoded."""
    if not isinstance(uri, str) or uri[:5].lower() != "data:":
        return None
    head, _, body = uri.partition(",")
    mime = head[5:].split(";")[0].strip().lower() or "application/octet-stream"
    try:
        if ";base64" in head.lower():
            data = base64.b64decode(body)
        else:
            data = urllib.parse.unquote_to_bytes(body)
    except (binascii.Error, ValueError):
        return None
    return data, mime
