"""Copies of images that outputs and reports link to, and the files reports are made of.

A notebook output or an HTML report links to full-size images by relative paths, so the
copies must sit in a visible folder beside the notebook (Jupyter does not serve hidden
ones) or beside the report. :func:`publish_copy` puts one there under a safe,
content-addressed name: the same image published twice is one file, a name never comes
from user text alone, and a file appears whole or not at all (temp file + rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nanobanana_widgets.images.files import write_with_metadata
from nanobanana_widgets.images.formats import extension_for
from nanobanana_widgets.service.text import data_uri

__all__ = ["ReportAssets", "publish_copy", "safe_filename", "write_bytes_atomic",
           "write_text_atomic"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                       *(f"LPT{i}" for i in range(1, 10))})


def safe_filename(text: str, *, max_chars: int = 60, default: str = "image") -> str:
    """``text`` as a file-name stem any file system and URL accept: ASCII letters,
    digits, ``.``, ``_`` and ``-``, no leading dot, at most ``max_chars``."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    stem = _UNSAFE.sub("-", ascii_text).strip("-._")[:max_chars].strip("-._")
    if not stem or stem.upper() in _RESERVED:
        return default
    return stem


def _tmp_beside(target: Path) -> Path:
    return target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"


def _copy_atomic(source: Path, target: Path) -> None:
    tmp = _tmp_beside(target)
    try:
        try:
            os.link(source, tmp)  # the history's copy, shared: no second file on disk
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def publish_copy(source: bytes | os.PathLike[str] | str, folder: str | os.PathLike[str], *,
                 stem: str = "", digest: str | None = None,
                 metadata: Mapping[str, Any] | None = None) -> Path:
    """A copy of an image (its bytes, or a file) in ``folder``, named
    ``<stem>-<sha256[:16]><ext>`` (the stem made safe; the hash of the bytes unless
    ``digest`` names it); ``metadata`` is embedded when the bytes are written. An existing
    copy is kept, so publishing is cheap and idempotent. Returns the copy's path."""
    target_dir = Path(folder)
    target_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        head = data[:64]
        digest = digest or hashlib.sha256(data).hexdigest()
        path: Path | None = None
    else:
        path = Path(source)
        data = b""
        with path.open("rb") as fh:
            head = fh.read(64)
        if digest is None:
            hasher = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    hasher.update(block)
            digest = hasher.hexdigest()
    prefix = safe_filename(stem, max_chars=40, default="") if stem else ""
    ext = extension_for(head)
    name = f"{prefix + '-' if prefix else ''}{safe_filename(digest[:16])}{ext}"
    target = target_dir / name
    if target.is_file():
        return target
    if path is not None:
        _copy_atomic(path, target)
    elif metadata and ext in (".png", ".jpg"):  # others would be converted to PNG
        write_with_metadata(target, data, metadata)
    else:
        write_bytes_atomic(target, data)
    return target


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (temp file + rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(target)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return target


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (temp file + rename)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif",
         ".bmp": "image/bmp", ".tif": "image/tiff"}


class ReportAssets:
    """The full-size images of one HTML report at ``path``: copies in the folder
    ``<stem>_files/`` beside it, linked by relative paths, or (``embed=True``) ``data:``
    URIs inside the page. :meth:`write` writes the page itself."""

    def __init__(self, path: str | os.PathLike[str], *, embed: bool = False) -> None:
        self.path = Path(path)
        self.embed = embed
        self.folder = self.path.with_name(
            f"{safe_filename(self.path.stem, default='report')}_files")

    def add(self, source: bytes | os.PathLike[str] | str, *, stem: str = "",
            digest: str | None = None, metadata: Mapping[str, Any] | None = None) -> str:
        """Where the report finds one full-size image: a path relative to the report, or
        a ``data:`` URI when embedding."""
        if self.embed:
            data = (bytes(source) if isinstance(source, (bytes, bytearray, memoryview))
                    else Path(source).read_bytes())
            return data_uri(data, _MIME.get(extension_for(data), "application/octet-stream"))
        copy = publish_copy(source, self.folder, stem=stem, digest=digest, metadata=metadata)
        return f"{quote(self.folder.name)}/{quote(copy.name)}"

    def write(self, page: str) -> Path:
        """Write the report's HTML (atomically); returns its path."""
        return write_text_atomic(self.path, page)
