"""The pacing (AIMD) on a pinned clock: it starts small, grows, backs off once per 429 event,
holds for Retry-After, and settles near a token bucket's limit with few 429s."""

from __future__ import annotations

import heapq

import pytest

from nanobanana_widgets.emulator.ratelimit import RateLimiter, format_retry_after
from nanobanana_widgets.jobs import AimdSettings, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_starts_small_and_grows_while_submits_succeed() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    assert pacer.rate == AimdSettings().start_rate
    assert pacer.try_take() == 0.0
    assert pacer.try_take() == pytest.approx(1 / pacer.rate)  # spaced, nothing taken
    pacer.accepted()
    for _ in range(3):
        clock.now += AimdSettings().doubling
        pacer.accepted()
    assert pacer.slow_start and pacer.rate == pytest.approx(8 * AimdSettings().start_rate)


def test_a_429_halves_nothing_twice_and_holds_for_retry_after() -> None:
    clock = Clock()
    pacer = Pacer(AimdSettings(start_rate=10, decrease=0.5), clock=clock)
    clock.now = 5.0
    pacer.rate_limited(sent_at=4.9, retry_after=2.0)
    assert pacer.rate == 5 and not pacer.slow_start and pacer.decreases == 1
    assert pacer.try_take() == pytest.approx(2.0)  # held until 7.0
    pacer.rate_limited(sent_at=4.95, retry_after=0.5)  # sent before the decrease: same event
    assert pacer.rate == 5 and pacer.decreases == 1 and pacer.rate_limited_count == 2
    clock.now = 7.0
    assert pacer.try_take() == 0.0
    pacer.rate_limited(sent_at=7.0, retry_after=None)  # a new event; no header: 1 s
    assert pacer.rate == 2.5 and pacer.held_until == pytest.approx(8.0)


def test_additive_increase_after_the_first_429_scaled_to_the_limit_found() -> None:
    clock = Clock()
    pacer = Pacer(AimdSettings(start_rate=20, increase=0.1, decrease=0.75), clock=clock)
    pacer.rate_limited(0.0, 0.0)
    assert pacer.rate == 15
    pacer.accepted()
    for _ in range(10):  # one second of accepted submits: +10 % of 20/s
        clock.now += 0.1
        pacer.accepted()
    assert pacer.rate == pytest.approx(17.0)


def test_acquire_stops_when_asked() -> None:
    pacer = Pacer(AimdSettings(start_rate=0.001), clock=Clock())
    assert pacer.acquire(lambda: False)
    assert not pacer.acquire(lambda: True)


def simulate(rate: float, burst: float, n: int = 1000, rtt: float = 0.005
             ) -> tuple[float, float, list[tuple[float, float]]]:
    """Submit ``n`` rows through a pacer against a token bucket (simulated time): the
    throughput over the limit, the 429s per accepted submit, and (send, hold) pairs."""
    clock = Clock()
    bucket = RateLimiter(rate_limit=rate, burst=burst, clock=clock)
    pacer = Pacer(clock=clock)
    answers: list[tuple[float, float, float | None]] = []
    accepted = refused = 0
    last = 0.0
    sends: list[tuple[float, float]] = []
    while accepted < n:
        wait = pacer.try_take(clock.now)
        if answers and answers[0][0] <= clock.now + wait:
            at, sent, retry_after = heapq.heappop(answers)
            clock.now = max(clock.now, at)
            if retry_after is None:
                pacer.accepted(sent)
                accepted += 1
                last = at
            else:
                pacer.rate_limited(sent, retry_after)
                refused += 1
            continue
        clock.now += wait
        if wait > 0:
            continue
        sends.append((clock.now, pacer.held_until))
        refusal = bucket.admit()
        heapq.heappush(answers, (clock.now + rtt, clock.now, None if refusal is None else
                                 float(format_retry_after(refusal.retry_after))))
    return n / last / rate, refused / n, sends


@pytest.mark.parametrize(("rate", "burst"), [(20, 20), (20, 5), (5, 5), (100, 100), (50, 10)])
def test_settles_near_a_token_buckets_limit_without_a_storm(rate: float, burst: float) -> None:
    throughput, per_accepted, sends = simulate(rate, burst)
    assert throughput >= 0.9, throughput
    assert per_accepted <= 0.1, per_accepted
    assert all(at >= held for at, held in sends)  # never sent while held by Retry-After
