"""A task's status, progress and failure reason, inferred from its record as the vendor's
newest SDK does (``acedatacloud`` 2026.10.20, ``_runtime/tasks.py``; API.md): the service
sends no status field.

The rules, in order:

1. A ``state``/``status`` **word** anywhere in the record (its ``request`` echo aside;
   the shallowest wins) outranks the ``success`` flag: a failed word (failed, failure,
   error, cancelled, canceled, rejected) means failed; a done word (succeed, succeeded,
   success, completed, complete, finished) means succeeded when the record holds an image
   and failed when it holds none; any other word means still running.
2. Without a word, ``response.error`` with a structured ``code`` is a failure.
3. ``success: false`` (or an ``error`` without a code) with **no** ``finished_at`` is a
   transient hiccup of a task still running: pending. With ``finished_at`` it is a failure.
4. ``finished_at`` set and an image URL present: succeeded; finished with an empty
   ``data`` list: failed (nothing succeeded). Anything else: pending.

:func:`progress_of` reads a ``progress``/``percent``/``percentage`` figure (0–1, 0–100 or
``"NN%"``) as a fraction; :func:`failure_reason` the reason a failed record gives.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Literal

__all__ = ["DONE_WORDS", "FAILED_WORDS", "Status", "failure_reason", "image_entries",
           "infer_status", "progress_of", "reason_in", "status_word"]

Status = Literal["pending", "succeeded", "failed"]

FAILED_WORDS: Final = frozenset({"failed", "failure", "error", "cancelled", "canceled",
                                 "rejected"})
"""Status words meaning the task failed (the vendor SDK's list)."""
DONE_WORDS: Final = frozenset({"succeed", "succeeded", "success", "completed", "complete",
                               "finished"})
"""Status words meaning the task is done (the vendor SDK's list); without an image it failed."""

_WORD_KEYS: Final = ("state", "status")
_PROGRESS_KEYS: Final = ("progress", "percent", "percentage")
_SEARCH_DEPTH: Final = 6
_SEARCH_NODES: Final = 500


def image_entries(response: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """``(image_url, prompt)`` pairs from a response's ``data`` list, skipping bad entries."""
    if not isinstance(response, Mapping):
        return []
    data = response.get("data")
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        return []
    out = []
    for entry in data:
        if isinstance(entry, Mapping):
            url = entry.get("image_url")
            if isinstance(url, str) and url:
                prompt = entry.get("prompt")
                out.append((url, prompt if isinstance(prompt, str) else ""))
    return out


def _mappings(record: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every mapping in ``record``, shallowest first (its ``request`` echo left out: that is
    what the user sent), bounded in depth and count."""
    queue: deque[tuple[Any, int]] = deque([(record, 0)])
    seen = 0
    while queue and seen < _SEARCH_NODES:
        node, depth = queue.popleft()
        seen += 1
        if isinstance(node, Mapping):
            yield node
            children = [v for k, v in node.items() if not (depth == 0 and k == "request")]
        elif isinstance(node, Sequence) and not isinstance(node, (str, bytes, bytearray)):
            children = list(node[:_SEARCH_NODES])
        else:
            continue
        if depth < _SEARCH_DEPTH:
            queue.extend((child, depth + 1) for child in children
                         if isinstance(child, (Mapping, list, tuple)))


def status_word(record: Mapping[str, Any]) -> str | None:
    """The first ``state``/``status`` word in ``record`` (lower case), else ``None``."""
    for node in _mappings(record):
        for key in _WORD_KEYS:
            word = node.get(key)
            if isinstance(word, str) and word.strip():
                return word.strip().lower()
    return None


def _structured_code(response: Mapping[str, Any]) -> bool:
    error = response.get("error")
    if not isinstance(error, Mapping):
        return False
    code = error.get("code")
    return isinstance(code, (str, int)) and not isinstance(code, bool) and str(code).strip() != ""


def infer_status(record: Mapping[str, Any]) -> Status:
    """Infer a task's status from its record (see the module for the rules)."""
    response = record.get("response")
    if not isinstance(response, Mapping):
        response = {}
    word = status_word(record)
    if word is not None:
        if word in FAILED_WORDS:
            return "failed"
        if word in DONE_WORDS:
            return "succeeded" if image_entries(response) else "failed"
        return "pending"
    finished = record.get("finished_at") is not None
    if _structured_code(response):
        return "failed"
    if response.get("success") is False or response.get("error"):
        return "failed" if finished else "pending"  # no finished_at: a transient hiccup
    if image_entries(response) and finished:
        return "succeeded"
    if finished and "data" in response:
        return "failed"  # finished with an empty data list: nothing succeeded
    return "pending"


def _fraction(value: Any) -> float | None:
    """A progress figure as a fraction in [0, 1]: 0–1, 0–100, or a string "NN%" / "NN"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%").strip())
        except ValueError:
            return None
        if percent or number > 1.0:
            number /= 100.0
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None
        if number > 1.0:
            number /= 100.0
    else:
        return None
    if not math.isfinite(number):
        return None
    return min(1.0, max(0.0, number))


def progress_of(record: Mapping[str, Any]) -> float | None:
    """The ``progress``/``percent``/``percentage`` figure in ``record`` (at any depth) as a
    fraction from 0 to 1, else ``None``."""
    for node in _mappings(record):
        for key in _PROGRESS_KEYS:
            if key in node:
                found = _fraction(node[key])
                if found is not None:
                    return found
    return None


def reason_in(node: Mapping[str, Any]) -> str | None:
    """The reason one answer or record gives for a failure: ``error.message``,
    ``error.detail`` (or a bare ``error`` string), ``message``, ``failure_reason`` or
    ``fail_reason``, the first that is a non-blank string."""
    error = node.get("error")
    candidates: list[Any] = []
    if isinstance(error, Mapping):
        candidates += [error.get("message"), error.get("detail")]
    elif isinstance(error, str):
        candidates.append(error)
    candidates += [node.get("message"), node.get("failure_reason"), node.get("fail_reason")]
    for text in candidates:
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None


def failure_reason(record: Mapping[str, Any]) -> str | None:
    """Why a record says it failed (:func:`reason_in`), looked for in its ``response``
    first, then in the record itself."""
    response = record.get("response")
    if isinstance(response, Mapping):
        found = reason_in(response)
        if found is not None:
            return found
    return reason_in(record)
