"""An A/B test's verdict in plain words, from the wins of each arm. Pure: no widget.

Each decisive vote is a win for the arm of the preferred image; ties are set aside. The
p-value is the exact two-sided sign test (:func:`nanobanana_widgets.store.sign_test`): how
often a coin would split the decisive votes at least this unevenly, either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from nanobanana_widgets.store import min_votes_for, sign_test

__all__ = ["ALPHA", "Verdict", "judge"]

ALPHA = 0.05
"""Below this p-value, chance is called an unlikely explanation."""


@dataclass(frozen=True)
class Verdict:
    """The outcome so far: ``text``, ``p_value``, ``wins`` per arm, ``ties``, and whether
    chance is an unlikely explanation (``conclusive``) and for which arm (``preferred``)."""

    text: str
    p_value: float
    wins: dict[str, int]
    ties: int
    preferred: str | None
    conclusive: bool


def _chance(p: float) -> str:
    if p < 0.001:
        return "less than 0.1% of the time"
    if p < 0.01:
        return f"about {p * 100:.1f}% of the time"
    return f"about {round(p * 100)}% of the time"


def judge(labels: tuple[str, str], wins_a: int, wins_b: int, ties: int) -> Verdict:
    """The verdict of ``wins_a`` against ``wins_b`` decisive votes and ``ties``."""
    a, b = labels
    wins = {a: wins_a, b: wins_b}
    n = wins_a + wins_b
    p = sign_test(wins_a, wins_b)
    tie_note = f" ({ties} tie{'s' if ties != 1 else ''} set aside)" if ties else ""
    fewest = min_votes_for(ALPHA)
    if n == 0:
        start = (f"Only ties so far ({ties}): no preference either way. " if ties else
                 "No votes yet. ")
        return Verdict(text=start + f"Vote on pairs (an image of {a} against one of {b}); "
                       f"{fewest} decisive votes all one way are the fewest that can rule "
                       "chance out.", p_value=p, wins=wins, ties=ties, preferred=None,
                       conclusive=False)
    if wins_a == wins_b:
        return Verdict(text=f"Neither arm is preferred: {a} and {b} won {wins_a} of {n} "
                       f"votes each{tie_note}.", p_value=p, wins=wins, ties=ties,
                       preferred=None, conclusive=False)
    leader, k = (a, wins_a) if wins_a > wins_b else (b, wins_b)
    text = (f"{leader} preferred in {k} of {n} votes{tie_note}; a split this uneven (either "
            f"way) would happen by chance {_chance(p)} (exact sign test).")
    conclusive = p < ALPHA
    if conclusive:
        text += f" Chance is an unlikely explanation: {leader} is better here."
    elif n < fewest:
        text += (f" That could well be chance: even {fewest} votes all one way are needed to "
                 "rule it out. Keep voting.")
    else:
        text += " That could well be chance: keep voting to tell."
    return Verdict(text=text, p_value=p, wins=wins, ties=ties, preferred=leader,
                   conclusive=conclusive)
