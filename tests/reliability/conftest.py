"""Shared pieces of the reliability suite: an emulator that remembers which fault each
images request met, and a capture of everything that could escape unnoticed."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image

from nanobanana_widgets.emulator import Emulator


class RecordingEmulator(Emulator):
    """The real emulator, plus a per-prompt list of the fault each images request met.

    ``attempts[prompt]`` lists, in order, the fault kind (or ``None``) of every images
    request that carried that prompt, so a test can tell a legitimate resend (after a 429)
    from a duplicated, billable one. ``small_images=True`` draws 48 px placeholders instead
    of 1K ones, to keep hundreds of generations fast (the bookkeeping is what is tested).
    """

    def __init__(self, *, small_images: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attempts: dict[str | None, list[str | None]] = defaultdict(list)
        self._attempts_lock = threading.Lock()
        self._local = threading.local()
        self._small_images = small_images

    def _take_fault(self, endpoint: str) -> Any:
        fault = super()._take_fault(endpoint)
        if endpoint == "images":
            self._local.fault = fault.kind if fault is not None else None
        return fault

    def _images(self, h: Any, path: str, raw: bytes) -> None:
        self._local.fault = None
        try:
            super()._images(h, path, raw)
        finally:
            try:
                prompt = json.loads(raw).get("prompt")
            except (ValueError, AttributeError):
                prompt = None
            with self._attempts_lock:
                self.attempts[prompt].append(self._local.fault)

    def _render(self, task: Any, index: int, depth: int) -> Image.Image:
        if not self._small_images:
            return super()._render(task, index, depth)
        shade = (len(task.id) * 7 + index * 40) % 256
        return Image.new("RGB", (48, 48), (shade, 120, 255 - shade))


class Escapes(logging.Handler):
    """Collects log records at ERROR and above, callback exceptions ipywidgets swallowed,
    and exceptions that ended a thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.thread_errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def problems(self) -> list[str]:
        found = [f"{r.name}: {r.getMessage()}" for r in self.records
                 if r.levelno >= logging.ERROR or "Exception in callback" in r.getMessage()]
        return found + self.thread_errors


@pytest.fixture
def escapes() -> Iterator[Escapes]:
    """Everything that escaped: error logs (any logger), swallowed widget-callback
    exceptions (ipywidgets logs them on the ``traitlets`` logger), thread crashes."""
    handler = Escapes()
    loggers = [logging.getLogger(), logging.getLogger("traitlets")]
    for lg in loggers:
        lg.addHandler(handler)
    old_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        handler.thread_errors.append(f"thread {args.thread}: {args.exc_type.__name__}: "
                                     f"{args.exc_value}")

    threading.excepthook = hook
    try:
        yield handler
    finally:
        threading.excepthook = old_hook
        for lg in loggers:
            lg.removeHandler(handler)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def png_bytes(size: tuple[int, int] = (40, 30), color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()
