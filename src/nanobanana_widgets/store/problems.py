"""What the history needs the user to know, shown where the user looks, not only in logs.

A record that could not be saved yet, one saved late, a result image that could not be
kept, a damaged history set aside, an export that skipped a file, a record ``resume()``
could not handle: each is a :class:`HistoryProblem`. :class:`Problems` keeps the latest
ones (``History.problems``), counts them (``History.problem_count``, which only grows),
calls the callbacks registered with ``History.on_problem`` (the panel and the grid show
them) and issues a :class:`~nanobanana_widgets.service.errors.HistoryWarning`, which a
notebook shows in the cell output.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from nanobanana_widgets.service.errors import HistoryWarning
from nanobanana_widgets.store.clean import clean_text

__all__ = ["HistoryProblem", "ProblemCallback", "ProblemKind", "Problems"]

logger = logging.getLogger("nanobanana_widgets.history")

ProblemKind = Literal["unsaved", "saved", "image", "set_aside", "export", "resume", "extra"]
"""``unsaved``: a record could not be written yet (it is kept and retried); ``saved``: kept
records were written at last; ``image``: a result image could not be kept (or its copy was
damaged); ``set_aside``: a damaged or unusable history was replaced; ``export``: a file was
skipped or renamed; ``resume``: a record or a lookup failed; ``extra``: the service sent
more images than were asked for."""


@dataclass(frozen=True)
class HistoryProblem:
    """One thing the history reports: its kind, a plain sentence (what happened and what
    to do), the task it concerns (when one does) and when it happened (epoch seconds)."""

    kind: ProblemKind
    message: str
    task_id: str | None = None
    at: float = field(default_factory=time.time)

    def __str__(self) -> str:
        return self.message


ProblemCallback = Callable[[HistoryProblem], object]
"""What ``History.on_problem`` takes: called with each new problem, in the thread where it
happened (a widget paints through its ``Painter``)."""


class Problems:
    """The latest problems (at most ``limit``), a counter, callbacks and warnings."""

    def __init__(self, limit: int = 200) -> None:
        self._items: collections.deque[HistoryProblem] = collections.deque(maxlen=limit)
        self._callbacks: list[ProblemCallback] = []
        self._lock = threading.Lock()
        self.count = 0
        """How many problems were reported since the history was opened (only grows)."""

    def report(self, kind: ProblemKind, message: str, *, task_id: str | None = None,
               warn: bool = True) -> HistoryProblem:
        """Record a problem, tell the callbacks and (``warn``) show a ``HistoryWarning``."""
        problem = HistoryProblem(kind, clean_text(message),
                                 None if task_id is None else clean_text(task_id))
        with self._lock:
            self._items.append(problem)
            self.count += 1
            callbacks = list(self._callbacks)
        logger.warning("history: %s", problem.message)
        for callback in callbacks:
            try:
                callback(problem)
            except Exception:
                logger.exception("A history problem callback raised; ignored.")
        if warn:
            try:
                warnings.warn(problem.message, HistoryWarning, stacklevel=2)
            except Exception:  # warnings turned into errors must not stop the recording
                logger.debug("HistoryWarning raised as an error; the problem is recorded.")
        return problem

    def items(self) -> tuple[HistoryProblem, ...]:
        """The problems kept, oldest first."""
        with self._lock:
            return tuple(self._items)

    def add_callback(self, callback: ProblemCallback) -> None:
        """Call ``callback(problem)`` for each new problem (once, however often added)."""
        with self._lock:
            if callback not in self._callbacks:
                self._callbacks.append(callback)

    def remove_callback(self, callback: ProblemCallback) -> None:
        """Stop calling ``callback`` (no error if it was not added)."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)
