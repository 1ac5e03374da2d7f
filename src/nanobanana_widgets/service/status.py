"""A task's status, inferred from its record: the service sends no status field.

API.md's rules: pending while a record has no ``finished_at`` and no images; failed when
``response.success`` is false or ``response.error`` is present; succeeded when it finished
with an image URL. A ``state``/``status`` word, should one appear, is honoured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

__all__ = ["Status", "image_entries", "infer_status"]

Status = Literal["pending", "succeeded", "failed"]

_PENDING_WORDS = frozenset({"pending", "processing", "running", "queued", "started", "submitted"})
_FAILED_WORDS = frozenset({"failed", "failure", "error", "errored", "cancelled", "canceled"})
_SUCCEEDED_WORDS = frozenset({"succeeded", "success", "completed", "complete", "done", "finished"})



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


def infer_status(record: Mapping[str, Any]) -> Status:
    """Infer a task's status from its record (API.md: there is no status field).

    Failed when ``response.success`` is false or ``response.error`` is present; succeeded
    when ``finished_at`` is set and an image URL is present; otherwise pending. A
    ``state``/``status`` word, should one ever appear, is honoured.
    """
    for key in ("state", "status"):
        word = record.get(key)
        if isinstance(word, str):
            w = word.lower()
            if w in _FAILED_WORDS:
                return "failed"
            if w in _PENDING_WORDS:
                return "pending"
            if w in _SUCCEEDED_WORDS and image_entries(record.get("response")):
                return "succeeded"
    response = record.get("response")
    if isinstance(response, Mapping):
        if response.get("success") is False or response.get("error"):
            return "failed"
        if image_entries(response) and record.get("finished_at") is not None:
            return "succeeded"
        if record.get("finished_at") is not None and "data" in response:
            return "failed"  # finished with an empty data list: nothing succeeded
    return "pending"
