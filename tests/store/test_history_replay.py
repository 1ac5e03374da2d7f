"""Replay (identical requests answered from the history, in their original order) and rerun
(a record's request again, its inputs read from the history folder)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import ImageInputError
from nanobanana_widgets.store import History


def test_replay_answers_identical_requests_without_submitting(
        client: Client, emulator: Emulator, history: History, png: Callable[..., bytes],
        tmp_path: Path) -> None:
    h = history
    assert not h.replay and h.replay == False  # noqa: E712 - off by default
    first = client.generate("a red fox", aspect_ratio="3:2")
    assert h.flush(timeout=10)
    h.replay = True
    assert h.replay
    submitted = emulator.submissions
    again = client.generate("a red fox", aspect_ratio="3:2")
    assert emulator.submissions == submitted
    assert again.task_id == first.task_id and again.image.url == first.image.url
    assert again.image._cache["data"] == h[0].results[0].path.read_bytes()  # type: ignore[union-attr]
    assert h[0].replays == 1 and len(h) == 1
    # a different parameter is a different request
    client.generate("a red fox", aspect_ratio="2:3")
    assert emulator.submissions == submitted + 1
    # edits replay only with the same input bytes
    client.edit("tint it", png((1, 1, 1)))
    h.flush(timeout=10)
    n = emulator.submissions
    client.edit("tint it", png((1, 1, 1)))
    assert emulator.submissions == n
    client.edit("tint it", png((2, 2, 2)))
    assert emulator.submissions == n + 1
    h.replay = False
    client.generate("a red fox", aspect_ratio="3:2")
    assert emulator.submissions == n + 2
    other = History(tmp_path / "h2", replay=True)
    assert other.replay
    other.close()


def test_replay_gives_repeated_requests_their_own_results_in_order(
        client: Client, emulator: Emulator, history: History) -> None:
    originals = [client.generate("a red fox").task_id for _ in range(2)]
    assert originals[0] != originals[1]
    assert history.flush(timeout=10)
    history.replay = True
    submitted = emulator.submissions
    replayed = [client.generate("a red fox").task_id for _ in range(3)]
    assert emulator.submissions == submitted
    # one each, in the original order; past the last it starts again instead of paying
    assert replayed == [originals[0], originals[1], originals[0]]


def test_rerun_an_edit_reads_inputs_from_the_folder(client: Client, emulator: Emulator,
                                                    history: History,
                                                    png: Callable[..., bytes]) -> None:
    h = history
    source = png((9, 99, 199), (32, 20))
    client.edit("make it night", source, aspect_ratio="16:9")
    original = h[-1]
    task = h.rerun(-1, prompt="make it dawn")
    task.wait(timeout=10)
    assert emulator.submissions == 2
    rerun = h[-1]
    assert rerun.action == "edit" and rerun.prompt == "make it dawn"
    assert rerun.aspect_ratio == "16:9" and rerun.status == "succeeded"
    assert [i.sha256 for i in rerun.inputs] == [i.sha256 for i in original.inputs]
    assert rerun.inputs[0].path is not None and rerun.inputs[0].path.read_bytes() == source
    with pytest.raises(TypeError, match="unknown changes"):
        h.rerun(-1, colour="red")
    # a missing input file is named clearly
    assert original.inputs[0].path is not None
    original.inputs[0].path.unlink()
    with pytest.raises(ImageInputError, match="missing from the history folder"):
        h.rerun(0)
