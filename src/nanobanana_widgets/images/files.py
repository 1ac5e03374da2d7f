"""Writing images to files: atomically, with their metadata; and decoding bytes."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from nanobanana_widgets.images.formats import extension_for
from nanobanana_widgets.images.metadata import embed_metadata

__all__ = ["decode", "save_generated", "write_with_metadata"]


def write_with_metadata(path: str | os.PathLike[str], data: bytes,
                        meta: Mapping[str, Any]) -> None:
    """Write ``data`` with ``meta`` embedded to ``path`` atomically (temp file + rename)."""
    target = Path(path).expanduser()
    content = embed_metadata(data, meta)
    folder = target.parent
    tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def decode(data: bytes) -> Image.Image:
    """Decode image bytes into a loaded ``PIL.Image``."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def save_generated(image: Any, data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write a result image's bytes to ``path`` (a file, or a folder: named after its task
    and index) with its metadata (``image.metadata()``) embedded."""
    target = Path(path)
    if target.is_dir():
        stem = f"{image.task_id or 'image'}-{image.index}"
        ext = extension_for(data)
        # write_with_metadata keeps PNG and JPEG as they are and converts the rest to PNG
        target = target / f"{stem}{ext if ext in ('.png', '.jpg') else '.png'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_with_metadata(target, data, image.metadata())
    return target
