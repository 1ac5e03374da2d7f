"""Pair selection learns a ranking with fewer votes than random pairs (seeded, so the same
every run), covers every item before repeating a pair, and keeps to the allowed pairs."""

from __future__ import annotations

import random

from nanobanana_widgets.store import bradley_terry
from nanobanana_widgets.widgets.tournament.pairs import (
    choose_pair,
    pair_counts,
    pair_key,
    suggested_votes,
)


def _footrule(n: int, votes: int, adaptive: bool, seed: int, noise: float = 0.1) -> int:
    """How far the ranking after ``votes`` is from the truth (Spearman's footrule), for a
    voter who prefers the better item nine times out of ten."""
    keys = [f"k{i}" for i in range(n)]
    truth = {k: i for i, k in enumerate(keys)}
    oracle = random.Random(f"oracle-{seed}")
    outcomes: list[tuple[str, str, float]] = []
    shown: list[tuple[str, str]] = []
    last: set[str] = set()
    for v in range(votes):
        rng = random.Random(f"{seed}:{v}")
        if adaptive:
            chosen = choose_pair(keys, bradley_terry(keys, outcomes), pair_counts(shown), rng,
                                 avoid=last)
            assert chosen is not None
            a, b = chosen
        else:
            a, b = rng.sample(keys, 2)
        better = a if truth[a] < truth[b] else b
        if oracle.random() < noise:
            better = b if better == a else a
        outcomes.append((a, b, 1.0 if better == a else 0.0))
        shown.append((a, b))
        last = {a, b}
    found = bradley_terry(keys, outcomes)
    order = sorted(keys, key=lambda k: -found[k].theta)
    return sum(abs(order.index(k) - truth[k]) for k in keys)


def test_chosen_pairs_learn_the_ranking_with_fewer_votes_than_random_pairs() -> None:
    n = 8
    votes = suggested_votes(n)
    assert votes == 16
    adaptive = sum(_footrule(n, votes, True, seed) for seed in range(20))
    chance = sum(_footrule(n, votes, False, seed) for seed in range(20))
    assert adaptive < 0.75 * chance, (adaptive, chance)  # measured: about 0.56


def test_every_item_is_shown_before_a_pair_repeats_and_the_last_pair_rests() -> None:
    keys = [f"k{i}" for i in range(6)]
    shown: list[tuple[str, str]] = []
    outcomes: list[tuple[str, str, float]] = []
    last: set[str] = set()
    for v in range(6):
        chosen = choose_pair(keys, bradley_terry(keys, outcomes), pair_counts(shown),
                             random.Random(v), avoid=last)
        assert chosen is not None
        assert not set(chosen) & last  # neither image of the pair just voted on
        shown.append(chosen)
        outcomes.append((chosen[0], chosen[1], 1.0))
        last = set(chosen)
    assert {k for pair in shown[:3] for k in pair} == set(keys)  # all six in three pairs
    assert len({pair_key(*p) for p in shown}) == len(shown)  # no pair twice


def test_only_allowed_pairs_and_sides_at_random() -> None:
    keys = ["a1", "a2", "b1", "b2"]
    arm = {k: k[0] for k in keys}
    sides = set()
    for seed in range(40):
        chosen = choose_pair(keys, {}, {}, random.Random(seed),
                             allowed=lambda x, y: arm[x] != arm[y])
        assert chosen is not None and arm[chosen[0]] != arm[chosen[1]]
        sides.add(arm[chosen[0]])
    assert sides == {"a", "b"}
    assert choose_pair(keys, {}, {}, random.Random(0), allowed=lambda x, y: False) is None
