"""Callbacks: POST a task's response to its ``callback_url`` when the task finishes.

One timer per task; only loopback URLs are called (the emulator never reaches beyond this
machine). Shares the state's lock, so finishing tasks and scheduling their callbacks is one step.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import threading
import time
from typing import Final
from urllib.parse import urlsplit

from nanobanana_widgets.emulator.addresses import is_loopback_host
from nanobanana_widgets.emulator.state import EmulatorState, Task

__all__ = ["Callbacks"]

logger = logging.getLogger("nanobanana_widgets.emulator")

_CALLBACK_TIMEOUT: Final = 5.0


class _CallbackTimer(threading.Timer):
    """A timer that knows which task it calls back for."""

    task_id: str


class Callbacks:
    """The callback URLs of unfinished tasks and the timers that will POST to them."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._lock = state.lock
        self._urls: dict[str, str] = {}
        self._timers: set[_CallbackTimer] = set()

    def register(self, task: Task, url: str) -> None:
        """Call ``url`` back when ``task`` finishes (never, if it never does)."""
        with self._lock:
            self._urls[task.id] = url
            if math.isfinite(task.finish_at):
                self._schedule(task, task.finish_at - time.time())

    def send_now(self, tasks: list[Task]) -> None:
        """Send the callbacks of ``tasks`` at once (they have just been finished)."""
        with self._lock:
            for task in tasks:
                if task.id in self._urls:
                    self._schedule(task, 0.0)

    def cancel_all(self) -> list[threading.Timer]:
        """Cancel every scheduled callback; returns the timers, for joining."""
        with self._lock:
            timers: list[threading.Timer] = list(self._timers)
            self._timers.clear()
        for timer in timers:
            timer.cancel()
        return timers

    def _schedule(self, task: Task, delay: float) -> None:
        """POST the task's result to its callback URL after ``delay`` s (lock held)."""
        url = self._urls.get(task.id)
        if url is None or self._state.stopping.is_set():
            return
        for timer in list(self._timers):
            if timer.task_id == task.id:
                timer.cancel()
                self._timers.discard(timer)
        timer = _CallbackTimer(max(0.0, delay), self._send, args=(task,))
        timer.daemon = True
        timer.name = f"nanobanana-emulator-callback-{task.id}"
        timer.task_id = task.id
        self._timers.add(timer)
        timer.start()

    def _send(self, task: Task) -> None:
        with self._lock:
            url = self._urls.pop(task.id, None)
            current = threading.current_thread()
            if isinstance(current, _CallbackTimer):
                self._timers.discard(current)
            self._state.settle(time.time())
        if url is None or self._state.stopping.is_set():
            return
        parts = urlsplit(url)
        if not is_loopback_host(parts.hostname):
            logger.warning(
                "callback for task %s skipped: %s is not a loopback host "
                "(the emulator only calls back to this machine)",
                task.id, parts.hostname,
            )
            return
        body = json.dumps(task.response(self._state.base_url)).encode("utf-8")
        conn_cls: type[http.client.HTTPConnection] = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        conn = conn_cls(parts.hostname or "127.0.0.1", parts.port, timeout=_CALLBACK_TIMEOUT)
        try:
            conn.request("POST", target, body=body,
                         headers={"Content-Type": "application/json", "Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            self._state.count_callback()
            logger.debug("callback for task %s answered %s", task.id, resp.status)
        except OSError as exc:
            logger.warning("callback for task %s to %s failed: %s", task.id, parts.netloc, exc)
        finally:
            conn.close()
