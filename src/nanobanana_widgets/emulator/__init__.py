"""An offline emulator of the Nano Banana service: a real HTTP server on loopback.

``with Emulator() as emu:`` serves API.md's protocol at ``emu.base_url``, draws real PNGs,
and can inject every failure the client must survive (:meth:`Emulator.inject`).
``python -m nanobanana_widgets.emulator`` runs it from the shell.
"""

from __future__ import annotations

from nanobanana_widgets.emulator.addresses import is_loopback_host
from nanobanana_widgets.emulator.server import Emulator
from nanobanana_widgets.emulator.state import DEFAULT_FAULT_KINDS, FAULT_KINDS

__all__ = ["DEFAULT_FAULT_KINDS", "FAULT_KINDS", "Emulator", "is_loopback_host"]
