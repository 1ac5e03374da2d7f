"""Soak: 200 generations through the panel and the helpers with about 20% injected faults
of every kind the emulator supports, with a History recording everything.

Asserted: every request ends in the history as a result or as a recorded error (with the
trace id whenever the service sent one); no submission was sent twice except after a 429
(the only resend the billing-safe policy allows once a request reached the server); no
exception escaped a widget callback, a listener or a thread.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from nanobanana_widgets import functions, session
from nanobanana_widgets.client import Client, Task
from nanobanana_widgets.emulator import FAULT_KINDS
from nanobanana_widgets.service.errors import NanoBananaError
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History, Record
from nanobanana_widgets.widgets.panel import PromptPanel

from .conftest import Escapes, RecordingEmulator

TOKEN = "soak-token-5d1e"
PANEL_RUNS = 40
HELPER_RUNS = 160

# What a request's last attempt met -> the error class its record must carry (None: success).
EXPECTED_ERROR: dict[str | None, str | None] = {
    None: None,
    "slow_headers": None,
    "partial": None,
    "rate_limit": "RateLimitError",  # only if every bounded retry was refused too
    "server_error": "ServerError",
    "forbidden": "ContentRefusedError",
    "used_up": "NoBalanceError",
    "unauthorized": "AuthenticationError",
    "reset": "PossiblyBilledError",
    "malformed_json": "PossiblyBilledError",
    "html_error": "ServerError",
    "empty_body": "ServerError",
    "task_forbidden": "ContentRefusedError",
    "task_error": "ServerError",
    # the vendor SDK's record shapes while a task runs: it still succeeds
    "hiccup": None,
    "status_word": None,
    "progress": None,
}
# Faults whose answer carries a trace id (a JSON error body, or a task record).
TRACED = {"rate_limit", "server_error", "forbidden", "used_up", "unauthorized",
          "task_forbidden", "task_error"}


@pytest.fixture
def soak_setup(tmp_path: Path) -> Any:
    emu = RecordingEmulator(latency=(0.01, 0.06), seed=7, small_images=True).start()
    emu.fault_rate = 0.2
    emu.fault_kinds = FAULT_KINDS  # every kind, not only the default mix
    for kind in FAULT_KINDS:  # and each kind at least once, whatever the draws
        emu.inject(kind, retry_after=0.02, delay=0.05)
    for kind in ("server_error", "reset", "malformed_json", "rate_limit", "html_error"):
        emu.inject(kind, endpoint="tasks", retry_after=0.02)  # lookups may be retried
    client = Client(TOKEN, base_url=emu.base_url, poll_interval=0.02, max_retries=4)
    client.backoff_base = 0.005
    history = History(tmp_path / "history", client=client)
    session.set_default_client(client)
    try:
        yield emu, client, history
    finally:
        session.set_default_client(None)
        history.close()
        client.close()
        emu.stop()


def _submit(prompt: str, count: int) -> Task | NanoBananaError:
    try:
        return functions.submit(prompt, count=count)
    except NanoBananaError as exc:  # anything else fails the test
        return exc


def test_soak_200_generations_with_faults(soak_setup: Any, tmp_path: Path,
                                          escapes: Escapes) -> None:
    emu, client, history = soak_setup

    # 40 through the panel: a click per prompt, runs overlapping in its thread pool.
    panel = PromptPanel(client=client, history=history, save_dir=tmp_path / "saved")
    panel_prompts = [f"soak panel {i}: a lighthouse" for i in range(PANEL_RUNS)]
    for i, prompt in enumerate(panel_prompts):
        panel.prompt = prompt
        panel.count = 2 if i % 5 == 0 else 1
        panel.generate_button.click()
    # 160 through the helpers: concurrent submits, then one batched wait.
    helper_prompts = [f"soak helper {i}: a red bicycle" for i in range(HELPER_RUNS)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        submitted = list(pool.map(lambda i: _submit(helper_prompts[i], 2 if i % 7 == 0 else 1),
                                  range(HELPER_RUNS)))
    tasks = [t for t in submitted if isinstance(t, Task)]
    outcomes = functions.wait_all(tasks, timeout=60, return_exceptions=True)
    assert all(isinstance(o, (Result, NanoBananaError)) for o in outcomes)
    panel.wait_idle(60)
    assert history.flush(timeout=60)

    # -- the panel: every run finished, failures shown as the package's own errors --------
    runs = panel.runs
    assert len(runs) == PANEL_RUNS
    for run in runs:
        assert run.done(), run
        assert run.status in ("done", "failed"), run
        if run.status == "failed":
            assert isinstance(run.error, NanoBananaError), (run, run.error)
            assert f"Run #{run.number} failed" in " ".join(panel.messages)
            if run.error.trace_id:  # the trace id reaches the person reading the panel
                assert any(run.error.trace_id in m for m in panel.messages)
        else:
            assert run.result is not None and run.result.images
    assert len(panel.results) == sum(r.status == "done" for r in runs)
    assert not any("Unexpected error" in m for m in panel.messages), panel.messages

    # -- the history: one record per request, each finished with a result or an error -----
    all_prompts = panel_prompts + helper_prompts
    records: list[Record] = list(history)
    by_prompt = Counter(rec.prompt for rec in records)
    assert sorted(by_prompt) == sorted(all_prompts)
    assert set(by_prompt.values()) == {1}, [p for p, n in by_prompt.items() if n > 1]

    seen_kinds: Counter[str | None] = Counter()
    for rec in records:
        attempts = emu.attempts[rec.prompt]
        assert attempts, f"{rec.prompt!r} never reached the emulator"
        # No billable resend: only 429s may be followed by another attempt.
        assert all(kind == "rate_limit" for kind in attempts[:-1]), (rec.prompt, attempts)
        last = attempts[-1]
        seen_kinds.update(attempts)
        expected = EXPECTED_ERROR[last]
        if expected is None:
            assert rec.status == "succeeded", (rec, last, rec.error)
            assert rec.results and all(r.local for r in rec.results), rec
            assert rec.task_id and rec.trace_id
            wanted = 1 if last == "partial" else rec.count
            assert len(rec.results) == wanted, (rec, last)
        else:
            assert rec.status == "failed", (rec, last)
            assert rec.error is not None and rec.error.type == expected, (rec, last, rec.error)
            assert rec.error.message
            if last in TRACED:
                assert rec.trace_id or rec.error.trace_id, (rec, last)
            if last in ("task_forbidden", "task_error"):
                assert rec.task_id, rec  # failed after acceptance: the task is on record
                assert rec.trace_id == client.task(rec.task_id).trace_id

    # Every fault kind happened, about a fifth of the requests met one.
    assert set(FAULT_KINDS) <= set(seen_kinds), set(FAULT_KINDS) - set(seen_kinds)
    faulted = sum(n for kind, n in seen_kinds.items() if kind is not None)
    assert 0.12 * len(all_prompts) <= faulted <= 0.4 * len(all_prompts), seen_kinds

    # The emulator's own counters agree: every request it saw is one we accounted for, and
    # no prompt ever made two tasks (two tasks would be two bills).
    assert emu.submissions == sum(len(a) for a in emu.attempts.values())
    assert set(emu.attempts) == set(all_prompts)
    task_prompts = Counter(r.request.get("prompt") for r in client.tasks(emu.task_ids()))
    assert set(task_prompts.values()) == {1}
    assert sum(task_prompts.values()) == sum(1 for rec in records if rec.task_id)

    assert escapes.problems() == []
    panel.close()
