"""Module-level functions bound to a lazily made default :class:`~.client.Client`.

``generate("a cat")`` works with nothing set up: the default client is created on first use
and reads ``ACEDATACLOUD_API_TOKEN`` / ``ACEDATACLOUD_API_BASE_URL`` at its first request.
``use_emulator()`` points it at an in-process emulator instead, to work offline.
"""

from __future__ import annotations

import atexit
import html
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .client import BASE_URL_ENV, TOKEN_ENV, Client, ProgressCallback, Task
from .models import DEFAULT_MODEL

if TYPE_CHECKING:
    from .emulator import Emulator
    from .errors import NanoBananaError
    from .results import Result, TaskRecord

__all__ = [
    "EMULATOR_TOKEN",
    "Backend",
    "connect",
    "default_client",
    "edit",
    "generate",
    "set_default_client",
    "submit",
    "task",
    "tasks",
    "use_emulator",
    "wait_all",
]

logger = logging.getLogger("nanobanana_widgets.client")

EMULATOR_TOKEN = "offline-emulator"
"""The placeholder token the default client sends to the emulator (not a real token)."""

_lock = threading.RLock()
_default: Client | None = None
_emulator: Emulator | None = None
_atexit_registered = False


def default_client() -> Client:
    """The client the module functions use (created on first use; thread-safe)."""
    global _default
    with _lock:
        created = _default is None
        if _default is None:
            _default = Client()
        client = _default
    if created:
        _record_in_default_history()
    return client


def set_default_client(client: Client | None) -> None:
    """Make ``client`` the default (``None``: a fresh ``Client()`` is made on next use)."""
    global _default
    if client is not None and not isinstance(client, Client):
        raise TypeError(f"set_default_client() needs a Client, not {type(client).__name__}")
    with _lock:
        _default = client
    if client is not None:
        _record_in_default_history()


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


def task(task_id: str) -> TaskRecord:
    """Look one task up on the default client."""
    return default_client().task(task_id)


def tasks(ids: Iterable[str]) -> list[TaskRecord]:
    """Look many tasks up on the default client (batched, in the order of ``ids``)."""
    return default_client().tasks(ids)


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


# --- offline work ------------------------------------------------------------------------


def _emulator_class() -> type[Emulator]:
    from .emulator import Emulator

    class OfflineEmulator(Emulator):
        """The emulator started by :func:`use_emulator` (its repr says what it is)."""

        def __repr__(self) -> str:
            where = self.base_url or "(not running)"
            return f"offline emulator at {where} — images are placeholders"

    OfflineEmulator.__name__ = OfflineEmulator.__qualname__ = "OfflineEmulator"
    return OfflineEmulator


def use_emulator(
    *, latency: float | tuple[float, float] = (1.0, 3.0), poll_interval: float = 0.25,
    **kwargs: Any,
) -> Emulator:
    """Start an in-process emulator and point the default client at it; returns it.

    Works offline: the images are placeholders drawn locally, nothing is billed. ``latency``
    is seconds per task (or a ``(low, high)`` range); other keywords go to
    :class:`~nanobanana_widgets.emulator.Emulator`. Calling it again replaces the previous
    emulator (and default client). The emulator is stopped at interpreter exit. A real
    token in the environment is not used (see :func:`connect` to prefer it).
    """
    global _emulator, _default, _atexit_registered
    emulator = _emulator_class()(latency=latency, **kwargs).start()
    client = Client(EMULATOR_TOKEN, base_url=emulator.base_url, poll_interval=poll_interval)
    with _lock:
        old_emulator, old_client = _emulator, _default
        _emulator, _default = emulator, client
        if not _atexit_registered:
            atexit.register(_stop_emulator)
            _atexit_registered = True
    if old_client is not None and old_emulator is not None and (
        old_client.base_url == old_emulator.base_url
    ):
        old_client.close()
    if old_emulator is not None:
        old_emulator.stop()
    _record_in_default_history()
    logger.info("Default client now uses the offline emulator at %s.", emulator.base_url)
    return emulator


OFFLINE_DEMO_ENV = "NANOBANANA_OFFLINE_DEMO"
"""Set by ``make demo`` when ``ACEDATACLOUD_API_BASE_URL`` points at its emulator."""

HISTORY_ENV = "NANOBANANA_HISTORY"
"""Set to ``0``/``off`` to stop recording the default client's requests in the history."""


@dataclass(frozen=True)
class Backend:
    """Which service the default client talks to, as :func:`connect` chose it."""

    kind: Literal["service", "emulator"]
    base_url: str
    client: Client
    emulator: Emulator | None = None

    @property
    def offline(self) -> bool:
        """True when the images are the emulator's placeholders (nothing is billed)."""
        return self.kind == "emulator"

    def describe(self) -> str:
        """One plain sentence saying what is in use."""
        if self.offline:
            return (
                f"Offline: using the Nano Banana emulator at {self.base_url}. "
                "Images are placeholders drawn from your prompt; nothing is billed. "
                "Set ACEDATACLOUD_API_TOKEN to use the real service."
            )
        return (
            f"Using the Nano Banana service at {self.base_url} with your token from "
            "ACEDATACLOUD_API_TOKEN. Every generated image is billed."
        )

    def __repr__(self) -> str:
        return self.describe()

    def _repr_html_(self) -> str:
        colour = "var(--jp-warn-color1, #b26a00)" if self.offline else "inherit"
        return (
            f'<div class="nbw-backend" style="color: {colour}; font-weight: 600">'
            f"{html.escape(self.describe())}</div>"
        )


def connect(*, latency: float | tuple[float, float] = (1.0, 3.0), **kwargs: Any) -> Backend:
    """Use the real service when ``ACEDATACLOUD_API_TOKEN`` is set, else the emulator.

    Without a token: the emulator that ``make demo`` started (``ACEDATACLOUD_API_BASE_URL``
    with ``NANOBANANA_OFFLINE_DEMO=1``), or else one started in-process (see
    :func:`use_emulator`; ``latency`` and ``kwargs`` go to it). Returns a :class:`Backend`
    whose display says which it is.
    """
    if os.environ.get(TOKEN_ENV, "").strip():
        client = Client()
        set_default_client(client)
        logger.info("Default client uses the service at %s.", client.base_url)
        return Backend("service", client.base_url, client)
    demo_url = os.environ.get(BASE_URL_ENV, "").strip()
    if demo_url and os.environ.get(OFFLINE_DEMO_ENV) == "1":
        client = Client(EMULATOR_TOKEN, base_url=demo_url, poll_interval=0.25)
        set_default_client(client)
        return Backend("emulator", client.base_url, client)
    emulator = use_emulator(latency=latency, **kwargs)
    return Backend("emulator", emulator.base_url or "", default_client(), emulator)


def _record_in_default_history() -> None:
    """Attach the default history to the default client, unless switched off."""
    if os.environ.get(HISTORY_ENV, "1").strip().lower() in ("0", "off", "false", "no"):
        return
    from .history import default_history

    default_history()


def _stop_emulator() -> None:
    global _emulator
    with _lock:
        emulator, _emulator = _emulator, None
    if emulator is not None:
        emulator.stop()
