"""ab_test(): its cost stated and the grid's budget rule kept, requests of up to four images,
blind votes, the verdict and its p-value against a direct binomial count, the within- and
between-arm variation, and what it says when an arm fails; and a tournament over a grid."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import InvalidParameterError, NanoBananaError
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid import grid
from nanobanana_widgets.widgets.tournament import ABTest, ab_test, tournament
from nanobanana_widgets.widgets.tournament.arms import make_plan
from nanobanana_widgets.widgets.tournament.verdict import judge

from .helpers import descendants, requests_sent

PLAIN = "a lighthouse at dusk"
FANCY = "a lighthouse at dusk, cinematic"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Tasks take 0.05 s here."""
    with Emulator(latency=0.05) as e:
        yield e


def binomial_two_sided(k: int, n: int) -> float:
    """P(a split at least as uneven as k of n), summed term by term from the definition."""
    if n == 0:
        return 1.0
    probs = [math.comb(n, i) * 0.5 ** n for i in range(n + 1)]
    seen = probs[k]
    return min(1.0, sum(p for p in probs if p <= seen + 1e-15))


def vote_for(ab: ABTest, arm: str | None) -> None:
    """Vote for the image of ``arm`` (``None``: a tie)."""
    pair = ab.current
    assert pair is not None and pair.left.arm != pair.right.arm
    if arm is None:
        ab.vote("tie")
    else:
        ab.vote("left" if pair.left.arm == arm else "right")


def test_the_plan_counts_requests_of_up_to_four_and_refuses_what_tests_nothing() -> None:
    plan = make_plan(PLAIN, FANCY)
    assert plan.paid == 8 and plan.requests == 1 and plan.arms[0].counts == (4,)
    assert make_plan(PLAIN, FANCY, samples=6).arms[1].counts == (4, 2)
    assert make_plan(PLAIN, FANCY, samples=9).arms[0].counts == (4, 4, 1)
    models = make_plan({"model": "nano-banana"}, {"model": "nano-banana-pro"}, prompt=PLAIN,
                       aspect_ratio="16:9")
    assert [a.request.model for a in models.arms] == ["nano-banana", "nano-banana-pro"]
    assert {a.request.aspect_ratio for a in models.arms} == {"16:9"}
    assert make_plan(PLAIN, FANCY).test_id == make_plan(PLAIN, FANCY).test_id  # stable
    with pytest.raises(InvalidParameterError, match="differs"):
        make_plan(PLAIN, {"prompt": PLAIN})
    with pytest.raises(InvalidParameterError, match="samples"):
        make_plan(PLAIN, FANCY, samples=0)
    with pytest.raises(InvalidParameterError, match="model"):
        make_plan(PLAIN, {"model": "banana-9000"}, prompt=PLAIN)
    with pytest.raises(InvalidParameterError, match=r"prompt=\.\.\. for both arms"):
        make_plan({"model": "nano-banana"}, {"model": "nano-banana-pro"})
    with pytest.raises(TypeError, match="unexpected keyword"):
        make_plan(PLAIN, FANCY, seed=3)
    with pytest.raises(InvalidParameterError, match="a dict of"):
        make_plan(PLAIN, {"colour": "red", "prompt": "x"})


def test_scripted_votes_give_the_verdict_and_the_exact_p_value(
        client: Client, history: History, emulator: Emulator) -> None:
    ab = ab_test(PLAIN, FANCY, client=client, history=history)
    assert "8 paid generations: 4 images per arm, in 1 request each" in ab.plan_line.value
    ab.wait(30)
    assert ab.state == "voting", ab.status.value
    sent = requests_sent(emulator)
    assert sorted((body["prompt"], body.get("count")) for body in sent) == [
        (PLAIN, 4), (FANCY, 4)]
    assert {k: len(v) for k, v in ab.images.items()} == {"A": 4, "B": 4}
    assert ab.p_value == 1.0 and ab.verdict.startswith("No votes yet")
    for arm in ["B", "B", "B", "A", "B", "B", None, "B", "B"]:  # B 7, A 1, one tie
        vote_for(ab, arm)
    assert ab.wins == {"A": 1, "B": 7} and ab.ties == 1
    assert ab.p_value == pytest.approx(binomial_two_sided(7, 8)) == 18 / 256
    assert ab.verdict.startswith("B preferred in 7 of 8 votes (1 tie set aside); a split "
                                 "this uneven (either way) would happen by chance about 7% "
                                 "of the time")
    assert "could well be chance" in ab.verdict
    vote_for(ab, "B")
    vote_for(ab, "B")
    assert ab.p_value == pytest.approx(binomial_two_sided(9, 10))
    assert "Chance is an unlikely explanation: B is better here." in ab.verdict
    votes = History(history.path).votes()
    assert len(votes) == 11 and all(v.blind for v in votes)
    ab.close()


def test_the_verdict_in_words_for_every_case() -> None:
    assert judge(("A", "B"), 0, 0, 0).text.startswith("No votes yet")
    assert "6 decisive votes all one way" in judge(("A", "B"), 0, 0, 0).text
    assert judge(("A", "B"), 0, 0, 3).text.startswith("Only ties so far (3)")
    assert judge(("A", "B"), 4, 4, 0).text.startswith("Neither arm is preferred")
    few = judge(("A", "B"), 3, 0, 0)
    assert "even 6 votes all one way are needed" in few.text and not few.conclusive
    strong = judge(("old", "new"), 1, 20, 2)
    assert strong.conclusive and strong.preferred == "new"
    assert "less than 0.1% of the time" in strong.text


def test_blind_the_arena_names_no_arm_until_the_verdict_is_shown(
        client: Client, history: History, tmp_path: Path) -> None:
    ab = ab_test({"model": "nano-banana"}, {"model": "nano-banana-pro"},
                 prompt="a red kite, watercolour", client=client, history=history)
    ab.wait(30)
    assert ab.tournament is not None
    assert ab.tournament.wait_ready(10)
    for _ in range(3):
        vote_for(ab, "A")
    arena = "\n".join(json.dumps(x.get_state(), default=str)
                      for x in descendants(ab.tournament))
    assert "nano-banana" not in arena and "watercolour" not in arena
    assert "stays hidden until the end" in arena
    assert ab.result.value == ""  # no tally, no arm, before the reveal
    page = ab.to_html(tmp_path / "ab.html").read_text()
    arena_html = page.split("class=\"nbw-ab-cost\"", 1)[1]  # after the plan: both arms
    assert "nano-banana" not in arena_html and "preferred in" not in arena_html
    ab.tournament.reveal_button.click()  # "Show the verdict"
    assert "A preferred in 3 of 3 votes" in ab.static_html()
    assert "A preferred in 3 of 3 votes" in ab.result.value
    assert "How much the images differ" in ab.result.value
    assert ab.variation is not None
    within = ab.variation.within
    assert set(within) == {"A", "B"} and all(v is not None and 0 < v < 1 for v in within.values())
    assert ab.variation.between is not None and 0 < ab.variation.between < 1
    assert "Images of the same arm differ by" in ab.variation.summary
    ab.close()


def test_above_max_calls_nothing_is_sent_until_confirmed(
        client: Client, history: History, emulator: Emulator) -> None:
    ab = ab_test(PLAIN, FANCY, samples=10, client=client, history=history)
    assert ab.state == "awaiting confirmation"
    assert ab.budget_row.layout.display == "flex"
    assert "20 paid generations, more than max_calls=16" in ab.budget_row.children[0].value
    with pytest.raises(NanoBananaError, match="has not started"):
        ab.wait(1)
    assert emulator.submissions == 0
    ab.confirm_button.click()
    ab.wait(30)
    assert ab.state == "voting" and emulator.submissions == 6  # 4 + 4 + 2 per arm
    assert sorted(b.get("count") for b in requests_sent(emulator)) == [2, 2, 4, 4, 4, 4]
    ab.close()
    held = ab_test(PLAIN, FANCY, samples=10, client=client, history=history)
    held.cancel()
    assert held.state == "cancelled" and "before anything was sent" in held.status.value
    assert emulator.submissions == 6
    small = ab_test(PLAIN, FANCY, samples=2, client=client, history=history, max_calls=2)
    assert small.state == "awaiting confirmation"
    small.close()
    confirmed = ab_test(PLAIN, FANCY, samples=10, client=client, history=history,
                        confirm=True).wait(30)
    assert confirmed.state == "voting"
    confirmed.close()


def test_an_arm_without_images_says_so(client: Client, history: History,
                                       emulator: Emulator) -> None:
    emulator.inject("task_error", times=1)
    ab = ab_test(PLAIN, FANCY, samples=2, client=client, history=history)
    ab.wait(30)
    assert ab.state == "failed"
    assert "has no image, so there is nothing to vote on" in ab.status.value
    with pytest.raises(NanoBananaError, match="No pair to vote on"):
        ab.vote("left")
    ab.close()
    emulator.inject("partial", times=1)
    short = ab_test(PLAIN, FANCY, samples=3, client=client, history=history)
    short.wait(30)
    assert short.state == "voting"
    assert "Fewer images than asked (A: 1 of 3)" in short.status.value
    short.close()


def test_a_blind_tournament_over_a_grid_of_eight(client: Client, history: History) -> None:
    g = grid(["a paper boat", "a paper plane"], aspect_ratios=["1:1", "16:9"], repeats=2,
             client=client, history=history)
    g.wait(30)
    t = tournament(g, history=history)
    assert len(t.items) == 8 and t.blind
    assert t.wait_ready(10)
    for _ in range(16):  # the suggested number for eight images
        pair = t.current
        assert pair is not None
        left_plane = "plane" in str(pair.left.prompt)
        right_plane = "plane" in str(pair.right.prompt)
        # A plane beats a boat; two images of one prompt tie (a rule the votes can follow
        # whichever pairs the tournament picks, so the ranking it implies is certain).
        t.vote("tie" if left_plane == right_plane else "left" if left_plane else "right")
    ranking = list(t.rankings())
    assert ranking[0].prompt == "a paper plane"
    planes = [r.score for r in ranking if r.prompt == "a paper plane"]
    boats = [r.score for r in ranking if r.prompt == "a paper boat"]
    assert min(planes) >= max(boats) and sum(planes) / 4 > sum(boats) / 4
    assert "enough for a first ranking" in t.header.value
    by_prompt = history.rankings(by="prompt")
    assert by_prompt[0].item == "a paper plane" and by_prompt[0].wins > 0
    t.close()
    g.close()


