"""The thumbnails a tournament shows, made off the kernel's thread. No widget here.

Each item gets two JPEG thumbnails from one decode: a large one for the pair on stage
(:data:`STAGE_SIDE` px) and a small one for the rankings chart and the revealed vote
(:data:`CHART_SIDE` px). They are made on a small pool (a generated image not yet
downloaded is fetched there, never on the kernel's thread), the pair on stage first;
``on_ready(key)`` is called from the pool as each item's are done (or failed).
"""

from __future__ import annotations

import concurrent.futures
import io
import threading
from collections.abc import Callable, Iterable
from typing import Any

from PIL import Image

from nanobanana_widgets.images import load_image, thumbnail
from nanobanana_widgets.render.results import data_uri
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.service.types import GeneratedImage
from nanobanana_widgets.widgets.tournament.items import Item

__all__ = ["CHART_SIDE", "STAGE_SIDE", "Thumbs"]

STAGE_SIDE = 480
CHART_SIDE = 96


class Thumbs:
    """Thumbnails by item key: ``stage(key)``, ``chart(key)``, ``aspect(key)``,
    ``problem(key)``; ``want(items)`` schedules them (first asked, first made)."""

    def __init__(self, on_ready: Callable[[str], object], *, name: str = "tournament") -> None:
        self._on_ready = on_ready
        self._lock = threading.Lock()
        self._stage: dict[str, str] = {}
        self._chart: dict[str, str] = {}
        self._aspect: dict[str, tuple[int, int]] = {}
        self._problems: dict[str, str] = {}
        self._futures: dict[str, concurrent.futures.Future[None]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix=f"nbw-{name}-thumbs")
        self._closed = False

    def want(self, items: Iterable[Item]) -> None:
        """Make the thumbnails of ``items`` (those not made or under way yet)."""
        with self._lock:
            if self._closed:
                return
            for item in items:
                if item.key not in self._futures:
                    self._futures[item.key] = self._pool.submit(self._make, item)

    def _make(self, item: Item) -> None:
        try:
            source: Any = item.source
            if isinstance(source, GeneratedImage):
                source = source.bytes()  # downloaded once, kept by the image
            picture = load_image(source)
            picture.load()
            big = thumbnail(picture, max_side=STAGE_SIDE)
            small = thumbnail(picture, max_side=CHART_SIDE, quality=75)
            with Image.open(io.BytesIO(big)) as shown:
                size = (int(shown.width), int(shown.height))
            with self._lock:
                self._stage[item.key] = data_uri(big)
                self._chart[item.key] = data_uri(small)
                self._aspect[item.key] = size
        except Exception as exc:  # said on the stage, never a traceback
            with self._lock:
                self._problems[item.key] = describe_error(exc)
        self._on_ready(item.key)

    def ready(self, key: str) -> bool:
        """Whether ``key``'s thumbnails are made (or failed)."""
        with self._lock:
            return key in self._stage or key in self._problems

    def done(self) -> int:
        """How many items' thumbnails are made (or failed)."""
        with self._lock:
            return len(self._stage) + len(self._problems)

    def stage(self, key: str) -> str | None:
        """The large thumbnail's data URI (``None`` until made, or when it failed)."""
        with self._lock:
            return self._stage.get(key)

    def chart(self, key: str) -> str | None:
        """The small thumbnail's data URI."""
        with self._lock:
            return self._chart.get(key)

    def charts(self) -> dict[str, str]:
        """Every small thumbnail made so far, by key."""
        with self._lock:
            return dict(self._chart)

    def aspect(self, key: str) -> tuple[int, int] | None:
        """The large thumbnail's size."""
        with self._lock:
            return self._aspect.get(key)

    def problem(self, key: str) -> str | None:
        """Why the thumbnails could not be made."""
        with self._lock:
            return self._problems.get(key)

    def wait(self, keys: Iterable[str], timeout: float | None = None) -> bool:
        """Wait until the thumbnails of ``keys`` are made; ``True`` when all are."""
        with self._lock:
            futures = [self._futures[k] for k in keys if k in self._futures]
        _done, pending = concurrent.futures.wait(futures, timeout=timeout)
        return not pending

    def close(self) -> None:
        """Stop: thumbnails not started are not made."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
