"""Making an A/B test's images, without widgets: its requests sent, then waited for together.

:class:`ABRunner` sends each arm's requests (``count`` up to 4) from a background thread,
then waits for all of them through the client's one batched poller (``client.wait_all``).
Progress and the end are reported through callbacks; ``cancel()`` stops sending and
waiting (the service has no cancel: requests already sent may still run and be billed;
the history records them either way).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nanobanana_widgets.service.errors import CancelledError, NanoBananaError, describe_error
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.widgets.tournament.arms import ABPlan

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Progress, Task

__all__ = ["ABRunner", "Outcomes"]

_log = logging.getLogger(__name__)


@dataclass
class Outcomes:
    """What the requests gave: per arm label, each request's result or error, in order."""

    by_arm: dict[str, list[Result | NanoBananaError]] = field(default_factory=dict)
    sent: int = 0
    """Requests the service accepted (they may be billed)."""

    def errors(self) -> list[NanoBananaError]:
        """Every request that ended in an error."""
        return [o for outs in self.by_arm.values() for o in outs
                if isinstance(o, NanoBananaError)]


class ABRunner:
    """Runs an A/B test's requests once.

    ``client()`` gives the client when the run starts; ``on_progress(done, total,
    seconds)`` reports requests finished; ``on_end(outcomes)`` is called once, when every
    request has ended or the run was cancelled. Callbacks run in the runner's thread and in
    the client's poller: they must not block.
    """

    def __init__(self, plan: ABPlan, *, client: Callable[[], Client],
                 on_progress: Callable[[int, int, float], object],
                 on_end: Callable[[Outcomes], object]) -> None:
        self.plan = plan
        self._client = client
        self._on_progress = on_progress
        self._on_end = on_end
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._tasks: list[Task] = []
        self._done: set[str] = set()
        self._started = 0.0
        self._total = sum(len(arm.counts) for arm in plan.arms)

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel.is_set()

    def start(self) -> None:
        """Send and wait in a background thread; returns at once."""
        self._started = time.monotonic()
        threading.Thread(target=self._run, name=f"nbw-{self.plan.test_id}", daemon=True).start()

    def cancel(self) -> None:
        """No further requests; stop waiting for those sent."""
        self._cancel.set()
        with self._lock:
            tasks = list(self._tasks)
        for task in tasks:
            task.cancel()

    def _run(self) -> None:
        outcomes = Outcomes({arm.label: [] for arm in self.plan.arms})
        slots: list[tuple[str, Task]] = []
        try:
            client = self._client()
            for arm in self.plan.arms:
                r = arm.request
                for count in arm.counts:
                    if self._cancel.is_set():
                        outcomes.by_arm[arm.label].append(
                            CancelledError("Not sent: the A/B test was cancelled first."))
                        continue
                    try:
                        task = client.submit(
                            r.prompt, action=r.action, images=list(r.image_urls) or None,
                            model=r.model, count=count, aspect_ratio=r.aspect_ratio,
                            resolution=r.resolution)
                    except NanoBananaError as exc:
                        outcomes.by_arm[arm.label].append(exc)
                        continue
                    with self._lock:
                        self._tasks.append(task)
                    outcomes.sent += 1
                    slots.append((arm.label, task))
            if slots:
                results = client.wait_all([t for _, t in slots], return_exceptions=True,
                                          on_progress=self._progress)
                for (label, _task), outcome in zip(slots, results, strict=True):
                    outcomes.by_arm[label].append(outcome)
        except Exception as exc:  # said in the view; nothing is lost (the history has it)
            _log.exception("A/B test %s failed", self.plan.test_id)
            err = exc if isinstance(exc, NanoBananaError) else NanoBananaError(
                describe_error(exc))
            for label in outcomes.by_arm:
                outcomes.by_arm[label].append(err)
        finally:
            self._on_end(outcomes)

    def _progress(self, progress: Progress) -> None:
        if progress.stage in ("done", "failed"):
            with self._lock:
                self._done.add(progress.task_id)
                done = len(self._done)
        else:
            with self._lock:
                done = len(self._done)
        self._on_progress(done, self._total, time.monotonic() - self._started)
