"""The process a batch benchmark runs its job in (figures 12 and 13), apart from the emulator.

    python bench/batch_child.py run  BASE_URL HISTORY ROWS NAME   # make the job, wait for it
    python bench/batch_child.py open BASE_URL HISTORY ROWS NAME   # Job.open after a SIGKILL

Prints ``started <epoch>`` once the job runs, then one JSON line with what it saw: when it
started and ended, the rows' states, the 429s it received, its peak memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from nanobanana_widgets.client import Client
from nanobanana_widgets.jobs import BatchJob
from nanobanana_widgets.store import History

TOKEN = "bench-token-not-a-real-one"


def prompts(n: int) -> list[str]:
    """The benchmark's rows: distinct prompts, so the emulator can tell a resubmit."""
    return [f"product shot {i:04d}: a ceramic mug on a wooden table" for i in range(n)]


def peak_rss_mb() -> float:
    """This process's peak resident set. On Linux from ``VmHWM``: ``ru_maxrss`` survives
    ``execve``, so a child started by the benchmark (after figure 10's 200 MB answer)
    would report the benchmark's own peak at the fork."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    mode, base_url, folder, rows, name = argv[1], argv[2], argv[3], int(argv[4]), argv[5]
    idle_mb = peak_rss_mb()
    client = Client(TOKEN, base_url=base_url, poll_interval=0.5)
    history = History(folder, client=client)
    started = time.time()
    if mode == "run":
        job = BatchJob.create(prompts(rows), history=history, client=client, name=name)
    else:
        job = BatchJob.open(name, history=history, client=client)
    print(f"started {started}", flush=True)
    summary = job.wait()
    finished = time.time()
    history.flush(timeout=None)
    kept = time.time()
    states = Counter(r.state for r in job.runner.rows)
    print(json.dumps({
        "started": started, "finished": finished, "images_kept": kept,
        "states": dict(states), "rate_limited": summary.rate_limited,
        "accepted": summary.accepted, "succeeded": summary.succeeded,
        "uncertain": summary.uncertain, "peak_rss_mb": peak_rss_mb(), "idle_rss_mb": idle_mb,
        "submits": max(r["submits"] for r in history.jobs.rows(name)),
        "uncertain_prompts": [r.spec.prompt for r in job.runner.rows if r.state == "uncertain"],
    }), flush=True)
    history.close()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
