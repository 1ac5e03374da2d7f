"""Replay: answer a request identical to one that succeeded before with its recorded result.

Off by default. With ``history.replay = True``, a request with the same action, prompt,
parameters and input image bytes (the same :func:`request_fingerprint`) as a recorded
success is not submitted again: the client gets the recorded :class:`Result`, so re-running
a notebook from the top does not pay twice. Each replay increments the record's ``replays``.
"""

from __future__ import annotations

import logging
import threading
import time

from nanobanana_widgets.service.errors import HistoryError
from nanobanana_widgets.service.types import ImageRequest, Result
from nanobanana_widgets.store.records import load_records, request_fingerprint, result_from_record
from nanobanana_widgets.store.schema import HistoryStore

__all__ = ["ReplayMode"]

logger = logging.getLogger(__name__)


class ReplayMode:
    """``history.replay``: true when replay mode is on; calling it looks a request up.

    ``history.replay = True`` switches it on. As a client listener method,
    ``history.replay(request)`` returns the recorded :class:`Result` of an identical request
    that succeeded before (only when on), else ``None``.

    Identical requests made several times (grid repeats, a cell that runs twice) get the
    recorded results in their original order, one each, so a re-run shows what the first
    run showed; past the last one it starts again rather than paying.
    """

    def __init__(self, store: HistoryStore, on: bool = False) -> None:
        self.on = bool(on)
        """Whether replay mode is on."""
        self._store = store
        self._lock = threading.Lock()
        self._used: dict[str, set[int]] = {}

    def __bool__(self) -> bool:
        return self.on

    def __call__(self, request: ImageRequest) -> Result | None:
        if not self.on:
            return None
        return self.lookup(request)

    def lookup(self, request: ImageRequest) -> Result | None:
        """The recorded result for an identical request, or ``None`` to send it (whether
        replay mode is on or not); counts the replay."""
        fp = request_fingerprint(request)
        candidates = [c for c in load_records(self._store, self._store.replay_candidates(fp))
                      if c.results]
        if not candidates:
            return None
        with self._lock:
            used = self._used.setdefault(fp, set())
            fresh = [c for c in candidates if c.id not in used]
            if not fresh:
                used.clear()
                fresh = candidates
            best = fresh[0]
            used.add(best.id)
        try:
            self._store.count_replay(best.id, time.time())
        except HistoryError as exc:  # the count is a detail: never pay again for it
            logger.warning("replay of history record %s not counted: %s", best.id, exc)
        logger.info("replayed history record %s for %r", best.id, request.prompt[:60])
        return result_from_record(best, request)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (bool, ReplayMode)):
            return bool(self) == bool(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<replay mode {'on' if self else 'off'}>"
