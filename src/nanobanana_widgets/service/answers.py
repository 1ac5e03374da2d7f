"""The one place a server's JSON is parsed: bounded, and every string in it made safe.

Whatever a server sends, :func:`parse_json` either returns plain JSON values or raises
:class:`UnreadableAnswer` (a ``ValueError``), which the caller turns into the package's
error for its context (a possibly billed submit, a lookup to retry, an error answer):

- **bounded**: at most :data:`~nanobanana_widgets.service.protocol.MAX_ANSWER_BYTES`
  (the transport stops reading sooner), nested at most
  :data:`~nanobanana_widgets.service.protocol.MAX_JSON_DEPTH` levels (100,000 levels of
  ``[[[[`` are refused, not a ``RecursionError``), ``NaN`` and ``Infinity`` read as
  ``null``, integers of more than 4300 digits refused;
- **sanitised**: every string, keys included, goes through
  :func:`~nanobanana_widgets.service.text.clean_text` once, here: lone surrogates and
  harmful control characters become U+FFFD and every registered secret (the client's token,
  should a server echo it) becomes ``***``. Nothing downstream (the history, file metadata,
  HTML, error messages) meets them.

:func:`task_id_in` finds the task id where the service's answers put it, and
:func:`task_id_in_text` digs it out of an answer that could not be parsed at all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final

from nanobanana_widgets.service.protocol import MAX_ANSWER_BYTES, MAX_JSON_DEPTH
from nanobanana_widgets.service.secrets import secrets_pattern
from nanobanana_widgets.service.text import clean_text

__all__ = ["UnreadableAnswer", "clean_json", "parse_json", "records_in", "task_id_in",
           "task_id_in_text", "trace_id_in_text"]

_TASK_ID_RE: Final = re.compile(rb'"task_id"\s*:\s*"([^"\\]{1,200})"')
_TRACE_ID_RE: Final = re.compile(rb'"trace_id"\s*:\s*"([^"\\]{1,200})"')
_RECORD_KEYS: Final = ("id", "task_id", "response", "finished_at", "created_at")


class UnreadableAnswer(ValueError):
    """An answer that is not JSON the package can use; ``reason`` says why in a few words
    ("not valid JSON", "nested deeper than 64 levels", ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_json(data: bytes | bytearray | str, *, limit: int = MAX_ANSWER_BYTES) -> Any:
    """``data`` parsed as JSON, bounded and with every string cleaned (see the module).

    Raises :class:`UnreadableAnswer` for anything else, and only that.
    """
    if len(data) > limit:
        raise UnreadableAnswer(f"larger than the limit of {limit} bytes")
    try:
        try:
            value = json.loads(data, parse_constant=_no_constant)
        except UnicodeDecodeError:  # not UTF-8: read what can be read
            assert not isinstance(data, str)
            value = json.loads(bytes(data).decode("utf-8", "replace"),
                               parse_constant=_no_constant)
    except RecursionError:
        raise UnreadableAnswer(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, TypeError, OverflowError, MemoryError):
        raise UnreadableAnswer("not valid JSON") from None
    return clean_json(value)


def clean_json(value: Any) -> Any:
    """A copy of decoded JSON with every string cleaned, nested at most
    :data:`~nanobanana_widgets.service.protocol.MAX_JSON_DEPTH` levels (else
    :class:`UnreadableAnswer`); non-finite numbers become ``None``."""
    return _clean(value, 0, secrets_pattern())


def _clean(value: Any, depth: int, secrets: re.Pattern[str] | None) -> Any:
    if isinstance(value, str):
        return clean_text(value, secrets) if value else value
    if isinstance(value, Mapping):
        if depth >= MAX_JSON_DEPTH:
            raise UnreadableAnswer(f"nested deeper than {MAX_JSON_DEPTH} levels")
        return {clean_text(str(k), secrets): _clean(v, depth + 1, secrets)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if depth >= MAX_JSON_DEPTH:
            raise UnreadableAnswer(f"nested deeper than {MAX_JSON_DEPTH} levels")
        return [_clean(v, depth + 1, secrets) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _no_constant(name: str) -> None:
    """``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, though Python writes them) as null."""
    return None


def task_id_in(body: Any) -> str | None:
    """The task id of a parsed answer: at the top level (``task_id``), under
    ``data.task_id``, or as ``id`` (the places the vendor's clients look)."""
    if not isinstance(body, Mapping):
        return None
    data = body.get("data")
    for value in (body.get("task_id"),
                  data.get("task_id") if isinstance(data, Mapping) else None,
                  body.get("id")):
        if isinstance(value, str) and value.strip():
            return value
    return None


def records_in(answer: Any) -> list[dict[str, Any]] | None:
    """The task records of a lookup answer in any shape the vendor's CLI accepts:
    ``{"items": [...]}``, ``{"data": [...]}``, ``{"data": {...}}`` or a bare record.
    ``None`` when ``answer`` holds none of these (entries that are not objects are
    skipped)."""
    if not isinstance(answer, dict):
        return None
    for key in ("items", "data"):
        value = answer.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    data = answer.get("data")
    if isinstance(data, dict) and any(k in data for k in _RECORD_KEYS):
        return [data]
    if any(k in answer for k in _RECORD_KEYS):
        return [answer]
    return None


def task_id_in_text(raw: bytes | bytearray) -> str | None:
    """The first ``"task_id": "..."`` in an answer that could not be parsed, cleaned."""
    found = _TASK_ID_RE.search(raw)
    return _cleaned(found.group(1)) if found else None


def trace_id_in_text(raw: bytes | bytearray) -> str | None:
    """The first ``"trace_id": "..."`` in an answer that could not be parsed, cleaned."""
    found = _TRACE_ID_RE.search(raw)
    return _cleaned(found.group(1)) if found else None


def _cleaned(raw: bytes) -> str | None:
    text = clean_text(raw.decode("utf-8", "replace")).strip()
    return text or None
