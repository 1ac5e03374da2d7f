"""The images the emulator serves at ``/files/<task>-<i>.png``: drawn on first use, cached.

An edit's inputs are decoded from data URIs or, when they point at this emulator's own
files, read from here; anything else becomes a visible placeholder (nothing is fetched).
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections import OrderedDict
from typing import Final
from urllib.parse import urlsplit

from PIL import Image

from nanobanana_widgets.emulator.addresses import is_loopback_host
from nanobanana_widgets.emulator.drawing import (
    InputImage,
    decode_data_uri,
    encode_png,
    nearest_aspect_ratio,
    render_edit,
    render_generate,
)
from nanobanana_widgets.emulator.state import EmulatorState, Task
from nanobanana_widgets.service.models import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_RESOLUTION,
    pixel_size,
)

__all__ = ["FILE_RE", "ImageFiles"]

FILE_RE: Final = re.compile(r"^/files/(?P<task>[A-Za-z0-9_-]+)-(?P<index>\d+)\.png$")
"""The path of a served file: ``/files/<task id>-<index>.png``."""

_CACHE_MAX_ENTRIES: Final = 64
_CACHE_MAX_BYTES: Final = 192 * 1024 * 1024
_MAX_DEPTH: Final = 4  # an edit of an edit of ... of our own file: this many levels at most


class ImageFiles:
    """PNG bytes of the finished tasks' images, rendered once and kept in a bounded LRU cache."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = 0

    def get(self, path: str, depth: int = 0) -> bytes | None:
        """PNG bytes for ``/files/<task>-<i>.png``, or ``None`` if there is no such image yet."""
        match = FILE_RE.match(path)
        if match is None:
            return None
        index = int(match["index"])
        task = self._state.finished_task(match["task"], index)
        if task is None:
            return None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None:
                self._cache.move_to_end(path)
                return cached
        data = encode_png(self._render(task, index, depth))
        with self._lock:
            if path not in self._cache:
                self._cache[path] = data
                self._cache_bytes += len(data)
                while self._cache and (
                    len(self._cache) > _CACHE_MAX_ENTRIES or self._cache_bytes > _CACHE_MAX_BYTES
                ):
                    _, old = self._cache.popitem(last=False)
                    self._cache_bytes -= len(old)
        return data

    def _render(self, task: Task, index: int, depth: int) -> Image.Image:
        req = task.request
        prompt = str(req.get("prompt", ""))
        resolution = req.get("resolution") or DEFAULT_RESOLUTION
        key = json.dumps(
            {k: req.get(k) for k in ("action", "model", "aspect_ratio", "resolution", "count")},
            sort_keys=True,
        )
        if req.get("action") != "edit":
            size = pixel_size(req.get("aspect_ratio") or DEFAULT_ASPECT_RATIO, resolution)
            return render_generate(prompt, size, index=index, count=task.count, key=key)
        urls = [u for u in req.get("image_urls") or [] if isinstance(u, str)]
        inputs = [self._load_input(u, depth) for u in urls]
        ratio = req.get("aspect_ratio")
        if not ratio:
            first = inputs[0].image if inputs else None
            ratio = nearest_aspect_ratio(*first.size) if first is not None else "1:1"
        size = pixel_size(ratio, resolution)
        key += "|" + "|".join(u if len(u) < 256 else f"{len(u)}:{u[-200:]}" for u in urls)
        return render_edit(prompt, inputs, size, index=index, count=task.count, key=key)

    def _load_input(self, url: str, depth: int) -> InputImage:
        """An input image: a decoded data URI, one of our own files, or a placeholder."""
        if url.startswith("data:"):
            try:
                data = decode_data_uri(url)
            except ValueError:
                return InputImage(None, "unreadable data URI")
            return _open(data, "unreadable image")
        parts = urlsplit(url)
        own = urlsplit(self._state.base_url)
        if (
            depth < _MAX_DEPTH
            and parts.scheme == "http"
            and parts.port == own.port
            and is_loopback_host(parts.hostname)
            and is_loopback_host(own.hostname)
        ):
            own_file = self.get(parts.path, depth + 1)
            if own_file is not None:
                return _open(own_file, "unreadable image")
            return InputImage(None, f"{parts.hostname}: not found")
        return InputImage(None, f"image from {parts.hostname or 'unknown host'}")


def _open(data: bytes, problem: str) -> InputImage:
    """``data`` decoded (at most 2048 px a side), or a placeholder saying ``problem``."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (2048, 2048))
            img.load()
            copy = img.convert("RGB")
        copy.thumbnail((2048, 2048))
        return InputImage(copy)
    except Exception:  # any undecodable input becomes a visible placeholder
        return InputImage(None, problem)
