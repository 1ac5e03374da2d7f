"""The emulator shows the record shapes of the vendor's newest SDK (API.md, issue 11
"Fidelity"): a transient ``success: false``, a status word, a progress figure; and the
client reads each end to end as the SDK does."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from nanobanana_widgets.client import Client, Progress
from nanobanana_widgets.emulator import FAULT_KINDS, Emulator
from support import TEST_TOKEN

AUTH = {"authorization": f"Bearer {TEST_TOKEN}"}


def submit(emu: Emulator) -> str:
    resp = requests.post(emu.base_url + "/nano-banana/images", headers=AUTH, timeout=10,
                         json={"action": "generate", "prompt": "a cat", "async": True})
    return str(resp.json()["task_id"])


def record(emu: Emulator, task_id: str) -> dict[str, Any]:
    resp = requests.post(emu.base_url + "/nano-banana/tasks", headers=AUTH, timeout=10,
                         json={"action": "retrieve", "id": task_id})
    value: dict[str, Any] = resp.json()
    return value


def test_the_shapes_are_known_kinds() -> None:
    assert {"hiccup", "status_word", "progress"} <= set(FAULT_KINDS)


def test_a_hiccup_shows_success_false_while_running(emulator: Emulator) -> None:
    emulator.set_latency(60)
    emulator.inject("hiccup")
    task_id = submit(emulator)
    running = record(emulator, task_id)
    assert running["response"] == {"success": False, "task_id": task_id,
                                   "trace_id": running["trace_id"]}
    assert "finished_at" not in running
    emulator.finish_all()
    assert record(emulator, task_id)["response"]["success"] is True


def test_a_status_word_outranks_what_the_response_says(emulator: Emulator) -> None:
    emulator.set_latency(60)
    emulator.inject("status_word")
    task_id = submit(emulator)
    running = record(emulator, task_id)
    assert running["status"] == "running"
    assert running["response"]["error"]["code"] == "queued"
    emulator.finish_all()
    done = record(emulator, task_id)
    assert done["status"] == "succeeded" and done["response"]["data"]


def test_progress_rises_to_100(emulator: Emulator) -> None:
    emulator.set_latency(60)
    emulator.inject("progress")
    task_id = submit(emulator)
    assert 0 <= record(emulator, task_id)["progress"] <= 99
    emulator.finish_all()
    assert record(emulator, task_id)["progress"] == 100


@pytest.mark.parametrize("kind", ["hiccup", "status_word", "progress"])
def test_the_client_waits_through_each_shape_to_the_paid_image(emulator: Emulator,
                                                               client: Client,
                                                               kind: str) -> None:
    """Before issue 11 a hiccup or a status word over ``success: false`` was read as a
    failure: the task later succeeded, billed, and its image never reached the user."""
    emulator.set_latency(0.4)
    emulator.inject(kind)
    seen: list[Progress] = []
    result = client.generate("a cat", timeout=20, on_progress=seen.append)
    assert result.status == "succeeded" and len(result.images) == 1
    assert emulator.billed_images == 1
    assert seen[-1].stage == "done"


def test_progress_reaches_on_progress_and_the_task(emulator: Emulator, client: Client) -> None:
    emulator.set_latency(1.0)
    emulator.inject("progress")
    task = client.submit("a cat")
    seen: list[Progress] = []
    task.wait(timeout=20, on_progress=seen.append)
    figures = [p.progress for p in seen if p.progress is not None]
    waiting = [p.progress for p in seen if p.stage == "waiting" and p.progress is not None]
    assert any(0.0 <= f < 1.0 for f in waiting)  # figures seen while it ran
    assert figures == sorted(figures)
    assert seen[-1].progress == 1.0
    assert task.progress == 1.0
