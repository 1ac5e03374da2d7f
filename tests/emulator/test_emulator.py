"""The emulator speaks API.md's protocol over a real socket (plain ``requests``, no client)."""

from __future__ import annotations

import http.client
import io
import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from PIL import Image

from nanobanana_widgets.emulator import FAULT_KINDS, Emulator, is_loopback_host
from nanobanana_widgets.service.models import MAX_IMAGE_BYTES
from support import TEST_TOKEN, png, png_data_uri

AUTH = {"authorization": f"Bearer {TEST_TOKEN}"}
RECORD_KEYS = [
    "_id", "id", "api_id", "application_id", "credential_id", "user_id", "type", "trace_id",
    "created_at", "started_at", "finished_at", "elapsed", "request", "response",
]


def post(emu: Emulator, path: str, body: Any, **kwargs: Any) -> requests.Response:
    headers = kwargs.pop("headers", AUTH)
    return requests.post(emu.base_url + path, json=body, headers=headers, timeout=10, **kwargs)


def images(emu: Emulator, **body: Any) -> requests.Response:
    body.setdefault("action", "generate")
    body.setdefault("prompt", "a white siamese cat")
    return post(emu, "/nano-banana/images", body)


def retrieve(emu: Emulator, task_id: str) -> requests.Response:
    return post(emu, "/nano-banana/tasks", {"action": "retrieve", "id": task_id})


def assert_error(resp: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"success", "error", "trace_id"}
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    uuid.UUID(body["trace_id"])
    return body


def decoded(resp: requests.Response) -> Image.Image:
    """The PNG of an answer, checked to be one."""
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "image/png"
    img = Image.open(io.BytesIO(resp.content))
    img.load()
    assert img.format == "PNG"
    return img


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.bodies.put(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, queue.Queue[Any]]]:
    """A loopback server that collects the JSON bodies POSTed to it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    bodies: queue.Queue[Any] = queue.Queue()
    server.bodies = bodies  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?x=1", bodies
    server.shutdown()
    server.server_close()
    thread.join()


# --- endpoints, transport ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nano-banana/images", "/gemini/images"])
def test_sync_generate_on_both_paths(emulator: Emulator, path: str) -> None:
    resp = post(emulator, path, {"action": "generate", "prompt": "a red fox", "count": 2})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"success", "task_id", "trace_id", "data"}
    assert body["success"] is True
    uuid.UUID(body["trace_id"])
    assert [d["prompt"] for d in body["data"]] == ["a red fox", "a red fox"]
    urls = [d["image_url"] for d in body["data"]]
    assert urls == [f"{emulator.base_url}/files/{body['task_id']}-{i}.png" for i in range(2)]
    for url in urls:
        decoded(requests.get(url, timeout=10))


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/nano-banana/nothing"), ("GET", "/nano-banana/images"), ("POST", "/"),
     ("GET", "/files/"), ("DELETE", "/nano-banana/tasks")],
)
def test_unknown_endpoints_are_404_no_api(emulator: Emulator, method: str, path: str) -> None:
    resp = requests.request(method, emulator.base_url + path, json={}, headers=AUTH, timeout=10)
    body = assert_error(resp, 404, "no_api")
    assert path in body["error"]["message"] or method in body["error"]["message"]


def test_every_error_has_a_fresh_trace_id(emulator: Emulator) -> None:
    a = assert_error(post(emulator, "/nope", {}), 404, "no_api")
    b = assert_error(post(emulator, "/nope", {}), 404, "no_api")
    assert a["trace_id"] != b["trace_id"]


def test_keep_alive_and_content_length(emulator: Emulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    try:
        for path in ("/nano-banana/images", "/nope"):
            conn.request("POST", path, body=json.dumps({"action": "generate", "prompt": "x"}),
                         headers={**AUTH, "content-type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.version == 11
            assert int(resp.headers["Content-Length"]) == len(data)
            assert not resp.will_close
            sock = conn.sock
            assert sock is not None
        conn.request("GET", json.loads(data)["trace_id"] and "/files/missing-0.png")
        resp = conn.getresponse()
        assert resp.status == 404 and conn.sock is sock  # the same connection all along
        resp.read()
    finally:
        conn.close()


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer"}, {"authorization": "Bearer   "},
     {"authorization": f"Basic {TEST_TOKEN}"}, {"authorization": TEST_TOKEN}],
)
def test_missing_or_malformed_token_is_401(emulator: Emulator, headers: dict[str, str]) -> None:
    body = {"action": "generate", "prompt": "x"}
    assert_error(post(emulator, "/nano-banana/images", body, headers=headers), 401,
                 "invalid_token")
    assert_error(post(emulator, "/nano-banana/tasks", {"action": "retrieve", "id": "x"},
                      headers=headers), 401, "invalid_token")
    assert emulator.billed_images == 0


def test_token_set_accepts_only_its_tokens() -> None:
    with Emulator(tokens={"good"}) as emu:
        bad = post(emu, "/nano-banana/images", {"action": "generate", "prompt": "x"},
                   headers={"authorization": "Bearer other"})
        assert_error(bad, 401, "invalid_token")
        good = post(emu, "/nano-banana/images", {"action": "generate", "prompt": "x"},
                    headers={"authorization": "Bearer good"})
        assert good.status_code == 200


def test_token_never_logged_or_stored(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nanobanana_widgets.emulator")
    emulator.inject("server_error")
    images(emulator)
    images(emulator, **{"async": True})
    post(emulator, "/nano-banana/tasks", {"action": "retrieve", "id": "x"})
    assert TEST_TOKEN not in caplog.text
    assert TEST_TOKEN not in repr(emulator.requests_log)
    assert TEST_TOKEN not in repr(emulator)


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"action": "paint", "prompt": "x"}, "action"),
        ({"prompt": "x"}, "action"),
        ({"action": "generate"}, "prompt"),
        ({"action": "generate", "prompt": "   "}, "prompt"),
        ({"action": "generate", "prompt": "x", "model": "dall-e"}, "model"),
        ({"action": "generate", "prompt": "x", "count": 0}, "count"),
        ({"action": "generate", "prompt": "x", "count": 5}, "count"),
        ({"action": "generate", "prompt": "x", "count": "2"}, "count"),
        ({"action": "generate", "prompt": "x", "aspect_ratio": "5:4"}, "aspect_ratio"),
        ({"action": "generate", "prompt": "x", "resolution": "2K"}, "resolution"),
        ({"action": "generate", "prompt": "x", "model": "nano-banana-pro", "resolution": "8K"},
         "resolution"),
        ({"action": "edit", "prompt": "x"}, "image_urls"),
        ({"action": "edit", "prompt": "x", "image_urls": []}, "image_urls"),
        ({"action": "edit", "prompt": "x", "image_urls": ["ftp://a/b.png"]}, "image_urls"),
        ({"action": "edit", "prompt": "x", "image_urls": "https://a/b.png"}, "image_urls"),
        ({"action": "edit", "prompt": "x", "image_urls": ["https://a/b.png"] * 17}, "image_urls"),
        ({"action": "generate", "prompt": "x", "async": "yes"}, "async"),
        ({"action": "generate", "prompt": "x", "async": 1}, "async"),
        ({"action": "generate", "prompt": "x", "callback_url": "mailto:a@b"}, "callback_url"),
    ],
)
def test_invalid_parameters_are_400_bad_request(
    emulator: Emulator, body: dict[str, Any], needle: str
) -> None:
    err = assert_error(post(emulator, "/nano-banana/images", body), 400, "bad_request")
    assert needle in err["error"]["message"]
    assert emulator.task_ids() == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_invalid_json_is_400(emulator: Emulator, raw: bytes) -> None:
    resp = requests.post(emulator.base_url + "/nano-banana/images", data=raw,
                         headers={**AUTH, "content-type": "application/json"}, timeout=10)
    assert_error(resp, 400, "bad_request")
    resp = requests.post(emulator.base_url + "/nano-banana/tasks", data=raw,
                         headers={**AUTH, "content-type": "application/json"}, timeout=10)
    assert_error(resp, 400, "bad_request")


def test_too_large_data_uri_is_413(emulator: Emulator) -> None:
    body = {"action": "edit", "prompt": "x",
            "image_urls": [png_data_uri(b"\0" * (MAX_IMAGE_BYTES + 16))]}
    assert_error(post(emulator, "/nano-banana/images", body), 413, "request_too_large")
    # just under the limit is accepted (the emulator then draws a placeholder for it)
    body["image_urls"] = [png_data_uri(b"\0" * (MAX_IMAGE_BYTES - 16))]
    assert post(emulator, "/nano-banana/images", body).status_code == 200


def test_oversized_body_is_413(emulator: Emulator) -> None:
    raw = b"{" + b" " * (64 * 1024 * 1024) + b"}"
    resp = requests.post(emulator.base_url + "/nano-banana/images", data=raw,
                         headers={**AUTH, "content-type": "application/json"}, timeout=30)
    assert_error(resp, 413, "request_too_large")
    assert emulator.submissions == 1
    assert images(emulator).status_code == 200  # the server is still fine


# --- modes and tasks ---------------------------------------------------------------------


def test_sync_waits_for_latency_and_records_timing() -> None:
    with Emulator(latency=0.05) as emu:
        resp = images(emu, prompt="sync")
        assert resp.status_code == 200
        task_id = resp.json()["task_id"]
        record = retrieve(emu, task_id).json()
        assert list(record) == RECORD_KEYS
        assert record["elapsed"] == pytest.approx(0.05, abs=0.002)
        assert record["finished_at"] >= record["started_at"] >= record["created_at"]
        assert record["response"] == resp.json()
        assert record["request"] == {"action": "generate", "prompt": "sync"}


def test_async_pending_then_finished_records() -> None:
    with Emulator(latency=float("inf")) as emu:
        resp = images(emu, prompt="later", count=2, **{"async": True})
        assert resp.status_code == 200
        accepted = resp.json()
        assert set(accepted) == {"success", "task_id", "trace_id"}
        assert accepted["success"] is True
        task_id = accepted["task_id"]

        pending = retrieve(emu, task_id).json()
        assert list(pending) == [k for k in RECORD_KEYS
                                 if k not in ("finished_at", "elapsed", "response")]
        assert pending["id"] == task_id and pending["type"] == "images"
        assert pending["trace_id"] == accepted["trace_id"]
        assert pending["request"] == {"action": "generate", "prompt": "later", "count": 2,
                                      "async": True}
        assert emu.pending == 1 and emu.billed_images == 0
        # a file of a pending task does not exist yet
        assert requests.get(f"{emu.base_url}/files/{task_id}-0.png", timeout=10).status_code == 404

        emu.finish_all()
        done = retrieve(emu, task_id).json()
        assert list(done) == RECORD_KEYS
        assert done["response"]["success"] is True
        assert len(done["response"]["data"]) == 2
        assert emu.billed_images == 2 and emu.pending == 0


def test_retrieve_batch_shapes(emulator: Emulator) -> None:
    emulator.set_latency(float("inf"))
    slow = images(emulator, **{"async": True}).json()["task_id"]
    emulator.set_latency(0.0)
    fast = images(emulator, **{"async": True}).json()["task_id"]
    resp = post(emulator, "/nano-banana/tasks",
                {"action": "retrieve_batch", "ids": [fast, "unknown-id", slow]})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"items", "count"}
    assert body["count"] == 2
    assert [item["id"] for item in body["items"]] == [fast, slow]
    assert "finished_at" in body["items"][0] and "finished_at" not in body["items"][1]
    assert "response" not in body["items"][1]

    empty = post(emulator, "/nano-banana/tasks", {"action": "retrieve_batch", "ids": []}).json()
    assert empty == {"items": [], "count": 0}
    fifty = post(emulator, "/nano-banana/tasks",
                 {"action": "retrieve_batch", "ids": [fast] * 50})
    assert fifty.json()["count"] == 50


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"action": "retrieve", "id": "no-such-task"}, 404, "not_found"),
        ({"action": "retrieve"}, 400, "bad_request"),
        ({"action": "retrieve", "id": 7}, 400, "bad_request"),
        ({"action": "retrieve_batch", "ids": ["a"] * 51}, 400, "bad_request"),
        ({"action": "retrieve_batch", "ids": "a"}, 400, "bad_request"),
        ({"action": "retrieve_batch", "ids": [1]}, 400, "bad_request"),
        ({"action": "delete", "id": "a"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
    ],
)
def test_tasks_endpoint_errors(emulator: Emulator, body: dict[str, Any], status: int,
                               code: str) -> None:
    assert_error(post(emulator, "/nano-banana/tasks", body), status, code)


def test_latency_range_is_seeded_and_set_latency_affects_new_tasks(
    wait_until: Callable[..., None],
) -> None:
    def elapsed(seed: int) -> list[float]:
        with Emulator(latency=(0.0, 0.02), seed=seed) as emu:
            ids = [images(emu, **{"async": True}).json()["task_id"] for _ in range(4)]
            # let them all finish by themselves: elapsed is the drawn latency
            wait_until(lambda: emu.pending == 0, "the tasks to finish by themselves")
            items = post(emu, "/nano-banana/tasks", {"action": "retrieve_batch", "ids": ids})
            return [item["elapsed"] for item in items.json()["items"]]

    assert elapsed(1) == elapsed(1)
    assert elapsed(1) != elapsed(2)
    with Emulator(latency=float("inf")) as emu:
        assert emu.latency == float("inf")
        a = images(emu, **{"async": True}).json()["task_id"]
        emu.set_latency(0)
        b = images(emu, **{"async": True}).json()["task_id"]
        assert "finished_at" not in retrieve(emu, a).json()
        assert "finished_at" in retrieve(emu, b).json()
    with pytest.raises(ValueError, match="latency"):
        Emulator(latency=(2.0, 1.0))
    with pytest.raises(ValueError, match="latency"):
        Emulator(latency=-1)


def test_callback_is_posted_to_loopback_receiver(
    receiver: tuple[str, queue.Queue[Any]], wait_until: Callable[..., None],
) -> None:
    url, bodies = receiver
    with Emulator(latency=0.02) as emu:
        resp = images(emu, prompt="call me", callback_url=url)
        accepted = resp.json()
        assert set(accepted) == {"success", "task_id", "trace_id"}
        posted = bodies.get(timeout=5)
        assert posted["success"] is True
        assert posted["task_id"] == accepted["task_id"]
        assert posted["trace_id"] == accepted["trace_id"]
        assert [d["prompt"] for d in posted["data"]] == ["call me"]
        assert posted == retrieve(emu, accepted["task_id"]).json()["response"]
        decoded(requests.get(posted["data"][0]["image_url"], timeout=10))

        # a task that never finishes by itself calls back when finished by hand
        emu.set_latency(float("inf"))
        task_id = images(emu, callback_url=url).json()["task_id"]
        assert bodies.empty()
        emu.finish_all()
        assert bodies.get(timeout=5)["task_id"] == task_id
        # counted once the receiver has answered
        wait_until(lambda: emu.callbacks >= 2, "both callbacks to be counted", timeout=5)
        assert emu.callbacks == 2


def test_callback_to_failed_task_posts_the_failure(
    receiver: tuple[str, queue.Queue[Any]],
) -> None:
    url, bodies = receiver
    with Emulator() as emu:
        emu.inject("task_forbidden")
        task_id = images(emu, callback_url=url).json()["task_id"]
        posted = bodies.get(timeout=5)
        assert posted["success"] is False and posted["task_id"] == task_id
        assert posted["error"]["code"] == "forbidden"


def test_callback_to_remote_host_is_skipped(
    caplog: pytest.LogCaptureFixture, wait_until: Callable[..., None],
) -> None:
    caplog.set_level(logging.WARNING, logger="nanobanana_widgets.emulator")
    with Emulator(latency=float("inf")) as emu:
        images(emu, callback_url="http://callbacks.example.com/hook")
        emu.finish_all()
        wait_until(lambda: "not a loopback host" in caplog.text, "the skipped callback's warning",
                   timeout=5)
    assert "callbacks.example.com" in caplog.text
    assert "not a loopback host" in caplog.text
    assert emu.callbacks == 0


def test_stop_cancels_callbacks_and_hangs_up_sync_waiters(
    receiver: tuple[str, queue.Queue[Any]], wait_until: Callable[..., None],
) -> None:
    url, bodies = receiver
    emu = Emulator(latency=float("inf")).start()
    images(emu, callback_url=url)
    emu.set_latency(30.0)
    images(emu, callback_url=url)  # a timer is pending
    errors: list[BaseException] = []

    def sync_call() -> None:
        try:
            images(emu)
        except requests.ConnectionError as exc:
            errors.append(exc)

    caller = threading.Thread(target=sync_call)
    caller.start()
    wait_until(lambda: emu.submissions >= 3, "the synchronous call to arrive")
    emu.stop()
    caller.join(5)
    assert not caller.is_alive()
    assert len(errors) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("nanobanana-emulator")]
    assert bodies.empty()
    emu.stop()  # a second stop is harmless


def test_is_loopback_host() -> None:
    for host in ("127.0.0.1", "127.5.6.7", "localhost", "::1", "[::1]", "LOCALHOST"):
        assert is_loopback_host(host), host
    for host in ("10.0.0.1", "example.com", "0.0.0.0", "", None, "192.168.1.1"):
        assert not is_loopback_host(host), host


# --- images ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "aspect_ratio", "resolution", "size"),
    [
        ("nano-banana", None, None, (1024, 1024)),
        ("nano-banana", "16:9", None, (1024, 576)),
        ("nano-banana", "9:16", "1K", (576, 1024)),
        ("nano-banana-2", "3:2", "1K", (1024, 683)),
        ("nano-banana-pro", "3:4", "2K", (1536, 2048)),
        ("nano-banana-2.1", "4:3", "2K", (2048, 1536)),
    ],
)
def test_generated_image_sizes(emulator: Emulator, model: str, aspect_ratio: str | None,
                               resolution: str | None, size: tuple[int, int]) -> None:
    body: dict[str, Any] = {"model": model}
    if aspect_ratio:
        body["aspect_ratio"] = aspect_ratio
    if resolution:
        body["resolution"] = resolution
    url = images(emulator, **body).json()["data"][0]["image_url"]
    assert decoded(requests.get(url, timeout=10)).size == size


def _image_bytes(emu: Emulator, **body: Any) -> list[bytes]:
    data = images(emu, **body).json()["data"]
    return [requests.get(d["image_url"], timeout=10).content for d in data]


def test_images_are_deterministic_and_depend_on_the_request(emulator: Emulator) -> None:
    a1, a2 = _image_bytes(emulator, prompt="a lighthouse", count=2)
    again = _image_bytes(emulator, prompt="a lighthouse", count=2)
    assert [a1, a2] == again  # same request, same bytes (a new task, rendered anew)
    assert a1 != a2  # the images of one request differ
    assert _image_bytes(emulator, prompt="a lighthouse at night", count=2)[0] != a1
    assert _image_bytes(emulator, prompt="a lighthouse", count=2, model="nano-banana-2")[0] != a1
    # cached: fetching the same file twice gives the same bytes
    url = images(emulator, prompt="a lighthouse").json()["data"][0]["image_url"]
    assert requests.get(url, timeout=10).content == requests.get(url, timeout=10).content


def test_generated_image_is_not_blank(emulator: Emulator) -> None:
    url = images(emulator, prompt="colourful").json()["data"][0]["image_url"]
    img = decoded(requests.get(url, timeout=10)).convert("RGB")
    colours = img.resize((64, 64)).getcolors(64 * 64)
    assert colours is not None and len(colours) > 20


def _red_share(img: Image.Image) -> float:
    raw = img.convert("RGB").resize((100, 100)).tobytes()
    pixels = zip(raw[0::3], raw[1::3], raw[2::3], strict=True)
    red = sum(1 for r, g, b in pixels if r > 200 and g < 60 and b < 60)
    return red / (100 * 100)


def test_edit_shows_its_input(emulator: Emulator) -> None:
    red = png_data_uri(png((255, 0, 0), (300, 200)))
    resp = images(emulator, action="edit", prompt="make it pop", image_urls=[red])
    out = decoded(requests.get(resp.json()["data"][0]["image_url"], timeout=10))
    assert out.size == (1024, 683)  # 3:2, the input's ratio
    assert _red_share(out) > 0.6
    generated = images(emulator, prompt="make it pop").json()["data"][0]["image_url"]
    assert _red_share(decoded(requests.get(generated, timeout=10))) < 0.2


def test_edit_default_ratio_and_inputs_from_own_files(emulator: Emulator) -> None:
    tall = png_data_uri(png((0, 0, 255), (900, 1600)))
    out = decoded(requests.get(images(emulator, action="edit", prompt="x",
                                  image_urls=[tall]).json()["data"][0]["image_url"],
                           timeout=10))
    assert out.size == (576, 1024)

    red = png_data_uri(png((255, 0, 0), (64, 64)))
    first = images(emulator, action="edit", prompt="a", image_urls=[red],
                   aspect_ratio="16:9").json()["data"][0]["image_url"]
    second = images(emulator, action="edit", prompt="b",
                    image_urls=[first]).json()["data"][0]["image_url"]
    out = decoded(requests.get(second, timeout=10))
    assert out.size == (1024, 576)  # the ratio of the emulator's own input file
    assert _red_share(out) > 0.5
    # an explicit ratio wins, and foreign URLs become placeholder tiles (no network)
    resp = images(emulator, action="edit", prompt="c", aspect_ratio="1:1",
                  image_urls=["https://cdn.example.com/cat.png", red])
    out = decoded(requests.get(resp.json()["data"][0]["image_url"], timeout=10))
    assert out.size == (1024, 1024)
    assert 0.2 < _red_share(out) < 0.6


def test_file_errors(emulator: Emulator) -> None:
    task_id = images(emulator).json()["task_id"]
    for path in (f"/files/{task_id}-1.png", "/files/nope-0.png", f"/files/{task_id}.png"):
        assert_error(requests.get(emulator.base_url + path, timeout=10), 404, "not_found")
    head = requests.head(f"{emulator.base_url}/files/{task_id}-0.png", timeout=10)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) > 1000
    assert emulator.downloads == 3


# --- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("rate_limit", 429, "too_many_requests"),
        ("server_error", 500, "api_error"),
        ("forbidden", 403, "forbidden"),
        ("used_up", 403, "used_up"),
        ("unauthorized", 401, "invalid_token"),
    ],
)
def test_error_faults(emulator: Emulator, kind: str, status: int, code: str) -> None:
    emulator.inject(kind, retry_after=2.5)
    resp = images(emulator)
    assert_error(resp, status, code)
    if kind == "rate_limit":
        assert resp.headers["Retry-After"] == "2.5"
    assert emulator.task_ids() == []
    assert images(emulator).status_code == 200  # consumed: the next request is served
    assert emulator.submissions == 2 and emulator.billed_images == 1


def test_slow_headers_then_normal_answer(emulator: Emulator) -> None:
    emulator.inject("slow_headers", delay=2.0)
    with pytest.raises(requests.ReadTimeout):
        requests.post(emulator.base_url + "/nano-banana/images", headers=AUTH, timeout=(5, 0.2),
                      json={"action": "generate", "prompt": "x"})
    emulator.inject("slow_headers", delay=0.05)
    assert images(emulator).status_code == 200


def test_reset_drops_the_connection(emulator: Emulator) -> None:
    emulator.inject("reset")
    with pytest.raises(requests.ConnectionError):
        images(emulator)
    assert emulator.submissions == 1
    assert emulator.task_ids() == []
    assert images(emulator).status_code == 200


def test_malformed_html_and_empty_faults(emulator: Emulator) -> None:
    emulator.inject("malformed_json")
    emulator.inject("html_error")
    emulator.inject("empty_body")
    bad = images(emulator)
    assert bad.status_code == 200 and bad.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        bad.json()
    html = images(emulator)
    assert html.status_code == 502 and html.headers["Content-Type"] == "text/html"
    assert "<html>" in html.text
    empty = images(emulator)
    assert empty.status_code == 502 and empty.content == b""
    assert empty.headers["Content-Length"] == "0"
    assert emulator.submissions == 3 and emulator.task_ids() == []


@pytest.mark.parametrize(("kind", "code", "status"),
                         [("task_forbidden", "forbidden", 403), ("task_error", "api_error", 500)])
def test_task_faults(emulator: Emulator, kind: str, code: str, status: int) -> None:
    emulator.inject(kind)
    task_id = images(emulator, **{"async": True}).json()["task_id"]
    record = retrieve(emulator, task_id).json()
    assert record["finished_at"] is not None
    response = record["response"]
    assert set(response) == {"success", "error", "trace_id", "task_id"}
    assert response["success"] is False and response["error"]["code"] == code
    assert response["task_id"] == task_id
    assert emulator.billed_images == 0

    emulator.inject(kind)
    sync = images(emulator)
    assert sync.status_code == status
    assert sync.json()["error"]["code"] == code and sync.json()["task_id"]
    assert emulator.billed_images == 0 and len(emulator.task_ids()) == 2


def test_partial_fault(emulator: Emulator) -> None:
    emulator.inject("partial")
    body = images(emulator, count=3).json()
    assert len(body["data"]) == 1
    assert emulator.billed_images == 1
    missing = f"{emulator.base_url}/files/{body['task_id']}-1.png"
    assert requests.get(missing, timeout=10).status_code == 404
    assert len(images(emulator, count=3).json()["data"]) == 3
    assert emulator.billed_images == 4


def test_faults_are_fifo_and_per_endpoint(emulator: Emulator) -> None:
    emulator.inject("rate_limit", times=2)
    emulator.inject("server_error")
    emulator.inject("server_error", endpoint="tasks")
    emulator.inject("html_error", endpoint="files")
    assert emulator.pending_faults == 5
    task_id = None
    statuses = []
    for _ in range(4):
        resp = images(emulator)
        statuses.append(resp.status_code)
        if resp.ok:
            task_id = resp.json()["task_id"]
    assert statuses == [429, 429, 500, 200]
    assert task_id is not None
    assert retrieve(emulator, task_id).status_code == 500
    assert retrieve(emulator, task_id).status_code == 200
    url = f"{emulator.base_url}/files/{task_id}-0.png"
    assert requests.get(url, timeout=10).status_code == 502
    assert requests.get(url, timeout=10).status_code == 200
    emulator.inject("used_up", endpoint="any")
    assert retrieve(emulator, task_id).status_code == 403
    assert emulator.pending_faults == 0


def test_task_fault_waits_for_a_valid_request(emulator: Emulator) -> None:
    emulator.inject("task_error")
    assert images(emulator, count=9).status_code == 400
    assert emulator.pending_faults == 1
    assert images(emulator).status_code == 500
    emulator.inject("partial", times=3)
    emulator.clear_faults()
    assert emulator.pending_faults == 0


def test_inject_rejects_unknown_names(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        emulator.inject("explode")
    with pytest.raises(ValueError, match="endpoint"):
        emulator.inject("reset", endpoint="elsewhere")
    with pytest.raises(ValueError, match="times"):
        emulator.inject("reset", times=0)
    assert set(FAULT_KINDS) >= {"rate_limit", "reset", "partial", "slow_headers"}


def test_random_faults_are_seeded() -> None:
    def statuses(seed: int) -> list[int]:
        with Emulator(seed=seed) as emu:
            emu.fault_rate = 0.5
            emu.fault_kinds = ("server_error", "rate_limit", "task_error")
            return [images(emu).status_code for _ in range(24)]

    first = statuses(3)
    assert first == statuses(3)
    assert 200 in first and set(first) - {200}
    assert set(first) <= {200, 429, 500}
    with Emulator() as emu:
        emu.fault_rate = 1.0
        emu.fault_kinds = ("server_error",)
        assert {images(emu).status_code for _ in range(5)} == {500}
        assert retrieve(emu, "x").status_code == 404  # random faults only hit images


# --- counters ----------------------------------------------------------------------------


def test_counters_and_requests_log(emulator: Emulator) -> None:
    emulator.inject("server_error")
    images(emulator)  # faulted
    post(emulator, "/nano-banana/images", {"action": "nope", "prompt": "x"})  # invalid
    post(emulator, "/gemini/images", {"action": "generate", "prompt": "y"}, headers={})  # 401
    ok = images(emulator, count=2).json()
    retrieve(emulator, ok["task_id"])
    post(emulator, "/nano-banana/tasks", {"action": "retrieve_batch", "ids": [ok["task_id"]]})
    requests.get(ok["data"][0]["image_url"], timeout=10)
    assert (emulator.submissions, emulator.lookups, emulator.downloads,
            emulator.billed_images) == (4, 2, 1, 2)
    paths = [path for path, _ in emulator.requests_log]
    assert paths == ["/nano-banana/images"] * 2 + ["/gemini/images", "/nano-banana/images"] + [
        "/nano-banana/tasks"] * 2
    assert emulator.requests_log[3][1] == {"action": "generate", "prompt": "a white siamese cat",
                                           "count": 2}
    emulator.reset_counters()
    assert (emulator.submissions, emulator.lookups, emulator.downloads,
            emulator.billed_images) == (0, 0, 0, 0)
    assert emulator.requests_log == []


def test_counters_from_many_threads(emulator: Emulator) -> None:
    def work() -> None:
        with requests.Session() as s:
            for _ in range(5):
                s.post(emulator.base_url + "/nano-banana/images", headers=AUTH, timeout=10,
                       json={"action": "generate", "prompt": "t", "async": True})

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert emulator.submissions == 30
    assert emulator.billed_images == 30
    assert len(set(emulator.task_ids())) == 30


# --- CLI ---------------------------------------------------------------------------------


def test_cli_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanobanana_widgets.emulator", "--port", "0", "--latency",
         "0.01,0.02", "--seed", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        prefix = "Nano Banana emulator listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        base_url = line.split(" on ", 1)[1]
        resp = requests.post(base_url + "/nano-banana/images", headers=AUTH, timeout=10,
                             json={"action": "generate", "prompt": "from the shell"})
        assert resp.status_code == 200
        decoded(requests.get(resp.json()["data"][0]["image_url"], timeout=10))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_rejects_bad_latency() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nanobanana_widgets.emulator", "--latency", "soon"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert "latency" in proc.stderr
