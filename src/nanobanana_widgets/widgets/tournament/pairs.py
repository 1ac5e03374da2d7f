"""Which pair to show next, so that few votes learn the ranking. Pure: no widget, no I/O.

Each possible pair gets a score: how close the two items are believed to be
(``p · (1 − p)`` with ``p`` the Bradley–Terry chance that one beats the other: a vote
between a favourite and an outsider teaches little), times how uncertain their scores still
are (the sum of their variances: items seldom compared come first), divided by one plus
how often the pair was shown already (votes and skips). The best pair is shown; near-ties
are broken at random (seeded by the caller, so a tournament resumes the same way). When
there are other choices, neither item of the pair just voted on is shown again at once (a
blind vote reveals them). The sides are drawn at random.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Mapping, Sequence

from nanobanana_widgets.store import Strength

__all__ = ["choose_pair", "pair_counts", "pair_key", "suggested_votes"]

_NEAR = 0.98
"""Pairs scoring within 2 % of the best are drawn among at random."""


def pair_key(a: str, b: str) -> tuple[str, str]:
    """The same key for ``(a, b)`` and ``(b, a)``."""
    return (a, b) if a <= b else (b, a)


def pair_counts(shown: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How often each pair was shown (voted on or skipped)."""
    counts: dict[tuple[str, str], int] = {}
    for a, b in shown:
        key = pair_key(a, b)
        counts[key] = counts.get(key, 0) + 1
    return counts


def suggested_votes(n_items: int) -> int:
    """Votes that give a first ranking: each image in about four pairs."""
    return max(2, 2 * n_items)


def choose_pair(keys: Sequence[str], strengths: Mapping[str, Strength],
                counts: Mapping[tuple[str, str], int], rng: random.Random, *,
                avoid: Collection[str] = (),
                allowed: Callable[[str, str], bool] | None = None) -> tuple[str, str] | None:
    """The next pair to show as ``(left, right)``, or ``None`` when no pair is allowed."""
    candidates = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]
                  if allowed is None or allowed(a, b)]
    if not candidates:
        return None
    fresh = [(a, b) for a, b in candidates if a not in avoid and b not in avoid]
    if fresh:
        candidates = fresh
    scored = []
    for a, b in candidates:
        sa, sb = strengths.get(a), strengths.get(b)
        theta_a, var_a = (sa.theta, sa.se ** 2) if sa else (0.0, 1.0)
        theta_b, var_b = (sb.theta, sb.se ** 2) if sb else (0.0, 1.0)
        p = 1.0 / (1.0 + math.exp(-(theta_a - theta_b)))
        score = p * (1.0 - p) * (var_a + var_b) / (1.0 + counts.get(pair_key(a, b), 0))
        scored.append((score, a, b))
    best = max(s for s, _, _ in scored)
    near = sorted((a, b) for s, a, b in scored if s >= best * _NEAR)
    left, right = rng.choice(near)
    if rng.random() < 0.5:
        left, right = right, left
    return left, right
