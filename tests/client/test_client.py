"""The client against the emulator over a real socket: parameters, validation, tokens,
waiting, the batched poller, listeners, replay and the asyncio wrappers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from nanobanana_widgets.client import Client, Progress, Task
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import (
    BadRequestError,
    CancelledError,
    ContentRefusedError,
    ImageInputError,
    InvalidParameterError,
    MissingTokenError,
    NanoBananaError,
    NotFoundError,
    ServerError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.models import MODELS
from nanobanana_widgets.service.types import ImageRequest, Result
from support import TEST_TOKEN


def _submits(emulator: Emulator) -> list[dict[str, Any]]:
    return [body for path, body in emulator.requests_log if path.endswith("/images")]


def _lookups(emulator: Emulator) -> list[dict[str, Any]]:
    return [body for path, body in emulator.requests_log if path.endswith("/tasks")]


# --- a tiny loopback server that records headers and answers as scripted ---------------


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecorderHandler)
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.ports: list[int] = []
        self.answers: list[tuple[int, bytes]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _RecorderHandler(BaseHTTPRequestHandler):
    server: _Recorder
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append((self.path, headers, body))
        self.server.ports.append(self.client_address[1])
        if self.server.answers:
            status, payload = self.server.answers.pop(0)
        else:
            status, payload = 200, b'{"success": true, "task_id": "t-1", "trace_id": "tr-1"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# --- parameters reach the server -------------------------------------------------------


def test_every_parameter_reaches_the_server(client: Client, emulator: Emulator) -> None:
    task = client.submit("a red fox", model="nano-banana-pro", count=3, aspect_ratio="16:9",
                         resolution="2K")
    assert isinstance(task, Task)
    assert task.id == emulator.task_ids()[-1]
    assert task.trace_id
    assert task.status == "pending"
    (body,) = _submits(emulator)
    assert body == {"action": "generate", "prompt": "a red fox", "model": "nano-banana-pro",
                    "count": 3, "aspect_ratio": "16:9", "resolution": "2K", "async": True}
    assert task.request == ImageRequest(action="generate", prompt="a red fox",
                                        model="nano-banana-pro", count=3, aspect_ratio="16:9",
                                        resolution="2K")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_is_sent_as_named(client: Client, emulator: Emulator, model: str) -> None:
    resolution = MODELS[model][-1]
    client.submit("a lighthouse", model=model, resolution=resolution)
    (body,) = _submits(emulator)
    assert body["model"] == model
    assert body["resolution"] == resolution


def test_edit_sends_the_images_as_urls(client: Client, emulator: Emulator,
                                      png: Callable[..., bytes]) -> None:
    result = client.edit("make it blue", [png(), "https://example.com/in.jpg"], count=2)
    (body,) = _submits(emulator)
    assert body["action"] == "edit"
    assert body["image_urls"][0].startswith("data:image/")
    assert body["image_urls"][1] == "https://example.com/in.jpg"
    assert body["count"] == 2
    assert len(result) == 2
    assert result.request.image_urls == tuple(body["image_urls"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"model": "nano-banana-3"}, "model"),
        ({"model": "nano-banana-2.1:official"}, "model"),
        ({"count": 0}, "count"),
        ({"count": 5}, "count"),
        ({"count": True}, "count"),
        ({"aspect_ratio": "5:4"}, "aspect_ratio"),
        ({"resolution": "4K"}, "resolution"),  # nano-banana is 1K only
        ({"resolution": "8K", "model": "nano-banana-pro"}, "resolution"),
        ({"action": "paint"}, "action"),
        ({"action": "edit"}, "images"),  # the name the caller typed
        ({"action": "edit", "images": []}, "images"),
        ({"callback_url": "ftp://example.com/cb"}, "callback_url"),
    ],
)
def test_invalid_parameters_raise_before_any_request(
    client: Client, emulator: Emulator, kwargs: dict[str, Any], field: str
) -> None:
    args = {"prompt": "a cat", **kwargs}
    prompt = args.pop("prompt")
    with pytest.raises(InvalidParameterError) as info:
        client.submit(prompt, **args)
    assert isinstance(info.value, ValueError)
    assert field in str(info.value)
    assert emulator.submissions == 0


def test_unusable_input_image_raises_before_any_request(
    client: Client, emulator: Emulator
) -> None:
    with pytest.raises(ImageInputError) as info:
        client.edit("make it blue", ["ftp://example.com/x.png"])
    assert isinstance(info.value, ValueError)
    with pytest.raises(ImageInputError):
        client.edit("make it blue", b"not an image at all")
    assert emulator.submissions == 0


def test_invalid_parameter_names_the_allowed_values(client: Client, emulator: Emulator) -> None:
    with pytest.raises(InvalidParameterError, match="16:9") as info:
        client.generate("a cat", aspect_ratio="5:4")
    assert info.value.field == "aspect_ratio"
    assert emulator.submissions == 0


def test_sync_and_callback_together_are_refused(client: Client, emulator: Emulator) -> None:
    with pytest.raises(InvalidParameterError, match="sync"):
        client.generate("a cat", sync=True, callback_url="http://127.0.0.1:9/cb")
    assert emulator.submissions == 0


# --- token and base URL ----------------------------------------------------------------


def test_missing_token_raises_before_any_request() -> None:
    # The real service's address: had anything been sent, this sandbox has no network and
    # the error would be a connection error, not MissingTokenError.
    c = Client()
    with pytest.raises(MissingTokenError) as info:
        c.generate("a cat")
    message = str(info.value)
    assert "ACEDATACLOUD_API_TOKEN" in message
    assert "use_emulator" in message
    with pytest.raises(MissingTokenError):
        c.task("abc")
    with pytest.raises(MissingTokenError):
        Client(base_url="https://proxy.example.com").submit("a cat")


def test_a_loopback_base_url_without_a_token_reaches_the_local_emulator(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 2's acceptance: the module function against a running emulator, no token."""
    from nanobanana_widgets import generate, session
    from nanobanana_widgets.images import read_metadata

    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", emulator.base_url)
    session.set_default_client(None)
    try:
        r = generate("a red fox")
        assert r.image.pil().size == (1024, 1024)
        saved = r.image.save(tmp_path)
        assert read_metadata(saved)["prompt"] == "a red fox"
        assert emulator.submissions == 1
        assert "<img" in r._repr_html_()
    finally:
        client = session._default
        session.set_default_client(None)
        if client is not None:
            client.close()


def test_token_and_base_url_are_read_at_the_first_request(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = Client()  # nothing in the environment yet: construction must not fail
    assert "api.acedata.cloud" in repr(c)
    monkeypatch.setenv("ACEDATACLOUD_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", emulator.base_url + "/")
    task = c.submit("a cat")
    assert emulator.submissions == 1
    assert c.base_url == emulator.base_url  # trailing slash stripped
    assert task.id in emulator.task_ids()
    c.close()


@pytest.mark.parametrize("url", ["ftp://example.com", "api.acedata.cloud", "file:///etc"])
def test_base_url_must_be_http(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidParameterError, match="base_url"):
        Client(TEST_TOKEN, base_url=url)
    monkeypatch.setenv("ACEDATACLOUD_API_BASE_URL", url)
    c = Client(TEST_TOKEN)
    with pytest.raises(InvalidParameterError, match="base_url"):
        c.submit("a cat")


def test_repr_hides_the_token(emulator: Emulator) -> None:
    c = Client(TEST_TOKEN, base_url=emulator.base_url)
    c.submit("a cat")
    text = repr(c)
    assert TEST_TOKEN not in text
    assert emulator.base_url in text
    assert "token=set" in text
    assert "token=not set" in repr(Client(base_url=emulator.base_url))
    c.close()


def test_token_only_in_the_authorization_header(recorder: _Recorder) -> None:
    session = requests.Session()
    c = Client(TEST_TOKEN, base_url=recorder.url, session=session)
    task = c.submit("a cat")
    assert task.id == "t-1"
    recorder.answers.append((200, json.dumps({
        "id": "t-1", "trace_id": "tr-1", "created_at": 1.0, "request": {"prompt": "a cat"},
    }).encode()))
    c.task("t-1")
    (submit_path, submit_headers, submit_body), (lookup_path, lookup_headers, _) = recorder.seen
    assert submit_path == "/nano-banana/images"
    assert lookup_path == "/nano-banana/tasks"
    for headers in (submit_headers, lookup_headers):
        assert headers["authorization"] == f"Bearer {TEST_TOKEN}"
        assert headers["accept"] == "application/json"
        assert headers["content-type"] == "application/json"
        others = {k: v for k, v in headers.items() if k != "authorization"}
        assert TEST_TOKEN not in json.dumps(others)
    assert submit_headers["connection"].lower() == "close"
    assert TEST_TOKEN.encode() not in submit_body
    assert "authorization" not in {k.lower() for k in session.headers}
    c.close()


def test_a_submit_never_rides_a_kept_alive_connection(recorder: _Recorder) -> None:
    c = Client(TEST_TOKEN, base_url=recorder.url)
    record = json.dumps({"id": "t-1", "request": {"prompt": "a cat"}}).encode()
    recorder.answers.extend([(200, record), (200, record)])
    c.task("t-1")
    c.task("t-1")
    c.submit("a cat")
    lookup1, lookup2, submit = recorder.ports
    assert lookup1 == lookup2  # lookups keep the connection alive
    assert submit != lookup2  # the submit opened a fresh one
    c.close()


def test_server_text_echoing_the_token_is_scrubbed(recorder: _Recorder) -> None:
    c = Client(TEST_TOKEN, base_url=recorder.url, max_retries=0)
    echo = {"success": False, "trace_id": "tr-9",
            "error": {"code": "bad_request", "message": f"bad header Bearer {TEST_TOKEN}"}}
    recorder.answers.append((400, json.dumps(echo).encode()))
    with pytest.raises(BadRequestError) as info:
        c.submit("a cat")
    assert TEST_TOKEN not in str(info.value)
    assert TEST_TOKEN not in repr(info.value)
    assert "***" in str(info.value)
    echo["error"] = {"code": "api_error", "message": f"token {TEST_TOKEN} broke us"}
    recorder.answers.append((500, json.dumps(echo).encode()))
    with pytest.raises(ServerError) as info2:
        c.submit("a cat")
    assert TEST_TOKEN not in str(info2.value)
    c.close()


def test_a_short_token_is_scrubbed_as_a_word_without_mangling_the_message(
    recorder: _Recorder,
) -> None:
    c = Client("t", base_url=recorder.url, max_retries=0)
    echo = {"success": False, "trace_id": "tr-9",
            "error": {"code": "forbidden", "message": "refused this content; token t"}}
    recorder.answers.append((403, json.dumps(echo).encode()))
    with pytest.raises(ContentRefusedError) as info:
        c.submit("a cat")
    assert "refused this content; token ***" in str(info.value)
    c.close()


def test_token_never_logged(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    c = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05)
    c.backoff_base = 0.01
    emulator.inject("rate_limit", retry_after=0.01)
    emulator.inject("server_error", endpoint="tasks")
    c.generate("a cat")
    assert caplog.records  # something was logged
    assert TEST_TOKEN not in caplog.text
    c.close()


# --- submit and wait -------------------------------------------------------------------


def test_generate_waits_and_returns_a_result(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(0.1)
    seen: list[Progress] = []
    result = client.generate("a white siamese cat", count=2, aspect_ratio="3:2",
                             on_progress=seen.append)
    assert isinstance(result, Result)
    assert result.status == "succeeded"
    assert result.task_id in emulator.task_ids()
    assert result.trace_id
    assert len(result) == 2
    assert all(img.url.startswith(emulator.base_url + "/files/") for img in result)
    assert result.request.aspect_ratio == "3:2"
    assert result.timings.submitted_at is not None and result.timings.finished_at is not None
    stages = [p.stage for p in seen]
    assert stages[0] == "submitted"
    assert stages[-1] == "done"
    assert set(stages) <= {"submitted", "waiting", "done"}
    assert all(p.task_id == result.task_id for p in seen)
    assert seen[-1].status == "succeeded"
    assert all(b.get("action") == "retrieve_batch" for b in _lookups(emulator))


def test_task_handle_refresh_done_result(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(float("inf"))
    task = client.submit("a cat")
    assert not task.done()
    with pytest.raises(WaitTimeoutError):
        task.result()
    record = task.refresh()
    assert record.status == "pending" and record.id == task.id
    emulator.finish_all()
    assert task.refresh().status == "succeeded"
    assert task.done()
    assert task.status == "succeeded"
    assert task.record is not None and task.record.finished_at is not None
    assert task.result().task_id == task.id
    assert task.wait().task_id == task.id  # already known: no waiting
    assert task.id in repr(task)


def test_deadline_on_a_task_that_never_finishes(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(float("inf"))
    task = client.submit("a slow cat")
    with pytest.raises(WaitTimeoutError) as info:
        task.wait(timeout=0.2)
    assert info.value.task_id == task.id
    assert isinstance(info.value, TimeoutError)
    assert "still" in str(info.value)
    emulator.finish_all()
    result = task.wait(timeout=10)  # the handle can be waited on again
    assert result.task_id == task.id


def test_generate_timeout_is_the_wait_deadline(emulator: Emulator) -> None:
    emulator.set_latency(float("inf"))
    c = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05, wait_timeout=0.2)
    with pytest.raises(WaitTimeoutError):
        c.generate("a cat")  # default deadline: wait_timeout
    with pytest.raises(WaitTimeoutError):
        c.generate("a cat", timeout=0.1)
    assert emulator.submissions == 2  # nothing resent
    c.close()


def test_cancel_wakes_a_blocked_waiter(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(float("inf"))
    task = client.submit("a cat")
    waiting = threading.Event()
    outcome: list[BaseException | Result] = []

    def waiter() -> None:
        try:
            outcome.append(task.wait(timeout=60, on_progress=lambda p: waiting.set()))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(10)
    task.cancel()
    thread.join(10)
    assert not thread.is_alive()
    (err,) = outcome
    assert isinstance(err, CancelledError)
    assert err.task_id == task.id
    with pytest.raises(CancelledError):
        task.wait(timeout=1)
    assert "may still run and be billed" in (Task.cancel.__doc__ or "")


def test_failed_task_raises_the_mapped_error(client: Client, emulator: Emulator) -> None:
    emulator.inject("task_forbidden")
    with pytest.raises(ContentRefusedError) as info:
        client.generate("something refused")
    task_id = emulator.task_ids()[-1]
    assert info.value.task_id == task_id
    assert info.value.trace_id
    emulator.inject("task_error")
    task = client.submit("a cat")
    with pytest.raises(ServerError):
        task.wait()
    assert task.status == "failed" and task.done()
    with pytest.raises(ServerError):
        task.result()


def test_partial_success_is_a_normal_result(client: Client, emulator: Emulator) -> None:
    emulator.inject("partial")
    result = client.generate("three cats", count=3)
    assert result.status == "succeeded"
    assert len(result) == 1
    assert result.request.count == 3


def test_sync_mode_uses_one_long_request(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(0.1)
    result = client.generate("a cat", sync=True, count=2)
    assert len(result) == 2
    (body,) = _submits(emulator)
    assert "async" not in body
    assert emulator.lookups == 0
    assert result.task_id == emulator.task_ids()[-1]
    emulator.inject("task_forbidden")
    with pytest.raises(ContentRefusedError):
        client.generate("refused", sync=True)
    assert emulator.submissions == 2


def test_callback_url_returns_at_once_and_is_sent(
    client: Client, emulator: Emulator, recorder: _Recorder
) -> None:
    emulator.set_latency(0.05)
    callback = recorder.url + "/done"
    task = client.submit("a cat", callback_url=callback)
    (body,) = _submits(emulator)
    assert body["callback_url"] == callback
    assert "async" not in body
    result = task.wait(timeout=10)
    assert len(result) == 1
    result2 = client.generate("a dog", callback_url=callback)
    assert result2.request.callback_url == callback


def test_task_and_tasks_lookups(client: Client, emulator: Emulator) -> None:
    ids = [client.submit(f"cat {i}").id for i in range(3)]
    emulator.reset_counters()
    records = client.tasks([ids[2], "no-such-task", ids[0], ids[1]])
    assert [r.id for r in records] == [ids[2], ids[0], ids[1]]
    assert all(r.status == "succeeded" for r in records)
    assert emulator.lookups == 1
    record = client.task(ids[0])
    assert record.id == ids[0] and record.request["prompt"] == "cat 0"
    with pytest.raises(NotFoundError):
        client.task("no-such-task")


def test_tasks_are_chunked_by_fifty(client: Client, emulator: Emulator) -> None:
    ids = [client.submit(f"cat {i}").id for i in range(3)]
    wanted = ids + [f"unknown-{i}" for i in range(117)]
    emulator.reset_counters()
    records = client.tasks(wanted)
    assert [r.id for r in records] == ids
    sizes = [len(b["ids"]) for b in _lookups(emulator)]
    assert sizes == [50, 50, 20]


def test_attach_resumes_a_task_from_another_client(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(0.1)
    task = client.submit("a resumed cat", aspect_ratio="4:3")
    other = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05)
    handle = other.attach(task.id)
    assert handle.id == task.id and handle.status == "pending"
    result = handle.wait(timeout=10)
    assert result.task_id == task.id
    assert result.request.prompt == "a resumed cat"
    assert result.request.aspect_ratio == "4:3"
    assert emulator.submissions == 1
    request = ImageRequest(action="generate", prompt="known", count=1)
    handle2 = other.attach(task.id, request=request, submitted_at=123.0)
    assert handle2.wait().request is request
    assert handle2.submitted_at == 123.0
    other.close()


# --- the shared poller -----------------------------------------------------------------


def test_wait_all_uses_batched_lookups(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(0.3)
    tasks = [client.submit(f"cat {i}") for i in range(8)]
    progress: list[Progress] = []
    results = client.wait_all(tasks, on_progress=progress.append, timeout=30)
    assert [r.task_id for r in results if isinstance(r, Result)] == [t.id for t in tasks]
    lookups = _lookups(emulator)
    assert lookups, "the poller looked the tasks up"
    assert all(b["action"] == "retrieve_batch" for b in lookups)
    assert set(lookups[0]["ids"]) == {t.id for t in tasks}
    # one request per round of the poller for all 8 tasks, never one per task (counted from
    # the poller's own rounds: a busy machine can make a waiter sleep through some of them)
    rounds = client._poller._tick
    assert rounds >= 1
    assert emulator.lookups <= rounds + 1  # + a round still on its way back
    assert emulator.lookups < 8 * rounds
    assert {p.stage for p in progress} == {"submitted", "waiting", "done"}


def test_many_threads_share_one_poller(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(0.2)
    tasks = [client.submit(f"cat {i}") for i in range(6)]
    results: dict[str, Result] = {}
    errors: list[BaseException] = []

    def wait(task: Task) -> None:
        try:
            results[task.id] = task.wait(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wait, args=(t,)) for t in tasks]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors
    assert set(results) == {t.id for t in tasks}
    batch_sizes = [len(b["ids"]) for b in _lookups(emulator)]
    assert max(batch_sizes) > 1
    assert sum(batch_sizes) > len(batch_sizes)  # lookups were shared, not one per task
    pollers = [t for t in threading.enumerate() if t.name.startswith("nanobanana-poller")
               and t.name.endswith(f"{id(client):x}")]
    assert len(pollers) <= 1


def test_wait_all_collects_failures(client: Client, emulator: Emulator) -> None:
    ok = client.submit("fine")
    emulator.inject("task_forbidden")
    bad = client.submit("refused")
    emulator.set_latency(float("inf"))
    slow = client.submit("slow")
    out = client.wait_all([ok, bad, slow.id], timeout=0.3, return_exceptions=True)
    assert isinstance(out[0], Result)
    assert isinstance(out[1], ContentRefusedError) and out[1].task_id == bad.id
    assert isinstance(out[2], WaitTimeoutError) and out[2].task_id == slow.id
    with pytest.raises(ContentRefusedError):
        client.wait_all([ok, bad], timeout=5)


def test_progress_callback_errors_are_logged_not_raised(
    client: Client, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.set_latency(0.1)

    def broken(progress: Progress) -> None:
        raise RuntimeError("callback bug")

    result = client.generate("a cat", on_progress=broken)
    assert len(result) == 1
    assert "on_progress" in caplog.text
    assert client.generate("again").task_id  # the poller survived


def test_close_stops_waiters_and_the_poller(emulator: Emulator) -> None:
    emulator.set_latency(float("inf"))
    c = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05)
    task = c.submit("a cat")
    out: list[BaseException] = []
    started = threading.Event()

    def waiter() -> None:
        try:
            task.wait(timeout=60, on_progress=lambda p: started.set())
        except BaseException as exc:
            out.append(exc)

    th = threading.Thread(target=waiter)
    th.start()
    assert started.wait(10)
    c.close()
    th.join(10)
    assert not th.is_alive()
    assert isinstance(out[0], CancelledError)
    assert c._poller.thread is None or not c._poller.thread.is_alive()
    with pytest.raises(NanoBananaError, match="closed"):
        c.submit("after close")


# --- listeners and replay --------------------------------------------------------------


class _Listener:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.replay_with: Result | None = None
        self.asked: list[ImageRequest] = []

    def on_submitted(self, task: Task) -> None:
        self.events.append(("submitted", task.id, task.status))

    def on_finished(self, task: Task, result: Result) -> None:
        self.events.append(("finished", task.id, result.task_id, task.status))

    def on_failed(self, request: ImageRequest, error: NanoBananaError, task: Task | None
                  ) -> None:
        self.events.append(("failed", request.prompt, type(error).__name__,
                            task.id if task else None))

    def replay(self, request: ImageRequest) -> Result | None:
        self.asked.append(request)
        return self.replay_with


def test_listeners_see_submit_finish_and_failures(client: Client, emulator: Emulator) -> None:
    listener = _Listener()
    client.add_listener(listener)
    client.add_listener(listener)  # added once only
    result = client.generate("a cat")
    assert listener.events == [("submitted", result.task_id, "pending"),
                               ("finished", result.task_id, result.task_id, "succeeded")]
    assert listener.asked[0].prompt == "a cat"
    listener.events.clear()
    emulator.inject("task_forbidden")
    with pytest.raises(ContentRefusedError):
        client.generate("refused")
    task_id = emulator.task_ids()[-1]
    assert listener.events[-1] == ("failed", "refused", "ContentRefusedError", task_id)
    listener.events.clear()
    emulator.inject("forbidden")  # the submit itself is refused
    with pytest.raises(ContentRefusedError):
        client.submit("refused at once")
    assert listener.events == [("failed", "refused at once", "ContentRefusedError", None)]
    client.remove_listener(listener)
    client.generate("unobserved")
    assert len(listener.events) == 1


def test_finished_is_told_once_even_with_refresh_and_wait(client: Client) -> None:
    listener = _Listener()
    client.add_listener(listener)
    task = client.submit("a cat")
    task.refresh()
    task.refresh()
    task.wait()
    assert [e[0] for e in listener.events] == ["submitted", "finished"]


def test_listener_errors_are_logged_not_raised(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_submitted(self, task: Task) -> None:
            raise RuntimeError("listener bug 1")

        def on_finished(self, task: Task, result: Result) -> None:
            raise RuntimeError("listener bug 2")

        def replay(self, request: ImageRequest) -> Result | None:
            raise RuntimeError("listener bug 3")

    class OnlySubmitted:  # a listener may define only some methods
        def __init__(self) -> None:
            self.ids: list[str] = []

        def on_submitted(self, task: Task) -> None:
            self.ids.append(task.id)

    client.add_listener(Broken())
    only = OnlySubmitted()
    partial = _Listener()
    client.add_listener(only)
    client.add_listener(partial)
    result = client.generate("a cat")
    assert len(result) == 1
    assert "listener bug 1" in caplog.text and "listener bug 2" in caplog.text
    assert "listener bug 3" in caplog.text
    assert [e[0] for e in partial.events] == ["submitted", "finished"]
    assert only.ids == [result.task_id]


def test_a_slow_listener_does_not_delay_another_tasks_outcome(
    client: Client, wait_until: Callable[..., None]
) -> None:
    """Listeners are called off the poller: while one is stuck on a task's outcome, other
    tasks still finish, and each waiter still returns only once its own outcome was heard."""
    release = threading.Event()
    stuck = threading.Event()
    heard: list[str] = []

    class Slow:
        def on_finished(self, task: Task, result: Result) -> None:
            if task.request.prompt == "slow":
                stuck.set()
                release.wait(30)
            heard.append(task.request.prompt)

    client.add_listener(Slow())
    slow = client.submit("slow")
    outcome: list[Result | BaseException] = []

    def wait_slow() -> None:
        try:
            outcome.append(slow.wait(timeout=30))
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_slow)
    waiter.start()
    try:
        wait_until(stuck.is_set, "the slow listener to start")
        fast = client.generate("fast", timeout=10)  # the poller goes on meanwhile
        assert heard == ["fast"]  # its listeners had handled it when generate() returned
        assert slow.status == "succeeded"  # known, but not told yet:
        with pytest.raises(WaitTimeoutError):
            slow.result()
        assert waiter.is_alive() and not outcome  # ... so its waiter is still waiting
    finally:
        release.set()
        waiter.join(10)
    (slow_result,) = outcome
    assert isinstance(slow_result, Result) and slow_result.task_id == slow.id
    assert heard == ["fast", "slow"]
    assert fast.task_id != slow.id


def test_replay_answers_without_sending(client: Client, emulator: Emulator) -> None:
    first = client.generate("a cat")
    emulator.reset_counters()
    listener = _Listener()
    listener.replay_with = first
    client.add_listener(listener)
    task = client.submit("a cat")
    assert task.done()
    assert task.result() is first
    assert client.generate("a cat") is first
    assert emulator.submissions == 0 and emulator.lookups == 0
    assert listener.events == []  # a replay is not a new submission


# --- asyncio ---------------------------------------------------------------------------


def test_asyncio_wrappers(client: Client, emulator: Emulator,
                          png: Callable[..., bytes]) -> None:
    emulator.set_latency(0.05)

    async def main() -> list[Result]:
        task = await client.asubmit("a cat")
        first = await task
        gen, edited = await asyncio.gather(
            client.agenerate("a dog", count=2),
            client.aedit("make it blue", png()),
        )
        synced = await client.agenerate("a bird", sync=True)
        return [first, gen, edited, synced]

    first, gen, edited, synced = asyncio.run(main())
    assert first.prompt == "a cat"
    assert len(gen) == 2
    assert edited.request.action == "edit"
    assert synced.prompt == "a bird"
    assert emulator.submissions == 4


def test_asyncio_timeout_and_cancellation(client: Client, emulator: Emulator) -> None:
    emulator.set_latency(float("inf"))

    async def main() -> Task:
        with pytest.raises(WaitTimeoutError):
            await client.agenerate("slow", timeout=0.1)
        task = await client.asubmit("slow too")
        waiter = asyncio.ensure_future(task)
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return task

    task = asyncio.run(main())
    assert task.cancelled  # the worker thread was released
