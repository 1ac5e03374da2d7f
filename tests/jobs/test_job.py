"""A batch job end to end against the rate-limited emulator: every row once, paced, paused,
resumed, cancelled, retried, re-attached; results aligned with the rows."""

from __future__ import annotations

from collections import Counter

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.jobs import BatchJob
from nanobanana_widgets.service.errors import (
    InvalidParameterError,
    NanoBananaError,
    TaskFailedError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History
from support import wait_until

PROMPTS = [f"row {i}: a kite over the sea" for i in range(60)]


def accepted_prompts(emu: Emulator) -> Counter[str]:
    """How often the emulator accepted each prompt (tasks made)."""
    return Counter(emu._state.tasks[t].request["prompt"] for t in emu.task_ids())


def test_every_row_once_paced_at_the_limit(limited: Emulator, limited_client: Client,
                                           job_history: History) -> None:
    job = BatchJob.create(PROMPTS, history=job_history, client=limited_client)
    summary = job.wait(120)
    assert summary.state == "done" and job.state == "done"
    assert (summary.succeeded, summary.failed, summary.queued) == (60, 0, 0)
    assert summary.paid == summary.paid_so_far == 60
    assert limited.accepted == 60 and max(accepted_prompts(limited).values()) == 1
    # 429s are the only retried failure, and they are few (never billed).
    assert limited.submissions == 60 + limited.rate_limited
    assert summary.rate_limited == limited.rate_limited <= 15
    results = job.results
    assert len(results) == 60
    for prompt, result in zip(PROMPTS, results, strict=True):
        assert isinstance(result, Result) and result.request.prompt == prompt
    assert job_history.jobs.get(job.name)["state"] == "done"  # type: ignore[index]


def test_results_align_with_rows_when_some_fail(emulator: Emulator, client: Client,
                                                job_history: History) -> None:
    emulator.inject("task_error", times=1)  # the first submit's task fails (not billed)
    emulator.inject("forbidden", times=1)   # the second submit is refused (not billed)
    job = BatchJob.create(["first", "second", "third"], history=job_history, client=client,
                          concurrency=1)
    summary = job.wait(30)
    assert (summary.succeeded, summary.failed) == (1, 2)
    first, second, third = job.results
    assert isinstance(first, (TaskFailedError, NanoBananaError))
    assert isinstance(second, NanoBananaError) and second.code == "forbidden"
    assert isinstance(third, Result) and third.request.prompt == "third"
    assert [e.row for e in summary.errors] == [1, 2] or [e.row for e in summary.errors] == [2, 1]
    frame = job.to_pandas()
    assert list(frame["state"]) == ["failed", "failed", "succeeded"]
    assert frame.loc[2, "task_id"] == third.task_id

    # retry_failed sends the two again (neither was billed) and nothing else.
    before = emulator.accepted
    job.retry_failed().wait(30)
    assert job.summary.succeeded == 3
    assert emulator.accepted - before == 2
    assert all(isinstance(r, Result) for r in job.results)


def test_pause_stops_sending_and_resume_goes_on(emulator: Emulator, client: Client,
                                                job_history: History) -> None:
    emulator.set_latency(float("inf"))
    job = BatchJob.create(PROMPTS[:20], history=job_history, client=client, concurrency=5)
    wait_until(lambda: emulator.accepted == 5, "five rows in flight (the cap)")
    job.pause()
    assert job.state == "paused"
    sent = emulator.accepted
    emulator.finish_all()
    emulator.set_latency(0.0)
    wait_until(lambda: job.runner.stopped.is_set(), "the paused job to drain")
    summary = job.wait(10)
    assert summary.state == "paused" and summary.succeeded == sent == 5
    assert summary.queued == 15 and emulator.accepted == sent  # nothing sent while paused
    job.resume()
    assert job.wait(30).succeeded == 20
    assert emulator.accepted == 20 and max(accepted_prompts(emulator).values()) == 1


def test_cancel_sends_nothing_more_and_keeps_task_ids(emulator: Emulator, client: Client,
                                                      job_history: History) -> None:
    emulator.set_latency(float("inf"))
    job = BatchJob.create(PROMPTS[:10], history=job_history, client=client, concurrency=3)
    wait_until(lambda: emulator.accepted == 3, "three rows in flight (the cap)")
    job.cancel()
    summary = job.wait(10)
    assert summary.state == "cancelled"
    assert (summary.cancelled, summary.running) == (7, 3)
    rows = job_history.jobs.rows(job.name)
    assert Counter(r["state"] for r in rows) == {"cancelled": 7, "submitted": 3}
    assert all(r["task_id"] for r in rows if r["state"] == "submitted")
    assert emulator.accepted == 3
    # Resuming looks the three up (they finish now) and sends the seven left.
    emulator.set_latency(0.0)
    emulator.finish_all()
    job.resume()
    assert job.wait(30).succeeded == 10
    assert emulator.accepted == 10


def test_wait_after_cancel_returns_once_the_submit_under_way_has_its_answer(
        emulator: Emulator, client: Client, job_history: History) -> None:
    """A cancel while a submit is on the wire: ``wait()`` returns when its answer is in
    (the row "submitted", with its task id), never with the row half sent."""
    emulator.set_latency(float("inf"))
    emulator.inject("slow_headers", delay=0.8)  # the first submit's answer is held
    job = BatchJob.create(PROMPTS[:3], history=job_history, client=client, concurrency=1)
    wait_until(lambda: job.runner.rows[0].state == "sending", "the first row on the wire")
    job.cancel()
    summary = job.wait(10)
    assert summary.state == "cancelled"
    rows = job_history.jobs.rows(job.name)
    assert [r["state"] for r in rows] == ["submitted", "cancelled", "cancelled"]
    assert rows[0]["task_id"] and emulator.accepted == 1


def test_resume_right_after_cancel_goes_on(emulator: Emulator, client: Client,
                                           job_history: History) -> None:
    """Resume at once after a cancel, while the cancelled run is still ending (a task
    waited for, a submit on the wire): the job runs to the end, every row once."""
    emulator.set_latency(float("inf"))
    emulator.inject("slow_headers", delay=0.8)  # row 0's answer is held; row 1 is accepted
    job = BatchJob.create(PROMPTS[:4], history=job_history, client=client, concurrency=2)
    wait_until(lambda: [r.state for r in job.runner.rows[:2]] == ["sending", "submitted"],
               "a row on the wire and a task waited for")
    job.cancel()
    job.resume()
    emulator.set_latency(0.0)
    emulator.finish_all()
    summary = job.wait(30)
    assert (summary.state, summary.succeeded) == ("done", 4)
    assert emulator.accepted == 4 and max(accepted_prompts(emulator).values()) == 1


def test_same_rows_and_name_reattach_other_rows_are_refused(
        emulator: Emulator, client: Client, job_history: History) -> None:
    job = BatchJob.create(PROMPTS[:5], history=job_history, client=client, name="kites")
    assert BatchJob.create(PROMPTS[:5], history=job_history, client=client,
                           name="kites") is job
    job.wait(30)
    with pytest.raises(InvalidParameterError, match="other rows"):
        BatchJob.create(PROMPTS[:6], history=job_history, client=client, name="kites")
    default = BatchJob.create(PROMPTS[:3], history=job_history, client=client)
    assert default.name.startswith("job-")
    default.wait(30)
    assert emulator.accepted == 8


def test_above_max_calls_nothing_is_sent_until_confirmed(emulator: Emulator, client: Client,
                                                         job_history: History) -> None:
    job = BatchJob.create(PROMPTS[:4], history=job_history, client=client, count=2,
                          max_calls=5)
    assert job.state == "awaiting confirmation" and job.paid == 8
    with pytest.raises(NanoBananaError, match=r"job\.confirm\(\)"):
        job.wait(1)
    with pytest.raises(NanoBananaError, match="confirm"):
        job.resume()
    assert emulator.submissions == 0
    job.cancel()
    job.resume()  # a cancel and a resume are no confirmation
    assert job.state == "awaiting confirmation" and emulator.submissions == 0
    summary = job.confirm().wait(30)
    assert summary.paid_so_far == 8 and emulator.accepted == 4


def test_an_account_problem_pauses_with_the_row_back_in_the_queue(
        emulator: Emulator, client: Client, job_history: History) -> None:
    emulator.inject("used_up", times=1)
    job = BatchJob.create(PROMPTS[:3], history=job_history, client=client, concurrency=1)
    summary = job.wait(30)
    assert summary.state == "paused" and summary.queued == 3
    assert summary.reason is not None and "balance" in summary.reason.lower()
    job.resume()
    assert job.wait(30).succeeded == 3


def test_a_task_past_its_deadline_is_waited_for_again_not_resent(
        emulator: Emulator, job_history: History) -> None:
    from support import TEST_TOKEN

    emulator.set_latency(float("inf"))
    quick = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05,
                   wait_timeout=0.3)
    try:
        job = BatchJob.create(["slow one"], history=job_history, client=quick)
        summary = job.wait(30)
        assert summary.failed == 1
        assert isinstance(job.results[0], WaitTimeoutError)
        emulator.finish_all()
        job.retry_failed().wait(30)
        assert job.summary.succeeded == 1 and emulator.accepted == 1
    finally:
        quick.close()
