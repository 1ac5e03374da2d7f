"""The client against a hostile server on loopback (``tests/hostile.py``): whatever comes
back, a call ends by its deadline with one of the package's errors, a submit that may have
been billed is never resent and is reported with its task id, and no server string keeps
the token, a lone surrogate or a control character.

Each test here failed before issue 11 (a ``RecursionError``, a call that never ended, the
token in a message, ``UnicodeEncodeError`` on save, 10,000 images kept).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hostile import (
    HostileServer,
    answer,
    deflate_bomb,
    endless_chunks,
    huge_json,
    json_body,
    nested_json,
    redirect,
    trickle,
)
from nanobanana_widgets.client import Client
from nanobanana_widgets.service.errors import (
    APIError,
    APITimeoutError,
    BadRequestError,
    MalformedResponseError,
    NanoBananaError,
    PossiblyBilledError,
    ServerError,
)
from nanobanana_widgets.service.types import ImageRequest, Result
from support import TEST_TOKEN, png

IMAGES = "/nano-banana/images"
TASKS = "/nano-banana/tasks"
BOUND = 5.0
"""Generous slack over a deadline: a call must end by then (the server never would)."""


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer(lifetime=90) as srv:
        yield srv


def make_client(server: HostileServer, **kwargs: Any) -> Client:
    kwargs.setdefault("max_retries", 0)
    return Client(TEST_TOKEN, base_url=server.base_url, poll_interval=0.05, **kwargs)


class Failures:
    """A listener keeping what ``on_failed`` received."""

    def __init__(self) -> None:
        self.seen: list[tuple[ImageRequest, NanoBananaError, Any]] = []

    def on_failed(self, request: ImageRequest, error: NanoBananaError, task: Any) -> None:
        self.seen.append((request, error, task))


def timed(fn: Any) -> tuple[BaseException | None, float]:
    t0 = time.monotonic()
    try:
        fn()
    except BaseException as exc:
        return exc, time.monotonic() - t0
    return None, time.monotonic() - t0


# --- class 1: deeply nested JSON ---------------------------------------------------------


def test_a_deeply_nested_submit_answer_is_possibly_billed_with_its_task_id(
        server: HostileServer) -> None:
    body = b'{"success": true, "task_id": "t-deep", "trace_id": "tr-deep", "x": ' \
        + nested_json(100_000) + b"}"
    server.on("POST", IMAGES, answer(200, body))
    failures = Failures()
    with make_client(server) as client:
        client.add_listener(failures)
        with pytest.raises(PossiblyBilledError) as info:
            client.submit("a cat")
    assert info.value.task_id == "t-deep"
    assert info.value.trace_id == "tr-deep"
    assert "nested deeper" in str(info.value.__cause__)
    assert len([r for r in server.requests if r.path == IMAGES]) == 1  # never resent
    # the listeners (the history) hear of it, task id included, to record it as billed
    [(request, error, task)] = failures.seen
    assert request.prompt == "a cat" and task is None
    assert isinstance(error, PossiblyBilledError) and error.task_id == "t-deep"


def test_a_deeply_nested_answer_without_a_task_id_is_still_possibly_billed(
        server: HostileServer) -> None:
    server.on("POST", IMAGES, answer(200, nested_json(100_000)))
    with make_client(server) as client, pytest.raises(PossiblyBilledError) as info:
        client.submit("a cat")
    assert info.value.task_id is None


@pytest.mark.parametrize(("status", "error"), [(500, ServerError), (400, BadRequestError)])
def test_a_deeply_nested_error_answer_gives_the_mapped_error(
        server: HostileServer, status: int, error: type[NanoBananaError]) -> None:
    server.on("POST", IMAGES, answer(status, nested_json(100_000)))
    with make_client(server) as client, pytest.raises(error, match="not JSON"):
        client.submit("a cat")


def test_a_deeply_nested_lookup_is_malformed(server: HostileServer) -> None:
    server.on("POST", TASKS, answer(200, nested_json(100_000)))
    with make_client(server) as client:
        with pytest.raises(MalformedResponseError, match="nested deeper"):
            client.task("t-1")
        with pytest.raises(MalformedResponseError):
            client.tasks(["t-1", "t-2"])


def test_a_record_nested_deep_inside_a_batch_is_malformed(server: HostileServer) -> None:
    body = b'{"items": [{"id": "t-1", "response": ' + nested_json(5_000) + b"}]}"
    server.on("POST", TASKS, answer(200, body))
    with make_client(server) as client, pytest.raises(MalformedResponseError):
        client.tasks(["t-1"])


# --- class 2: a total deadline on every call ----------------------------------------------


def test_a_submit_answered_one_byte_at_a_time_ends_by_its_deadline(
        server: HostileServer) -> None:
    server.on("POST", IMAGES, trickle(json_body({"success": True, "task_id": "t-slow"}),
                                      interval=0.5))
    with make_client(server, timeout=1) as client:
        error, took = timed(lambda: client.submit("a cat"))
    assert isinstance(error, PossiblyBilledError), error
    assert "deadline of 2 s" in str(error)
    assert took < 2 + BOUND
    assert len([r for r in server.requests if r.path == IMAGES]) == 1  # never resent


def test_a_submit_whose_body_trickles_ends_by_its_deadline(server: HostileServer) -> None:
    server.on("POST", IMAGES, trickle(json_body({"success": True, "task_id": "t-slow"}),
                                      interval=0.5, slow_headers=False))
    with make_client(server, timeout=30, deadline=1.5) as client:
        error, took = timed(lambda: client.submit("a cat"))
    assert isinstance(error, PossiblyBilledError), error
    assert took < 1.5 + BOUND


@pytest.mark.parametrize("behaviour", ["slow headers", "slow body", "endless chunks"])
def test_lookups_end_by_their_deadline(server: HostileServer, behaviour: str) -> None:
    record = json_body({"id": "t-1", "response": {}})
    server.on("POST", TASKS, {
        "slow headers": trickle(record, interval=0.5),
        "slow body": trickle(record, interval=0.5, slow_headers=False),
        "endless chunks": endless_chunks(interval=0.1),
    }[behaviour])
    with make_client(server, timeout=1, max_retries=3) as client:
        for call in (lambda: client.task("t-1"), lambda: client.tasks(["t-1"])):
            error, took = timed(call)
            assert isinstance(error, APITimeoutError), error
            assert "deadline" in str(error)
            assert took < 2 + BOUND


def test_a_synchronous_generate_ends_by_its_timeout(server: HostileServer) -> None:
    server.on("POST", IMAGES, trickle(json_body({"success": True, "task_id": "t-sync"}),
                                      interval=0.5))
    with make_client(server) as client:
        error, took = timed(lambda: client.generate("a cat", sync=True, timeout=1.5))
    assert isinstance(error, PossiblyBilledError), error
    assert took < 1.5 + BOUND


def test_the_deadline_is_a_documented_setting(server: HostileServer) -> None:
    with make_client(server, timeout=10) as client:
        assert client.deadline == 20.0
        client.deadline = 3
        assert client.deadline == 3.0
        client.deadline = None
        assert client.deadline == 20.0
        with pytest.raises(ValueError):
            client.deadline = 0
    with pytest.raises(ValueError):
        make_client(server, deadline=float("inf"))


# --- the size of answers ------------------------------------------------------------------


def test_a_huge_lookup_answer_is_refused_without_reading_it_all(server: HostileServer) -> None:
    server.on("POST", TASKS, huge_json(200 * 1024 * 1024))
    with make_client(server, timeout=30) as client:
        error, _took = timed(lambda: client.task("t-1"))
    assert isinstance(error, MalformedResponseError), error
    assert error.code == "response_too_large"


def test_a_huge_submit_answer_is_possibly_billed_with_its_task_id(
        server: HostileServer) -> None:
    server.on("POST", IMAGES, huge_json(200 * 1024 * 1024))
    with make_client(server, timeout=30) as client, pytest.raises(PossiblyBilledError) as info:
        client.submit("a cat")
    assert info.value.task_id == "t-huge"  # read from the first bytes that did arrive


def test_a_declared_huge_answer_is_refused_before_reading(server: HostileServer) -> None:
    server.on("POST", TASKS, huge_json(200 * 1024 * 1024, declare_length=True))
    with make_client(server, timeout=30) as client, pytest.raises(MalformedResponseError):
        client.task("t-1")


def test_a_deflate_bomb_stops_at_the_cap(server: HostileServer) -> None:
    server.on("POST", TASKS, deflate_bomb(256 * 1024 * 1024))
    server.on("POST", IMAGES, deflate_bomb(256 * 1024 * 1024))
    with make_client(server, timeout=30) as client:
        with pytest.raises(MalformedResponseError, match="larger than"):
            client.task("t-1")
        with pytest.raises(PossiblyBilledError) as info:
            client.submit("a cat")
    assert info.value.task_id == "t-bomb"


def test_a_gzip_answer_is_read(server: HostileServer) -> None:
    import gzip

    body = gzip.compress(json_body({"id": "t-1", "response": {}}))
    server.on("POST", TASKS, answer(200, body, headers={"Content-Encoding": "gzip"}))
    with make_client(server) as client:
        assert client.task("t-1").id == "t-1"


def test_a_batch_too_large_is_asked_for_in_halves(server: HostileServer) -> None:
    """A record echoes its request (input images included): a batch answer over the cap is
    split until each part fits, so no task is lost to the size of the others."""

    def behave(c: Any) -> None:
        ids = c.request.json()["ids"]
        pad = "x" * (20 * 1024 * 1024)
        items = [{"id": i, "request": {"image_urls": [pad]}, "response": {}} for i in ids]
        answer(200, json_body({"items": items}))(c)

    server.on("POST", TASKS, behave)
    with make_client(server, timeout=30) as client:
        records = client.tasks(["t-1", "t-2", "t-3"])
    assert [r.id for r in records] == ["t-1", "t-2", "t-3"]


# --- class 6 and 7: what a server says is cleaned where answers are parsed ----------------


def finished_record(task_id: str, prompt: str, url: str, count: int = 1) -> bytes:
    return json_body({
        "id": task_id, "created_at": 1.0, "finished_at": 2.0,
        "request": {"action": "generate", "prompt": "a cat"},
        "response": {"success": True, "task_id": task_id,
                     "data": [{"prompt": prompt, "image_url": url}] * count},
    })


def test_a_lone_surrogate_in_a_prompt_is_replaced_and_the_image_saves(
        server: HostileServer, tmp_path: Path) -> None:
    url = server.url("/img.png")
    server.on("GET", "/img.png", answer(200, png(), content_type="image/png"))
    server.on("POST", IMAGES, answer(200, json_body({"success": True, "task_id": "t-s"})))
    server.on("POST", TASKS, answer(200, finished_record("t-s", "cat \ud800 \x00\u202e", url)))
    with make_client(server) as client:
        result = client.generate("a cat", timeout=20)
    prompt = result.image.prompt
    assert prompt == "cat \ufffd \ufffd\ufffd"
    prompt.encode("utf-8")  # nothing unencodable is left
    [path] = result.save(tmp_path)
    assert path.parent == tmp_path and path.exists()


def test_a_redirect_echoing_the_token_never_shows_it(server: HostileServer) -> None:
    server.on("POST", IMAGES, redirect(f"https://evil.example/?auth=Bearer%20{TEST_TOKEN}"))
    with make_client(server) as client, pytest.raises(APIError) as info:
        client.submit("a cat")
    assert TEST_TOKEN not in str(info.value) and "***" in str(info.value)


def test_a_redirect_with_control_characters_is_shown_cleaned(server: HostileServer) -> None:
    server.on("POST", IMAGES, redirect("https://evil.example/\x1b[31mred"))
    with make_client(server) as client, pytest.raises(APIError) as info:
        client.submit("a cat")
    assert "\x1b" not in str(info.value)


def test_a_server_echoing_the_token_in_prompts_and_errors_is_scrubbed(
        server: HostileServer) -> None:
    server.on("POST", IMAGES, answer(200, json_body({"success": True, "task_id": "t-e"})))
    echoed = f"a cat by {TEST_TOKEN.upper()} (Bearer {TEST_TOKEN})"
    server.on("POST", TASKS, answer(200, finished_record("t-e", echoed, "https://x.test/a.png")))
    with make_client(server) as client:
        result = client.generate("a cat", timeout=20)
        assert TEST_TOKEN.lower() not in result.image.prompt.lower()
        assert result.image.prompt == "a cat by *** (Bearer ***)"
        assert TEST_TOKEN not in repr(result.image.metadata())
        server.on("POST", TASKS, answer(200, json_body({
            "id": "t-f", "finished_at": 2.0, "message": f"no {TEST_TOKEN}",
            "response": {"success": False, "error": {"code": TEST_TOKEN,
                                                     "message": f"bad {TEST_TOKEN}"}}})))
        record = client.task("t-f")
    error = record.error()
    assert error is not None
    assert TEST_TOKEN not in f"{error} {error.code} {record.raw}"


# --- more images than asked for -----------------------------------------------------------


def test_at_most_the_requested_count_of_images_is_kept(
        server: HostileServer, caplog: pytest.LogCaptureFixture) -> None:
    server.on("POST", IMAGES, answer(200, json_body({"success": True, "task_id": "t-many"})))
    server.on("POST", TASKS, answer(200, finished_record(
        "t-many", "a cat", "https://cdn.example/x.png", count=10_000)))
    with make_client(server) as client, caplog.at_level(logging.WARNING):
        result = client.generate("a cat", timeout=20)
    assert isinstance(result, Result)
    assert len(result.images) == 1
    assert result.surplus_images == 9_999
    assert "surplus_images=9999" in repr(result)
    assert any("10000 images where 1 were asked for" in r.getMessage() for r in caplog.records)


def test_a_submit_answer_that_already_holds_images_is_a_finished_task(
        server: HostileServer) -> None:
    server.on("POST", IMAGES, answer(200, json_body({
        "success": True, "task_id": "t-now",
        "data": [{"prompt": "a cat", "image_url": "https://cdn.example/x.png"}]})))
    with make_client(server) as client:
        task = client.submit("a cat")
        assert task.done()
        assert task.result().image.url == "https://cdn.example/x.png"
    assert not [r for r in server.requests if r.path == TASKS]


def test_credentials_in_the_base_url_are_masked(server: HostileServer) -> None:
    base = server.base_url.replace("http://", "http://alice:s3cret@")
    server.on("POST", TASKS, trickle(b"{}", interval=0.5))
    with Client(TEST_TOKEN, base_url=base, timeout=0.5, max_retries=0) as client:
        assert "s3cret" not in repr(client)
        with pytest.raises(APITimeoutError) as info:
            client.task("t-1")
    assert "s3cret" not in str(info.value) and "***@" in str(info.value)


def test_a_lookup_takes_its_own_deadline(server: HostileServer) -> None:
    """What ``History.resume(timeout=...)`` needs: a lookup bounded by the time it has left."""
    server.on("POST", TASKS, trickle(b'{"items": []}', interval=0.5))
    with make_client(server, timeout=60) as client:
        for call in (lambda: client.task("t-1", deadline=1), lambda: client.tasks(
                [f"t-{i}" for i in range(120)], deadline=1)):
            error, took = timed(call)
            assert isinstance(error, APITimeoutError), error
            assert took < 1 + BOUND
        with pytest.raises(ValueError):
            client.tasks(["t-1"], deadline=-1)
