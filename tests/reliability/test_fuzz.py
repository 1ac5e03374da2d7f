"""Fuzzing with hypothesis: whatever a server answers, and whatever bytes are passed as an
image, the package raises only its own errors (``NanoBananaError`` subclasses).

Answers are served over a real socket by a small scripted loopback server: random bytes,
random JSON, and JSON shaped like the protocol with random values in every field.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from nanobanana_widgets.client import Client
from nanobanana_widgets.images import download, load_image, thumbnail, to_image_url
from nanobanana_widgets.service.errors import NanoBananaError
from nanobanana_widgets.service.models import validate_request
from nanobanana_widgets.service.types import Result, TaskRecord

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


# --- the scripted server -----------------------------------------------------------------


class Script:
    """The answer each endpoint gives next: (status, content type, body)."""

    answers: ClassVar[dict[str, tuple[int, str | None, bytes]]] = {}
    lock = threading.Lock()

    @classmethod
    def set(cls, endpoint: str, status: int, ctype: str | None, body: bytes) -> None:
        with cls.lock:
            cls.answers[endpoint] = (status, ctype, body)

    @classmethod
    def get(cls, endpoint: str) -> tuple[int, str | None, bytes]:
        with cls.lock:
            return cls.answers.get(endpoint, (404, "application/json", b"{}"))


class ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, endpoint: str) -> None:
        status, ctype, body = Script.get(endpoint)
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer("tasks" if self.path.endswith("/tasks") else "images")

    def do_GET(self) -> None:
        self._answer("file")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up on a broken answer is expected here


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), ScriptedHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[Client]:
    c = Client("fuzz-token", base_url=server, timeout=5, max_retries=0, poll_interval=0.01,
               wait_timeout=0.1)
    c.backoff_base = 0.001
    yield c
    c.close()


# --- strategies --------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats()
           | st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The documented kind of value, or anything else at all."""
    return value | json_values


image_entry = st.fixed_dictionaries(
    {}, optional={"image_url": maybe(st.sampled_from(["https://cdn.example/x.png", "", "x"])),
                  "prompt": maybe(st.text(max_size=10))})
images_answer = st.fixed_dictionaries({}, optional={
    "success": maybe(st.booleans()),
    "task_id": maybe(st.text(min_size=1, max_size=12)),
    "trace_id": maybe(st.text(max_size=12)),
    "data": maybe(st.lists(maybe(image_entry), max_size=3)),
    "error": maybe(st.fixed_dictionaries({}, optional={"code": maybe(st.text(max_size=12)),
                                                       "message": maybe(st.text(max_size=20))})),
})
task_record = st.fixed_dictionaries({}, optional={
    "id": maybe(st.sampled_from(["t1", "t2", ""])),
    "task_id": maybe(st.just("t1")),
    "trace_id": maybe(st.text(max_size=8)),
    "created_at": maybe(st.floats(0, 2e9)),
    "started_at": maybe(st.floats(0, 2e9)),
    "finished_at": maybe(st.floats(0, 2e9)),
    "elapsed": maybe(st.floats()),
    "state": maybe(st.sampled_from(["succeeded", "failed", "pending", "running", "done"])),
    "status": maybe(st.sampled_from(["success", "error", "queued"])),
    "request": maybe(st.fixed_dictionaries({}, optional={
        "action": maybe(st.sampled_from(["generate", "edit"])),
        "prompt": maybe(st.text(max_size=10)),
        "model": maybe(st.sampled_from(["nano-banana", "nano-banana-pro"])),
        "count": maybe(st.integers(1, 4)),
        "aspect_ratio": maybe(st.sampled_from(["1:1", "16:9"])),
        "image_urls": maybe(st.lists(st.text(max_size=10), max_size=2)),
        "async": maybe(st.booleans()),
    })),
    "response": maybe(images_answer),
})
batch_answer = st.fixed_dictionaries({}, optional={
    "items": maybe(st.lists(maybe(task_record), max_size=3)),
    "count": json_values,
    "success": maybe(st.booleans()),
})


def body_of(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bodies: protocol-shaped JSON, any JSON, broken JSON, or raw bytes."""
    as_json = (shaped | json_values).map(lambda v: json.dumps(v).encode())
    cut = (shaped.map(lambda v: json.dumps(v).encode())
           .flatmap(lambda b: st.integers(0, max(0, len(b) - 1)).map(lambda n: b[:n])))
    return as_json | cut | st.binary(max_size=200)


statuses = st.sampled_from([200, 200, 200, 201, 204, 301, 302, 400, 401, 403, 404, 413, 429,
                            500, 502, 503]) | st.integers(200, 599)
ctypes = st.sampled_from(["application/json", "text/html", "text/plain", None,
                          "application/json; charset=latin-1"])


# --- the service's answers ---------------------------------------------------------------


@FUZZ
@given(status=statuses, ctype=ctypes, body=body_of(images_answer), sync=st.booleans(),
       lookup=body_of(task_record | batch_answer))
def test_any_answer_to_a_submit_gives_a_task_or_our_error(
    client: Client, status: int, ctype: str | None, body: bytes, sync: bool, lookup: bytes,
) -> None:
    Script.set("images", status, ctype, body)
    Script.set("tasks", 200, "application/json", lookup)
    try:
        if sync:
            result = client.generate("a fuzzed cat", sync=True, timeout=5)
            assert isinstance(result, Result)
        else:
            task = client.submit("a fuzzed cat")
            assert isinstance(task.id, str) and task.id
            outcome = client.wait_all([task], timeout=0.05, return_exceptions=True)[0]
            assert isinstance(outcome, (Result, NanoBananaError))
    except NanoBananaError:
        pass


def _finished(request: Any) -> bytes:
    return json.dumps({"id": "t1", "finished_at": 1.0, "request": request,
                       "response": {"data": [{"image_url": "https://cdn.example/x.png"}]}}
                      ).encode()


@FUZZ
@given(status=statuses, ctype=ctypes, body=body_of(task_record | batch_answer))
@example(status=200, ctype="application/json", body=_finished({"count": "two"}))
@example(status=200, ctype="application/json", body=_finished({"count": [1]}))
@example(status=200, ctype="application/json", body=_finished({"image_urls": 5}))
def test_any_answer_to_a_lookup_gives_records_or_our_error(
    client: Client, status: int, ctype: str | None, body: bytes,
) -> None:
    Script.set("tasks", status, ctype, body)
    records: list[TaskRecord] = []
    for lookup in (lambda: [client.task("t1")], lambda: client.tasks(["t1", "t2"])):
        with contextlib.suppress(NanoBananaError):
            records += lookup()
    for record in records:
        assert isinstance(record, TaskRecord)
        try:
            record.error()
            result = record.to_result()
            assert isinstance(result, Result)
        except NanoBananaError:
            pass
    outcomes = client.wait_all(["t1"], timeout=0.03, return_exceptions=True)
    assert all(isinstance(o, (Result, NanoBananaError)) for o in outcomes)


@FUZZ
@given(status=statuses, ctype=ctypes | st.just("image/png"), body=st.binary(max_size=300))
def test_any_answer_to_an_image_download_gives_bytes_or_our_error(
    server: str, status: int, ctype: str | None, body: bytes,
) -> None:
    Script.set("file", status, ctype, body)
    try:
        data = download(f"{server}/files/x.png", timeout=5)
        assert isinstance(data, bytes)
    except NanoBananaError:
        pass


# --- random bytes as image inputs --------------------------------------------------------


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGBA" if fmt in ("PNG", "WEBP", "GIF") else "RGB", (24, 16), "orange")
    img.save(buf, fmt)
    return buf.getvalue()


VALID = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")}


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid file of some format, with bytes flipped, cut short or spliced."""
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, len(data) - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data += draw(st.binary(max_size=40))
    return bytes(data)


@FUZZ
@given(data=st.binary(max_size=400) | damaged_images())
def test_random_bytes_as_an_image_give_a_data_uri_or_our_error(data: bytes) -> None:
    for convert in (to_image_url, thumbnail, load_image):
        try:
            out = convert(data)
        except NanoBananaError:
            continue
        if convert is to_image_url:
            assert isinstance(out, str)
            validate_request(action="edit", prompt="x", image_urls=[out])


@FUZZ
@given(text=st.text(max_size=60) | st.sampled_from([
    "data:image/png;base64,", "data:image/png;base64,!!!!", "data:text/plain,hi",
    "data:image/png,rawbytes", "file:///etc/passwd", "ftp://x/y.png", "javascript:alert(1)",
    "http://", "https://[::1", "~/nope.png", "/dev/null", "/", "\x00"]))
def test_random_strings_as_an_image_give_a_url_or_our_error(text: str) -> None:
    try:
        out = to_image_url(text)
    except NanoBananaError:
        return
    # Whatever the normaliser lets through, the request validation accepts as sent.
    validate_request(action="edit", prompt="x", image_urls=[out])
