"""Shared pieces of the reliability suite: an emulator that remembers which fault each
images request met, and a capture of everything that could escape unnoticed."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from PIL import Image

from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.emulator.callbacks import Callbacks
from nanobanana_widgets.emulator.endpoints import Endpoints
from nanobanana_widgets.emulator.files import ImageFiles
from nanobanana_widgets.emulator.handler import Handler
from nanobanana_widgets.emulator.state import EmulatorState, Fault, Task


class _RecordingEndpoints(Endpoints):
    """The emulator's endpoints, noting the fault each images request met, per prompt."""

    def __init__(self, *args: Any, attempts: dict[str | None, list[str | None]]) -> None:
        super().__init__(*args)
        self.attempts = attempts
        self._attempts_lock = threading.Lock()
        self._local = threading.local()

    def _take_fault(self, endpoint: str) -> Fault | None:
        fault = super()._take_fault(endpoint)
        if endpoint == "images":
            self._local.fault = fault.kind if fault is not None else None
        return fault

    def _images(self, h: Handler, path: str, raw: bytes) -> None:
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


class _SmallImageFiles(ImageFiles):
    """The emulator's files, drawn as 48 px placeholders."""

    def _render(self, task: Task, index: int, depth: int) -> Image.Image:
        shade = (len(task.id) * 7 + index * 40) % 256
        return Image.new("RGB", (48, 48), (shade, 120, 255 - shade))


class RecordingEmulator(Emulator):
    """The real emulator, plus a per-prompt list of the fault each images request met.

    ``attempts[prompt]`` lists, in order, the fault kind (or ``None``) of every images
    request that carried that prompt, so a test can tell a legitimate resend (after a 429)
    from a duplicated, billable one. ``small_images=True`` draws 48 px placeholders instead
    of 1K ones, to keep hundreds of generations fast (the bookkeeping is what is tested).
    """

    def __init__(self, *, small_images: bool = False, **kwargs: Any) -> None:
        self.attempts: dict[str | None, list[str | None]] = defaultdict(list)
        self._small_images = small_images
        super().__init__(**kwargs)

    def _make_endpoints(self, state: EmulatorState, callbacks: Callbacks,
                        tokens: Iterable[str] | None) -> Endpoints:
        files = _SmallImageFiles(state) if self._small_images else ImageFiles(state)
        return _RecordingEndpoints(state, files, callbacks, tokens, attempts=self.attempts)


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
