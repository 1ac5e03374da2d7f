"""The session: the one place that knows the default client, history and emulator.

It reads the package's environment variables (``ACEDATACLOUD_API_TOKEN`` and
``ACEDATACLOUD_API_BASE_URL`` through the client, at its first request;
``NANOBANANA_HISTORY`` and ``NANOBANANA_OFFLINE_DEMO`` here) and answers "which client, which
history?" for the module functions, the widgets and the magics. The default client is made
on first use; ``use_emulator()`` points it at an in-process emulator to work offline, and
``connect()`` chooses the real service when a token is set.
"""

from __future__ import annotations

import atexit
import html
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nanobanana_widgets.client import BASE_URL_ENV, LOOPBACK_PLACEHOLDER_TOKEN, TOKEN_ENV, Client
from nanobanana_widgets.store import History

if TYPE_CHECKING:
    from nanobanana_widgets.emulator import Emulator

__all__ = [
    "EMULATOR_TOKEN",
    "HISTORY_ENV",
    "OFFLINE_DEMO_ENV",
    "Backend",
    "choose_history",
    "connect",
    "default_client",
    "default_history",
    "history_enabled",
    "set_default_client",
    "set_default_history",
    "use_emulator",
]

logger = logging.getLogger("nanobanana_widgets.client")

EMULATOR_TOKEN = LOOPBACK_PLACEHOLDER_TOKEN
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


# --- offline work ------------------------------------------------------------------------


def _emulator_class() -> type[Emulator]:
    from nanobanana_widgets.emulator import Emulator

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
    if history_enabled():
        default_history()


def _stop_emulator() -> None:
    global _emulator
    with _lock:
        emulator, _emulator = _emulator, None
    if emulator is not None:
        emulator.stop()


# --- the default history -----------------------------------------------------------------

_history_lock = threading.Lock()
_default_history: History | None = None


def history_enabled() -> bool:
    """Whether the default client's requests are recorded (``NANOBANANA_HISTORY`` is not
    ``0``/``off``/``false``/``no``)."""
    return os.environ.get(HISTORY_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def default_history(*, attach: bool = True) -> History:
    """The process's default history (``.nanobanana/`` under the working directory when
    first asked for), attached to the package's default client so that the module
    functions, the panel and the magics are recorded.

    It always opens (see :meth:`History.open_safely`): a damaged history is kept aside and
    a fresh one started, one from a newer version or in a folder that cannot be written
    is left alone and the session records beside it or in a temporary folder, each with a
    ``HistoryWarning`` in the cell output. So ``connect()`` and the module functions work
    in any folder.

    ``attach=False`` leaves the default client alone (neither made nor attached), for a
    caller that records its own client into the default history.
    """
    global _default_history
    with _history_lock:
        if _default_history is None:
            _default_history = History.open_safely()
        history = _default_history
    if attach:
        history.attach(default_client())
    return history


def set_default_history(history: History | None) -> None:
    """Use ``history`` as the default (``None``: a new one is opened on next use)."""
    global _default_history
    if history is not None and not isinstance(history, History):
        raise TypeError(f"set_default_history() needs a History, not {type(history).__name__}")
    with _history_lock:
        _default_history = history


def choose_history(history: History | bool | None, client: Client | None = None, *,
                   owner: str = "history") -> History | None:
    """The history a widget or helper records into: ``history`` itself when one is given,
    none for ``False`` (or ``None`` with ``NANOBANANA_HISTORY=off``), else the default
    history. A given ``client`` is attached to the chosen history; without one the default
    client is attached to the default history."""
    if history is False:
        return None
    if isinstance(history, History):
        chosen: History | None = history
    elif history is None or history is True:
        if history is None and not history_enabled():
            return None
        chosen = default_history(attach=client is None)
    else:
        raise TypeError(
            f"{owner}=... takes a History, None (the default history) or False "
            f"(record nothing), not {type(history).__name__}."
        )
    if chosen is not None and client is not None:
        chosen.attach(client)
    return chosen


History.default_client_factory = default_client
