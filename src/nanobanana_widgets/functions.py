"""Module-level functions on the session's default client: ``generate("a cat")`` works with
nothing set up.

The default client is created on first use and reads ``ACEDATACLOUD_API_TOKEN`` /
``ACEDATACLOUD_API_BASE_URL`` at its first request (see :mod:`nanobanana_widgets.session`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.client import ProgressCallback, Task
from nanobanana_widgets.render.results import show
from nanobanana_widgets.service.models import DEFAULT_MODEL
from nanobanana_widgets.session import default_client

if TYPE_CHECKING:
    from nanobanana_widgets.service.errors import NanoBananaError
    from nanobanana_widgets.service.types import Result, TaskRecord

__all__ = ["edit", "generate", "show", "submit", "task", "tasks", "wait_all"]


def submit(
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
    """Submit one request on the default client and return its :class:`Task` at once."""
    return default_client().submit(
        prompt, action=action, images=images, model=model, count=count,
        aspect_ratio=aspect_ratio, resolution=resolution, callback_url=callback_url,
    )


def generate(
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
    """Generate images from ``prompt`` on the default client and wait (see ``Client.generate``)."""
    return default_client().generate(
        prompt, model=model, count=count, aspect_ratio=aspect_ratio, resolution=resolution,
        callback_url=callback_url, timeout=timeout, on_progress=on_progress, sync=sync,
    )


def edit(
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
    """Edit ``images`` following ``prompt`` on the default client and wait (see ``Client.edit``)."""
    return default_client().edit(
        prompt, images, model=model, count=count, aspect_ratio=aspect_ratio,
        resolution=resolution, callback_url=callback_url, timeout=timeout,
        on_progress=on_progress, sync=sync,
    )


def task(task_id: str, *, deadline: float | None = None) -> TaskRecord:
    """Look one task up on the default client (within ``deadline`` seconds, default the
    client's)."""
    return default_client().task(task_id, deadline=deadline)


def tasks(ids: Iterable[str], *, deadline: float | None = None) -> list[TaskRecord]:
    """Look many tasks up on the default client (batched, in the order of ``ids``, within
    ``deadline`` seconds, default the client's)."""
    return default_client().tasks(ids, deadline=deadline)


def wait_all(
    tasks: Iterable[Task | str],
    *,
    timeout: float | None = None,
    on_progress: ProgressCallback | None = None,
    return_exceptions: bool = False,
) -> list[Result | NanoBananaError]:
    """Wait for many tasks (those of one client; ids are attached to the default client)."""
    return default_client().wait_all(
        tasks, timeout=timeout, on_progress=on_progress, return_exceptions=return_exceptions,
    )
