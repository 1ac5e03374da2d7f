"""A job SIGKILLed mid-run and re-opened in another process: rows already submitted are
looked up, never sent again; the rest go on. And the crash windows, one by one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.jobs import BatchJob
from nanobanana_widgets.store import History
from support import TEST_TOKEN, wait_until

CHILD = """
import sys, time
from nanobanana_widgets.client import Client
from nanobanana_widgets.store import History
from nanobanana_widgets.jobs import BatchJob
base_url, folder, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = Client(sys.argv[4], base_url=base_url, poll_interval=0.1)
history = History(folder, client=client)
job = BatchJob.create([f"row {i}: a lighthouse" for i in range(total)], history=history,
                      client=client, name="crash")
print("started", flush=True)
job.wait()
print("finished", flush=True)
"""


def accepted_prompts(emu: Emulator) -> Counter[str]:
    return Counter(emu._state.tasks[t].request["prompt"] for t in emu.task_ids())


def test_sigkill_mid_job_then_reopen_in_another_process(tmp_path: Path) -> None:
    total = 60
    folder = tmp_path / "history"
    with Emulator(rate_limit=30, burst=5, latency=(0.3, 0.8)) as emu:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, emu.base_url, str(folder), str(total), TEST_TOKEN],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "started", child.stderr.read()
            wait_until(lambda: emu.accepted >= total * 0.4, "the job to be well under way",
                       timeout=60)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(30)
        assert child.returncode == -signal.SIGKILL
        accepted_at_kill = emu.accepted
        assert accepted_at_kill < total

        client = Client(TEST_TOKEN, base_url=emu.base_url, poll_interval=0.05)
        history = History(folder, client=client)
        try:
            half = Counter(r["state"] for r in history.jobs.rows("crash"))
            assert half["queued"] > 0  # it really died half way
            job = BatchJob.open("crash", history=history, client=client)
            summary = job.wait(120)
            states = Counter(r.state for r in job.runner.rows)
            # Nothing lost: every row ended. Nothing paid twice: no prompt accepted twice.
            assert set(states) <= {"succeeded", "uncertain"}, states
            assert max(accepted_prompts(emu).values()) == 1
            assert summary.succeeded <= emu.accepted <= total
            assert summary.succeeded + summary.uncertain == total
            submits = [r["submits"] for r in history.jobs.rows("crash")]
            assert max(submits) == 1
        finally:
            history.close()
            client.close()


def test_a_row_left_sending_is_matched_to_its_history_record(
        emulator: Emulator, client: Client, tmp_path: Path) -> None:
    history = History(tmp_path / "h", client=client)
    try:
        emulator.set_latency(float("inf"))
        job = BatchJob.create(["a", "b"], history=history, client=client, concurrency=1)
        wait_until(lambda: job.summary.running == 1, "a row in flight")
        job.pause()
        wait_until(lambda: job.runner._sending == 0, "the send to finish")
        job.cancel()
        BatchJob._live.clear()
        # As a crash leaves it: row 0 was accepted (the history has its record) but its
        # task id never reached the job; row 1 was being sent and never got anywhere.
        row0 = history.jobs.rows(job.name)[0]
        history.jobs.update_row(job.name, 0, state="sending", task_id=None,
                                sent_at=row0["sent_at"])
        history.jobs.update_row(job.name, 1, state="sending", sent_at=time.time())
        history.jobs.set_state(job.name, "running")
        emulator.finish_all()
        emulator.set_latency(0.0)
        accepted = emulator.accepted
        reopened = BatchJob.open(job.name, history=history, client=client)
        summary = reopened.wait(30)
        assert reopened.runner.rows[0].task_id == row0["task_id"]
        assert reopened.runner.rows[0].state == "succeeded"
        assert reopened.runner.rows[1].state == "uncertain"  # may have been billed: not resent
        assert "not sent again" in str(reopened.results[1])
        assert emulator.accepted == accepted and summary.uncertain == 1
        reopened.retry_failed()  # without possibly_billed: still nothing sent
        assert emulator.accepted == accepted
        reopened.retry_failed(possibly_billed=True).wait(30)
        assert reopened.summary.succeeded == 2 and emulator.accepted == accepted + 1
    finally:
        history.close()


def test_a_job_run_by_another_live_process_is_not_run_twice(
        emulator: Emulator, client: Client, tmp_path: Path) -> None:
    history = History(tmp_path / "h", client=client)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job = BatchJob.create(["a"], history=history, client=client, max_calls=0)
        history.jobs.claim(job.name, f"{socket.gethostname()}:{sleeper.pid}:x")
        job.history.jobs.set_state(job.name, "running")
        BatchJob._live.clear()
        try:
            BatchJob.open(job.name, history=history, client=client)
        except Exception as exc:
            assert "another process" in str(exc) and getattr(exc, "code", "") == "job_busy"
        else:
            raise AssertionError("a job claimed by a live process was run again")
        assert emulator.submissions == 0
        sleeper.kill()
        sleeper.wait(10)
        BatchJob._live.clear()
        BatchJob.open(job.name, history=history, client=client).wait(30)
        assert emulator.accepted == 1
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        history.close()

