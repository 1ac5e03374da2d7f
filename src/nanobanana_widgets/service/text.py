"""Small text helpers every layer shares: cutting text short, data URIs, and text from a
server made safe.

One truncation rule (``…`` at the cut) and one data-URI builder and parser, so that
captions, reprs, error messages and HTML cut and encode the same way everywhere.
:func:`clean_text` is what every string from a server goes through where answers are
parsed (:mod:`nanobanana_widgets.service.answers`); :func:`mask_url` hides the credentials
a URL may carry before it is shown.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import urllib.parse
from typing import Any, Final

from nanobanana_widgets.service.secrets import MASK, secrets_pattern

__all__ = ["UNSAFE_CHARACTERS", "clean_text", "data_uri", "data_uri_length", "mask_url",
           "parse_data_uri", "short_repr", "short_url", "shorten", "squash"]

UNSAFE_CHARACTERS: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0 (tab, LF, CR kept), DEL, C1
    "\u202a-\u202e\u2066-\u2069"  # bidirectional overrides and isolates
    "\ud800-\udfff]"  # lone surrogates (valid in JSON, unencodable anywhere else)
)
"""Characters that hurt when server text is stored, shown, embedded or exported: lone
surrogates (no UTF-8 encoding exists: a file, a database or a page write fails), NUL and
the other control characters (C strings, file names, terminal escapes) and the bidi
controls that make text read other than it is."""

REPLACEMENT: Final = "\ufffd"


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


def clean_text(text: str, secrets: re.Pattern[str] | None = None) -> str:
    """Server text made safe to keep: every :data:`UNSAFE_CHARACTERS` becomes U+FFFD and
    every registered secret ``***`` (``secrets``: the pattern of
    :func:`~nanobanana_widgets.service.secrets.secrets_pattern`, read once by a caller
    cleaning many strings)."""
    if UNSAFE_CHARACTERS.search(text) is not None:
        text = UNSAFE_CHARACTERS.sub(REPLACEMENT, text)
    pattern = secrets if secrets is not None else secrets_pattern()
    return pattern.sub(MASK, text) if pattern is not None and text else text


def mask_url(url: str) -> str:
    """``url`` with the user name and password it may carry replaced by ``***``
    (``http://user:pass@host/x`` → ``http://***@host/x``); other URLs unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if 0 <= found < cut:
            cut = found
    authority = rest[:cut]
    if "@" not in authority:
        return url
    return f"{scheme}://{MASK}@{authority.rsplit('@', 1)[1]}{rest[cut:]}"


def short_url(url: str, limit: int = 80) -> str:
    """A URL fit for a message or a repr: a data URI is cut after its header, credentials
    are masked (:func:`mask_url`)."""
    if url[:5].lower() == "data:":
        head = url.split(",", 1)[0]
        return f"{shorten(head, 40)},…({len(url)} chars)"
    return shorten(mask_url(url), limit)


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
