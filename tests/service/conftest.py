"""The service tests register secrets of their own (``"abc"``, short, matched as a word):
the process-wide registry is put back after each test, so no later test in another folder
finds ordinary words scrubbed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nanobanana_widgets.service import secrets


@pytest.fixture(autouse=True)
def _restore_the_secret_registry() -> Iterator[None]:
    with secrets._lock:
        saved = set(secrets._secrets)
    yield
    with secrets._lock:
        secrets._secrets.clear()
        secrets._secrets.update(saved)
        secrets._pattern = None
