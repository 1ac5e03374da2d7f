"""nanobanana-widgets: the Nano Banana image service inside Jupyter.

The table of contents::

    PromptPanel                                     the interactive studio (ipywidgets)
    generate, edit, submit, task, tasks, wait_all   plain functions on a default client
    show                                            render results and images as a grid
    compare, grid, open_grid                        A/B comparisons and prompt grids
    tournament, ab_test                             blind rankings and A/B verdicts
    batch, Job                                      batch jobs: thousands of rows, resumable
    History                                         the persistent session history
    Client, Task                                    the HTTP client and its task handle
    Result, GeneratedImage, ImageRequest            typed results
    NanoBananaError and subclasses                  typed errors (HistoryError for the history)
    connect, use_emulator                           real service with a token, else the emulator

Names are imported on first use, so ``import nanobanana_widgets`` stays cheap. The package
is layered (see ``docs/architecture.md``): ``service`` (what the service is), ``images`` and
``client`` (I/O), ``render`` (HTML), ``store`` (the history), ``session`` and ``functions``
(the defaults), ``widgets``, then ``magics`` and ``demo``. This module is the only one that
sees them all: besides the names below, it wires the service layer's seams
(:mod:`.service.seams`) to ``images`` and ``render``, lazily.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from nanobanana_widgets._aliases import install as _install_old_paths
from nanobanana_widgets.service import seams as _seams
from nanobanana_widgets.service.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CancelledError,
    ContentRefusedError,
    DownloadError,
    HistoryAccessError,
    HistoryBusyError,
    HistoryDamagedError,
    HistoryError,
    HistoryVersionError,
    HistoryWarning,
    HistoryWriteError,
    ImageInputError,
    InvalidParameterError,
    MalformedResponseError,
    MissingTokenError,
    NanoBananaError,
    NoBalanceError,
    NotFoundError,
    PossiblyBilledError,
    RateLimitError,
    RequestTooLargeError,
    SaveError,
    ServerError,
    TaskFailedError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image as PILImage

    from nanobanana_widgets.client import Client, Task
    from nanobanana_widgets.functions import edit, generate, show, submit, task, tasks, wait_all
    from nanobanana_widgets.images import read_metadata, to_image_url
    from nanobanana_widgets.magics import load_ipython_extension
    from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result, TaskRecord
    from nanobanana_widgets.session import (
        connect,
        default_client,
        default_history,
        set_default_client,
        use_emulator,
    )
    from nanobanana_widgets.store import History
    from nanobanana_widgets.widgets.batch import Job, batch
    from nanobanana_widgets.widgets.compare import Comparison, compare
    from nanobanana_widgets.widgets.grid import Grid, grid, open_grid
    from nanobanana_widgets.widgets.panel import PromptPanel
    from nanobanana_widgets.widgets.tournament import ABTest, Tournament, ab_test, tournament

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY: dict[str, str] = {
    "PromptPanel": "widgets.panel",
    "show": "functions",
    "compare": "widgets.compare",
    "Comparison": "widgets.compare",
    "open_grid": "widgets.grid",
    "grid": "widgets.grid",
    "Grid": "widgets.grid",
    # History comes through the session, which gives it the default client to look up with.
    "History": "session",
    "default_history": "session",
    "connect": "session",
    "Client": "client",
    "Task": "client",
    "generate": "functions",
    "edit": "functions",
    "submit": "functions",
    "task": "functions",
    "tasks": "functions",
    "wait_all": "functions",
    "default_client": "session",
    "set_default_client": "session",
    "use_emulator": "session",
    "to_image_url": "images",
    "read_metadata": "images",
    "GeneratedImage": "service.types",
    "ImageRequest": "service.types",
    "Result": "service.types",
    "TaskRecord": "service.types",
    "load_ipython_extension": "magics",
    "tournament": "widgets.tournament",
    "Tournament": "widgets.tournament",
    "ab_test": "widgets.tournament",
    "ABTest": "widgets.tournament",
    "batch": "widgets.batch",
    "Job": "widgets.batch",
}


class _ResultIO:
    """The service layer's seams, served by ``images`` and ``render`` (imported on use)."""

    def download(self, url: str, **kwargs: Any) -> bytes:
        from nanobanana_widgets.images import download

        return download(url, **kwargs)

    def decode(self, data: bytes) -> PILImage.Image:
        from nanobanana_widgets.images import decode

        return decode(data)

    def save(self, image: GeneratedImage, data: bytes, path: str | Path) -> Path:
        from nanobanana_widgets.images import save_generated

        return save_generated(image, data, path)

    def image_html(self, image: GeneratedImage) -> str:
        from nanobanana_widgets.render.results import image_html

        return image_html(image)

    def result_html(self, result: Result) -> str:
        from nanobanana_widgets.render.results import result_html

        return result_html(result)


_seams.install(_ResultIO())
_install_old_paths()


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [  # noqa: RUF022 - grouped like the table of contents above
    "PromptPanel", "History", "default_history", "show",
    "compare", "Comparison", "grid", "Grid", "open_grid",
    "tournament", "Tournament", "ab_test", "ABTest",
    "generate", "edit", "submit", "task", "tasks", "wait_all",
    "Client", "Task", "default_client", "set_default_client", "connect", "use_emulator",
    "load_ipython_extension",
    "Result", "GeneratedImage", "ImageRequest", "TaskRecord",
    "to_image_url", "read_metadata",
    "NanoBananaError", "APIError", "APIConnectionError", "APITimeoutError",
    "AuthenticationError", "BadRequestError", "CancelledError", "ContentRefusedError",
    "DownloadError", "ImageInputError", "InvalidParameterError", "MalformedResponseError",
    "MissingTokenError", "NoBalanceError", "NotFoundError", "PossiblyBilledError",
    "RateLimitError", "RequestTooLargeError", "ServerError", "TaskFailedError",
    "WaitTimeoutError", "SaveError",
    "HistoryError", "HistoryDamagedError", "HistoryVersionError", "HistoryAccessError",
    "HistoryBusyError", "HistoryWriteError", "HistoryWarning",
    "batch", "Job",
]
