"""The emulator's account limits: a token bucket for submits and a cap on running tasks.

The bucket is tested on a pinned clock; the 429s, their ``Retry-After`` and the counters over
a real socket.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests

from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.emulator.ratelimit import RateLimiter, format_retry_after
from support import TEST_TOKEN

AUTH = {"authorization": f"Bearer {TEST_TOKEN}"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def submit(emu: Emulator, **body: Any) -> requests.Response:
    body.setdefault("action", "generate")
    body.setdefault("prompt", "a white siamese cat")
    body.setdefault("async", True)
    return requests.post(emu.base_url + "/nano-banana/images", json=body, headers=AUTH,
                         timeout=10)


def test_bucket_admits_a_burst_then_one_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_limit=4, burst=3, clock=clock)
    assert [limiter.admit() for _ in range(3)] == [None, None, None]
    refusal = limiter.admit()
    assert refusal is not None and refusal.reason == "rate"
    assert refusal.retry_after == pytest.approx(0.25)
    clock.now += 0.125
    again = limiter.admit()
    assert again is not None and again.retry_after == pytest.approx(0.125)
    clock.now += 0.125
    assert limiter.admit() is None
    clock.now += 10  # a long idle refills only up to the burst
    assert [limiter.admit() for _ in range(4)].count(None) == 3
    assert limiter.refused == 3


def test_burst_defaults_to_one_second_of_the_rate() -> None:
    limiter = RateLimiter(rate_limit=20, clock=Clock())
    assert limiter.burst == 20
    assert [limiter.admit() for _ in range(21)].count(None) == 20
    assert RateLimiter(rate_limit=0.5, clock=Clock()).burst == 1


def test_concurrency_cap_asks_to_wait_for_the_first_task_to_finish() -> None:
    limiter = RateLimiter(max_concurrency=2, clock=Clock())
    assert limiter.admit(1, lambda: 3.0) is None
    refusal = limiter.admit(2, lambda: 3.0)
    assert refusal is not None and refusal.reason == "concurrency"
    assert refusal.retry_after == 3.0
    unknown = limiter.admit(5, lambda: None)
    assert unknown is not None and unknown.retry_after == 1.0


@pytest.mark.parametrize("kwargs", [
    {"rate_limit": 0}, {"rate_limit": -1}, {"rate_limit": float("inf")},
    {"rate_limit": True}, {"burst": 2}, {"rate_limit": 5, "burst": 0.5},
    {"max_concurrency": 0}, {"max_concurrency": 1.5},
])
def test_bad_limits_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)


def test_retry_after_is_fractional_seconds_rounded_up() -> None:
    assert format_retry_after(0.0421) == "0.05"
    assert format_retry_after(0.0) == "0.01"
    assert format_retry_after(2.5) == "2.50"


def test_submits_over_the_rate_get_429_with_retry_after_and_are_not_billed() -> None:
    with Emulator(rate_limit=2, burst=2, latency=0.0) as emu:
        answers = [submit(emu) for _ in range(5)]
        statuses = [a.status_code for a in answers]
        assert statuses[:2] == [200, 200]
        refused = [a for a in answers if a.status_code == 429]
        assert refused, statuses
        for resp in refused:
            body = resp.json()
            assert body["success"] is False
            assert body["error"]["code"] == "too_many_requests"
            assert 0 < float(resp.headers["Retry-After"]) <= 0.5
        assert emu.accepted == statuses.count(200)
        assert emu.rate_limited == len(refused)
        assert emu.submissions == 5
        assert emu.billed_images == statuses.count(200)
        assert len(emu.task_ids()) == statuses.count(200)
        emu.reset_counters()
        assert (emu.accepted, emu.rate_limited) == (0, 0)


def test_running_tasks_cap_refuses_until_one_finishes() -> None:
    with Emulator(max_concurrency=2, latency=float("inf")) as emu:
        assert [submit(emu).status_code for _ in range(2)] == [200, 200]
        refused = submit(emu)
        assert refused.status_code == 429
        assert float(refused.headers["Retry-After"]) == 1.0  # no task has an end in sight
        assert "running at once" in refused.json()["error"]["message"]
        emu.finish_all()
        assert submit(emu).status_code == 200
        assert emu.accepted == 3 and emu.rate_limited == 1
    assert (emu.rate_limit, emu.burst, emu.max_concurrency) == (None, None, 2)


def test_without_limits_nothing_is_refused(emulator: Emulator) -> None:
    assert [submit(emulator).status_code for _ in range(30)] == [200] * 30
    assert emulator.rate_limited == 0 and emulator.accepted == 30


def test_command_line_flags_set_the_limits() -> None:
    code = (
        "import sys\n"
        "from nanobanana_widgets.emulator import __main__ as m\n"
        "from nanobanana_widgets.emulator import server\n"
        "class Stop(Exception): pass\n"
        "def start(self):\n"
        "    print(self.rate_limit, self.burst, self.max_concurrency)\n"
        "    raise SystemExit(0)\n"
        "server.Emulator.start = start\n"
        "m.main(['--rate-limit', '20', '--burst', '5', '--max-concurrency', '100'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["20.0", "5.0", "100"]
    bad = subprocess.run([sys.executable, "-m", "nanobanana_widgets.emulator",
                          "--rate-limit", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "rate_limit must be a positive number" in bad.stderr
