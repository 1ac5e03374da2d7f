"""The billing-safe retry policy, fast: the pure policy of ``service/retry.py``, then the
client's submits and lookups through an injected fake transport (no socket).

The emulator-based tests of the same rules, over a real socket, are in ``test_retry.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from nanobanana_widgets.client import Client, Response, TransportError
from nanobanana_widgets.client.calls import ServiceCalls
from nanobanana_widgets.client.credentials import Credentials
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    MalformedResponseError,
    PossiblyBilledError,
    RateLimitError,
    ServerError,
)
from nanobanana_widgets.service.retry import (
    DOWNLOAD_RETRY,
    RETRYABLE,
    Failure,
    RetryPolicy,
    failure_for_status,
    parse_retry_after,
)
from support import TEST_TOKEN

BASE = "https://api.example.test"

# --- the pure policy ---------------------------------------------------------------------


def test_backoff_is_exponential_jittered_and_capped() -> None:
    low = RetryPolicy(rand=lambda: 0.0)
    high = RetryPolicy(rand=lambda: 0.999999)
    assert [low.backoff(n) for n in range(4)] == [0.25, 0.5, 1.0, 2.0]
    assert [round(high.backoff(n), 3) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert low.backoff(20) == 30.0  # each wait is capped


def test_retry_after_is_honoured_and_capped_per_wait() -> None:
    policy = RetryPolicy(rand=lambda: 0.0)
    assert policy.backoff(0, retry_after=7.0) == 7.0
    assert policy.backoff(0, retry_after=3600.0) == 30.0
    assert policy.backoff(3, retry_after=0.1) == 2.0  # never shorter than the backoff


def test_attempts_are_bounded() -> None:
    policy = RetryPolicy(max_retries=2)
    assert policy.next_wait("lookup", "server_error", 0) is not None
    assert policy.next_wait("lookup", "server_error", 1) is not None
    assert policy.next_wait("lookup", "server_error", 2) is None
    assert RetryPolicy(max_retries=0).next_wait("submit", "not_sent", 0) is None


def test_an_overall_deadline_ends_the_retries() -> None:
    assert DOWNLOAD_RETRY.next_wait("download", "broken", 0, time_left=5.0) is not None
    assert DOWNLOAD_RETRY.next_wait("download", "broken", 0, time_left=0.0) is None


@pytest.mark.parametrize(("call", "retried"), [
    ("submit", {"not_sent", "rate_limited"}),
    ("lookup", {"not_sent", "tls", "timeout", "broken", "rate_limited", "server_error",
                "malformed"}),
    ("download", {"not_sent", "tls", "broken", "server_error"}),
])
def test_what_each_call_may_retry(call: Any, retried: set[str]) -> None:
    every: tuple[Failure, ...] = ("not_sent", "tls", "timeout", "broken", "rate_limited",
                                  "server_error", "malformed", "refused")
    policy = RetryPolicy()
    assert {f for f in every if policy.may_retry(call, f)} == retried
    assert RETRYABLE[call] == retried


def test_downloads_keep_their_own_numbers() -> None:
    """Two retries, about 0.2 s then 0.6 s apart (±25 %), as before the policy was shared."""
    assert DOWNLOAD_RETRY.max_retries == 2
    for rand, scale in ((lambda: 0.0, 0.75), (lambda: 0.5, 1.0)):
        policy = RetryPolicy(max_retries=2, backoff_base=0.2, backoff_factor=3.0,
                             jitter=(0.75, 1.25), rand=rand)
        assert policy == DOWNLOAD_RETRY  # the jitter source is not part of the policy
        assert policy.backoff(0) == pytest.approx(0.2 * scale)
        assert policy.backoff(1) == pytest.approx(0.6 * scale)


def test_statuses_map_to_failures() -> None:
    assert failure_for_status(200) is None
    assert failure_for_status(202) is None
    assert failure_for_status(429) == "rate_limited"
    assert failure_for_status(500) == failure_for_status(503) == "server_error"
    assert failure_for_status(302) == failure_for_status(401) == "refused"


def test_retry_after_values() -> None:
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = "Wed, 21 Oct 2015 07:28:10 GMT"
    now = 1445412480.0  # 07:28:00 that day
    assert parse_retry_after(date, now=now) == pytest.approx(10.0)
    assert parse_retry_after(date, now=now + 60) == 0.0


# --- a fake transport below the client ----------------------------------------------------


@dataclass
class Sent:
    """One request the fake transport received."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    timeout: tuple[float, float]
    fresh_connection: bool
    deadline: float = 0.0
    at: float = field(default_factory=time.monotonic)


class FakeTransport:
    """Answers each ``post`` with the next scripted step: a Response, or an exception."""

    def __init__(self, *steps: Response | BaseException) -> None:
        self.steps = list(steps)
        self.sent: list[Sent] = []
        self.closed = False

    def post(self, url: str, body: bytes, *, headers: Mapping[str, str],
             timeout: tuple[float, float], deadline: float,
             fresh_connection: bool = False) -> Response:
        self.sent.append(Sent(url, json.loads(body), dict(headers), timeout, fresh_connection,
                              deadline))
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def close(self) -> None:
        self.closed = True


def answer(status: int, body: Any, **headers: str) -> Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return Response(status, {"content-type": "application/json",
                             **{k.replace("_", "-"): v for k, v in headers.items()}},
                    text.encode())


def accepted(task_id: str = "t-1") -> Response:
    return answer(200, {"success": True, "task_id": task_id, "trace_id": "tr-1"})


def record(task_id: str = "t-1") -> Response:
    return answer(200, {"id": task_id, "trace_id": "tr-1", "created_at": 1.0,
                        "request": {"prompt": "a cat"}})


def refusal(status: int, code: str, **headers: str) -> Response:
    return answer(status, {"success": False, "trace_id": "tr-9",
                           "error": {"code": code, "message": f"refused ({code})"}}, **headers)


def no_answer(failure: Failure, cause: BaseException, *, timed_out: bool = False
              ) -> TransportError:
    err = TransportError(failure, timed_out=timed_out, detail=type(cause).__name__)
    err.__cause__ = cause
    return err


def refused() -> TransportError:
    return no_answer("not_sent", ConnectionRefusedError("refused"))


def read_timeout() -> TransportError:
    return no_answer("timeout", TimeoutError("read timed out"), timed_out=True)


def reset() -> TransportError:
    return no_answer("broken", ConnectionResetError("reset by peer"))


@pytest.fixture
def fake() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def offline(fake: FakeTransport) -> Iterator[Client]:
    """A client on the fake transport (no emulator, no socket), with tiny backoff."""
    c = Client(TEST_TOKEN, base_url=BASE, transport=fake, max_retries=4)
    c.backoff_base = 0.001
    yield c
    c.close()


def calls_with(fake: FakeTransport, waits: list[float], **policy: Any) -> ServiceCalls:
    """The client's protocol calls on ``fake``, recording its waits instead of sleeping."""
    return ServiceCalls(fake, Credentials(TEST_TOKEN, BASE), policy=RetryPolicy(**policy),
                        timeout=60.0, sleep=waits.append)


# --- submits: never resent once they may have been billed ------------------------------


def test_a_submit_that_timed_out_after_sending_is_not_resent(offline: Client,
                                                             fake: FakeTransport) -> None:
    fake.steps = [read_timeout(), accepted()]
    with pytest.raises(PossiblyBilledError, match="billed") as info:
        offline.submit("a cat")
    assert len(fake.sent) == 1
    assert "read timeout" in str(info.value)
    assert isinstance(info.value.__cause__, APITimeoutError)
    assert isinstance(info.value.__cause__.__cause__, TimeoutError)


def test_a_submit_whose_connection_broke_after_sending_is_not_resent(
    offline: Client, fake: FakeTransport
) -> None:
    fake.steps = [reset(), accepted()]
    with pytest.raises(PossiblyBilledError, match="connection broke") as info:
        offline.submit("a cat")
    assert len(fake.sent) == 1
    assert type(info.value.__cause__) is APIConnectionError
    assert isinstance(info.value.__cause__.__cause__, ConnectionResetError)


def test_a_refused_connection_is_retried(offline: Client, fake: FakeTransport) -> None:
    fake.steps = [refused(), refused(), accepted("t-7")]
    task = offline.submit("a cat")
    assert task.id == "t-7"
    assert len(fake.sent) == 3
    assert all(s.url == BASE + "/nano-banana/images" for s in fake.sent)
    assert all(s.body["prompt"] == "a cat" for s in fake.sent)


def test_refused_connections_are_retried_up_to_max_retries(fake: FakeTransport) -> None:
    fake.steps = [refused() for _ in range(3)]
    with Client(TEST_TOKEN, base_url=BASE, transport=fake, max_retries=2) as c:
        c.backoff_base = 0.001
        with pytest.raises(APIConnectionError, match="nothing was sent") as info:
            c.submit("a cat")
    assert not isinstance(info.value, PossiblyBilledError)
    assert "3 attempt" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert len(fake.sent) == 3


def test_a_connect_timeout_was_never_sent(offline: Client, fake: FakeTransport) -> None:
    offline.max_retries = 1
    fake.steps = [no_answer("not_sent", TimeoutError("connect"), timed_out=True)] * 2
    with pytest.raises(APITimeoutError, match="nothing was sent"):
        offline.submit("a cat")
    assert len(fake.sent) == 2


def test_a_tls_failure_is_not_retried_on_submit(offline: Client, fake: FakeTransport) -> None:
    fake.steps = [no_answer("tls", OSError("certificate verify failed")), accepted()]
    with pytest.raises(APIConnectionError, match="TLS") as info:
        offline.submit("a cat")
    assert not isinstance(info.value, PossiblyBilledError)
    assert len(fake.sent) == 1


def test_a_429_with_retry_after_is_retried_and_honours_it(fake: FakeTransport) -> None:
    waits: list[float] = []
    fake.steps = [refusal(429, "too_many_requests", retry_after="7"), accepted("t-2")]
    body = calls_with(fake, waits, backoff_base=0.001).submit({"prompt": "a cat"},
                                                               read_timeout=60.0)
    assert body["task_id"] == "t-2"
    assert waits == [7.0]
    assert len(fake.sent) == 2


def test_a_long_retry_after_is_capped(fake: FakeTransport) -> None:
    waits: list[float] = []
    fake.steps = [refusal(429, "too_many_requests", retry_after="3600"), accepted()]
    calls_with(fake, waits).submit({"prompt": "a cat"}, read_timeout=60.0)
    assert waits == [30.0]


def test_the_client_really_waits_for_retry_after(offline: Client, fake: FakeTransport) -> None:
    fake.steps = [refusal(429, "too_many_requests", retry_after="0.2"), accepted()]
    offline.submit("a cat")
    first, second = fake.sent
    assert second.at - first.at >= 0.19  # the 0.2 s of Retry-After (float rounding aside)


def test_rate_limits_are_retried_up_to_max_retries(offline: Client, fake: FakeTransport) -> None:
    fake.steps = [refusal(429, "too_many_requests", retry_after="0.001") for _ in range(5)]
    with pytest.raises(RateLimitError, match="Gave up after 5 attempts") as info:
        offline.submit("a cat")
    assert info.value.retry_after == 0.001
    assert len(fake.sent) == 5


def test_a_5xx_on_submit_is_not_resent(offline: Client, fake: FakeTransport) -> None:
    fake.steps = [refusal(502, "api_error"), accepted()]
    with pytest.raises(ServerError, match="not sent again") as info:
        offline.submit("a cat")
    assert info.value.status_code == 502
    assert len(fake.sent) == 1


def test_a_malformed_acceptance_is_possibly_billed(offline: Client,
                                                    fake: FakeTransport) -> None:
    fake.steps = [answer(200, '{"success": true, "task_id": "t-5", "trace_id": "tr-5", oops')]
    with pytest.raises(PossiblyBilledError) as info:
        offline.submit("a cat")
    assert info.value.task_id == "t-5"  # read from the broken body, to look it up later
    assert info.value.trace_id == "tr-5"
    assert isinstance(info.value.__cause__, MalformedResponseError)
    assert len(fake.sent) == 1


def test_refusals_are_not_retried_and_scrub_the_token(offline: Client,
                                                      fake: FakeTransport) -> None:
    echo = answer(401, {"success": False, "error": {
        "code": "invalid_token", "message": f"bad token {TEST_TOKEN}"}})
    fake.steps = [echo]
    with pytest.raises(AuthenticationError) as info:
        offline.submit("a cat")
    assert TEST_TOKEN not in str(info.value) and "***" in str(info.value)
    assert len(fake.sent) == 1


def test_submits_ask_for_a_fresh_connection_and_lookups_do_not(offline: Client,
                                                                 fake: FakeTransport) -> None:
    fake.steps = [accepted(), record()]
    offline.submit("a cat")
    offline.task("t-1")
    submit, lookup = fake.sent
    assert (submit.fresh_connection, lookup.fresh_connection) == (True, False)
    assert lookup.url == BASE + "/nano-banana/tasks"
    assert submit.headers["authorization"] == lookup.headers["authorization"] == (
        f"Bearer {TEST_TOKEN}")
    assert submit.timeout == (10.0, 60.0)


# --- lookups: free, so retried through transient failures ---------------------------------


TRANSIENT: dict[str, Any] = {
    "5xx": lambda: refusal(503, "api_error"),
    "429": lambda: refusal(429, "too_many_requests", retry_after="0.001"),
    "timeout": read_timeout,
    "reset": reset,
    "refused": refused,
    "malformed body": lambda: answer(200, "<html>bad gateway</html>"),
    "empty body": lambda: answer(502, ""),
}


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_lookups_are_retried_through_transient_failures(offline: Client, fake: FakeTransport,
                                                        kind: str) -> None:
    fake.steps = [TRANSIENT[kind](), TRANSIENT[kind](), record("t-3")]
    assert offline.task("t-3").id == "t-3"
    assert len(fake.sent) == 3


@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_lookup_retries_stop_at_max_retries(fake: FakeTransport, kind: str) -> None:
    fake.steps = [TRANSIENT[kind]() for _ in range(3)]
    with Client(TEST_TOKEN, base_url=BASE, transport=fake, max_retries=2) as c:
        c.backoff_base = 0.001
        with pytest.raises((APIConnectionError, ServerError, RateLimitError,
                            MalformedResponseError)):
            c.task("t-3")
    assert len(fake.sent) == 3


def test_a_batch_lookup_without_items_is_malformed_and_retried(offline: Client,
                                                                fake: FakeTransport) -> None:
    fake.steps = [answer(200, {"count": 0}), answer(200, {"items": [], "count": 0})]
    assert offline.tasks(["t-1"]) == []
    assert len(fake.sent) == 2


def test_a_refused_lookup_is_final(offline: Client, fake: FakeTransport) -> None:
    fake.steps = [refusal(401, "invalid_token"), record()]
    with pytest.raises(AuthenticationError):
        offline.task("t-1")
    assert len(fake.sent) == 1


def test_closing_the_client_ends_a_retry_wait(fake: FakeTransport,
                                              wait_until: Callable[..., None]) -> None:
    fake.steps = [refusal(429, "too_many_requests", retry_after="20"), accepted()]
    c = Client(TEST_TOKEN, base_url=BASE, transport=fake)
    out: list[BaseException] = []

    def submit() -> None:
        try:
            c.submit("a cat")
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=submit)
    thread.start()
    wait_until(lambda: fake.sent, "the first submit")
    c.close()
    thread.join(10)
    assert not thread.is_alive()
    assert type(out[0]).__name__ == "CancelledError"
    assert len(fake.sent) == 1
    assert not fake.closed  # a transport given to the client stays the caller's to close
