"""nanobanana-widgets: the Nano Banana image service inside Jupyter.

The table of contents::

    PromptPanel                                     the interactive studio (ipywidgets)
    generate, edit, submit, task, tasks, wait_all   plain functions on a default client
    show                                            render results and images as a grid
    compare, grid, open_grid                        A/B comparisons and prompt grids
    History                                         the persistent session history
    Client, Task                                    the HTTP client and its task handle
    Result, GeneratedImage, ImageRequest            typed results
    NanoBananaError and subclasses                  typed errors
    connect, use_emulator                           real service with a token, else the emulator

Names are imported on first use, so ``import nanobanana_widgets`` stays cheap.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CancelledError,
    ContentRefusedError,
    DownloadError,
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
    ServerError,
    TaskFailedError,
    WaitTimeoutError,
)

if TYPE_CHECKING:
    from .client import Client, Task
    from .compare import Comparison, compare
    from .display import show
    from .grid import Grid, grid, open_grid
    from .helpers import (
        connect,
        default_client,
        edit,
        generate,
        set_default_client,
        submit,
        task,
        tasks,
        use_emulator,
        wait_all,
    )
    from .history import History, default_history
    from .images import read_metadata, to_image_url
    from .magics import load_ipython_extension
    from .panel import PromptPanel
    from .results import GeneratedImage, ImageRequest, Result, TaskRecord

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

_LAZY: dict[str, str] = {
    "PromptPanel": "panel",
    "show": "display",
    "compare": "compare",
    "Comparison": "compare",
    "open_grid": "grid",
    "grid": "grid",
    "Grid": "grid",
    "History": "history",
    "default_history": "history",
    "connect": "helpers",
    "Client": "client",
    "Task": "client",
    "generate": "helpers",
    "edit": "helpers",
    "submit": "helpers",
    "task": "helpers",
    "tasks": "helpers",
    "wait_all": "helpers",
    "default_client": "helpers",
    "set_default_client": "helpers",
    "use_emulator": "helpers",
    "to_image_url": "images",
    "read_metadata": "images",
    "GeneratedImage": "results",
    "ImageRequest": "results",
    "Result": "results",
    "TaskRecord": "results",
    "load_ipython_extension": "magics",
}


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
    "WaitTimeoutError",
]
