"""Votes in the history: the exact sign test against a direct count, Bradley–Terry against
its own optimality conditions, record/withdraw/list votes, rankings by prompt, model and
record, the migration of an older history, and the Rankings table."""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.render.rankings import rankings_html
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import (
    History,
    VoteItem,
    bradley_terry,
    min_votes_for,
    rank,
    record_item,
    sign_test,
)
from nanobanana_widgets.store.rankings import Entry
from nanobanana_widgets.store.schema import MIGRATIONS, SCHEMA_VERSION
from nanobanana_widgets.store.stats import _derivatives

HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(1)>"


# --- the sign test -------------------------------------------------------------------------


def _direct_p(a: int, b: int) -> float:
    """Count every sequence of n fair coin tosses whose split is at least as uneven."""
    n = a + b
    if n == 0:
        return 1.0
    seen = abs(a - b)
    extreme = sum(1 for tosses in itertools.product((0, 1), repeat=n)
                  if abs(2 * sum(tosses) - n) >= seen)
    return extreme / 2 ** n


@pytest.mark.parametrize(("a", "b"), [(0, 0), (1, 0), (7, 1), (1, 7), (4, 4), (8, 0), (6, 0),
                                      (5, 0), (9, 3), (2, 10), (6, 6), (11, 1)])
def test_the_sign_test_is_the_direct_count_of_as_uneven_splits(a: int, b: int) -> None:
    assert sign_test(a, b) == pytest.approx(_direct_p(a, b), abs=1e-15)
    assert sign_test(a, b) == sign_test(b, a)


def test_the_sign_test_known_values_and_bad_input() -> None:
    assert sign_test(7, 1) == 18 / 256  # 2 × (1 + 8) / 2^8
    assert sign_test(8, 0) == 2 / 256
    assert sign_test(50, 50) == 1.0
    assert sign_test(60, 40) == pytest.approx(0.056887, abs=1e-6)  # a textbook value
    assert min_votes_for(0.05) == 6  # 5 of 5 gives 6.25 %, 6 of 6 gives 3.1 %
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            sign_test(bad, 1)  # type: ignore[arg-type]


# --- Bradley–Terry -------------------------------------------------------------------------


def test_bradley_terry_finds_the_peak_of_its_likelihood() -> None:
    items = ["a", "b", "c", "d"]
    outcomes = [("a", "b", 1.0), ("a", "b", 1.0), ("a", "c", 1.0), ("b", "c", 0.5),
                ("c", "d", 1.0), ("b", "d", 0.0), ("a", "d", 1.0), ("d", "b", 1.0)]
    found = bradley_terry(items, outcomes)
    # The estimates are reported against their mean; shift them back to the reference's
    # scale (the prior plays against θ = 0) by finding the offset where the prior's
    # gradient terms balance, then check the gradient is zero there.
    thetas = [found[i].theta for i in items]
    assert sum(thetas) == pytest.approx(0.0, abs=1e-9)
    wins = [0.0] * 4
    games: dict[tuple[int, int], float] = {}
    for x, y, s in outcomes:
        i, j = items.index(x), items.index(y)
        wins[i] += s
        wins[j] += 1 - s
        key = (min(i, j), max(i, j))
        games[key] = games.get(key, 0.0) + 1

    def gradient_norm(offset: float) -> float:
        g, _ = _derivatives([t + offset for t in thetas], wins, games, 1.0)
        return math.sqrt(sum(x * x for x in g))

    best = min((gradient_norm(k / 1000), k / 1000) for k in range(-2000, 2001))
    assert best[0] < 2e-3  # the estimates are the likelihood's peak
    assert found["a"].theta > found["c"].theta > found["d"].theta


def test_an_unbeaten_item_stays_finite_and_a_never_seen_one_sits_at_the_average() -> None:
    found = bradley_terry(["x", "y", "z"], [("x", "y", 1.0)] * 50)
    assert math.isfinite(found["x"].theta) and found["x"].theta > found["z"].theta
    assert found["z"].score == pytest.approx(1000.0, abs=1.0)  # what the prior says
    assert found["x"].low < found["x"].score < found["x"].high
    tie = bradley_terry(["p", "q"], [("p", "q", 0.5)] * 10)
    assert tie["p"].theta == pytest.approx(0.0, abs=1e-9)
    more = bradley_terry(["p", "q"], [("p", "q", 1.0), ("p", "q", 0.0)] * 20)
    fewer = bradley_terry(["p", "q"], [("p", "q", 1.0), ("p", "q", 0.0)])
    assert more["p"].se < fewer["p"].se  # more votes, narrower intervals


def test_a_consistent_order_is_ranked_with_separated_intervals() -> None:
    items = list("ABCDE")
    outcomes = [(items[i], items[j], 1.0) for i, j in itertools.combinations(range(5), 2)] * 2
    table = rank([Entry(k, k) for k in items], outcomes)
    assert table["item"] == items
    assert table[0].low > table[-1].high
    assert table["wins"] == [8, 6, 4, 2, 0] and table["losses"] == [0, 2, 4, 6, 8]


# --- votes in the history ------------------------------------------------------------------


def _add(h: History, prompt: str, model: str = "nano-banana", task: str = "") -> object:
    return h.add(ImageRequest("generate", prompt, model=model), task_id=task or None,
                 status="succeeded")


def test_votes_are_recorded_listed_withdrawn_and_kept_on_disk(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    a, b = _add(h, "a cat"), _add(h, "a cat, cinematic")
    v1 = h.record_vote("t-1", a, b, "right", blind=True)  # type: ignore[arg-type]
    v2 = h.record_vote("t-1", VoteItem("c1234"), record_item(b), "tie")  # type: ignore[arg-type]
    h.record_vote("t-2", a, b, "skip")  # type: ignore[arg-type]
    assert v1.winner == v1.right and v1.right.prompt == "a cat, cinematic" and v1.blind
    assert v2.winner is None and v2.score == 0.5
    h.close()
    again = History(tmp_path / "h")
    assert [(v.outcome, v.tournament) for v in again.votes("t-1")] == [("right", "t-1"),
                                                                       ("tie", "t-1")]
    assert len(again.votes()) == 3 and len(again.votes(["t-1", "t-2"])) == 3
    assert again.votes("t-1")[0].left.key == f"r{a.id}.0"  # type: ignore[attr-defined]
    assert again.withdraw_vote(v1) and not again.withdraw_vote(v1.id)
    assert [v.outcome for v in again.votes("t-1")] == ["tie"]
    with pytest.raises(InvalidParameterError, match="vote"):
        again.record_vote("t-1", a, b, "maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="two different items"):
        again.record_vote("t-1", a, a, "left")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        again.record_vote("t-1", "a cat", b, "left")  # type: ignore[arg-type]
    again.close()


def test_rankings_by_prompt_model_and_record_pool_every_vote(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    plain = [_add(h, "a cat") for _ in range(2)]
    fancy = [_add(h, "a cat, cinematic", model="nano-banana-pro") for _ in range(2)]
    other = _add(h, f"a dog {HOSTILE}")
    for p, f in itertools.product(plain, fancy):
        h.record_vote("t-a", p, f, "right")  # type: ignore[arg-type]
    h.record_vote("t-b", plain[0], plain[1], "left")  # type: ignore[arg-type]  # same prompt
    h.record_vote("t-b", other, fancy[0], "tie")  # type: ignore[arg-type]
    h.record_vote("t-b", other, plain[0], "skip")  # type: ignore[arg-type]

    by_prompt = h.rankings(by="prompt")
    assert by_prompt["item"][0] == "a cat, cinematic"
    assert by_prompt.row("a cat, cinematic").wins == 4
    assert by_prompt.row("a cat").losses == 4 and by_prompt.row("a cat").wins == 0
    assert by_prompt.votes == 5  # 4 across prompts + the tie; same-prompt vote and skip out
    by_model = h.rankings(by="model")
    assert by_model[0].item == "nano-banana-pro" and by_model[0].model == "nano-banana-pro"
    by_record = h.rankings(by="record")
    assert len(by_record) == 5 and by_record.votes == 6  # the same-prompt vote counts here
    assert by_record.row(f"#{fancy[0].id}").ties == 1  # type: ignore[attr-defined]
    assert h.rankings(by="prompt", tournament="t-b").votes == 1

    h.delete(fancy[0])  # type: ignore[arg-type]
    assert h.rankings(by="record").votes == 6 - 3  # its two wins and its tie are gone
    with pytest.raises(InvalidParameterError, match="by"):
        h.rankings(by="colour")

    html = by_prompt._repr_html_()
    assert "<script>" not in html and "onerror=alert(1)>" not in html.replace("&gt;", "")
    assert "&lt;script&gt;" in html
    assert "a cat, cinematic" in repr(by_prompt)
    records = by_prompt.to_records()
    assert list(records[0]) == list(by_prompt.columns) == [
        "item", "prompt", "model", "wins", "losses", "ties", "score", "low", "high"]
    frame = by_prompt.to_pandas()
    assert list(frame.columns) == list(by_prompt.columns) and len(frame) == len(by_prompt)
    h.close()


def test_blind_rankings_html_names_no_item() -> None:
    table = rank([Entry("k1", "label-one", "a secret prompt", "nano-banana-pro"),
                  Entry("k2", "label-two", "another secret", "nano-banana")],
                 [("k1", "k2", 1.0)])
    blind = rankings_html(table.rows, votes=table.votes,
                          thumbs={"k1": "data:image/jpeg;base64,AA"}, blind=True)
    assert "secret" not in blind and "nano-banana" not in blind and "label-" not in blind
    assert blind.count("<img") == 1
    shown = rankings_html(table.rows, votes=table.votes)
    assert "a secret prompt" in shown and "nano-banana-pro" in shown
    assert "javascript:" not in rankings_html(table.rows, thumbs={"k1": "javascript:alert(1)"})


def test_an_older_history_gains_the_votes_table(tmp_path: Path,
                                                run_python: Callable[..., object]) -> None:
    db = tmp_path / "old" / "history.sqlite"
    db.parent.mkdir()
    conn = sqlite3.connect(db)
    with conn:
        MIGRATIONS[0](conn)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO requests (created_at, action, prompt, model, status, "
                     "fingerprint) VALUES (1, 'generate', 'an old one', 'nano-banana', "
                     "'succeeded', 'f')")
    conn.close()
    h = History(db)
    assert len(h) == 1
    h.record_vote("t-old", h[0], VoteItem("c-other"), "left")
    assert len(h.votes("t-old")) == 1
    h.close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    conn.close()
