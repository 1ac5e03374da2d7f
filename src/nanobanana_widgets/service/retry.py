"""The one retry policy: what may be tried again, how often, and how long to wait first.

Pure: no I/O. The callers (the client's submits and task lookups, image downloads) say what
went wrong as a :data:`Failure` and ask the policy whether to try again and after how many
seconds; they do the waiting. What may be retried depends on what a call costs:

- **submit** (billed): only what certainly never reached the service (``"not_sent"``:
  connection refused, could not be opened, connect timeout) and a 429 (refused, nothing
  billed). Never a 5xx, a timeout or a break after sending, a malformed answer or a TLS
  failure: the service may have started, and billed, the job.
- **lookup** (free): every transient failure; only a refusal (3xx, other 4xx) is final.
- **download** (an idempotent ``GET``): connection failures before or after sending, a
  stream cut short and 5xx answers; not a read timeout, not a refusal.

Waits are jittered exponential backoff, ``backoff_base * backoff_factor ** retry`` times a
random factor in ``jitter``, raised to ``Retry-After`` when the service sent one, and never
longer than ``max_wait``. Attempts are bounded: ``max_retries`` retries after the first,
and by the caller's overall deadline: a wait that would end after it is not started.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "DOWNLOAD_RETRY",
    "MAX_RETRY_WAIT",
    "RETRYABLE",
    "Call",
    "Failure",
    "RetryPolicy",
    "failure_for_status",
    "parse_retry_after",
]

Call = Literal["submit", "lookup", "download"]
"""What kind of call failed: it decides what may be retried."""

Failure = Literal[
    "not_sent",  # the request never left this machine (refused, not opened, connect timeout)
    "tls",  # the TLS handshake failed
    "timeout",  # sent, but no answer within the read timeout
    "broken",  # the connection broke after the request was sent (reset, cut mid-body)
    "rate_limited",  # HTTP 429
    "server_error",  # HTTP 5xx
    "malformed",  # an answer whose body is not what the protocol promises
    "refused",  # any other answer that is not a success (3xx, 4xx)
]
"""How a call failed."""

RETRYABLE: Final[Mapping[Call, frozenset[Failure]]] = {
    "submit": frozenset({"not_sent", "rate_limited"}),
    "lookup": frozenset({"not_sent", "tls", "timeout", "broken", "rate_limited",
                         "server_error", "malformed"}),
    "download": frozenset({"not_sent", "tls", "broken", "server_error"}),
}
"""The failures each kind of call may retry (see the module docstring for why)."""

MAX_RETRY_WAIT: Final = 30.0
"""Longest single wait between two attempts, ``Retry-After`` included."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded, jittered exponential backoff that honours ``Retry-After`` (capped).

    The defaults are the client's (4 retries, 0.5 s doubling); :data:`DOWNLOAD_RETRY` holds
    the downloads'. ``rand`` gives numbers in [0, 1) for the jitter (tests pin it).
    """

    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_factor: float = 2.0
    jitter: tuple[float, float] = (0.5, 1.0)
    max_wait: float = MAX_RETRY_WAIT
    rand: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def may_retry(self, call: Call, failure: Failure) -> bool:
        """Whether ``failure`` of a ``call`` may be tried again at all."""
        return failure in RETRYABLE[call]

    def backoff(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first retry)."""
        low, high = self.jitter
        wait = self.backoff_base * self.backoff_factor ** retry * (low + (high - low) * self.rand())
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, self.max_wait)

    def next_wait(self, call: Call, failure: Failure, retries: int, *,
                  retry_after: float | None = None, time_left: float | None = None
                  ) -> float | None:
        """Seconds to wait before trying again, or ``None``: give up and report ``failure``.

        ``retries`` is how many retries were made already; ``retry_after`` the server's
        ``Retry-After`` in seconds; ``time_left`` what remains of an overall deadline: no
        retry once it has passed, nor one whose wait alone would pass it.
        """
        if not self.may_retry(call, failure) or retries >= self.max_retries:
            return None
        if time_left is not None and time_left <= 0:
            return None
        wait = self.backoff(retries, retry_after)
        if time_left is not None and wait >= time_left:
            return None
        return wait


DOWNLOAD_RETRY: Final = RetryPolicy(max_retries=2, backoff_base=0.2, backoff_factor=3.0,
                                    jitter=(0.75, 1.25))
"""The policy of image downloads: two retries, about 0.2 s then 0.6 s apart."""


def failure_for_status(status: int) -> Failure | None:
    """The failure an HTTP status means, or ``None`` for a success (below 300)."""
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status >= 300:
        return "refused"
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number or an HTTP date; never
    negative), or ``None`` when absent or unreadable. ``now``: the time, for a date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
