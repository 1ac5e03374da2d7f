"""The emulator's rate limiter: submits beyond the account's limits get 429 with ``Retry-After``.

The service publishes no numbers; it answers a submit over its limit with HTTP 429
``too_many_requests`` and a ``Retry-After`` header, and bills nothing. The emulator models
two limits, each off unless set:

- **rate** (``rate_limit`` submits per second, ``burst`` at once): a token bucket holding at
  most ``burst`` tokens (default: one second's worth), refilled at ``rate_limit`` per second;
  an admitted submit takes one token. ``Retry-After`` is the time until the next token.
- **concurrency** (``max_concurrency`` tasks): a submit while that many tasks are still
  running is refused; ``Retry-After`` is the time until the first of them finishes.

``Retry-After`` is sent in seconds with two decimals (``0.05``), never below 0.01: a client
must accept fractions as well as whole seconds. No HTTP here: the endpoints ask
:meth:`RateLimiter.admit` before they make a task.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["MIN_RETRY_AFTER", "RateLimiter", "Refusal", "format_retry_after"]

MIN_RETRY_AFTER: Final = 0.01
"""Shortest ``Retry-After`` sent, in seconds."""


@dataclass(frozen=True)
class Refusal:
    """Why a submit was refused: ``"rate"`` or ``"concurrency"``, and seconds to wait."""

    reason: str
    retry_after: float


def format_retry_after(seconds: float) -> str:
    """The ``Retry-After`` header value for ``seconds``: two decimals, at least 0.01."""
    return f"{max(MIN_RETRY_AFTER, math.ceil(seconds * 100) / 100):.2f}"


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or (
            math.isinf(value)):
        raise ValueError(f"{name} must be a positive number, or None for no limit; not {value!r}")
    return float(value)


class RateLimiter:
    """A token bucket for submits (``rate_limit`` per second, ``burst`` at once) and a cap on
    running tasks (``max_concurrency``); each limit is off when ``None``. Thread-safe.

    ``clock`` gives monotonic seconds (tests pin it).
    """

    def __init__(self, rate_limit: float | None = None, burst: float | None = None,
                 max_concurrency: int | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_limit = _positive("rate_limit", rate_limit)
        burst = _positive("burst", burst)
        if burst is not None and self.rate_limit is None:
            raise ValueError("burst needs a rate_limit")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1 (one submit), not {burst!r}")
        self.burst = burst if burst is not None else (
            max(1.0, self.rate_limit) if self.rate_limit is not None else None)
        if max_concurrency is not None and (
                isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
                or max_concurrency < 1):
            raise ValueError(f"max_concurrency must be a whole number, 1 or more, or None; "
                             f"not {max_concurrency!r}")
        self.max_concurrency = max_concurrency
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst or 0.0
        self._updated = clock()
        self.refused = 0
        """Submits refused so far (429s sent by this limiter)."""

    @property
    def active(self) -> bool:
        """Whether any limit is set."""
        return self.rate_limit is not None or self.max_concurrency is not None

    def admit(self, running: int = 0,
              next_finish_in: Callable[[], float | None] | None = None) -> Refusal | None:
        """Admit one submit (``None``: it takes a token) or say why not and for how long.

        ``running`` is how many tasks are still running; ``next_finish_in()`` the seconds
        until the first of them finishes (``None``: unknown, then 1 s is asked for).
        """
        with self._lock:
            now = self._clock()
            if self.max_concurrency is not None and running >= self.max_concurrency:
                wait = next_finish_in() if next_finish_in is not None else None
                self.refused += 1
                return Refusal("concurrency", 1.0 if wait is None else max(0.0, wait))
            if self.rate_limit is None or self.burst is None:
                return None
            self._tokens = min(self.burst,
                               self._tokens + (now - self._updated) * self.rate_limit)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            self.refused += 1
            return Refusal("rate", (1.0 - self._tokens) / self.rate_limit)

    def reset_counters(self) -> None:
        """Zero :attr:`refused`."""
        with self._lock:
            self.refused = 0
