"""tournament(): votes by button, key message and Python; rankings with intervals; ties,
skips and undo; blindness in every widget's state and in the static rendition; votes kept
across a restart and across processes; the items it takes; escaping."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import ipywidgets as w
import pytest
from PIL import Image

from nanobanana_widgets.client import Client
from nanobanana_widgets.service.errors import InvalidParameterError, NanoBananaError
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.tournament import Tournament, tournament
from support import wait_until

from .helpers import HOSTILE, descendants

PROMPTS = ["a kite over the dunes, morning light", "a kite over the dunes, at noon",
           "a kite over the dunes, stormy sky", "a kite over the dunes, at night",
           "a kite over the dunes, in fog"]


@pytest.fixture
def results(client: Client, history: History) -> list[Result]:
    made = [client.generate(p, model="nano-banana-pro" if k % 2 else "nano-banana")
            for k, p in enumerate(PROMPTS)]
    assert history.flush(timeout=10)
    return made


def state_text(widget: w.Widget) -> str:
    """Every widget's whole state in the tree, as the front end would receive it."""
    return "\n".join(json.dumps(x.get_state(), default=str) for x in descendants(widget))


def prefer(t: Tournament, favourite: str) -> str:
    """The side a voter who always prefers ``favourite`` (else the lower key) picks."""
    pair = t.current
    assert pair is not None
    if pair.left.prompt == favourite:
        return "left"
    if pair.right.prompt == favourite:
        return "right"
    return "left" if pair.left.key < pair.right.key else "right"


def test_one_item_always_preferred_ranks_first_with_an_interval_that_excludes_the_last(
        results: list[Result], history: History) -> None:
    t = tournament(results, history=history)
    assert isinstance(t, w.VBox) and len(t.items) == 5
    for _ in range(20):
        t.buttons[prefer(t, PROMPTS[2])].click()  # the real buttons
    ranking = t.rankings()
    assert ranking[0].prompt == PROMPTS[2] and ranking[0].losses == 0
    assert ranking[0].low > ranking[-1].score  # the interval excludes the last
    assert ranking[0].low > ranking[-1].high  # the two intervals do not even meet
    assert sum(ranking["wins"]) == 20 and list(ranking.columns) == [
        "item", "prompt", "model", "wins", "losses", "ties", "score", "low", "high"]
    assert ranking[0].model == "nano-banana"
    votes = History(history.path).votes(t.id)
    assert len(votes) == 20 and all(v.blind for v in votes)
    assert all(v.left.record_id is not None for v in votes)
    shown = {frozenset((v.left.key, v.right.key)) for v in votes}
    assert len(shown) == 10  # every one of the ten pairs was shown within 20 votes
    t.close()


def test_ties_skips_and_undo(results: list[Result], history: History) -> None:
    t = tournament(results, history=history)
    first = t.current
    assert first is not None and first.number == 1
    t.vote("tie")
    t.vote("skip")
    skipped = t.votes[-1]
    t.vote("left")
    assert [v.outcome for v in t.votes] == ["tie", "skip", "left"]
    ranking = t.rankings()
    assert sum(ranking["ties"]) == 2 and sum(ranking["wins"]) == 1  # the skip is no vote
    assert ranking.votes == 2
    assert skipped.left.key != skipped.right.key
    undone = t.undo()
    assert undone is not None and undone.outcome == "left"
    pair = t.current
    assert pair is not None and {pair.left.key, pair.right.key} == {undone.left.key,
                                                                    undone.right.key}
    assert "taken back" in t.status.value
    assert [v.outcome for v in History(history.path).votes(t.id)] == ["tie", "skip"]
    t.buttons["undo"].click()
    t.buttons["undo"].click()
    assert History(history.path).votes(t.id) == []
    t.buttons["undo"].click()  # nothing left: said, not raised
    assert "Nothing to undo" in t.status.value
    with pytest.raises(InvalidParameterError, match="vote"):
        t.vote("up")
    t.close()


def test_key_presses_vote_on_the_pair_they_name_only(results: list[Result],
                                                     history: History) -> None:
    t = tournament(results, history=history)
    send = t.shortcuts._handle_message
    send(None, {"event": "vote", "outcome": "right", "pair": 1}, [])
    assert [v.outcome for v in t.votes] == ["right"]
    send(None, {"event": "vote", "outcome": "left", "pair": 1}, [])  # pressed twice
    assert len(t.votes) == 1 and "which is voted on already" in t.status.value
    send(None, {"event": "vote", "outcome": "tie", "pair": 2}, [])
    send(None, {"event": "vote", "outcome": "undo", "pair": None}, [])
    assert [v.outcome for v in t.votes] == ["right"]
    send(None, {"event": "vote", "outcome": "sideways", "pair": 2}, [])
    assert "Could not vote" in t.status.value and len(t.votes) == 1
    t.close()


def test_blind_shows_no_prompt_model_or_label_until_the_vote(
        results: list[Result], history: History) -> None:
    t = tournament(results, history=history)
    assert t.wait_ready(10)
    wait_until(lambda: "data-ready=\\\"1\\\"" in state_text(t), "the pair's images")
    labels = [item.label for item in t.items]

    def secrets(text: str) -> list[str]:
        words = [*PROMPTS, "nano-banana", *(f">{label}<" for label in labels)]
        return [s for s in words if s in text]

    before = state_text(t)
    assert secrets(before) == []
    assert secrets(t.static_html()) == []
    assert before.count("data:image/jpeg;base64,") >= 2  # the images are there
    pair = t.current
    assert pair is not None
    t.vote("left")
    after = state_text(t)
    assert pair.left.prompt in after and pair.right.prompt in after  # revealed
    assert f">{pair.left.label}<" in after
    now = t.current
    assert now is not None
    assert now.left.prompt not in after and now.right.prompt not in after
    assert now.left.prompt not in t.static_html()
    t.reveal()
    assert not t.blind and now.left.prompt in state_text(t)
    assert all(p in state_text(t) for p in PROMPTS)  # the chart names everything now
    t.vote("right")
    assert History(history.path).votes(t.id)[-1].blind is False
    t.close()


def test_votes_continue_after_a_restart_and_in_another_process(
        results: list[Result], history: History) -> None:
    t = tournament(results, history=history)
    t.vote("left")
    t.vote("right")
    t.close()
    reopened = History(history.path)
    again = tournament(results, history=reopened)  # a "restart": a new history object
    assert again.id == t.id and len(again.votes) == 2
    assert again.current is not None and again.current.number == 3
    again.close()

    code = textwrap.dedent("""
        import sys
        from nanobanana_widgets.store import History
        from nanobanana_widgets.widgets.tournament import tournament
        h = History(sys.argv[1])
        t = tournament(h, history=h)  # the same images, as the history's records
        for outcome in ("tie", "left", "skip"):
            t.vote(outcome)
        print(t.id, len(t.votes))
        t.close()
        h.close()
    """)
    done = subprocess.run([sys.executable, "-c", code, str(history.folder)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [t.id, "5"]
    third = tournament(list(reversed(results)), history=History(history.path))
    assert third.id == t.id  # the order of the items does not matter
    assert [v.outcome for v in third.votes] == ["left", "right", "tie", "left", "skip"]
    assert third.current is not None and third.current.number == 6
    assert third.rankings().votes == 4
    third.close()


def test_items_from_a_history_view_records_images_files_and_pictures(
        results: list[Result], history: History, tmp_path: Path) -> None:
    saved = results[0].image.save(tmp_path / "kite.png")
    picture = Image.new("RGB", (50, 30), (200, 30, 30))
    t = tournament([history[:2], results[2].image, saved, picture, results[0], picture.copy()],
                   history=history)
    keys = [item.key for item in t.items]
    assert len(keys) == len(set(keys)) == 5  # result 0 and the copy of the picture once
    by_kind = {item.label: item for item in t.items}
    rec0 = history.find(task_id=results[0].task_id)
    assert rec0 is not None and f"#{rec0.id}" in by_kind
    assert by_kind["kite.png"].prompt == PROMPTS[0]  # read from the saved file
    assert any(item.label.startswith("image") and item.prompt is None for item in t.items)
    assert t.wait_ready(10)
    t.close()

    cells: dict[str, Any] = {"c1": results[0], "c2": results[1],
                             "c3": NanoBananaError("refused")}

    class FakeGrid:  # what a grid offers: its plan and its finished cells
        plan = object()
        results = cells

    g = tournament(FakeGrid(), history=history)
    assert len(g.items) == 2 and "Left out" in g.status.value
    g.close()
    with pytest.raises(InvalidParameterError, match="two or more"):
        tournament([results[0]], history=history)
    with pytest.raises(TypeError, match="cannot rank int"):
        tournament([results[0], 3], history=history)
    with pytest.raises(InvalidParameterError, match="does not exist"):
        tournament([results[0], tmp_path / "missing.png"], history=history)


def test_without_a_history_votes_stay_in_memory_and_a_broken_image_is_said(
        results: list[Result], history: History, tmp_path: Path) -> None:
    broken = tmp_path / "not-an-image.png"
    broken.write_bytes(b"this is text")
    t = tournament([results[0], broken], history=False)
    assert t.history is None
    assert t.wait_ready(10)
    assert "cannot be shown" in t.stage.value and "press s to skip" in t.stage.value
    t.vote("skip")
    t.vote("left")
    assert len(t.votes) == 2 and History(history.path).votes() == []
    t.close()


def test_a_hostile_prompt_is_text_everywhere(client: Client, history: History,
                                             tmp_path: Path) -> None:
    made = [client.generate(f"a cat {HOSTILE[0]}"), client.generate(f"a dog {HOSTILE[1]}")]
    t = tournament(made, history=history)
    assert t.wait_ready(10)
    t.vote("tie")
    t.reveal()
    page = t.to_html(tmp_path / "t.html").read_text()
    for text in (state_text(t), page):
        html_only = text.replace("&lt;script&gt;", "").replace("&lt;img src=x", "")
        assert "<script>alert" not in html_only and "<img src=x" not in html_only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert repr(t).startswith(f"<Tournament {t.id}: 2 images, 1 votes")
    t.close()


def test_a_large_tournament_charts_the_top_twenty_and_ranks_all(history: History) -> None:
    pictures = [Image.new("RGB", (24, 24), (k * 8, 255 - k * 8, 90)) for k in range(30)]
    t = tournament(pictures, history=False)
    assert "kept in this session only" in t.status.value
    assert t._thumbs.wait([i.key for i in t.items], 30)
    wait_until(lambda: t.chart.value.count("<img") == 20, "the chart's twenty thumbnails")
    assert "The 10 more are in rankings()." in t.chart.value
    assert len(t.rankings()) == 30
    t.close()
