"""What every figure shares: sizes for a full or quick run, the figure record, helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator

TOKEN = "bench-token-not-a-real-one"
"""The bearer token sent to the emulator (which accepts any non-empty token)."""

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is. ``full()`` is the real benchmark, ``quick()`` a smoke run."""

    quick: bool
    grid_latency: float
    grid_cells: int
    loop_latency: float
    loop_cells: int
    delay_tasks: int
    delay_latency: tuple[float, float]
    poll_baseline_interval: float
    poll_baseline_tasks: int
    notebook_images: int
    jpeg_size: tuple[int, int]
    jpeg_repeats: int
    history_records: int
    history_repeats: int
    overhead_repeats: int
    import_repeats: int
    hostile_bytes: int
    bomb_bytes: int
    trickle_deadline: float
    trickle_rounds: int
    session_runs: tuple[int, int] = (10, 200)
    """Figure 15: panel runs after which the session is measured first, and last."""

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            quick=False, grid_latency=5.0, grid_cells=16, loop_latency=1.0, loop_cells=4,
            delay_tasks=100, delay_latency=(1.0, 6.0), poll_baseline_interval=3.0,
            poll_baseline_tasks=16, notebook_images=4, jpeg_size=(6000, 4000), jpeg_repeats=3,
            history_records=10_000, history_repeats=3, overhead_repeats=150, import_repeats=7,
            hostile_bytes=200 * 1024 * 1024, bomb_bytes=1024 * 1024 * 1024,
            trickle_deadline=3.0, trickle_rounds=3,
        )

    @classmethod
    def tiny(cls) -> Sizes:
        return cls(
            quick=True, grid_latency=0.3, grid_cells=4, loop_latency=0.1, loop_cells=2,
            delay_tasks=6, delay_latency=(0.1, 0.4), poll_baseline_interval=0.3,
            poll_baseline_tasks=3, notebook_images=1, jpeg_size=(600, 400), jpeg_repeats=1,
            history_records=120, history_repeats=1, overhead_repeats=5, import_repeats=2,
            hostile_bytes=40 * 1024 * 1024, bomb_bytes=64 * 1024 * 1024,
            trickle_deadline=1.5, trickle_rounds=1,
            session_runs=(2, 4),
        )


@dataclass
class Figure:
    """One row of the results table: the value beside its target and its baseline."""

    number: int
    title: str
    value: str
    target: str
    baseline: str
    met: bool | None
    """``None`` when there is no target to meet (or it could not be measured)."""
    notes: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "n/a"}[self.met]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def seconds(value: float) -> str:
    """A duration for a table cell: ms below one second, s above."""
    if value < 1.0:
        return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def kib(nbytes: float) -> str:
    if nbytes >= 1024 * 1024:
        return f"{nbytes / (1024 * 1024):.2f} MB"
    return f"{nbytes / 1024:.1f} KB"


@contextmanager
def emulator_and_client(latency: float | tuple[float, float] = 0.0, *, seed: int = 0,
                        **client_kwargs: Any) -> Iterator[tuple[Emulator, Client]]:
    """A fresh emulator on loopback and a client with the package's default settings."""
    with Emulator(latency=latency, seed=seed) as emu:
        client = Client(TOKEN, base_url=emu.base_url, **client_kwargs)
        try:
            yield emu, client
        finally:
            client.close()


def concurrently(fn: Callable[[int], T], n: int) -> list[T]:
    """``[fn(0), ..., fn(n-1)]`` run at the same time on ``n`` threads, in order."""
    with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
        return list(pool.map(fn, range(n)))


def vendor_headers(token: str = TOKEN) -> dict[str, str]:
    """The headers of the vendor's documented ``requests`` example."""
    return {
        "accept": "application/json",
        "authorization": f"Bearer {token}",
        "content-type": "application/json",
    }


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds``."""

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
