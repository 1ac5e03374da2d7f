"""Helpers shared by every test folder (the fixtures in ``conftest.py`` hand them out).

``TEST_TOKEN`` is distinctive, so leak checks can look for it; ``png()`` makes a small real
PNG; ``wait_until()`` waits for something background threads bring about (a condition, never
a sleep asserted as a duration).
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable

from PIL import Image

TEST_TOKEN = "test-token-7f3a9c"


def png(color: str | tuple[int, int, int] = "teal", size: tuple[int, int] = (40, 30)) -> bytes:
    """A small solid-colour PNG, as bytes."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def png_data_uri(data: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(data).decode()


def wait_until(condition: Callable[[], object], what: str = "the condition",
               timeout: float = 10.0) -> None:
    """Poll ``condition`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
