"""The handle on one submitted task (:class:`Task`) and what progress callbacks receive."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.service.errors import (
    CancelledError,
    NanoBananaError,
    TaskFailedError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.status import Status
from nanobanana_widgets.service.types import ImageRequest, Result, TaskRecord

if TYPE_CHECKING:
    from nanobanana_widgets.client.client import Client

__all__ = ["Progress", "ProgressCallback", "Task"]


@dataclass(frozen=True)
class Progress:
    """What ``on_progress`` callbacks receive at each poller tick.

    ``stage`` is ``"submitted"`` (first report), ``"waiting"`` (still running), ``"done"``
    or ``"failed"``; ``elapsed`` is seconds since the task was submitted; ``progress`` the
    fraction done (0 to 1) when the service's record carries a figure, else ``None``.
    """

    task_id: str
    status: Status
    stage: str
    elapsed: float
    progress: float | None = None


ProgressCallback = Callable[[Progress], Any]


class Task:
    """A handle on one submitted task; its id is known at once.

    ``status`` is the last known status (``"pending"``, ``"succeeded"`` or ``"failed"``);
    :meth:`refresh` looks it up, :meth:`wait` waits for it with a deadline. ``await task``
    waits in a worker thread (``asyncio.to_thread``).
    """

    def __init__(
        self,
        client: Client,
        task_id: str,
        *,
        request: ImageRequest | None = None,
        trace_id: str | None = None,
        submitted_at: float | None = None,
    ) -> None:
        self._client = client
        self.id = task_id
        self.trace_id = trace_id
        self._request_known = request is not None
        self.request: ImageRequest = request or ImageRequest(action="generate", prompt="")
        self._submitted_known = submitted_at is not None
        self.submitted_at: float = submitted_at if submitted_at is not None else time.time()
        self.status: Status = "pending"
        self.record: TaskRecord | None = None
        # The outcome, guarded by the poller's condition: claimed when a final record
        # arrives, settled once the listeners have handled it (then waiters see it).
        self._outcome: Result | NanoBananaError | None = None
        self._settled = False
        self._cancelled = False

    # -- state ------------------------------------------------------------------------

    def done(self) -> bool:
        """Whether the task is known to have finished (from the last lookup; no request)."""
        return self.status != "pending"

    @property
    def progress(self) -> float | None:
        """The fraction done (0 to 1) from the last lookup, when the service's record
        carries a ``progress``/``percent`` figure (1.0 once finished), else ``None``."""
        record = self.record
        return record.progress if record is not None else None

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called on this handle."""
        return self._cancelled

    def refresh(self) -> TaskRecord:
        """Look the task up now (one ``retrieve`` request) and update this handle."""
        record = self._client.task(self.id)
        self._client._poller.apply(self, record)
        return record

    def wait(self, timeout: float | None = None, on_progress: ProgressCallback | None = None
             ) -> Result:
        """Wait for the task and return its :class:`Result`.

        ``timeout`` defaults to the client's ``wait_timeout``. At the deadline raises
        :class:`WaitTimeoutError` (the task may still finish; wait again or look it up
        later). A failed task raises its mapped error (e.g. ``ContentRefusedError``); a
        cancelled handle raises :class:`CancelledError`. ``on_progress(Progress)`` is called
        in this thread at each poller tick.
        """
        return self._client._wait_one(self, timeout, on_progress)

    def cancel(self) -> None:
        """Stop waiting locally: any ``wait()`` on this handle raises ``CancelledError``.

        The service has no cancel operation: the task may still run and be billed. Its
        result can still be looked up with ``Client.task(task.id)``.
        """
        self._client._poller.cancel(self)

    def result(self) -> Result:
        """The result of a finished task (no request; raises if not finished yet)."""
        with self._client._poller.cond:
            outcome = self._outcome if self._settled else None
            cancelled = self._cancelled
        if isinstance(outcome, Result):
            return outcome
        if isinstance(outcome, NanoBananaError):
            raise outcome
        if cancelled:
            raise CancelledError(
                "Waiting for this task was cancelled; it may still run and be billed.",
                task_id=self.id,
            )
        raise WaitTimeoutError(
            "The task has not finished yet; call task.wait() to wait for it.",
            task_id=self.id, trace_id=self.trace_id,
        )

    def __await__(self) -> Generator[Any, None, Result]:
        return self._client._await_task(self, None, None).__await__()

    def __repr__(self) -> str:
        prompt = self.request.prompt[:40]
        return f"Task(id={self.id!r}, status={self.status!r}, prompt={prompt!r})"

    # -- internal (called with the poller's condition held) -----------------------------

    def _take(self, record: TaskRecord) -> bool:
        """Take a fresh record; ``True`` when it is final and no outcome was claimed yet."""
        self.record = record
        self.status = record.status
        if record.trace_id:
            self.trace_id = record.trace_id
        if not self._request_known and record.request:
            self.request = ImageRequest.from_payload(record.request)
            self._request_known = True
        if not self._submitted_known and record.created_at is not None:
            self.submitted_at = record.created_at
            self._submitted_known = True
        return record.status != "pending" and self._outcome is None

    def _outcome_of(self, record: TaskRecord) -> Result | NanoBananaError:
        """The result of a final record, or the error of a failed one (unscrubbed)."""
        if record.status == "succeeded":
            return record.to_result(self.request if self._request_known else None,
                                    submitted_at=self.submitted_at)
        error = record.error() or TaskFailedError(task_id=self.id, trace_id=self.trace_id)
        if error.task_id is None:
            error.task_id = self.id
        return error
