"""The history against a broken or malicious server (over a real socket): a submit whose
answer cannot be read is recorded as possibly billed, resume ends by its own deadline, a
lone surrogate or an echoed token never reaches the files, two requests answered with one
task id are both kept, and a server listing thousands of images is held to the count."""

from __future__ import annotations

import io
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import HistoryWarning, PossiblyBilledError
from nanobanana_widgets.service.secrets import register_secret
from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import History
from support import TEST_TOKEN, png_data_uri

from .hostile import Handler, HostileServer, data_image_url, finished_record, serve

IMAGES = "/nano-banana/images"
TASKS = "/nano-banana/tasks"


@pytest.fixture
def server() -> Iterator[HostileServer]:
    yield from serve()


def _client(server: HostileServer, token: str = TEST_TOKEN, **kwargs: Any) -> Client:
    kwargs.setdefault("poll_interval", 0.05)
    return Client(token, base_url=server.base_url, max_retries=0, **kwargs)


def _batch(records: dict[str, dict[str, Any]]) -> Any:
    def answer(h: Handler, body: dict[str, Any]) -> None:
        h.send_json({"items": [records[i] for i in body.get("ids", []) if i in records]})
    return answer


def _files_containing(folder: Path, needle: bytes) -> list[str]:
    return [str(p) for p in sorted(folder.rglob("*"))
            if p.is_file() and needle.lower() in p.read_bytes().lower()]


# --- class 1: an answer to a submit that cannot be read ------------------------------------


@pytest.mark.parametrize(("body", "task_id"), [
    ('{"success": true, "task_id": "billed-7", "trace_id": "tr', "billed-7"),
    ("<html><body>Gateway says hello</body></html>", None),
    ('{"success": true, "data": []}', None),
])
def test_an_unreadable_submit_answer_leaves_a_possibly_billed_record(
        server: HostileServer, tmp_path: Path, body: str, task_id: str | None) -> None:
    server.on(IMAGES, lambda h, _body: h.send_json(body))
    with _client(server) as client, History(tmp_path / "h", client=client) as h:
        with pytest.raises(PossiblyBilledError):
            client.submit("a paid request whose answer was lost")
        assert len(h) == 1
        rec = h[-1]
        assert rec.prompt == "a paid request whose answer was lost"
        assert rec.error is not None and rec.error.type == "PossiblyBilledError"
        assert "billed" in rec.error.message
        if task_id:  # looked up by resume()
            assert rec.task_id == task_id and rec.status == "pending"
            assert "resume()" in rec.error.message
        else:  # nothing to look up: the record tells the user to check their usage
            assert rec.task_id is None and rec.status == "failed"
            assert "check your usage" in rec.error.message.lower()


def test_a_possibly_billed_error_given_to_the_listener_is_always_recorded(
        tmp_path: Path) -> None:
    request = ImageRequest("generate", "billed maybe")
    with History(tmp_path / "h") as h:
        h.on_failed(request, PossiblyBilledError("lost answer", task_id="t-9"), None)
        h.on_failed(request, PossiblyBilledError("lost answer"), None)
        h.on_failed(request, PossiblyBilledError("lost again", task_id="t-9"), None)
        statuses = [(r.task_id, r.status, r.error.type if r.error else None) for r in h]
        assert statuses == [("t-9", "pending", "PossiblyBilledError"),
                            (None, "failed", "PossiblyBilledError"),
                            ("t-9", "pending", "PossiblyBilledError")]
        assert set(h._store.open_tasks()) == {"t-9"}


def test_a_resumed_possibly_billed_record_gets_its_result(emulator: Emulator,
                                                          tmp_path: Path) -> None:
    with Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05) as client:
        task = client.submit("billed, answer lost")  # the history did not see the answer
        with History(tmp_path / "h", client=client) as h:
            h.on_failed(task.request, PossiblyBilledError("lost", task_id=task.id), None)
            emulator.finish_all()
            h.resume(wait=True, timeout=10)
            rec = h[-1]
            assert rec.status == "succeeded" and rec.error is None
            assert rec.results and rec.results[0].local
            assert emulator.submissions == 1


# --- class 2: resume ends by its own deadline -----------------------------------------------


@pytest.mark.parametrize("behaviour", ["hold", "trickle"])
def test_resume_ends_by_its_timeout_whatever_the_server_does(
        server: HostileServer, tmp_path: Path, behaviour: str) -> None:
    server.on(TASKS, lambda h, _body: getattr(h, behaviour)())
    with _client(server, timeout=600) as client, History(tmp_path / "h") as h:
        for i in range(3):
            h.add(ImageRequest("generate", f"still running {i}"), task_id=f"t-{i}")
        started = time.monotonic()
        with pytest.warns(HistoryWarning, match="did not answer within 2 s"):
            view = h.resume(client, wait=True, timeout=2)
        elapsed = time.monotonic() - started
        assert elapsed < 6, f"resume(timeout=2) took {elapsed:.1f} s"
        assert len(view) == 3 and [r.status for r in h] == ["submitted"] * 3
        assert any(p.kind == "resume" for p in h.problems)


# --- class 6: a lone surrogate echoed by the server -----------------------------------------


def test_a_lone_surrogate_never_stops_recording_nor_resume(server: HostileServer,
                                                           tmp_path: Path) -> None:
    url = data_image_url("navy")
    records = {
        "bad": finished_record("bad", "x", [url], echoed="echo \ud800 here"),
        "good": finished_record("good", "y", [url]),
        "live": finished_record("live", "z", [url], echoed="\udfff"),
    }
    server.on(IMAGES, lambda h, _body: h.send_json({"success": True, "task_id": "live"}))
    server.on(TASKS, _batch(records))
    with _client(server) as client, History(tmp_path / "h") as h:
        h.add(ImageRequest("generate", "x"), task_id="bad")
        h.add(ImageRequest("generate", "y"), task_id="good")
        h.resume(client, wait=True, timeout=10)  # the bad one first, then the good one
        assert [(r.task_id, r.status) for r in h] == [("bad", "succeeded"),
                                                        ("good", "succeeded")]
        assert h.get(1).results[0].prompt == "echo \ufffd here"
        h.attach(client)
        result = client.generate("z")  # the listener records the paid result's URL
        assert result.image.url == url
        assert h.flush(timeout=10)
        live = h.find(task_id="live")
        assert live is not None and live.status == "succeeded"
        assert live.results[0].local and live.results[0].prompt == "\ufffd"
        out = h.export(tmp_path / "out")
        assert len(list(out.glob("*.png"))) == 3
        h.to_csv(tmp_path / "h.csv")
        h.to_json(tmp_path / "h.json")


# --- class 7: a token echoed by the server --------------------------------------------------


SECRET = "sk-live-Echoed-9d2c41f7aa"


def test_a_token_echoed_by_the_server_reaches_no_file(server: HostileServer,
                                                      tmp_path: Path) -> None:
    register_secret(SECRET)  # what the client does with its token
    echo = f"a cat, by Bearer {SECRET.upper()} and {SECRET}"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"made for {SECRET}")  # the server's own text chunk
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), "olive").save(buf, "PNG", pnginfo=info)
    url = png_data_uri(buf.getvalue())
    records = {"tk": finished_record("tk", "a cat", [url], echoed=echo)}
    records["tk"]["trace_id"] = f"trace {SECRET}"
    server.on(IMAGES, lambda h, _body: h.send_json(
        {"success": True, "task_id": "tk", "trace_id": f"tr-{SECRET}"}))
    server.on(TASKS, _batch(records))
    with _client(server, SECRET) as client, History(tmp_path / "h", client=client) as h:
        client.generate("a cat")
        assert h.flush(timeout=10)
        rec = h[-1]
        assert SECRET.lower() not in repr(rec.to_dict()).lower()
        assert rec.results[0].prompt.count("***") == 2
        h.export(tmp_path / "export")
        h.to_csv(tmp_path / "records.csv")
        h.to_json(tmp_path / "records.json")
        h.note(rec, f"my note quoting {SECRET}")
    for folder in (tmp_path / "h", tmp_path / "export", tmp_path):
        assert _files_containing(folder, SECRET.encode()) == []
    assert any(p.suffix == ".png" for p in (tmp_path / "export").iterdir())


# --- also: one task id for two paid requests, and a count=1 answer with 10,000 images -------


def test_two_requests_answered_with_one_task_id_are_both_kept(server: HostileServer,
                                                              tmp_path: Path) -> None:
    url = data_image_url("maroon")
    server.on(IMAGES, lambda h, _body: h.send_json({"success": True, "task_id": "same"}))
    server.on(TASKS, _batch({"same": finished_record("same", "?", [url])}))
    with _client(server) as client, History(tmp_path / "h", client=client) as h:
        first = client.submit("the first paid request")
        second = client.submit("the second paid request")
        assert first.id == second.id == "same"
        assert sorted(r.prompt for r in h.filter(task_id="same")) == [
            "the first paid request", "the second paid request"]
        client.wait_all([first, second], timeout=10)
        assert h.flush(timeout=10)
        assert [r.status for r in h] == ["succeeded", "succeeded"]
        assert len(h) == 2


def test_a_count_of_one_keeps_one_image_and_close_returns_promptly(server: HostileServer,
                                                                   tmp_path: Path) -> None:
    slow = f"{server.base_url}/img/slow.png"
    urls = [slow] * 10_000
    server.on(IMAGES, lambda h, _body: h.send_json({"success": True, "task_id": "many"}))
    server.on(TASKS, _batch({"many": finished_record("many", "one", urls)}))
    server.on("/img/slow.png", lambda h, _body: h.hold())
    client = _client(server)
    h = History(tmp_path / "h", client=client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HistoryWarning)
        client.generate("one")
    rec = h[-1]
    assert rec.status == "succeeded" and len(rec.results) == 1
    started = time.monotonic()
    h.close()
    assert time.monotonic() - started < 10
    assert server.paths().count("/img/slow.png") <= 1
    client.close()


def test_interpreter_exit_does_not_wait_for_stuck_downloads(
        server: HostileServer, tmp_path: Path,
        run_python: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    server.on(IMAGES, lambda h, body: h.send_json(
        {"success": True, "task_id": f"stuck-{body.get('prompt')}"}))
    server.on(TASKS, lambda h, body: h.send_json({"items": [
        finished_record(i, "p", [f"{server.base_url}/img/{i}.png"]) for i in body["ids"]]}))
    server.on_prefix("/img/", lambda h, _body: h.hold())
    child = """
        import sys, warnings
        from nanobanana_widgets.client import Client
        from nanobanana_widgets.store import History
        warnings.simplefilter("ignore")
        client = Client(sys.argv[2], base_url=sys.argv[1], poll_interval=0.05)
        h = History(sys.argv[3], client=client)
        tasks = [client.submit(str(i)) for i in range(12)]
        client.wait_all(tasks, timeout=20)
        print(len(h), flush=True)
    """  # ends without close(): twelve downloads hang on the server
    started = time.monotonic()
    done = run_python(child, server.base_url, TEST_TOKEN, str(tmp_path / "h"), timeout=60)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["12"]
    assert elapsed < 30, f"the interpreter took {elapsed:.1f} s to exit"
    with History(tmp_path / "h") as h:
        assert [r.status for r in h] == ["succeeded"] * 12
        assert all(not r.results[0].local for r in h)  # resume() fetches them later
