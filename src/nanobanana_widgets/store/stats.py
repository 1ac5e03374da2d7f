"""The statistics of pairwise votes, in plain Python (no NumPy, no SciPy).

**Bradley–Terry.** Each item ``i`` has a strength ``θ_i`` (a log-odds scale): the chance
that ``i`` beats ``j`` is ``σ(θ_i − θ_j)``. :func:`bradley_terry` finds the strengths that
make the votes most likely, by Newton's method on the log-likelihood. A weak prior keeps
every strength finite (an item that won every vote is not infinitely strong): each item
is also taken to have played one win and one loss against a fixed reference of strength
0. A tie counts as half a win for each side. Strengths are reported against the average
of the items compared (their mean is 0). The interval of each comes from the observed
information (the curvature of the log-likelihood at its peak), whose inverse is the
covariance of the estimates. Scores are shown on the Elo scale (:func:`elo`): 1000 is the
average item, and 400 points are a ten-to-one preference.

**The sign test.** :func:`sign_test` is the exact two-sided binomial test of "neither side
is preferred" (each decisive vote is a fair coin): the probability, under that
hypothesis, of a split at least as uneven as the one seen. Ties are set aside.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

__all__ = [
    "ELO_BASE",
    "ELO_SCALE",
    "Strength",
    "bradley_terry",
    "elo",
    "min_votes_for",
    "sign_test",
    "win_probability",
]

ELO_BASE = 1000.0
"""The score of the average item (θ = 0)."""
ELO_SCALE = 400.0 / math.log(10.0)
"""Elo points per unit of θ: 400 points are a ten-to-one preference."""
_Z95 = 1.959963984540054
_PRIOR_GAMES = 1.0
"""Wins and losses each item is taken to have against the reference (the weak prior)."""
_FULL_COVARIANCE_UP_TO = 150
"""Above this many items, intervals use the diagonal of the information only."""


@dataclass(frozen=True)
class Strength:
    """One item's estimate: ``theta`` (log-odds scale), its standard error ``se``, and the
    95 % interval, all three also on the Elo scale (``score``, ``low``, ``high``)."""

    theta: float
    se: float

    @property
    def score(self) -> float:
        """``theta`` on the Elo scale."""
        return elo(self.theta)

    @property
    def low(self) -> float:
        """The lower end of the 95 % interval, on the Elo scale."""
        return elo(self.theta - _Z95 * self.se)

    @property
    def high(self) -> float:
        """The upper end of the 95 % interval, on the Elo scale."""
        return elo(self.theta + _Z95 * self.se)


def elo(theta: float) -> float:
    """A strength on the Elo scale (1000 for the average item)."""
    return ELO_BASE + ELO_SCALE * theta


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def win_probability(theta_i: float, theta_j: float) -> float:
    """The chance that an item of strength ``theta_i`` beats one of ``theta_j``."""
    return _sigmoid(theta_i - theta_j)


K = TypeVar("K", bound=Hashable)

Outcome = tuple[Hashable, Hashable, float]
"""``(a, b, s)``: ``a`` met ``b`` and scored ``s`` (1 a win, 0 a loss, 0.5 a tie)."""


def bradley_terry(items: Sequence[K], outcomes: Iterable[Outcome], *,
                  prior_games: float = _PRIOR_GAMES) -> dict[K, Strength]:
    """The Bradley–Terry strength of each of ``items`` from ``outcomes``.

    ``outcomes`` are ``(a, b, score)`` triples (``score`` 1 when ``a`` won, 0 when ``b``
    won, 0.5 for a tie); pairs naming an item not in ``items``, or an item against itself,
    are ignored. Every item gets an estimate, also one never compared (the prior's).
    """
    index: dict[Hashable, int] = {item: k for k, item in enumerate(items)}
    n = len(items)
    wins = [0.0] * n                      # scores summed per item
    games: dict[tuple[int, int], float] = {}  # games per pair (i < j)
    for a, b, s in outcomes:
        i, j = index.get(a), index.get(b)
        if i is None or j is None or i == j:
            continue
        wins[i] += s
        wins[j] += 1.0 - s
        key = (i, j) if i < j else (j, i)
        games[key] = games.get(key, 0.0) + 1.0
    theta = [0.0] * n
    for _ in range(100):
        gradient, hessian = _derivatives(theta, wins, games, prior_games)
        step = _solve([row[:] for row in hessian], gradient)
        if step is None:  # pragma: no cover - the prior keeps the matrix definite
            break
        size = 1.0
        before = _log_likelihood(theta, wins, games, prior_games)
        while True:  # damped: never a step that lowers the likelihood
            trial = [t + size * d for t, d in zip(theta, step, strict=True)]
            if _log_likelihood(trial, wins, games, prior_games) >= before - 1e-12 or size < 1e-6:
                break
            size /= 2
        theta = trial
        if max((abs(size * d) for d in step), default=0.0) < 1e-10:
            break
    _, info = _derivatives(theta, wins, games, prior_games)
    mean = sum(theta) / n if n else 0.0
    variances = _centred_variances(info)
    return {item: Strength(theta[k] - mean, math.sqrt(max(variances[k], 0.0)))
            for k, item in enumerate(items)}


def _logaddexp(a: float, b: float) -> float:
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _log_likelihood(theta: Sequence[float], wins: Sequence[float],
                    games: dict[tuple[int, int], float], prior: float) -> float:
    """``Σ W_i θ_i − Σ_pairs g · log(e^θi + e^θj)`` plus the prior's games, written so
    that it cannot overflow (``log σ(θi − θj) = θi − log(e^θi + e^θj)``)."""
    total = sum(w * t for w, t in zip(wins, theta, strict=True))
    for (i, j), g in games.items():
        total -= g * _logaddexp(theta[i], theta[j])
    for t in theta:  # one win and one loss against the reference (θ = 0)
        total -= prior * (_logaddexp(0.0, -t) + _logaddexp(0.0, t))
    return total


def _derivatives(theta: Sequence[float], wins: Sequence[float],
                 games: dict[tuple[int, int], float], prior: float
                 ) -> tuple[list[float], list[list[float]]]:
    """The gradient of the log-likelihood and the *negated* Hessian (the information)."""
    n = len(theta)
    gradient = [wins[i] + prior - 2.0 * prior * _sigmoid(theta[i]) for i in range(n)]
    info = [[0.0] * n for _ in range(n)]
    for i in range(n):
        p = _sigmoid(theta[i])
        info[i][i] += 2.0 * prior * p * (1.0 - p)
    for (i, j), g in games.items():
        p = _sigmoid(theta[i] - theta[j])
        gradient[i] -= g * p
        gradient[j] -= g * (1.0 - p)
        v = g * p * (1.0 - p)
        info[i][i] += v
        info[j][j] += v
        info[i][j] -= v
        info[j][i] -= v
    return gradient, info


def _solve(matrix: list[list[float]], vector: Sequence[float]) -> list[float] | None:
    """``x`` with ``matrix · x = vector`` (Gaussian elimination, partial pivoting).

    The information matrix is symmetric positive definite; its diagonal is used alone
    for very many items (a Newton step on the diagonal still climbs the likelihood)."""
    n = len(vector)
    if n > _FULL_COVARIANCE_UP_TO:
        return [v / matrix[i][i] for i, v in enumerate(vector)]
    a = [[*row, vector[i]] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-300:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        p = a[col][col]
        for r in range(col + 1, n):
            f = a[r][col] / p
            if f:
                row, top = a[r], a[col]
                for c in range(col, n + 1):
                    row[c] -= f * top[c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x


def _centred_variances(info: list[list[float]]) -> list[float]:
    """The variance of each ``θ_i − mean(θ)`` from the information matrix: the diagonal
    of ``(I − J/n) Σ (I − J/n)`` with ``Σ`` its inverse (only ``Σ``'s diagonal for very
    many items)."""
    n = len(info)
    if n == 0:
        return []
    if n > _FULL_COVARIANCE_UP_TO:
        return [1.0 / info[i][i] for i in range(n)]
    columns = _inverse(info)
    if columns is None:  # pragma: no cover - the prior keeps the matrix definite
        return [math.inf] * n
    row_means = [sum(columns[k]) / n for k in range(n)]  # Σ is symmetric
    grand = sum(row_means) / n
    return [columns[i][i] - 2.0 * row_means[i] + grand for i in range(n)]


def _inverse(matrix: list[list[float]]) -> list[list[float]] | None:
    """The inverse of a square matrix (Gauss–Jordan, partial pivoting)."""
    n = len(matrix)
    a = [row[:] + [1.0 if c == r else 0.0 for c in range(n)] for r, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-300:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        top = a[col]
        p = top[col]
        for c in range(2 * n):
            top[c] /= p
        for r in range(n):
            if r != col:
                row = a[r]
                f = row[col]
                if f:
                    for c in range(col, 2 * n):
                        row[c] -= f * top[c]
    return [row[n:] for row in a]


def sign_test(wins_a: int, wins_b: int) -> float:
    """The exact two-sided sign test of ``wins_a`` against ``wins_b`` decisive votes.

    The probability that a fair coin tossed ``wins_a + wins_b`` times gives a split at least
    as uneven as this one (either way): ``min(1, 2 · P(X ≤ min(a, b)))`` for ``X`` binomial
    with ``p = ½``. Computed exactly (integers and fractions), returned as a float; 1.0 when
    there is no decisive vote.
    """
    for name, value in (("wins_a", wins_a), ("wins_b", wins_b)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a whole number of votes, 0 or more; got {value!r}")
    n = wins_a + wins_b
    if n == 0:
        return 1.0
    k = min(wins_a, wins_b)
    tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2 ** n)
    return float(min(Fraction(1), 2 * tail))


def min_votes_for(alpha: float = 0.05) -> int:
    """The fewest decisive votes that can rule chance out at ``alpha`` (all one way)."""
    n = 1
    while sign_test(n, 0) >= alpha:
        n += 1
    return n
