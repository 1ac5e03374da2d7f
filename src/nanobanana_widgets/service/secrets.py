"""Secrets never leave the process in text: one registry of them and one scrubber.

The client registers its token when it first reads it; every string that came from a server
or is about to be stored, shown, embedded or exported can go through :func:`scrub`, which
replaces each registered secret (case-insensitively) with ``***``. A short secret (under 8
characters, never a real token) is replaced only as a whole word, so it cannot mangle
ordinary words.
"""

from __future__ import annotations

import re
import threading
from typing import overload

__all__ = ["MASK", "register_secret", "scrub", "secrets_pattern"]

MASK = "***"

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember ``value`` (a token) so that :func:`scrub` removes it from any text."""
    global _pattern
    if not value or not value.strip():
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        _pattern = None


def secrets_pattern() -> re.Pattern[str] | None:
    """The compiled pattern matching every registered secret (``None`` when there is none)."""
    global _pattern
    with _lock:
        if _pattern is None and _secrets:
            parts = []
            for secret in sorted(_secrets, key=len, reverse=True):
                escaped = re.escape(secret)
                parts.append(escaped if len(secret) >= 8 else rf"(?<![\w-]){escaped}(?![\w-])")
            _pattern = re.compile("|".join(parts), re.IGNORECASE)
        return _pattern


@overload
def scrub(text: str) -> str: ...
@overload
def scrub(text: None) -> None: ...
def scrub(text: str | None) -> str | None:
    """``text`` with every registered secret replaced by ``***``."""
    if not text:
        return text
    pattern = secrets_pattern()
    return pattern.sub(MASK, text) if pattern is not None else text
