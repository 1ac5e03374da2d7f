"""What the emulator remembers: tasks and their timing, queued and random faults, counters.

No HTTP here: the endpoints read and change this state under its one lock, the façade
(:class:`~nanobanana_widgets.emulator.Emulator`) exposes it.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

from nanobanana_widgets.emulator.ratelimit import RateLimiter

__all__ = [
    "DEFAULT_FAULT_KINDS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "TASK_FAULTS",
    "EmulatorState",
    "Fault",
    "Latency",
    "Task",
    "new_trace_id",
    "parse_latency",
]

FAULT_KINDS: Final[tuple[str, ...]] = (
    "rate_limit",
    "server_error",
    "forbidden",
    "used_up",
    "unauthorized",
    "slow_headers",
    "reset",
    "malformed_json",
    "html_error",
    "empty_body",
    "task_forbidden",
    "task_error",
    "partial",
    "hiccup",
    "status_word",
    "progress",
)
"""Every fault :meth:`Emulator.inject` knows."""

SHAPES: Final = frozenset({"hiccup", "status_word", "progress"})
"""Kinds that change only how the task's records look while it runs (the vendor SDK's
shapes, API.md): ``hiccup`` shows ``response: {"success": false}`` with no error code and
no ``finished_at`` (a transient hiccup, not a failure); ``status_word`` puts a ``status``
word in the record (``"running"``, over a response that, without it, reads as failed;
``"succeeded"`` once done); ``progress`` a ``progress`` percentage rising to 100. The task
then succeeds as usual."""

TASK_FAULTS: Final = frozenset({"task_forbidden", "task_error", "partial", *SHAPES})
"""Faults that let the request through and spoil (or reshape) the task it makes."""

DEFAULT_FAULT_KINDS: Final[tuple[str, ...]] = (
    "rate_limit",
    "server_error",
    "forbidden",
    "reset",
    "malformed_json",
    "html_error",
    "empty_body",
    "task_forbidden",
    "task_error",
    "partial",
)
"""Faults drawn at random when ``fault_rate`` > 0: every kind that can happen to one images
request on a healthy account (not ``used_up``/``unauthorized``, not the slow ``slow_headers``)."""

ENDPOINTS: Final[tuple[str, ...]] = ("images", "tasks", "files", "any")
"""Where an injected fault can strike."""

MAX_BATCH: Final = 50
"""Most ids one ``retrieve_batch`` may ask for."""

# Fixed identities that make records look like the service's (never a real account).
_API_ID: Final = "a1b2c3d4-0000-4000-8000-000000000000"
_APPLICATION_ID: Final = "e5f6a7b8-0000-4000-8000-000000000001"
_CREDENTIAL_ID: Final = "c9d0e1f2-0000-4000-8000-000000000002"
_USER_ID: Final = "emulator-user"

Latency = float | tuple[float, float]


def new_trace_id() -> str:
    """A fresh trace id, as the service gives every answer."""
    return str(uuid.uuid4())


def parse_latency(latency: Any) -> tuple[float, float]:
    """``latency`` as a ``(low, high)`` pair of non-negative seconds; ``ValueError`` if bad."""
    if isinstance(latency, bool):
        raise ValueError(f"latency must be seconds or a (low, high) pair, not {latency!r}")
    if isinstance(latency, (int, float)):
        low = high = float(latency)
    elif isinstance(latency, (tuple, list)) and len(latency) == 2:
        low, high = (float(v) for v in latency)
    else:
        raise ValueError(f"latency must be seconds or a (low, high) pair, not {latency!r}")
    if math.isnan(low) or math.isnan(high) or low < 0 or high < low:
        raise ValueError(
            f"latency range must satisfy 0 <= low <= high, got ({low}, {high})"
        )
    return low, high


@dataclass
class Fault:
    """One fault waiting for a request: its kind, where it strikes and its timing knobs."""

    kind: str
    endpoint: str
    retry_after: float
    delay: float
    drawn: bool = False  # drawn at random by fault_rate, not injected


@dataclass
class Task:
    """One task: its request, when it finishes and the fault that spoils it, if any."""

    id: str
    record_id: str
    trace_id: str
    request: dict[str, Any]
    created_at: float
    finish_at: float
    fault: str | None
    done: threading.Event = field(default_factory=threading.Event)
    settled: bool = False

    @property
    def count(self) -> int:
        """How many images the request asked for."""
        count = self.request.get("count")
        return count if isinstance(count, int) and not isinstance(count, bool) else 1

    @property
    def succeeded_images(self) -> int:
        """How many images the task yields (and the service bills)."""
        if self.fault in ("task_forbidden", "task_error"):
            return 0
        if self.fault == "partial":
            return 1
        return self.count

    def finished(self, now: float) -> bool:
        """Whether the task's time has come at ``now``."""
        return now >= self.finish_at

    def response(self, base_url: str) -> dict[str, Any]:
        """The finished task's response: a success with ``data`` or a failure."""
        if self.fault == "task_forbidden":
            return {
                "success": False,
                "error": {
                    "code": "forbidden",
                    "message": "The image provider refused this content.",
                },
                "trace_id": self.trace_id,
                "task_id": self.id,
            }
        if self.fault == "task_error":
            return {
                "success": False,
                "error": {"code": "api_error", "message": "Internal server error."},
                "trace_id": self.trace_id,
                "task_id": self.id,
            }
        prompt = self.request.get("prompt", "")
        return {
            "success": True,
            "task_id": self.id,
            "trace_id": self.trace_id,
            "data": [
                {"prompt": prompt, "image_url": f"{base_url}/files/{self.id}-{i}.png"}
                for i in range(self.succeeded_images)
            ],
        }


def _reshape(record: dict[str, Any], task: Task, now: float, finished: bool) -> None:
    """Give ``record`` the look the task's :data:`SHAPES` kind asks for."""
    if task.fault == "hiccup" and not finished:
        record["response"] = {"success": False, "task_id": task.id, "trace_id": task.trace_id}
    elif task.fault == "status_word":
        if finished:
            record["status"] = "succeeded"
        else:
            record["status"] = "running"
            record["response"] = {"success": False, "task_id": task.id,
                                  "error": {"code": "queued", "message": "Still queued."}}
    elif task.fault == "progress":
        span = task.finish_at - task.created_at
        if finished:
            record["progress"] = 100
        elif math.isfinite(span) and span > 0:
            record["progress"] = max(0, min(99, int(100 * (now - task.created_at) / span)))
        else:
            record["progress"] = 0


class EmulatorState:
    """Tasks, faults, counters and latency of one emulator, guarded by ``lock`` (reentrant).

    A task is *pending* until its ``finish_at`` passes; :meth:`settle` then moves it out of
    ``pending`` and bills its images, once. ``stopping`` is set while the emulator stops, so
    waiters hang up instead of answering.
    """

    def __init__(self, latency: Latency, seed: int) -> None:
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.base_url = ""
        """Where the served files live (``http://host:port``), set when the server binds."""
        self.tasks: dict[str, Task] = {}
        self.pending: dict[str, Task] = {}
        self.faults: list[Fault] = []
        self.fault_rate: float = 0.0
        self.fault_kinds: tuple[str, ...] = DEFAULT_FAULT_KINDS
        self.requests_log: list[tuple[str, Any]] = []
        self.submissions = 0
        self.lookups = 0
        self.downloads = 0
        self.billed_images = 0
        self.callbacks = 0
        self.accepted = 0
        """Tasks made (submits accepted) since the counters were last reset."""
        self.limiter = RateLimiter()
        """The account's limits (none unless the emulator is given some)."""
        self._latency = parse_latency(latency)
        self._latency_rng = random.Random(f"latency-{seed}")
        self._fault_rng = random.Random(f"faults-{seed}")

    # --- latency -------------------------------------------------------------------------

    @property
    def latency(self) -> tuple[float, float]:
        """The ``(low, high)`` latency of tasks submitted from now on."""
        with self.lock:
            return self._latency

    def set_latency(self, latency: Latency) -> None:
        """Parse and set the latency of tasks submitted from now on."""
        parsed = parse_latency(latency)
        with self.lock:
            self._latency = parsed

    # --- counters ------------------------------------------------------------------------

    def count_submission(self, path: str | None = None, payload: Any = None) -> None:
        """Count a request to the images endpoints; log ``(path, payload)`` if given a path."""
        with self.lock:
            self.submissions += 1
            if path is not None:
                self.requests_log.append((path, payload))

    def count_lookup(self, path: str, payload: Any) -> None:
        """Count and log a request to the tasks endpoint."""
        with self.lock:
            self.lookups += 1
            self.requests_log.append((path, payload))

    def count_download(self) -> None:
        """Count a ``GET`` of a file."""
        with self.lock:
            self.downloads += 1

    def count_callback(self) -> None:
        """Count a callback POSTed successfully."""
        with self.lock:
            self.callbacks += 1

    def billed(self) -> int:
        """Images of tasks that have succeeded by now."""
        with self.lock:
            self.settle(time.time())
            return self.billed_images

    def pending_count(self) -> int:
        """Tasks not finished by now."""
        with self.lock:
            self.settle(time.time())
            return len(self.pending)

    def reset_counters(self) -> None:
        """Zero every counter and clear ``requests_log`` (tasks and faults stay)."""
        with self.lock:
            self.settle(time.time())
            self.submissions = self.lookups = self.downloads = 0
            self.billed_images = self.callbacks = self.accepted = 0
            self.requests_log.clear()
            self.limiter.reset_counters()

    # --- tasks ---------------------------------------------------------------------------

    def settle(self, now: float) -> None:
        """Move tasks whose time has come out of ``pending`` and bill them."""
        with self.lock:
            for task_id, task in list(self.pending.items()):
                if task.finished(now):
                    del self.pending[task_id]
                    task.settled = True
                    self.billed_images += task.succeeded_images
                    task.done.set()

    def new_task(self, request: dict[str, Any], fault: str | None) -> Task:
        """Record a task for ``request``, finishing after a latency drawn now."""
        now = time.time()
        with self.lock:
            low, high = self._latency
            latency = low if low == high else self._latency_rng.uniform(low, high)
            task = Task(
                id=str(uuid.uuid4()),
                record_id=uuid.uuid4().hex[:24],
                trace_id=new_trace_id(),
                request=request,
                created_at=now,
                finish_at=now + latency,
                fault=fault,
            )
            self.tasks[task.id] = task
            self.pending[task.id] = task
            self.accepted += 1
            self.settle(now)
        return task

    def record(self, task: Task, now: float) -> dict[str, Any]:
        """The task record the tasks endpoint answers with, as of ``now``."""
        record: dict[str, Any] = {
            "_id": task.record_id,
            "id": task.id,
            "api_id": _API_ID,
            "application_id": _APPLICATION_ID,
            "credential_id": _CREDENTIAL_ID,
            "user_id": _USER_ID,
            "type": "images",
            "trace_id": task.trace_id,
            "created_at": round(task.created_at, 3),
            "started_at": round(task.created_at + min(0.01, task.finish_at - task.created_at), 3),
        }
        finished = task.finished(now)
        if finished:
            record["finished_at"] = round(task.finish_at, 3)
            record["elapsed"] = round(task.finish_at - task.created_at, 3)
        record["request"] = task.request
        if finished:
            record["response"] = task.response(self.base_url)
        _reshape(record, task, now, finished)
        return record

    def lookup(self, task_id: str) -> dict[str, Any] | None:
        """The record of ``task_id`` as of now, or ``None`` for an unknown id."""
        now = time.time()
        with self.lock:
            self.settle(now)
            task = self.tasks.get(task_id)
            return self.record(task, now) if task is not None else None

    def lookup_batch(self, ids: list[str]) -> list[dict[str, Any]]:
        """The records of the known ids among ``ids``, in their order, as of now."""
        now = time.time()
        with self.lock:
            self.settle(now)
            return [self.record(self.tasks[i], now) for i in ids if i in self.tasks]

    def finished_task(self, task_id: str, index: int) -> Task | None:
        """The task if it has finished and yielded image ``index``, else ``None``."""
        now = time.time()
        with self.lock:
            self.settle(now)
            task = self.tasks.get(task_id)
            if task is None or not task.finished(now) or index >= task.succeeded_images:
                return None
            return task

    def next_finish_in(self) -> float | None:
        """Seconds until the first pending task finishes (``None``: none is pending)."""
        now = time.time()
        with self.lock:
            self.settle(now)
            ends = [t.finish_at for t in self.pending.values() if math.isfinite(t.finish_at)]
            return max(0.0, min(ends) - now) if ends else None

    def finish_all(self) -> list[Task]:
        """Make every pending task finish now; returns them."""
        now = time.time()
        with self.lock:
            pending = list(self.pending.values())
            for task in pending:
                task.finish_at = min(task.finish_at, now)
            self.settle(now)
        return pending

    def wake_pending(self) -> None:
        """Wake every waiter on a pending task (they see ``stopping`` and hang up)."""
        with self.lock:
            for task in self.pending.values():
                task.done.set()

    def task_ids(self) -> list[str]:
        """Ids of every task made so far, oldest first."""
        with self.lock:
            return list(self.tasks)

    # --- faults --------------------------------------------------------------------------

    def queue_faults(self, fault: Fault, times: int) -> None:
        """Queue ``times`` copies of ``fault`` behind the faults already queued."""
        with self.lock:
            self.faults.extend(Fault(**vars(fault)) for _ in range(times))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self.lock:
            self.faults.clear()

    def queued_faults(self) -> int:
        """How many faults are queued."""
        with self.lock:
            return len(self.faults)

    def take_fault(self, endpoint: str) -> Fault | None:
        """The first queued fault for ``endpoint``, else perhaps a random one, else ``None``."""
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.endpoint in (endpoint, "any"):
                    return self.faults.pop(i)
            if (
                endpoint == "images"
                and self.fault_rate > 0
                and self.fault_kinds
                and self._fault_rng.random() < self.fault_rate
            ):
                kind = self._fault_rng.choice(self.fault_kinds)
                return Fault(kind, "images", retry_after=0.05, delay=0.05, drawn=True)
        return None

    def put_back(self, fault: Fault) -> None:
        """Return an unused injected fault to the front of the queue (random ones vanish)."""
        if fault.drawn:
            return
        with self.lock:
            self.faults.insert(0, fault)
