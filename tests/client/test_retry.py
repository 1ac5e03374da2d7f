"""The retry policy against the emulator's injected faults, over a real socket (its unit
tests, through a fake transport, are in ``test_retry_policy.py``).

A submit is resent only when it certainly did not reach the service (connection refused)
or was refused unbilled (429); lookups are retried freely.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
import requests

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ContentRefusedError,
    MalformedResponseError,
    NoBalanceError,
    PossiblyBilledError,
    RateLimitError,
    ServerError,
)
from support import TEST_TOKEN


@pytest.fixture
def fast(emulator: Emulator) -> Iterator[Client]:
    """A client with tiny backoff, so retries are quick."""
    c = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05, max_retries=4)
    c.backoff_base = 0.01
    yield c
    c.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- refusals that are not retried -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "error", "status", "code"),
    [
        ("unauthorized", AuthenticationError, 401, "invalid_token"),
        ("forbidden", ContentRefusedError, 403, "forbidden"),
        ("used_up", NoBalanceError, 403, "used_up"),
    ],
)
def test_refusals_map_to_their_class_and_are_not_retried(
    fast: Client, emulator: Emulator, kind: str, error: type[Exception], status: int, code: str
) -> None:
    emulator.inject(kind)
    with pytest.raises(error) as info:
        fast.generate("a cat")
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert info.value.code == code  # type: ignore[attr-defined]
    assert emulator.submissions == 1
    assert emulator.task_ids() == []


def test_wrong_token_is_an_authentication_error(emulator: Emulator) -> None:
    with Emulator(tokens={"the-right-one"}) as strict:
        c = Client(TEST_TOKEN, base_url=strict.base_url)
        with pytest.raises(AuthenticationError, match="ACEDATACLOUD_API_TOKEN") as info:
            c.submit("a cat")
        assert TEST_TOKEN not in str(info.value)
        assert strict.submissions == 1
        c.close()


# --- 429 ---------------------------------------------------------------------------------


def test_rate_limit_is_retried_then_succeeds(fast: Client, emulator: Emulator) -> None:
    emulator.inject("rate_limit", retry_after=0.01)
    result = fast.generate("a cat")
    assert len(result) == 1
    assert emulator.submissions == 2
    assert len(emulator.task_ids()) == 1


def test_rate_limit_exhausted(emulator: Emulator) -> None:
    c = Client(TEST_TOKEN, base_url=emulator.base_url, max_retries=2)
    c.backoff_base = 0.01
    emulator.inject("rate_limit", times=5, retry_after=0.02)
    with pytest.raises(RateLimitError) as info:
        c.submit("a cat")
    assert emulator.submissions == 3  # the first attempt and max_retries retries
    assert info.value.retry_after == pytest.approx(0.02)
    assert info.value.status_code == 429
    assert emulator.task_ids() == []
    c.close()


def test_retry_after_is_honoured_and_capped(fast: Client) -> None:
    fast.backoff_base = 0.0
    assert fast._calls.policy.backoff(0, 2.5) == 2.5
    assert fast._calls.policy.backoff(0, 3600.0) == 30.0
    fast.backoff_base = 100.0
    assert fast._calls.policy.backoff(3) == 30.0


# --- submits that may have been billed are never resent ---------------------------------


def test_server_error_on_submit_is_not_resent(fast: Client, emulator: Emulator) -> None:
    emulator.inject("server_error")
    with pytest.raises(ServerError) as info:
        fast.submit("a cat")
    assert emulator.submissions == 1
    assert info.value.status_code == 500
    assert "not sent again" in str(info.value)
    assert "billed" in str(info.value)


def test_reset_on_submit_is_not_resent(fast: Client, emulator: Emulator) -> None:
    emulator.inject("reset")
    with pytest.raises(PossiblyBilledError) as info:
        fast.submit("a cat")
    assert emulator.submissions == 1
    assert isinstance(info.value.__cause__, APIConnectionError)
    assert isinstance(info.value.__cause__.__cause__, requests.exceptions.ConnectionError)
    assert "billed" in str(info.value)


def test_slow_headers_vs_a_short_timeout_is_not_resent(emulator: Emulator) -> None:
    c = Client(TEST_TOKEN, base_url=emulator.base_url, timeout=0.2)
    c.backoff_base = 0.01
    emulator.inject("slow_headers", delay=1.0)
    with pytest.raises(PossiblyBilledError) as info:
        c.submit("a cat")
    assert emulator.submissions == 1
    assert isinstance(info.value.__cause__, APITimeoutError)
    assert isinstance(info.value.__cause__.__cause__, requests.exceptions.ReadTimeout)
    c.close()


def test_malformed_json_on_submit_is_possibly_billed(fast: Client, emulator: Emulator) -> None:
    emulator.inject("malformed_json")
    with pytest.raises(PossiblyBilledError) as info:
        fast.submit("a cat")
    assert emulator.submissions == 1
    assert isinstance(info.value.__cause__, MalformedResponseError)
    assert "not valid JSON" in str(info.value.__cause__)


@pytest.mark.parametrize(("kind", "words"), [("html_error", "HTML page"),
                                             ("empty_body", "empty body")])
def test_non_json_502_is_a_clear_server_error(
    fast: Client, emulator: Emulator, kind: str, words: str
) -> None:
    emulator.inject(kind)
    with pytest.raises(ServerError) as info:
        fast.submit("a cat")
    message = str(info.value)
    assert info.value.status_code == 502
    assert words in message
    assert "not sent again" in message
    assert "<html" not in message
    assert emulator.submissions == 1


def test_listeners_hear_about_a_failed_submit(fast: Client, emulator: Emulator) -> None:
    failures: list[tuple[str, object]] = []

    class Listener:
        def on_failed(self, request: object, error: Exception, task: object) -> None:
            failures.append((type(error).__name__, task))

    fast.add_listener(Listener())
    emulator.inject("reset")
    with pytest.raises(PossiblyBilledError):
        fast.submit("a cat")
    assert failures == [("PossiblyBilledError", None)]


# --- connection refused ------------------------------------------------------------------


def test_connection_refused_is_retried_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="nanobanana_widgets.client")
    port = _free_port()
    c = Client(TEST_TOKEN, base_url=f"http://127.0.0.1:{port}", max_retries=3)
    c.backoff_base = 0.01
    with pytest.raises(APIConnectionError) as info:
        c.submit("a cat")
    assert not isinstance(info.value, PossiblyBilledError)
    assert "nothing was sent" in str(info.value)
    assert "4 attempt" in str(info.value)
    retries = [r for r in caplog.records if "Could not connect" in r.getMessage()]
    assert len(retries) == 3
    c.close()


def test_connection_refused_then_the_service_comes_up() -> None:
    port = _free_port()
    started: list[Emulator] = []

    class StartOnFirstRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Could not connect" in record.getMessage() and not started:
                started.append(Emulator(port=port).start())

    handler = StartOnFirstRetry()
    log = logging.getLogger("nanobanana_widgets.client")
    log.addHandler(handler)
    try:
        c = Client(TEST_TOKEN, base_url=f"http://127.0.0.1:{port}", max_retries=4,
                   poll_interval=0.05)
        c.backoff_base = 0.05
        result = c.generate("a cat")
        assert started, "the first attempt was refused"
        assert started[0].submissions == 1  # the refused attempt never reached anything
        assert len(result) == 1
        c.close()
    finally:
        log.removeHandler(handler)
        for emu in started:
            emu.stop()


# --- lookups are retried freely ------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["server_error", "reset", "malformed_json", "html_error", "empty_body", "rate_limit"]
)
def test_lookups_are_retried_through_faults(fast: Client, emulator: Emulator, kind: str) -> None:
    task = fast.submit("a cat")
    emulator.inject(kind, endpoint="tasks", times=2, retry_after=0.01)
    record = fast.task(task.id)
    assert record.id == task.id
    assert record.status == "succeeded"
    assert emulator.lookups == 3
    assert emulator.submissions == 1


def test_slow_lookup_is_retried(emulator: Emulator) -> None:
    c = Client(TEST_TOKEN, base_url=emulator.base_url, timeout=0.2)
    c.backoff_base = 0.01
    task = c.submit("a cat")
    emulator.inject("slow_headers", endpoint="tasks", delay=1.0)
    assert c.task(task.id).status == "succeeded"
    assert emulator.lookups == 2
    c.close()


def test_lookup_retries_are_bounded(emulator: Emulator) -> None:
    c = Client(TEST_TOKEN, base_url=emulator.base_url, max_retries=1)
    c.backoff_base = 0.01
    task = c.submit("a cat")
    emulator.inject("server_error", endpoint="tasks", times=3)
    with pytest.raises(ServerError):
        c.task(task.id)
    assert emulator.lookups == 2
    c.close()


def test_the_poller_survives_lookup_faults(fast: Client, emulator: Emulator) -> None:
    emulator.set_latency(0.1)
    emulator.inject("server_error", endpoint="tasks", times=2)
    emulator.inject("reset", endpoint="tasks")
    emulator.inject("malformed_json", endpoint="tasks")
    result = fast.generate("a cat")
    assert len(result) == 1
    assert emulator.submissions == 1
    assert emulator.pending_faults == 0


def test_a_refused_lookup_ends_the_wait(emulator: Emulator) -> None:
    c = Client(TEST_TOKEN, base_url=emulator.base_url, poll_interval=0.05)
    task = c.submit("a cat")
    emulator.inject("unauthorized", endpoint="tasks")
    with pytest.raises(AuthenticationError):
        task.wait(timeout=30)
    assert task.wait(timeout=30).task_id == task.id  # the next lookup works again
    c.close()
