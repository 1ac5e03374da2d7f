"""The HTTP client for the Nano Banana service: requests, retries and one batched poller.

Retry policy
------------
A generation is paid for, so the client never sends a submit twice unless it is certain
the first one was not billed:

- **429 Too Many Requests** (refused, nothing billed): retried with jittered exponential
  backoff that honours ``Retry-After`` (each wait capped at 30 s), at most ``max_retries``
  times; then :class:`~nanobanana_widgets.errors.RateLimitError`.
- **Connection refused / could not be opened / connect timeout** (the request never left
  this machine): retried with the same backoff, at most ``max_retries`` times; then
  :class:`~nanobanana_widgets.errors.APIConnectionError`.
- **5xx on a submit**: not sent again, because the service may have started (and billed)
  the job; raises :class:`~nanobanana_widgets.errors.ServerError` saying so.
- **Read timeout, connection reset or aborted after the request was sent, or a 2xx answer
  whose body is not the expected JSON**: not sent again; raises
  :class:`~nanobanana_widgets.errors.PossiblyBilledError` (the original failure is its
  ``__cause__``; ``task_id`` is set when it could be read), so the task can be looked up
  later with ``Client.task(task_id)``.
- **Other 4xx** (bad parameters, authentication, balance, refused content, too large):
  never retried; raised as the mapped error class.
- **Task lookups** (``retrieve``, ``retrieve_batch``) cost nothing, so they are retried on
  connection errors, timeouts, 5xx, 429 and malformed bodies (bounded by ``max_retries``,
  with backoff).

Submits are sent with ``Connection: close`` so a stale keep-alive connection can never make
a submit ambiguous. The token is only ever sent in the ``authorization`` header of requests
to the API base URL; it is never logged, never stored on the session and replaced by
``***`` in any server text echoed into an error message.

Waiting
-------
All waiting on one client shares a single daemon poller thread: every ``poll_interval``
seconds it looks up every task being waited on with one ``retrieve_batch`` request per 50
tasks (never one request per task), updates the :class:`Task` handles and wakes the
threads waiting on them. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import logging
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from nanobanana_widgets.images import to_image_urls
from nanobanana_widgets.service import errors
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    CancelledError,
    InvalidParameterError,
    MalformedResponseError,
    MissingTokenError,
    NanoBananaError,
    PossiblyBilledError,
    RateLimitError,
    ServerError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.models import DEFAULT_MODEL, validate_request
from nanobanana_widgets.service.status import Status
from nanobanana_widgets.service.types import ImageRequest, Result, TaskRecord

__all__ = ["Client", "ClientListener", "Progress", "Task"]

logger = logging.getLogger("nanobanana_widgets.client")

DEFAULT_BASE_URL = "https://api.acedata.cloud"
TOKEN_ENV = "ACEDATACLOUD_API_TOKEN"
BASE_URL_ENV = "ACEDATACLOUD_API_BASE_URL"
IMAGES_PATH = "/nano-banana/images"
TASKS_PATH = "/nano-banana/tasks"

CONNECT_TIMEOUT = 10.0
"""Seconds to open a connection (capped by the client's ``timeout``)."""
SYNC_READ_TIMEOUT = 1800.0
"""Read timeout of a synchronous-mode submit, as the official clients use."""
MAX_RETRY_WAIT = 30.0
"""Longest single wait between two attempts, ``Retry-After`` included."""
BATCH_SIZE = 50
"""Most task ids per ``retrieve_batch`` request."""
POLLER_IDLE_EXIT = 5.0
"""Seconds the poller thread idles with nothing to look up before it exits."""

_E = TypeVar("_E", bound=NanoBananaError)
_TASK_ID_RE = re.compile(r'"task_id"\s*:\s*"([^"\\]{1,200})"')
_TRACE_ID_RE = re.compile(r'"trace_id"\s*:\s*"([^"\\]{1,200})"')


# --- public small types ------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What ``on_progress`` callbacks receive at each poller tick.

    ``stage`` is ``"submitted"`` (first report), ``"waiting"`` (still running), ``"done"``
    or ``"failed"``; ``elapsed`` is seconds since the task was submitted.
    """

    task_id: str
    status: Status
    stage: str
    elapsed: float


ProgressCallback = Callable[[Progress], Any]


class ClientListener(Protocol):
    """What the history and the panel implement to observe every request of a client.

    Every method is optional (a listener may define any subset); exceptions raised by a
    listener are logged and never reach the caller.

    - ``on_submitted(task)``: right after the service accepted a submit (task id known).
    - ``on_finished(task, result)``: once per task, when it succeeded.
    - ``on_failed(request, error, task)``: once per task when it failed, and when a submit
      itself failed (then ``task`` is ``None``).
    - ``replay(request) -> Result | None``: asked before sending; returning a ``Result``
      answers the request with it and nothing is sent.
    """

    def on_submitted(self, task: Task) -> None: ...
    def on_finished(self, task: Task, result: Result) -> None: ...
    def on_failed(
        self, request: ImageRequest, error: NanoBananaError, task: Task | None
    ) -> None: ...


# --- the task handle ---------------------------------------------------------------------


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
        # Outcome, guarded by the client's condition.
        self._outcome: Result | NanoBananaError | None = None
        self._settled = False
        self._cancelled = False

    # -- state ------------------------------------------------------------------------

    def done(self) -> bool:
        """Whether the task is known to have finished (from the last lookup; no request)."""
        return self.status != "pending"

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called on this handle."""
        return self._cancelled

    def refresh(self) -> TaskRecord:
        """Look the task up now (one ``retrieve`` request) and update this handle."""
        record = self._client.task(self.id)
        self._apply(record)
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
        self._client._cancel(self)

    def result(self) -> Result:
        """The result of a finished task (no request; raises if not finished yet)."""
        with self._client._cond:
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

    # -- internal -----------------------------------------------------------------------

    def _apply(self, record: TaskRecord) -> None:
        """Take a fresh record; settle the task (and tell listeners) when it finished."""
        client = self._client
        claimed: Result | NanoBananaError | None = None
        with client._cond:
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
            if record.status != "pending" and self._outcome is None:
                claimed = client._outcome_of(self, record)
                self._outcome = claimed
        if claimed is None:
            return
        client._tell_outcome(self, claimed)
        with client._cond:
            self._settled = True
            client._cond.notify_all()

    def _settle_now(self, outcome: Result | NanoBananaError) -> None:
        """Mark the task finished without telling listeners (replayed results)."""
        with self._client._cond:
            self._outcome = outcome
            self.status = outcome.status if isinstance(outcome, Result) else "failed"
            self._settled = True
            self._client._cond.notify_all()


# --- the client --------------------------------------------------------------------------


class Client:
    """A client of the Nano Banana service (or of its emulator).

    ``token`` defaults to ``$ACEDATACLOUD_API_TOKEN`` and ``base_url`` to
    ``$ACEDATACLOUD_API_BASE_URL`` or ``https://api.acedata.cloud``; both are read at the
    first request. ``timeout`` is the read timeout of a request in seconds, ``max_retries``
    bounds the retries of the policy in this module's docstring, ``poll_interval`` is the
    poller's period and ``wait_timeout`` the default deadline of every wait.
    """

    backoff_base: float = 0.5
    """Seconds of the first retry wait; it doubles per attempt (jittered, capped at 30 s)."""

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
    ) -> None:
        if base_url is not None:
            _check_base_url(base_url)
        if timeout <= 0:
            raise InvalidParameterError("timeout", timeout, None,
                                        hint="a positive number of seconds")
        if poll_interval <= 0:
            raise InvalidParameterError("poll_interval", poll_interval, None,
                                        hint="a positive number of seconds")
        if max_retries < 0:
            raise InvalidParameterError("max_retries", max_retries, None, hint="0 or more")
        self._token_arg = token
        self._base_url_arg = base_url
        self._token: str | None = None
        self._base_url: str | None = None
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.poll_interval = float(poll_interval)
        self.wait_timeout = float(wait_timeout)
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self._listeners: list[object] = []
        self._listeners_lock = threading.Lock()
        self._resolve_lock = threading.Lock()
        # Poller state, all guarded by _cond.
        self._cond = threading.Condition()
        self._watched: dict[Task, int] = {}
        self._tick = 0
        self._poll_error: NanoBananaError | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    # -- configuration ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API base URL (from the argument, the environment, or the default)."""
        if self._base_url is not None:
            return self._base_url
        return (self._base_url_arg or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")

    def __repr__(self) -> str:
        has_token = bool(self._token or self._token_arg or os.environ.get(TOKEN_ENV))
        return f"Client(base_url={self.base_url!r}, token={'set' if has_token else 'not set'})"

    def _resolve(self) -> tuple[str, str]:
        """The token and base URL, read at the first request (raises before any I/O)."""
        with self._resolve_lock:
            if self._closed:
                raise NanoBananaError("This client was closed; create a new Client.")
            if self._base_url is None:
                url = self._base_url_arg or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
                self._base_url = _check_base_url(url)
            if self._token is None:
                raw = self._token_arg if self._token_arg is not None else os.environ.get(TOKEN_ENV)
                token = (raw or "").strip()
                if not token and _is_loopback(self._base_url):
                    # Only a local emulator can live on loopback: it takes any token.
                    token = LOOPBACK_PLACEHOLDER_TOKEN
                if not token:
                    raise MissingTokenError()
                if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in token):
                    raise InvalidParameterError(
                        "token", "<hidden>", None,
                        hint=f"a token without spaces or control characters (check {TOKEN_ENV})",
                    )
                self._token = token
            return self._token, self._base_url

    # -- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: object) -> None:
        """Observe every request (see :class:`ClientListener`; all methods optional)."""
        with self._listeners_lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_listener(self, listener: object) -> None:
        """Stop notifying ``listener`` (no error if it was not added)."""
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _call_listeners(self, method: str, *args: Any) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            fn = getattr(listener, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                logger.exception("Listener %r raised in %s; ignored.", listener, method)

    def _replay(self, request: ImageRequest) -> Result | None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            fn = getattr(listener, "replay", None)
            if fn is None:
                continue
            try:
                found = fn(request)
            except Exception:
                logger.exception("Listener %r raised in replay; ignored.", listener)
                continue
            if isinstance(found, Result):
                return found
        return None

    # -- submitting ---------------------------------------------------------------------

    def submit(
        self,
        prompt: str,
        *,
        action: str = "generate",
        images: Any = None,
        model: str = DEFAULT_MODEL,
        count: int = 1,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        callback_url: str | None = None,
    ) -> Task:
        """Send one request asynchronously and return its :class:`Task` at once.

        ``images`` (for ``action="edit"``) may be paths, bytes, PIL images, arrays, URLs,
        data URIs or FileUpload values. Parameters are checked locally first: an invalid
        one raises :class:`InvalidParameterError` and nothing is sent.
        """
        request = self._build_request(
            prompt, action=action, images=images, model=model, count=count,
            aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
            sync=False,
        )
        return self._send(request, read_timeout=self.timeout)

    def generate(
        self,
        prompt: str,
        *,
        model: str = DEFAULT_MODEL,
        count: int = 1,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        callback_url: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        sync: bool = False,
    ) -> Result:
        """Generate images from ``prompt`` and wait for them.

        ``timeout`` is the wait deadline (default ``wait_timeout``). ``sync=True`` uses the
        service's synchronous mode: one long request (read timeout ``timeout`` or 1800 s)
        that returns the images. A failed task raises its mapped error.
        """
        return self._run(
            prompt, action="generate", images=None, model=model, count=count,
            aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
            timeout=timeout, on_progress=on_progress, sync=sync,
        )

    def edit(
        self,
        prompt: str,
        images: Any,
        *,
        model: str = DEFAULT_MODEL,
        count: int = 1,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        callback_url: str | None = None,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        sync: bool = False,
    ) -> Result:
        """Edit ``images`` (one source or a list) following ``prompt`` and wait for the result.

        Keywords as for :meth:`generate`.
        """
        return self._run(
            prompt, action="edit", images=images, model=model, count=count,
            aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
            timeout=timeout, on_progress=on_progress, sync=sync,
        )

    def _run(
        self,
        prompt: str,
        *,
        action: str,
        images: Any,
        model: str,
        count: int,
        aspect_ratio: str | None,
        resolution: str | None,
        callback_url: str | None,
        timeout: float | None,
        on_progress: ProgressCallback | None,
        sync: bool,
    ) -> Result:
        request = self._build_request(
            prompt, action=action, images=images, model=model, count=count,
            aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
            sync=sync,
        )
        if sync:
            task = self._send(request, read_timeout=timeout if timeout else SYNC_READ_TIMEOUT)
            return task.wait(None, on_progress)
        task = self._send(request, read_timeout=self.timeout)
        return task.wait(timeout, on_progress)

    def _build_request(
        self,
        prompt: str,
        *,
        action: str,
        images: Any,
        model: str,
        count: int,
        aspect_ratio: str | None,
        resolution: str | None,
        callback_url: str | None,
        sync: bool,
    ) -> ImageRequest:
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

    def _send(self, request: ImageRequest, *, read_timeout: float) -> Task:
        """Replay or send one validated request; returns its task (settled in sync mode)."""
        replayed = self._replay(request)
        if replayed is not None:
            logger.info("Request answered by a listener's replay (task %s); nothing sent.",
                        replayed.task_id)
            task = Task(self, replayed.task_id, request=request, trace_id=replayed.trace_id,
                        submitted_at=replayed.timings.submitted_at)
            task._settle_now(replayed)
            return task
        submitted_at = time.time()
        try:
            body = self._post_submit(request.to_payload(), read_timeout=read_timeout)
        except NanoBananaError as exc:
            self._call_listeners("on_failed", request, exc, None)
            raise
        task_id = str(body["task_id"])
        trace = body.get("trace_id")
        task = Task(self, task_id, request=request,
                    trace_id=trace if isinstance(trace, str) else None,
                    submitted_at=submitted_at)
        logger.info("Submitted %s task %s (model %s).", request.action, task_id, request.model)
        self._call_listeners("on_submitted", task)
        if not request.asynchronous and request.callback_url is None and "data" in body:
            # Synchronous mode: the response holds the finished result.
            record = TaskRecord.from_json({
                "id": task_id,
                "trace_id": task.trace_id,
                "request": request.to_payload(),
                "response": body,
                "created_at": submitted_at,
                "finished_at": time.time(),
            })
            task._apply(record)
        return task

    # -- asyncio ------------------------------------------------------------------------

    async def asubmit(self, prompt: str, **kwargs: Any) -> Task:
        """:meth:`submit` in a worker thread, for asyncio code."""
        return await asyncio.to_thread(self.submit, prompt, **kwargs)

    async def agenerate(
        self,
        prompt: str,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        sync: bool = False,
        **kwargs: Any,
    ) -> Result:
        """:meth:`generate` for asyncio code (submit and wait run in worker threads)."""
        if sync:
            return await asyncio.to_thread(
                self.generate, prompt, timeout=timeout, on_progress=on_progress, sync=True,
                **kwargs,
            )
        task = await self.asubmit(prompt, action="generate", **kwargs)
        return await self._await_task(task, timeout, on_progress)

    async def aedit(
        self,
        prompt: str,
        images: Any,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        sync: bool = False,
        **kwargs: Any,
    ) -> Result:
        """:meth:`edit` for asyncio code (submit and wait run in worker threads)."""
        if sync:
            return await asyncio.to_thread(
                self.edit, prompt, images, timeout=timeout, on_progress=on_progress, sync=True,
                **kwargs,
            )
        task = await self.asubmit(prompt, action="edit", images=images, **kwargs)
        return await self._await_task(task, timeout, on_progress)

    async def _await_task(
        self, task: Task, timeout: float | None, on_progress: ProgressCallback | None
    ) -> Result:
        try:
            return await asyncio.to_thread(task.wait, timeout, on_progress)
        except asyncio.CancelledError:
            task.cancel()  # release the worker thread
            raise

    # -- tasks --------------------------------------------------------------------------

    def task(self, task_id: str) -> TaskRecord:
        """Look one task up (``retrieve``)."""
        if not isinstance(task_id, str) or not task_id:
            raise InvalidParameterError("task_id", task_id, None, hint="a task id string")
        body = self._post_lookup({"action": "retrieve", "id": task_id})
        if not body:
            raise errors.NotFoundError(f"No task with id {task_id!r}.", task_id=task_id)
        return TaskRecord.from_json(body)

    def tasks(self, ids: Iterable[str]) -> list[TaskRecord]:
        """Look many tasks up (``retrieve_batch``, 50 ids per request), in the order of ``ids``.

        Ids the service does not know are left out.
        """
        wanted = list(dict.fromkeys(ids))
        found: dict[str, TaskRecord] = {}
        for start in range(0, len(wanted), BATCH_SIZE):
            for record in self._retrieve_batch(wanted[start:start + BATCH_SIZE]):
                found.setdefault(record.id, record)
        return [found[i] for i in wanted if i in found]

    def attach(self, task_id: str, request: ImageRequest | None = None,
               submitted_at: float | None = None) -> Task:
        """A handle on a task submitted earlier (e.g. before a restart); nothing is sent."""
        if not isinstance(task_id, str) or not task_id:
            raise InvalidParameterError("task_id", task_id, None, hint="a task id string")
        return Task(self, task_id, request=request, submitted_at=submitted_at)

    def _retrieve_batch(self, ids: Sequence[str]) -> list[TaskRecord]:
        body = self._post_lookup({"action": "retrieve_batch", "ids": list(ids)}, batch=True)
        items = body.get("items")
        assert isinstance(items, list)  # checked by _post_lookup
        return [TaskRecord.from_json(item) for item in items if isinstance(item, Mapping)]

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
        poll_error = self._wait_many(handles, limit, on_progress)
        outcomes: list[Result | NanoBananaError] = [
            self._outcome_for_waiter(t, limit, poll_error) for t in handles
        ]
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
        poll_error = self._wait_many([task], limit, on_progress)
        outcome = self._outcome_for_waiter(task, limit, poll_error)
        if isinstance(outcome, NanoBananaError):
            raise outcome
        return outcome

    def _outcome_for_waiter(self, task: Task, limit: float,
                            poll_error: NanoBananaError | None) -> Result | NanoBananaError:
        with self._cond:
            outcome = task._outcome if task._settled else None
            cancelled = task._cancelled
            closed = self._closed
        if outcome is not None:
            return outcome
        if cancelled:
            return CancelledError(
                "Stopped waiting (cancelled). The task may still run and be billed; "
                "look it up later with client.task(task_id).",
                task_id=task.id, trace_id=task.trace_id,
            )
        if closed:
            return CancelledError(
                "The client was closed while waiting. The task may still run and be billed.",
                task_id=task.id, trace_id=task.trace_id,
            )
        if poll_error is not None:
            return poll_error
        return WaitTimeoutError(
            f"The task was still running after {limit:g} s. It may still finish (and be "
            "billed): wait again with task.wait(), or look it up later with "
            "client.task(task_id).",
            task_id=task.id, trace_id=task.trace_id,
        )

    def _wait_many(self, tasks: list[Task], limit: float,
                   on_progress: ProgressCallback | None) -> NanoBananaError | None:
        """Block until every task settled or was cancelled, or the deadline, or a fatal
        lookup error (returned)."""
        deadline = time.monotonic() + max(0.0, limit)
        reported: dict[Task, str] = {}

        def finished(t: Task) -> bool:
            return t._settled or t._cancelled

        def report() -> None:
            if on_progress is None:
                return
            now = time.time()
            for t in tasks:
                if t._settled:
                    stage = "done" if t.status == "succeeded" else "failed"
                elif t._cancelled:
                    continue
                else:
                    stage = "submitted" if t not in reported else "waiting"
                if reported.get(t) in ("done", "failed"):
                    continue
                reported[t] = stage
                progress = Progress(task_id=t.id, status=t.status, stage=stage,
                                    elapsed=max(0.0, now - t.submitted_at))
                try:
                    on_progress(progress)
                except Exception:
                    logger.exception("on_progress callback raised; ignored.")

        with self._cond:
            pending = [t for t in tasks if not finished(t)]
            for t in pending:
                self._watched[t] = self._watched.get(t, 0) + 1
            if pending:
                self._ensure_poller()
            seen_tick = self._tick
        poll_error: NanoBananaError | None = None
        try:
            report()
            while True:
                with self._cond:
                    while True:
                        if self._closed or all(finished(t) for t in tasks):
                            break
                        if self._tick != seen_tick:
                            break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                    ticked = self._tick != seen_tick
                    seen_tick = self._tick
                    all_done = all(finished(t) for t in tasks)
                    poll_error = self._poll_error if ticked else None
                    closed = self._closed
                report()
                if all_done or closed or poll_error is not None:
                    break
                if time.monotonic() >= deadline:
                    break
        finally:
            with self._cond:
                for t in pending:
                    left = self._watched.get(t, 0) - 1
                    if left > 0:
                        self._watched[t] = left
                    else:
                        self._watched.pop(t, None)
        return poll_error

    def _cancel(self, task: Task) -> None:
        with self._cond:
            if task._cancelled:
                return
            task._cancelled = True
            self._watched.pop(task, None)
            self._cond.notify_all()
        logger.info("Stopped waiting for task %s (cancelled; it may still run).", task.id)

    def _outcome_of(self, task: Task, record: TaskRecord) -> Result | NanoBananaError:
        if record.status == "succeeded":
            return record.to_result(task.request if task._request_known else None,
                                    submitted_at=task.submitted_at)
        error = record.error() or errors.TaskFailedError(task_id=task.id, trace_id=task.trace_id)
        if error.task_id is None:
            error.task_id = task.id
        return self._scrubbed(error)

    def _tell_outcome(self, task: Task, outcome: Result | NanoBananaError) -> None:
        if isinstance(outcome, Result):
            logger.info("Task %s finished with %d image(s).", task.id, len(outcome.images))
            self._call_listeners("on_finished", task, outcome)
        else:
            logger.info("Task %s failed: %s", task.id, outcome)
            self._call_listeners("on_failed", task.request, outcome, task)

    # -- the poller ---------------------------------------------------------------------

    def _ensure_poller(self) -> None:
        """Start the poller thread if it is not running (call with ``_cond`` held)."""
        if self._closed:
            return
        if self._poller is None or not self._poller.is_alive():
            self._poller = threading.Thread(
                target=self._poll_loop, name=f"nanobanana-poller-{id(self):x}", daemon=True
            )
            self._poller.start()
        else:
            self._cond.notify_all()

    def _poll_loop(self) -> None:
        me = threading.current_thread()
        fresh = True
        while True:
            with self._cond:
                idle_since = time.monotonic()
                while not self._closed and not self._pending_ids():
                    fresh = True
                    left = POLLER_IDLE_EXIT - (time.monotonic() - idle_since)
                    if left <= 0:
                        if self._poller is me:
                            self._poller = None
                        return
                    self._cond.wait(left)
                if self._closed:
                    return
                if fresh:  # just woken with new tasks: none can have finished yet
                    fresh = False
                    if not self._wait_first_lookup():
                        return
                ids = self._pending_ids()
                by_id: dict[str, list[Task]] = {}
                for t in self._watched:
                    if not (t._settled or t._cancelled):
                        by_id.setdefault(t.id, []).append(t)
            error: NanoBananaError | None = None
            for start in range(0, len(ids), BATCH_SIZE):
                chunk = ids[start:start + BATCH_SIZE]
                try:
                    records = self._retrieve_batch(chunk)
                except (APIConnectionError, ServerError, RateLimitError,
                        MalformedResponseError) as exc:
                    logger.warning("Task lookup failed, trying again next tick: %s", exc)
                    continue
                except NanoBananaError as exc:
                    logger.warning("Task lookup refused: %s", exc)
                    error = exc
                    continue
                except Exception:
                    logger.exception("Unexpected error in the poller; trying again next tick.")
                    continue
                for record in records:
                    for t in by_id.get(record.id, ()):
                        try:
                            t._apply(record)
                        except Exception:
                            logger.exception("Could not apply the record of task %s.", t.id)
            with self._cond:
                self._poll_error = error
                self._tick += 1
                self._cond.notify_all()
            if self._stop.wait(self.poll_interval):
                return

    def _wait_first_lookup(self) -> bool:
        """Wait (``_cond`` held) until the first lookup is worth it; ``False`` if closed."""
        first_at = time.monotonic() + self._first_lookup_in()
        while not self._closed and (left := first_at - time.monotonic()) > 0:
            self._cond.wait(left)
        return not self._closed

    def _first_lookup_in(self) -> float:
        """Seconds until the tasks just handed to an idle poller are one ``poll_interval``
        old (call with ``_cond`` held). Looking a task up the moment it was submitted costs
        a request that cannot find it finished: N seconds of waiting would cost N + 1."""
        pending = [t for t in self._watched if not (t._settled or t._cancelled)]
        if not pending or any(not t._submitted_known for t in pending):
            return 0.0  # e.g. re-attached after a restart: look it up at once
        youngest = max(t.submitted_at for t in pending)
        return min(self.poll_interval, max(0.0, self.poll_interval - (time.time() - youngest)))

    def _pending_ids(self) -> list[str]:
        return list(dict.fromkeys(
            t.id for t in self._watched if not (t._settled or t._cancelled)
        ))

    def close(self) -> None:
        """Stop the poller (waiters raise ``CancelledError``) and close the own session."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._cond.notify_all()
            poller = self._poller
        with self._resolve_lock:
            pass  # _resolve checks _closed under this lock
        if poller is not None and poller is not threading.current_thread():
            poller.join(timeout=5.0)
        if self._own_session:
            self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------

    def _headers(self, token: str, *, close: bool) -> dict[str, str]:
        headers = {
            "accept": "application/json",
            "content-type": "application/json",
            "authorization": f"Bearer {token}",
        }
        if close:
            headers["connection"] = "close"
        return headers

    def _drop_idle_connections(self, base: str) -> None:
        """Close idle pooled connections to the API host, so a submit opens a fresh one.

        A kept-alive connection the server is closing at that very moment would make the
        submit fail after it may have been sent; a fresh connection cannot.
        """
        host = (urlsplit(base).hostname or "").lower()
        try:
            adapter = self._session.get_adapter(base + IMAGES_PATH)
            managers = [getattr(adapter, "poolmanager", None),
                        *getattr(adapter, "proxy_manager", {}).values()]
            for manager in managers:
                pools = getattr(manager, "pools", None)
                if pools is None:
                    continue
                for key in list(pools.keys()):
                    try:
                        pool = pools[key]
                    except KeyError:
                        continue
                    if str(getattr(pool, "host", "")).strip("[]").lower() != host:
                        continue
                    _drain_idle(pool)
        except Exception:  # best effort: never let housekeeping break a submit
            logger.debug("Could not drop idle connections.", exc_info=True)

    def _backoff(self, attempt: int, retry_after: float | None = None) -> float:
        base = self.backoff_base * (2.0 ** attempt)
        wait = base * random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return min(wait, MAX_RETRY_WAIT)

    def _scrubbed(self, error: _E) -> _E:
        """Replace the token in everything built from server text (message, code, ids).

        A short token (under 8 characters, never a real one) is replaced only as a whole
        word, so that it cannot mangle ordinary words in the message.
        """
        token = self._token
        if not token:
            return error
        pattern = re.compile(
            re.escape(token) if len(token) >= 8 else rf"(?<![\w-]){re.escape(token)}(?![\w-])"
        )
        cleaned = pattern.sub("***", error.message)
        if cleaned != error.message:
            error.message = cleaned
            error.args = (error.message,)
        for name in ("code", "trace_id", "task_id"):
            value = getattr(error, name, None)
            if isinstance(value, str):
                setattr(error, name, pattern.sub("***", value))
        return error

    def _error_from(self, resp: requests.Response) -> APIError:
        err = errors.error_from_response(
            resp.status_code, _text(resp), content_type=resp.headers.get("content-type"),
            retry_after=_retry_after(resp),
        )
        return self._scrubbed(err)

    def _post_submit(self, payload: Mapping[str, Any], *, read_timeout: float) -> dict[str, Any]:
        """POST a submit; retry only what certainly did not reach the service (or 429)."""
        token, base = self._resolve()
        url = base + IMAGES_PATH
        data = json.dumps(payload)
        timeout = (min(CONNECT_TIMEOUT, self.timeout), read_timeout)
        for attempt in itertools.count():
            self._drop_idle_connections(base)
            try:
                resp = self._session.post(
                    url, data=data, headers=self._headers(token, close=True),
                    timeout=timeout, allow_redirects=False,
                )
            except requests.exceptions.RequestException as exc:
                if _never_sent(exc):
                    if attempt < self.max_retries:
                        wait = self._backoff(attempt)
                        logger.warning("Could not connect to %s (attempt %d of %d); retrying "
                                       "in %.2f s.", base, attempt + 1, self.max_retries + 1, wait)
                        self._sleep(wait)
                        continue
                    raise self._connection_error(exc, base, attempt + 1) from exc
                if isinstance(exc, requests.exceptions.SSLError):
                    raise APIConnectionError(
                        f"TLS failed while connecting to {base}; the request was not sent. "
                        "Check the base URL and certificates."
                    ) from exc
                raise self._possibly_billed(exc) from self._transport_error(exc, chain=True)
            status = resp.status_code
            if status == 429:
                err = self._error_from(resp)
                if attempt < self.max_retries:
                    retry_after = err.retry_after if isinstance(err, RateLimitError) else None
                    wait = self._backoff(attempt, retry_after)
                    logger.warning("Rate limited (429) on submit; retrying in %.2f s "
                                   "(retry %d of %d).", wait, attempt + 1, self.max_retries)
                    resp.close()
                    self._sleep(wait)
                    continue
                err.message += f" Gave up after {attempt + 1} attempts."
                err.args = (err.message,)
                raise err
            if status >= 500:
                err = self._error_from(resp)
                err.message += (
                    " The request was not sent again because it may have reached the service "
                    "and been billed."
                )
                err.args = (err.message,)
                raise err
            if 300 <= status < 400:
                raise APIError(
                    f"The service answered with a redirect (HTTP {status}) to "
                    f"{resp.headers.get('location', '?')!r}; check the base URL {base!r}.",
                    status_code=status,
                )
            if status >= 400:
                raise self._error_from(resp)
            return self._parse_accepted(resp)
        raise AssertionError("unreachable")  # pragma: no cover

    def _parse_accepted(self, resp: requests.Response) -> dict[str, Any]:
        try:
            text = _text(resp)
        except requests.exceptions.RequestException as exc:
            raise self._possibly_billed(exc) from self._transport_error(exc, chain=True)
        body: Any = None
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("success") is False:
            raise self._scrubbed(errors.error_from_body(body, status_code=resp.status_code))
        if isinstance(body, dict) and isinstance(body.get("task_id"), str) and body["task_id"]:
            return body
        found = _TASK_ID_RE.search(text)
        trace = _TRACE_ID_RE.search(text)
        cause = MalformedResponseError(
            f"HTTP {resp.status_code} with a body that is not the expected JSON "
            f"({_describe_body(text)}).",
            status_code=resp.status_code,
        )
        task_id = found.group(1) if found else None
        hint = (f" Look the task up later with client.task({task_id!r})." if task_id
                else " Check your usage on platform.acedata.cloud before trying again.")
        err = PossiblyBilledError(
            "The service accepted the request but its answer could not be read, so it was not "
            "sent again; it may have been billed." + hint,
            status_code=resp.status_code, task_id=task_id,
            trace_id=trace.group(1) if trace else None,
        )
        raise self._scrubbed(err) from cause

    def _post_lookup(self, payload: Mapping[str, Any], *, batch: bool = False) -> dict[str, Any]:
        """POST to the tasks endpoint, retrying transient failures (lookups are free)."""
        token, base = self._resolve()
        url = base + TASKS_PATH
        data = json.dumps(payload)
        timeout = (min(CONNECT_TIMEOUT, self.timeout), self.timeout)
        for attempt in itertools.count():
            last = attempt >= self.max_retries
            retry_after: float | None = None
            try:
                resp = self._session.post(
                    url, data=data, headers=self._headers(token, close=False),
                    timeout=timeout, allow_redirects=False,
                )
                status = resp.status_code
                if status == 429 or status >= 500:
                    err: NanoBananaError = self._error_from(resp)
                    if isinstance(err, RateLimitError):
                        retry_after = err.retry_after
                elif 300 <= status < 400:
                    raise APIError(
                        f"The service answered the task lookup with a redirect (HTTP {status}); "
                        f"check the base URL {base!r}.", status_code=status,
                    )
                elif status >= 400:
                    raise self._error_from(resp)
                else:
                    text = _text(resp)
                    body = _loads(text)
                    if isinstance(body, dict) and body.get("success") is False:
                        raise self._scrubbed(errors.error_from_body(body, status_code=status))
                    if isinstance(body, dict) and (
                        not batch or isinstance(body.get("items"), list)
                    ):
                        return body
                    err = MalformedResponseError(
                        f"The task lookup answered HTTP {status} with {_describe_body(text)}.",
                        status_code=status,
                    )
            except requests.exceptions.RequestException as exc:
                err = self._transport_error(exc, chain=True)
            if last:
                raise err
            wait = self._backoff(attempt, retry_after)
            logger.warning("Task lookup failed (%s); retrying in %.2f s (retry %d of %d).",
                           type(err).__name__, wait, attempt + 1, self.max_retries)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise CancelledError("The client was closed.")

    def _transport_error(self, exc: requests.exceptions.RequestException, *,
                         chain: bool = False) -> APIConnectionError:
        """The package's error for a transport failure (``chain``: ``exc`` as its cause)."""
        base = self.base_url
        err: APIConnectionError
        if isinstance(exc, requests.exceptions.Timeout):
            err = APITimeoutError(f"No answer from {base} within the timeout.")
        else:
            err = APIConnectionError(
                f"The connection to {base} failed ({type(exc).__name__})."
            )
        if chain:
            err.__cause__ = exc
        return err

    def _connection_error(self, exc: requests.exceptions.RequestException, base: str,
                          attempts: int) -> APIConnectionError:
        cls = APITimeoutError if isinstance(exc, requests.exceptions.ConnectTimeout) else (
            APIConnectionError)
        return cls(
            f"Could not connect to {base} after {attempts} attempt(s); nothing was sent. "
            "Check the network and ACEDATACLOUD_API_BASE_URL."
        )

    def _possibly_billed(self, exc: requests.exceptions.RequestException) -> PossiblyBilledError:
        if isinstance(exc, requests.exceptions.Timeout):
            what = "The request was sent but no answer arrived within the read timeout"
        else:
            what = "The connection broke after the request was sent"
        return PossiblyBilledError(
            f"{what}, so it was not sent again: it may have reached the service and been "
            "billed. Check your recent tasks before retrying."
        )


# --- helpers -----------------------------------------------------------------------------


LOOPBACK_PLACEHOLDER_TOKEN = "offline-emulator"
"""Sent when no token is set and the base URL is a loopback address (a local emulator)."""


def _is_loopback(url: str) -> bool:
    """True when ``url``'s host is this machine (127.0.0.0/8, ``localhost`` or ``::1``)."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(url: str) -> str:
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise InvalidParameterError(
            "base_url", url, None, hint="an http(s) URL such as https://api.acedata.cloud",
        )
    stripped = url.rstrip("/")
    if stripped.lower() in ("http:", "https:", "http:/", "https:/"):
        raise InvalidParameterError("base_url", url, None, hint="an http(s) URL with a host")
    return stripped


def _never_sent(exc: BaseException) -> bool:
    """Whether a requests failure certainly happened before the request left this machine."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (urllib3.exceptions.NewConnectionError,
                             urllib3.exceptions.ClosedPoolError)):
            return True
        if isinstance(item, urllib3.exceptions.MaxRetryError):
            stack.append(item.reason)
        if isinstance(item, BaseException):
            stack.extend(a for a in item.args if isinstance(a, BaseException))
            stack.append(item.__cause__)
            stack.append(item.__context__)
    return False


def _drain_idle(pool: Any) -> None:
    """Close the idle connections of one urllib3 pool (leaving empty slots behind)."""
    slots = getattr(pool, "pool", None)
    if slots is None:
        return
    idle: list[Any] = []
    while True:
        try:
            idle.append(slots.get(block=False))
        except queue.Empty:
            break
    for conn in idle:
        if conn is not None:
            conn.close()
        try:
            slots.put(None, block=False)
        except queue.Full:
            break


def _text(resp: requests.Response) -> str:
    content = resp.content
    if not content:
        return ""
    return content.decode(resp.encoding or "utf-8", errors="replace")


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _describe_body(text: str) -> str:
    if not text.strip():
        return "an empty body"
    if "<html" in text[:500].lower():
        return "an HTML page"
    if _loads(text) is None:
        return "a body that is not valid JSON"
    return "JSON that lacks the expected fields"


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
