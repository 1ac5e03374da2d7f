"""Where a batch job stands: :class:`JobSummary`, a snapshot its view, its static rendition
and ``job.summary`` all show."""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JobSummary", "RowError", "pace_of", "summarise"]


@dataclass(frozen=True)
class RowError:
    """One failed row, for the list of the last errors: its number (from 1), prompt, the
    error's class name and message, and the trace id when the service gave one."""

    row: int
    prompt: str
    kind: str
    message: str
    trace_id: str | None = None


@dataclass(frozen=True)
class JobSummary:
    """A snapshot of a batch job.

    Rows are ``succeeded``, ``failed`` (``uncertain`` of them may have been billed with no
    task id to look up), ``running`` (sent, waiting for the service), ``queued`` (not sent
    yet) or ``cancelled`` (never sent). ``paid`` is the paid generations the job asks for,
    ``paid_so_far`` the images received; ``rate`` rows finished per second lately and
    ``eta`` the seconds left at that rate (``None`` while unknown); ``pace`` the submits per
    second the adaptive pacing allows now; ``rate_limited`` the 429s received (never
    billed). ``reason`` says why a paused job stopped, when it paused itself.
    """

    name: str
    state: str
    total: int
    succeeded: int = 0
    failed: int = 0
    uncertain: int = 0
    running: int = 0
    queued: int = 0
    cancelled: int = 0
    paid: int = 0
    paid_so_far: int = 0
    rate: float | None = None
    eta: float | None = None
    elapsed: float = 0.0
    pace: float | None = None
    accepted: int = 0
    rate_limited: int = 0
    reason: str | None = None
    errors: tuple[RowError, ...] = field(default=(), compare=False)

    @property
    def done(self) -> int:
        """Rows finished, succeeded or failed."""
        return self.succeeded + self.failed

    @property
    def fraction(self) -> float:
        """The share of rows finished (0 to 1)."""
        return self.done / self.total if self.total else 1.0

    def __str__(self) -> str:
        parts = [f"{self.done} of {self.total} rows done: {self.succeeded} succeeded, "
                 f"{self.failed} failed"]
        if self.uncertain:
            parts.append(f"{self.uncertain} may have been billed without a result")
        if self.running:
            parts.append(f"{self.running} running")
        if self.queued:
            parts.append(f"{self.queued} queued")
        if self.cancelled:
            parts.append(f"{self.cancelled} not sent (cancelled)")
        parts.append(f"{self.paid_so_far} of {self.paid} paid generations received")
        if self.rate_limited:
            parts.append(f"{self.rate_limited} rate-limited submits (429, not billed)")
        return f"Job {self.name!r} ({self.state}): " + ", ".join(parts) + "."

    def __repr__(self) -> str:
        return f"<JobSummary {self}>"


def pace_of(finishes: collections.deque[float], started: float | None, left: int, *,
            running: bool, window: float) -> tuple[float, float | None, float | None]:
    """``(elapsed, rate, eta)`` of a run: rows finished per second over the last ``window``
    seconds (``finishes`` holds their ``time.monotonic()`` times; older ones are dropped
    from it), and the seconds the ``left`` rows should take while ``running``."""
    now = time.monotonic()
    while finishes and now - finishes[0] > window:
        finishes.popleft()
    elapsed = now - started if started is not None else 0.0
    span = min(window, elapsed)
    rate = len(finishes) / span if finishes and span > 1.0 else None
    eta = left / rate if rate and left and running else None
    return elapsed, rate, eta


def summarise(name: str, state: str, rows: Sequence[tuple[str, int]], *, paid: int,
              pace: tuple[float, float | None, float | None], pacer: Any, reason: str | None,
              errors: tuple[RowError, ...]) -> JobSummary:
    """The :class:`JobSummary` of job ``name``: ``rows`` are each row's ``(state, images)``,
    ``pace`` is :func:`pace_of`'s ``(elapsed, rate, eta)`` and ``pacer`` the job's pacing
    (its rate now and its counts of accepted and rate-limited submits)."""
    counts = collections.Counter(row_state for row_state, _ in rows)
    elapsed, rate, eta = pace
    return JobSummary(
        name=name, state=state, total=len(rows),
        succeeded=counts["succeeded"], failed=counts["failed"] + counts["uncertain"],
        uncertain=counts["uncertain"], running=counts["sending"] + counts["submitted"],
        queued=counts["queued"], cancelled=counts["cancelled"], paid=paid,
        paid_so_far=sum(images for row_state, images in rows if row_state == "succeeded"),
        rate=rate, eta=eta, elapsed=elapsed,
        pace=pacer.rate if state == "running" else None,
        accepted=pacer.accepted_count, rate_limited=pacer.rate_limited_count,
        reason=reason, errors=errors)
