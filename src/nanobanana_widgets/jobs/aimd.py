"""Adaptive pacing of submits (AIMD): as fast as the service takes them, never a storm of 429s.

The service publishes no limits; it answers a submit over its limit with 429 and
``Retry-After``, and bills nothing for it. :class:`Pacer` spaces submits at ``rate`` per second
and adapts that rate the way TCP adapts its window:

- **start small, grow while submits succeed**: from ``start_rate`` the rate doubles every
  ``doubling`` seconds of accepted submits until the first 429 (slow start); after that it
  grows by ``increase`` × the rate it had before its last decrease, per second: additive
  increase, scaled to the limit it found (10 % of 20/s is 2/s per second).
- **back off multiplicatively on a 429**: the rate is multiplied by ``decrease``, once per
  congestion event (429s answering submits sent before the last decrease do not count
  again), and no submit goes out before ``Retry-After`` has passed.

Against a token bucket the rate settles just above the limit, where the service's own bucket
caps what is accepted: throughput stays near the limit and the 429s are a few per hundred
accepted submits. Pure logic and one lock: the clock is injectable, so it is tested (and
simulated) without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_RETRY_AFTER", "AimdSettings", "Pacer"]

DEFAULT_RETRY_AFTER = 1.0
"""Seconds to hold submits after a 429 that carried no ``Retry-After``."""


@dataclass(frozen=True)
class AimdSettings:
    """The pacing constants (submits per second, and their changes)."""

    start_rate: float = 2.0
    min_rate: float = 0.05
    max_rate: float = 500.0
    doubling: float = 0.3
    increase: float = 0.1
    decrease: float = 0.75
    catch_up: float = 0.1
    """Seconds of late slots that may still be used (no burst after an idle spell)."""


class Pacer:
    """Spaces submits at an adaptive rate and holds them after a 429 (thread-safe).

    ``acquire(stop)`` blocks until a submit may go (``False`` when ``stop()`` became true);
    ``accepted(sent_at)`` and ``rate_limited(sent_at, retry_after)`` report each answer.
    ``clock`` gives monotonic seconds.
    """

    def __init__(self, settings: AimdSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or AimdSettings()
        self._clock = clock
        self._cond = threading.Condition()
        self.rate = self.settings.start_rate
        self.slow_start = True
        self._next = clock()
        self._held_until = 0.0
        self._last_decrease = float("-inf")
        self._grown_at: float | None = None
        self._ceiling = self.rate
        self.accepted_count = 0
        self.rate_limited_count = 0
        self.decreases = 0

    # --- when may the next submit go ----------------------------------------------------

    @property
    def held_until(self) -> float:
        """Clock time before which nothing is sent (a 429's ``Retry-After``)."""
        with self._cond:
            return self._held_until

    def try_take(self, now: float | None = None) -> float:
        """Take the next slot if it has come (returns 0.0), else the seconds until it does
        (nothing taken)."""
        with self._cond:
            now = self._clock() if now is None else now
            due = max(self._next, self._held_until)
            if due > now:
                return due - now
            base = self._next if self._next >= now - self.settings.catch_up else now
            self._next = max(base, self._held_until) + 1.0 / self.rate
            return 0.0

    def acquire(self, stop: Callable[[], bool]) -> bool:
        """Block until a submit may be sent (``True``), or ``stop()`` is true (``False``)."""
        with self._cond:
            while True:
                if stop():
                    return False
                wait = self.try_take()
                if wait <= 0:
                    return True
                self._cond.wait(min(wait, 0.5))

    def wake(self) -> None:
        """Wake the callers blocked in :meth:`acquire` (to look at ``stop`` again)."""
        with self._cond:
            self._cond.notify_all()

    # --- answers ------------------------------------------------------------------------

    def accepted(self, sent_at: float | None = None) -> None:
        """A submit was accepted: grow the rate (by the time since the last growth)."""
        s = self.settings
        with self._cond:
            now = self._clock()
            self.accepted_count += 1
            dt = 0.0 if self._grown_at is None else min(1.0, max(0.0, now - self._grown_at))
            self._grown_at = now
            if self.slow_start:
                self.rate = min(s.max_rate, self.rate * 2.0 ** (dt / s.doubling))
            else:
                self.rate = min(s.max_rate, self.rate + s.increase * self._ceiling * dt)

    def rate_limited(self, sent_at: float, retry_after: float | None) -> None:
        """A submit sent at ``sent_at`` (clock time) got 429: hold, and back off once per
        congestion event."""
        s = self.settings
        with self._cond:
            now = self._clock()
            self.rate_limited_count += 1
            hold = DEFAULT_RETRY_AFTER if retry_after is None else max(0.0, retry_after)
            self._held_until = max(self._held_until, now + hold)
            if sent_at >= self._last_decrease:
                self._ceiling = self.rate
                self.rate = max(s.min_rate, self.rate * s.decrease)
                self.slow_start = False
                self._last_decrease = now
                self.decreases += 1
            self._cond.notify_all()

    def __repr__(self) -> str:
        phase = "slow start" if self.slow_start else "additive increase"
        return (f"Pacer(rate={self.rate:.2f}/s, {phase}, {self.accepted_count} accepted, "
                f"{self.rate_limited_count} rate limited)")
