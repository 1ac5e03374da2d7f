"""The history as a client listener, against the emulator: a record written before the task
finishes, failures, results downloaded in the background, resume after a crash or a cancel,
and the default history recording the module functions."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.service.errors import ContentRefusedError
from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import History
from support import TEST_TOKEN


def test_records_a_generate_before_it_finishes(tmp_path: Path) -> None:
    with Emulator(latency=0.4) as emu, Client(TEST_TOKEN, base_url=emu.base_url,
                                              poll_interval=0.05) as client:
        h = History(tmp_path / "h", client=client)
        task = client.submit("a lighthouse at dusk", aspect_ratio="16:9")
        rec = h[-1]
        assert rec.status == "submitted" and rec.task_id == task.id
        assert not task.done()  # recorded while the task was still running
        assert rec.trace_id == task.trace_id and rec.timings.submitted_at == task.submitted_at
        result = task.wait(timeout=10)
        assert h.flush(timeout=10)
        rec = h[-1]
        assert rec.status == "succeeded" and rec.results[0].url == result.image.url
        assert rec.results[0].local and rec.results[0].thumbnail
        meta = read_metadata(rec.results[0].path)  # type: ignore[arg-type]
        assert meta["task_id"] == task.id and meta["aspect_ratio"] == "16:9"
        assert meta["prompt"] == "a lighthouse at dusk"
        assert rec.results[0].path.read_bytes() is not None  # type: ignore[union-attr]
        assert result.image.bytes()  # the history's download filled the cache
        h.close()
    # the token is stored nowhere in the history folder
    for f in (tmp_path / "h").rglob("*"):
        if f.is_file():
            assert TEST_TOKEN.encode() not in f.read_bytes(), f


def test_failed_tasks_and_failed_submits_are_recorded(client: Client, emulator: Emulator,
                                                      history: History) -> None:
    h = history
    emulator.inject("task_forbidden")
    with pytest.raises(ContentRefusedError) as refused:
        client.generate("refused in the task")
    rec = h[-1]
    assert rec.status == "failed" and rec.task_id == refused.value.task_id
    assert rec.error is not None and rec.error.type == "ContentRefusedError"
    assert rec.error.code == "forbidden" and rec.trace_id
    assert isinstance(rec.result().error, ContentRefusedError)
    emulator.inject("used_up")
    with pytest.raises(Exception) as submit_err:
        client.generate("refused at submit")
    rec = h[-1]
    assert rec.prompt == "refused at submit" and rec.status == "failed"
    assert rec.task_id is None
    assert rec.error is not None and rec.error.type == type(submit_err.value).__name__
    assert rec.error.trace_id and rec.error.trace_id == getattr(submit_err.value, "trace_id", None)
    assert len(h.filter(status="failed")) == 2


def test_resume_after_the_submitting_process_died(
        tmp_path: Path, run_python: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    folder = str(tmp_path / "h")
    child = """
        import os, sys
        from nanobanana_widgets.client import Client
        from nanobanana_widgets.store import History
        client = Client(sys.argv[2], base_url=sys.argv[1], poll_interval=0.05)
        History(sys.argv[3], client=client)
        for i in range(3):
            client.submit(f"crash {i}", aspect_ratio="1:1")
        os._exit(0)
    """
    with Emulator(latency=1.0) as emu:
        done = run_python(child, emu.base_url, TEST_TOKEN, folder)
        assert done.returncode == 0, done.stderr
        assert emu.submissions == 3
        lookups = emu.lookups
        h = History(folder)  # opening does not touch the network
        assert [r.status for r in h] == ["submitted"] * 3
        assert emu.lookups == lookups
        with Client(TEST_TOKEN, base_url=emu.base_url, poll_interval=0.05) as client:
            resumed = h.resume(client, wait=True, timeout=15)
        assert len(resumed) == 3
        assert [r.status for r in h] == ["succeeded"] * 3
        assert all(r.results and r.results[0].local for r in h)
        assert emu.submissions == 3  # nothing was submitted again
        h.close()


def test_resume_at_open_with_resume_true(tmp_path: Path) -> None:
    with Emulator(latency=0.2) as emu, Client(TEST_TOKEN, base_url=emu.base_url,
                                              poll_interval=0.05) as client:
        h = History(tmp_path / "h")
        req = ImageRequest("generate", "looked up later")
        task = client.submit(req.prompt)  # made while no history listened
        h.add(req, task_id=task.id)
        emu.finish_all()
        again = History(tmp_path / "h", client=client, resume=True)
        again.flush(timeout=10)
        assert again[-1].status == "succeeded" and again[-1].results[0].local
        again.close()
        h.close()


def test_a_cancelled_wait_stays_resumable(tmp_path: Path) -> None:
    with Emulator(latency=30.0) as emu, Client(TEST_TOKEN, base_url=emu.base_url,
                                               poll_interval=0.05) as client:
        h = History(tmp_path / "h", client=client)
        task = client.submit("still billed after a cancel")
        task.cancel()
        assert h[-1].status == "submitted"
        emu.finish_all()
        h.resume(wait=True, timeout=10)  # the attached client is used
        rec = h[-1]
        assert rec.status == "succeeded" and rec.results[0].local
        assert emu.submissions == 1
        h.close()


def test_default_history_can_leave_the_default_client_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nanobanana_widgets import session
    from nanobanana_widgets.session import default_history

    monkeypatch.setattr(session, "_default", None)
    quiet = default_history(attach=False)
    assert session._default is None  # no default client was made
    assert quiet.folder == Path.cwd() / ".nanobanana"
    assert default_history() is quiet
    assert session._default is not None and quiet._client_for(None) is session._default


def test_default_history_records_the_module_functions(client: Client,
                                                      emulator: Emulator) -> None:
    from nanobanana_widgets import functions, session
    from nanobanana_widgets.session import default_history, set_default_history

    session.set_default_client(client)
    try:
        h = default_history()
        assert default_history() is h
        assert h.path == Path.cwd() / ".nanobanana" / "history.sqlite"
        functions.generate("through the module function")
        assert h[-1].prompt == "through the module function"
        assert h[-1].status == "succeeded"
        h.detach(client)
        functions.generate("not recorded")
        assert len(h) == 1
    finally:
        session.set_default_client(None)
        set_default_history(None)


def test_resume_rechecks_records_that_failed_without_an_error_code(tmp_path: Path) -> None:
    from nanobanana_widgets.service.errors import ContentRefusedError, TaskFailedError

    with Emulator(latency=0.2) as emu, Client(TEST_TOKEN, base_url=emu.base_url,
                                              poll_interval=0.05) as client:
        h = History(tmp_path / "h")
        tasks = [client.submit(f"failed too early {i}") for i in range(3)]
        # Under the service's rules a failure without an error code may be a task that
        # is still running (a transient success:false): resume() looks it up again.
        h.add(tasks[0].request, task_id=tasks[0].id, error=TaskFailedError("hiccup"))
        h.add(tasks[1].request, task_id=tasks[1].id, status="failed")
        refused = ContentRefusedError(code="forbidden")
        h.add(tasks[2].request, task_id=tasks[2].id, error=refused)  # final: has a code
        assert [r.status for r in h] == ["failed"] * 3
        emu.finish_all()
        view = h.resume(client, wait=True, timeout=10)
        assert len(view) == 2
        assert [r.status for r in h] == ["succeeded", "succeeded", "failed"]
        assert h[0].error is None and h[0].results[0].local
        assert emu.submissions == 3
        h.close()
