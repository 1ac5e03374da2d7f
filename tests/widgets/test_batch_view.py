"""nb.batch's progress view: real buttons pause, resume, cancel and confirm the job; the
counts follow it (throttled, through the painter); errors show in the view, escaped."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.jobs import InvalidRowError
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.batch import BatchView, Job, batch
from support import wait_until

from .helpers import HOSTILE, html_of


@pytest.fixture
def hist(tmp_path: Path) -> History:
    h = History(tmp_path / "history")
    yield h  # type: ignore[misc]
    h.close()


def shown(view: BatchView) -> str:
    return html_of(view)


def visible(button: object) -> bool:
    return button.layout.display != "none"  # type: ignore[attr-defined]


def test_buttons_pause_resume_and_cancel(slow: Emulator, slow_client: Client,
                                         hist: History) -> None:
    job = batch([f"kite {i}" for i in range(12)], client=slow_client, history=hist,
                concurrency=4, name="kites")
    assert isinstance(job, Job)
    view = job.view
    assert "Batch job" in shown(view) and "12 rows → 12 paid generations" in shown(view)
    wait_until(lambda: slow.accepted == 4, "four rows in flight (the cap)")
    wait_until(lambda: "⟳ 4 running" in view.progress.value, "four rows shown running")
    assert visible(view.pause_button) and not visible(view.resume_button)

    view.pause_button.click()
    assert job.state == "paused"
    wait_until(lambda: "paused" in view.title.value, "the view to say paused")
    assert visible(view.resume_button) and not visible(view.pause_button)
    slow.finish_all()
    wait_until(lambda: "✓ 4 succeeded" in view.progress.value, "the four to finish")
    assert slow.accepted == 4 and "8 queued" in view.progress.value

    view.resume_button.click()
    assert job.state == "running"
    wait_until(lambda: slow.accepted == 8, "four more sent")
    wait_until(lambda: job.runner._sending == 0, "the sends to be answered")
    view.cancel_button.click()
    assert job.state == "cancelled"
    wait_until(lambda: "cancelled" in view.title.value, "the view to say cancelled")
    assert "may still run and be billed" in view.notice.value
    assert not visible(view.cancel_button) and visible(view.resume_button)
    assert slow.accepted == 8


def test_confirm_button_and_errors_in_the_status_line(emulator: Emulator, client: Client,
                                                      hist: History) -> None:
    job = batch(["a", "b", "c"], client=client, history=hist, max_calls=2)
    view = job.view
    assert visible(view.budget_row) and "more than max_calls=2" in view.budget_line.value
    assert view.confirm_button.description == "Run 3 paid generations"
    view.resume_button.click()  # hidden, but a click is still handled: the error shows
    assert "job.confirm()" in view.status_line.value and emulator.submissions == 0
    view.confirm_button.click()
    assert view.status_line.value == ""
    job.wait(30)
    wait_until(lambda: "✓ 3 succeeded" in view.progress.value, "the view to show the end")
    assert not visible(view.budget_row) and "done" in view.title.value


def test_hostile_prompts_and_errors_are_escaped(emulator: Emulator, client: Client,
                                                hist: History) -> None:
    emulator.inject("forbidden", times=2)
    job = batch(HOSTILE, client=client, history=hist, concurrency=1, name=HOSTILE[0])
    job.wait(30)
    view = job.view
    wait_until(lambda: "ContentRefusedError" in view.errors.value, "the errors listed")
    for html in (shown(view), job._repr_html_()):
        assert "<script>" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html


def test_a_bad_row_raises_before_any_view_or_submit(emulator: Emulator, client: Client,
                                                    hist: History) -> None:
    with pytest.raises(InvalidRowError, match="Row 2, model"):
        batch([{"prompt": "ok"}, {"prompt": "x", "model": "nope"}], client=client,
              history=hist)
    assert emulator.submissions == 0


def test_history_false_is_refused(client: Client) -> None:
    with pytest.raises(ValueError, match="lives in a history"):
        batch(["a"], client=client, history=False)


def test_many_changes_repaint_at_most_every_quarter_second(emulator: Emulator, client: Client,
                                                           hist: History) -> None:
    job = batch([f"p{i}" for i in range(30)], client=client, history=hist)
    view = job.view
    job.wait(60)
    wait_until(lambda: "30 / 30" in view.progress.value, "the last state painted")
    # 30 rows finish, each a change; the throttle paints far fewer revisions than changes.
    version = view._painter.version(("view",))
    assert version is not None and version[0] < 60


def test_reopened_from_the_history(emulator: Emulator, client: Client, hist: History) -> None:
    job = batch(["a", "b"], client=client, history=hist, name="again")
    job.wait(30)
    Job._live.clear()
    again = Job.open("again", history=hist, client=client)
    assert again is not job and again.summary.succeeded == 2
    assert "2 / 2" in again.view.progress.value and emulator.accepted == 2
    with pytest.raises(KeyError, match="No batch job"):
        Job.open("missing", history=hist, client=client)
