"""Crash: a process with 8 tasks in flight is killed with SIGKILL; a new process resumes
the history and recovers all 8 results without paying again.

The emulator runs here, in the test process (the "service"); the worker and the resumer
are separate Python processes, as a kernel and its restarted successor would be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.store import History

TOKEN = "crash-token-3b8c"
N = 8

WORKER = textwrap.dedent("""
    import json, sys
    from nanobanana_widgets.client import Client
    from nanobanana_widgets.store import History

    base_url, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = Client(%(token)r, base_url=base_url, poll_interval=0.05)
    history = History(folder, client=client)
    tasks = [client.submit(f"crash {i}: a paper boat on a pond") for i in range(n)]
    print(json.dumps([t.id for t in tasks]), flush=True)
    client.wait_all(tasks, timeout=120)   # killed while waiting here
    print("finished before the kill", flush=True)
""") % {"token": TOKEN}

RESUMER = textwrap.dedent("""
    import json, sys
    from nanobanana_widgets.client import Client
    from nanobanana_widgets.store import History

    base_url, folder = sys.argv[1], sys.argv[2]
    client = Client(%(token)r, base_url=base_url, poll_interval=0.05)
    history = History(folder)
    looked_up = history.resume(client, wait=True, timeout=60)
    assert history.flush(timeout=60)
    out = []
    for rec in history:
        out.append({"task_id": rec.task_id, "status": rec.status, "prompt": rec.prompt,
                    "images": [str(r.path) for r in rec.results if r.local]})
    print(json.dumps({"looked_up": len(looked_up), "records": out}), flush=True)
    history.close()
    client.close()
""") % {"token": TOKEN}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ACEDATACLOUD_")}


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_with_tasks_in_flight_then_resume(tmp_path: Path) -> None:
    folder = tmp_path / "history"
    with Emulator(latency=4.0, seed=1) as emu:  # long enough to kill it mid-flight
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, emu.base_url, str(folder), str(N)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env=_env(),
        )
        try:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            assert line, f"worker died early: {worker.stderr.read() if worker.stderr else ''}"
            ids = json.loads(line)
            assert len(ids) == N
            assert emu.pending == N  # all 8 still running on the service
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(timeout=30) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        rest = worker.stdout.read() if worker.stdout else ""
        assert "finished before the kill" not in rest
        assert emu.pending > 0  # the kill happened while tasks were in flight

        # What the dead process left behind: every task on record before any result.
        with History(folder) as left:
            assert sorted(rec.task_id or "" for rec in left) == sorted(ids)
            assert {rec.status for rec in left} <= {"submitted", "pending"}
            assert all(not rec.results for rec in left)

        resumer = subprocess.run(
            [sys.executable, "-c", RESUMER, emu.base_url, str(folder)],
            capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=120,
        )
        assert resumer.returncode == 0, resumer.stderr[-3000:]
        report = json.loads(resumer.stdout.strip().splitlines()[-1])
        assert emu.submissions == N  # resuming looked tasks up; it never submitted again

    assert report["looked_up"] == N
    records = report["records"]
    assert sorted(r["task_id"] for r in records) == sorted(ids)
    for rec in records:
        assert rec["status"] == "succeeded", rec
        assert len(rec["images"]) == 1, rec
        assert Path(rec["images"][0]).is_file()

    # A third look, with no network at all, finds the same: the recovery was persisted.
    with History(folder) as again:
        assert len(again) == N
        assert all(rec.status == "succeeded" and rec.results[0].local for rec in again)
