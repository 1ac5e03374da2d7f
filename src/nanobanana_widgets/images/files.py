"""Writing images to files: atomically, with their metadata, under names made safe; and
decoding result bytes within a pixel limit."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from PIL import Image

from nanobanana_widgets.images._shared import RESULT_MAX_PIXELS, Raw, open_checked, quiet_pillow
from nanobanana_widgets.images.formats import extension_for
from nanobanana_widgets.images.metadata import embed_metadata
from nanobanana_widgets.service.errors import (
    DownloadError,
    ImageInputError,
    NanoBananaError,
    SaveError,
    describe_error,
)

__all__ = ["decode", "safe_name", "save_generated", "write_with_metadata"]

_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
     *(f"LPT{i}" for i in range(1, 10))})


def safe_name(text: str, *, fallback: str = "image", limit: int = 80) -> str:
    """``text`` (e.g. a task id from a server) as one file name component: only ASCII
    letters, digits, ``.``, ``_`` and ``-`` (runs of anything else become one ``_``), no
    leading or trailing dot, at most ``limit`` characters, never a Windows device name;
    ``fallback`` when nothing is left. ``../../x`` becomes ``x``, never a path."""
    name = _NAME_UNSAFE.sub("_", str(text)).strip("._")
    name = name[:limit].strip("._") or fallback
    if name.split(".")[0].upper() in _RESERVED:
        name = "_" + name
    return name


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


def decode(data: bytes, *, max_pixels: int = RESULT_MAX_PIXELS) -> Image.Image:
    """Decode a result image's bytes into a loaded ``PIL.Image``; an image of more than
    ``max_pixels`` pixels is refused before decoding (:class:`DownloadError`)."""
    with quiet_pillow():
        try:
            return open_checked(Raw(bytes(data), "<result image>"), max_pixels)
        except ImageInputError as exc:
            hint = (" Results are at most 4K (about 17 megapixels); pass the bytes to "
                    "PIL yourself if you trust this one." if "megapixels" in exc.problem
                    else "")
            raise DownloadError(f"The result image cannot be decoded: it {exc.problem}."
                                + hint) from None


def save_generated(image: Any, data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write a result image's bytes to ``path`` with its metadata (``image.metadata()``)
    embedded; returns the file's path.

    ``path`` is a file (its folder made if missing) or an existing folder: then the file is
    named ``<task id>-<index><.png|.jpg>`` with the task id made safe (:func:`safe_name`),
    and it is never written outside that folder, whatever the server called the task. Any
    failure to write raises :class:`SaveError` naming the path.
    """
    try:
        target = Path(path).expanduser()
        if target.is_dir():
            folder = target
            index = getattr(image, "index", 0)
            stem = (f"{safe_name(str(getattr(image, 'task_id', '') or ''))}-"
                    f"{index if isinstance(index, int) else 0}")
            ext = extension_for(data)
            # write_with_metadata keeps PNG and JPEG as they are and converts the rest to PNG
            name = f"{stem}{ext if ext in ('.png', '.jpg') else '.png'}"
            target = folder / name
            # safe_name already makes a single plain component; checked on the resolved
            # paths all the same (the file itself may be a symlink: it is replaced, not
            # followed, so only its folder counts).
            if target.name != name or target.parent.resolve() != folder.resolve():
                raise SaveError(f"Refused to save {name!r}: it would not be inside the "
                                f"folder {str(folder)!r}.")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        write_with_metadata(target, data, image.metadata())
    except NanoBananaError:
        raise
    except (OSError, ValueError) as exc:
        raise SaveError(f"Could not save the image to {str(path)!r}: "
                        f"{describe_error(exc)}") from exc
    return target
