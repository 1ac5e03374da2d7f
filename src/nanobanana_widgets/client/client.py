"""The :class:`Client` façade: builds requests, sends them, waits for them.

It puts together the pieces of one concern each: the credentials (read at the first
request), the protocol calls on the shared retry policy (:mod:`.calls`, over a swappable
:mod:`.transport`), the batched poller (:mod:`.poller`) and the listeners
(:mod:`.listeners`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.client.calls import TOO_LARGE, ServiceCalls
from nanobanana_widgets.client.credentials import Credentials
from nanobanana_widgets.client.listeners import Dispatcher, Listeners
from nanobanana_widgets.client.poller import Poller
from nanobanana_widgets.client.task import ProgressCallback, Task
from nanobanana_widgets.client.transport import RequestsTransport, Transport
from nanobanana_widgets.images import to_image_urls
from nanobanana_widgets.service.errors import (
    CancelledError,
    InvalidParameterError,
    MalformedResponseError,
    NanoBananaError,
    NotFoundError,
    scrub_error,
)
from nanobanana_widgets.service.models import DEFAULT_MODEL, validate_request
from nanobanana_widgets.service.protocol import BATCH_SIZE
from nanobanana_widgets.service.retry import RetryPolicy
from nanobanana_widgets.service.status import image_entries
from nanobanana_widgets.service.text import mask_url
from nanobanana_widgets.service.types import ImageRequest, Result, TaskRecord

if TYPE_CHECKING:
    import requests

__all__ = ["SYNC_READ_TIMEOUT", "Client"]

logger = logging.getLogger("nanobanana_widgets.client")

SYNC_READ_TIMEOUT = 1800.0
"""Read timeout of a synchronous-mode submit, as the official clients use."""


class Client:
    """A client of the Nano Banana service (or of its emulator).

    ``token`` defaults to ``$ACEDATACLOUD_API_TOKEN`` and ``base_url`` to
    ``$ACEDATACLOUD_API_BASE_URL`` or ``https://api.acedata.cloud``; both are read at the
    first request. ``timeout`` is the read timeout of a request in seconds (each socket
    operation); ``deadline`` the longest any one call to the service may take in all
    (:meth:`submit`, :meth:`task`, :meth:`tasks`, each lookup of the poller: connecting,
    sending, every byte of the answer's headers and body, and the retries), default twice
    ``timeout``: a call ends by then whatever the server does, with a typed error (a submit
    that may have reached the service raises ``PossiblyBilledError`` and is never resent).
    ``max_retries`` bounds the retries of the policy
    (:mod:`nanobanana_widgets.client.calls`), ``poll_interval`` is the poller's period and
    ``wait_timeout`` the default deadline of every wait. ``transport`` replaces the wire
    (see :class:`~nanobanana_widgets.client.transport.Transport`); ``session`` gives the
    default one its settings (headers, proxies, TLS).
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 60.0,
        session: requests.Session | None = None,
        max_retries: int = 4,
        poll_interval: float = 1.0,
        wait_timeout: float = 600.0,
        transport: Transport | None = None,
        deadline: float | None = None,
    ) -> None:
        self._credentials = Credentials(token, base_url)
        _check_seconds("timeout", timeout)
        if deadline is not None:
            _check_seconds("deadline", deadline)
        if poll_interval <= 0:
            raise InvalidParameterError("poll_interval", poll_interval, None,
                                        hint="a positive number of seconds")
        if max_retries < 0:
            raise InvalidParameterError("max_retries", max_retries, None, hint="0 or more")
        self.wait_timeout = float(wait_timeout)
        self._own_transport = transport is None
        self._stop = threading.Event()
        self._calls = ServiceCalls(
            transport if transport is not None else RequestsTransport(session),
            self._credentials, policy=RetryPolicy(max_retries=int(max_retries)),
            timeout=float(timeout), sleep=self._sleep,
            deadline=float(deadline) if deadline is not None else None,
        )
        self._listeners = Listeners()
        self._dispatcher = Dispatcher(f"nanobanana-listeners-{id(self):x}")
        self._poller = Poller(
            lookup=self._retrieve_batch, outcome_of=self._outcome_of,
            deliver=self._listeners.tell_outcome, dispatch=self._dispatcher.submit,
            interval=float(poll_interval), stop=self._stop,
            name=f"nanobanana-poller-{id(self):x}",
        )
        self._closed = False

    # -- configuration ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API base URL (from the argument, the environment, or the default)."""
        return self._credentials.base_url

    @property
    def timeout(self) -> float:
        """Read timeout of a request, in seconds."""
        return self._calls.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        _check_seconds("timeout", seconds)
        self._calls.timeout = float(seconds)

    @property
    def deadline(self) -> float:
        """Seconds any one call to the service may take in all, whatever the server does
        (default: twice :attr:`timeout`). Set ``None`` to go back to the default."""
        return self._calls.call_deadline

    @deadline.setter
    def deadline(self, seconds: float | None) -> None:
        if seconds is not None:
            _check_seconds("deadline", seconds)
        self._calls.deadline = float(seconds) if seconds is not None else None

    @property
    def max_retries(self) -> int:
        """How many times a retryable failure is tried again."""
        return self._calls.policy.max_retries

    @max_retries.setter
    def max_retries(self, count: int) -> None:
        self._calls.policy = dataclasses.replace(self._calls.policy, max_retries=int(count))

    @property
    def backoff_base(self) -> float:
        """Seconds of the first retry wait; it doubles per attempt (jittered, capped at 30 s)."""
        return self._calls.policy.backoff_base

    @backoff_base.setter
    def backoff_base(self, seconds: float) -> None:
        self._calls.policy = dataclasses.replace(self._calls.policy, backoff_base=seconds)

    @property
    def poll_interval(self) -> float:
        """Seconds between two rounds of the poller."""
        return self._poller.interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        self._poller.interval = float(seconds)

    @property
    def transport(self) -> Transport:
        """The wire this client sends on."""
        return self._calls.transport

    def __repr__(self) -> str:
        has_token = self._credentials.has_token
        shown = mask_url(self.base_url)
        return f"Client(base_url={shown!r}, token={'set' if has_token else 'not set'})"

    # -- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: object) -> None:
        """Observe every request (see :class:`ClientListener`; all methods optional)."""
        self._listeners.add(listener)

    def remove_listener(self, listener: object) -> None:
        """Stop notifying ``listener`` (no error if it was not added)."""
        self._listeners.remove(listener)

    # -- submitting ---------------------------------------------------------------------

    def submit(self, prompt: str, *, action: str = "generate", images: Any = None,
               model: str = DEFAULT_MODEL, count: int = 1, aspect_ratio: str | None = None,
               resolution: str | None = None, callback_url: str | None = None) -> Task:
        """Send one request asynchronously and return its :class:`Task` at once.

        ``images`` (for ``action="edit"``) may be paths, bytes, PIL images, arrays, URLs,
        data URIs or FileUpload values. Parameters are checked locally first: an invalid
        one raises :class:`InvalidParameterError` and nothing is sent.
        """
        request = _build_request(
            prompt, action=action, images=images, model=model, count=count,
            aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
            sync=False,
        )
        return self._send(request, read_timeout=self.timeout)

    def send(self, request: ImageRequest, *, retry_rate_limit: bool = True) -> Task:
        """Submit a request built beforehand (its image URLs already normalised) and return
        its :class:`Task` at once; it is validated first, as :meth:`submit` does.

        ``retry_rate_limit=False`` raises :class:`RateLimitError` on the first 429 (nothing
        was billed; ``retry_after`` says when to try again) instead of retrying it here, for
        a caller that paces its own submits (the batch jobs of ``nb.batch``).
        """
        validate_request(
            action=request.action, prompt=request.prompt, model=request.model,
            count=request.count, aspect_ratio=request.aspect_ratio,
            resolution=request.resolution,
            image_urls=list(request.image_urls) if request.image_urls else None,
            callback_url=request.callback_url,
        )
        return self._send(request, read_timeout=self.timeout, retry_rate_limit=retry_rate_limit)

    def generate(self, prompt: str, *, model: str = DEFAULT_MODEL, count: int = 1,
                 aspect_ratio: str | None = None, resolution: str | None = None,
                 callback_url: str | None = None, timeout: float | None = None,
                 on_progress: ProgressCallback | None = None, sync: bool = False) -> Result:
        """Generate images from ``prompt`` and wait for them.

        ``timeout`` is the wait deadline (default ``wait_timeout``). ``sync=True`` uses the
        service's synchronous mode: one long request that returns the images, ending within
        ``timeout`` (default 1800 s) whatever the server does. A failed task raises its
        mapped error.
        """
        request = _build_request(
            prompt, action="generate", images=None, model=model, count=count,
            aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
            sync=sync,
        )
        return self._run(request, timeout, on_progress)

    def edit(self, prompt: str, images: Any, *, model: str = DEFAULT_MODEL, count: int = 1,
             aspect_ratio: str | None = None, resolution: str | None = None,
             callback_url: str | None = None, timeout: float | None = None,
             on_progress: ProgressCallback | None = None, sync: bool = False) -> Result:
        """Edit ``images`` (one source or a list) following ``prompt`` and wait for the result.

        Keywords as for :meth:`generate`.
        """
        request = _build_request(
            prompt, action="edit", images=images, model=model, count=count,
            aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
            sync=sync,
        )
        return self._run(request, timeout, on_progress)

    def _run(self, request: ImageRequest, timeout: float | None,
             on_progress: ProgressCallback | None) -> Result:
        """Send ``request`` and wait for it (one long request in synchronous mode)."""
        if not request.asynchronous and request.callback_url is None:
            limit = timeout if timeout else SYNC_READ_TIMEOUT
            task = self._send(request, read_timeout=limit, deadline=limit)
            return task.wait(None, on_progress)
        task = self._send(request, read_timeout=self.timeout)
        return task.wait(timeout, on_progress)

    def _send(self, request: ImageRequest, *, read_timeout: float,
              deadline: float | None = None, retry_rate_limit: bool = True) -> Task:
        """Replay or send one validated request; returns its task (settled in sync mode)."""
        replayed = self._listeners.replay(request)
        if replayed is not None:
            logger.info("Request answered by a listener's replay (task %s); nothing sent.",
                        replayed.task_id)
            task = Task(self, replayed.task_id, request=request, trace_id=replayed.trace_id,
                        submitted_at=replayed.timings.submitted_at)
            self._poller.settle_now(task, replayed)
            return task
        submitted_at = time.time()
        try:
            body = self._calls.submit(request.to_payload(), read_timeout=read_timeout,
                                      deadline=deadline,
                                      retry_rate_limit=retry_rate_limit)
        except NanoBananaError as exc:
            # A PossiblyBilledError carries the task id when one could be found, so a
            # history records the request (it may have been billed) under it.
            self._listeners.call("on_failed", request, exc, None)
            raise
        task_id = str(body["task_id"])
        trace = body.get("trace_id")
        task = Task(self, task_id, request=request,
                    trace_id=trace if isinstance(trace, str) else None,
                    submitted_at=submitted_at)
        logger.info("Submitted %s task %s (model %s).", request.action, task_id, request.model)
        self._listeners.call("on_submitted", task)
        if (not request.asynchronous and request.callback_url is None and "data" in body) \
                or image_entries(body):
            # Synchronous mode, or an answer that already carries images: a finished task.
            record = TaskRecord.from_json({
                "id": task_id,
                "trace_id": task.trace_id,
                "request": request.to_payload(),
                "response": body,
                "created_at": submitted_at,
                "finished_at": time.time(),
            })
            self._poller.apply(task, record)
        return task

    # -- asyncio ------------------------------------------------------------------------

    async def asubmit(self, prompt: str, **kwargs: Any) -> Task:
        """:meth:`submit` in a worker thread, for asyncio code."""
        return await asyncio.to_thread(self.submit, prompt, **kwargs)

    async def agenerate(self, prompt: str, *, timeout: float | None = None,
                        on_progress: ProgressCallback | None = None, sync: bool = False,
                        **kwargs: Any) -> Result:
        """:meth:`generate` for asyncio code (submit and wait run in worker threads)."""
        if sync:
            return await asyncio.to_thread(
                self.generate, prompt, timeout=timeout, on_progress=on_progress, sync=True,
                **kwargs,
            )
        task = await self.asubmit(prompt, action="generate", **kwargs)
        return await self._await_task(task, timeout, on_progress)

    async def aedit(self, prompt: str, images: Any, *, timeout: float | None = None,
                    on_progress: ProgressCallback | None = None, sync: bool = False,
                    **kwargs: Any) -> Result:
        """:meth:`edit` for asyncio code (submit and wait run in worker threads)."""
        if sync:
            return await asyncio.to_thread(
                self.edit, prompt, images, timeout=timeout, on_progress=on_progress, sync=True,
                **kwargs,
            )
        task = await self.asubmit(prompt, action="edit", images=images, **kwargs)
        return await self._await_task(task, timeout, on_progress)

    async def _await_task(self, task: Task, timeout: float | None,
                          on_progress: ProgressCallback | None) -> Result:
        try:
            return await asyncio.to_thread(task.wait, timeout, on_progress)
        except asyncio.CancelledError:
            task.cancel()  # release the worker thread
            raise

    # -- tasks --------------------------------------------------------------------------

    def task(self, task_id: str, *, deadline: float | None = None) -> TaskRecord:
        """Look one task up (``retrieve``), within ``deadline`` seconds (default
        :attr:`deadline`) whatever the server does."""
        if not isinstance(task_id, str) or not task_id:
            raise InvalidParameterError("task_id", task_id, None, hint="a task id string")
        if deadline is not None:
            _check_seconds("deadline", deadline)
        body = self._calls.lookup({"action": "retrieve", "id": task_id}, deadline=deadline)
        items = body.get("items")
        if not isinstance(items, list) or not items:
            raise NotFoundError(f"No task with id {task_id!r}.", task_id=task_id)
        records = [r for r in items if isinstance(r, Mapping)]
        # The record asked for, if the answer holds several.
        record = next((r for r in records if TaskRecord.from_json(r).id == task_id), records[0])
        return TaskRecord.from_json(record)

    def tasks(self, ids: Iterable[str], *, deadline: float | None = None) -> list[TaskRecord]:
        """Look many tasks up (``retrieve_batch``, 50 ids per request), in the order of ``ids``.

        Ids the service does not know are left out. The whole call, every request of it,
        ends within ``deadline`` seconds (default :attr:`deadline`) whatever the server does.
        """
        if deadline is not None:
            _check_seconds("deadline", deadline)
        ends = time.monotonic() + (deadline if deadline is not None else self.deadline)
        wanted = list(dict.fromkeys(ids))
        found: dict[str, TaskRecord] = {}
        for start in range(0, len(wanted), BATCH_SIZE):
            for record in self._retrieve_batch(wanted[start:start + BATCH_SIZE], ends):
                found.setdefault(record.id, record)
        return [found[i] for i in wanted if i in found]

    def attach(self, task_id: str, request: ImageRequest | None = None,
               submitted_at: float | None = None) -> Task:
        """A handle on a task submitted earlier (e.g. before a restart); nothing is sent."""
        if not isinstance(task_id, str) or not task_id:
            raise InvalidParameterError("task_id", task_id, None, hint="a task id string")
        return Task(self, task_id, request=request, submitted_at=submitted_at)

    def _retrieve_batch(self, ids: Sequence[str], ends: float | None = None
                        ) -> list[TaskRecord]:
        """One ``retrieve_batch`` (by ``ends``, a ``time.monotonic()`` instant, if given);
        an answer too large to read is asked for again in two halves (a record echoes its
        request, input images included), down to one id."""
        left = None if ends is None else max(1e-3, ends - time.monotonic())
        try:
            body = self._calls.lookup({"action": "retrieve_batch", "ids": list(ids)},
                                      batch=True, deadline=left)
        except MalformedResponseError as exc:
            if exc.code != TOO_LARGE or len(ids) < 2:
                raise
            half = len(ids) // 2
            return self._retrieve_batch(ids[:half], ends) + self._retrieve_batch(ids[half:], ends)
        items = body.get("items")
        assert isinstance(items, list)  # checked by the lookup
        return [TaskRecord.from_json(item) for item in items if isinstance(item, Mapping)]

    def _outcome_of(self, task: Task, record: TaskRecord) -> Result | NanoBananaError:
        outcome = task._outcome_of(record)
        if isinstance(outcome, NanoBananaError):
            return scrub_error(outcome)
        return outcome

    # -- waiting ------------------------------------------------------------------------

    def wait_all(
        self,
        tasks: Iterable[Task | str],
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        return_exceptions: bool = False,
    ) -> list[Result | NanoBananaError]:
        """Wait for many tasks at once (one shared poller, batched lookups).

        Returns one entry per task, in order. With ``return_exceptions=False`` (default) the
        first failure in task order is raised once every task has finished or the deadline
        (``timeout``, default ``wait_timeout``) passed; with ``True`` failures (including
        :class:`WaitTimeoutError` for tasks still running) are returned in place.
        Task ids (strings) are attached first.
        """
        handles = [t if isinstance(t, Task) else self.attach(t) for t in tasks]
        owners = {t._client for t in handles}
        if owners - {self}:
            if len(owners) == 1:
                other = owners.pop()
                return other.wait_all(handles, timeout=timeout, on_progress=on_progress,
                                      return_exceptions=return_exceptions)
            raise InvalidParameterError(
                "tasks", f"tasks of {len(owners)} clients", None,
                hint="tasks submitted through one client",
            )
        limit = self.wait_timeout if timeout is None else timeout
        poll_error = self._poller.wait(handles, limit, on_progress)
        outcomes = [self._poller.outcome_for_waiter(t, limit, poll_error) for t in handles]
        if not return_exceptions:
            for outcome in outcomes:
                if isinstance(outcome, NanoBananaError):
                    raise outcome
        return outcomes

    def _wait_one(self, task: Task, timeout: float | None,
                  on_progress: ProgressCallback | None) -> Result:
        if task._client is not self:
            return task._client._wait_one(task, timeout, on_progress)
        limit = self.wait_timeout if timeout is None else timeout
        poll_error = self._poller.wait([task], limit, on_progress)
        outcome = self._poller.outcome_for_waiter(task, limit, poll_error)
        if isinstance(outcome, NanoBananaError):
            raise outcome
        return outcome

    def _sleep(self, seconds: float) -> None:
        """Wait between two attempts; raises ``CancelledError`` once the client is closed."""
        if self._stop.wait(seconds):
            raise CancelledError("The client was closed.")

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the poller (waiters raise ``CancelledError``), let the outcomes being
        delivered reach the listeners, and close the own transport."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()  # a retry waiting between attempts raises CancelledError
        self._credentials.close()  # later requests are refused before any I/O
        self._poller.close()
        self._dispatcher.close()
        if self._own_transport:
            self._calls.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_seconds(name: str, value: object) -> None:
    """Refuse anything but a positive, finite number of seconds."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 < value < float("inf")):
        raise InvalidParameterError(name, value, None, hint="a positive number of seconds")


def _build_request(prompt: str, *, action: str, images: Any, model: str, count: int,
                   aspect_ratio: str | None, resolution: str | None,
                   callback_url: str | None, sync: bool) -> ImageRequest:
    """A validated request (images normalised); raises before anything is sent."""
    image_urls: list[str] | None = None
    if images is not None:
        image_urls = to_image_urls(images)
    validate_request(
        action=action, prompt=prompt, model=model, count=count, aspect_ratio=aspect_ratio,
        resolution=resolution, image_urls=image_urls, callback_url=callback_url,
    )
    if sync and callback_url is not None:
        raise InvalidParameterError(
            "sync", sync, None,
            hint="sync=False with callback_url (a callback request returns at once)",
        )
    return ImageRequest(
        action=action,
        prompt=prompt,
        model=model,
        count=count,
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        image_urls=tuple(image_urls or ()),
        callback_url=callback_url,
        asynchronous=not sync and callback_url is None,
    )
