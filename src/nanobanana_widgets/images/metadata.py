"""The prompt and parameters kept inside saved PNG and JPEG files, without re-encoding
their pixels: PNG ``iTXt`` chunks, JPEG ``COM`` segments."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from nanobanana_widgets.images._pixels import normalise_mode
from nanobanana_widgets.images._shared import DEFAULT_MAX_PIXELS, Raw, open_checked, quiet_pillow
from nanobanana_widgets.images.formats import (
    PNG_SIGNATURE,
    extension_for,
    jpeg_segments,
    png_chunks,
)
from nanobanana_widgets.images.sources import label_for, read_path

__all__ = ["METADATA_KEY", "embed_metadata", "read_metadata"]

METADATA_KEY: Final = "nanobanana"
"""PNG text keyword / JPEG comment prefix under which the metadata JSON is stored."""


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _itxt(keyword: str, text: str) -> bytes:
    body = keyword.encode("latin-1") + b"\x00" + b"\x00\x00" + b"\x00" + b"\x00" + \
        text.encode("utf-8", "replace")  # a lone surrogate cannot stop a save
    return _png_chunk(b"iTXt", body)


def _text_keyword(ctype: bytes, payload: bytes) -> str | None:
    if ctype not in (b"iTXt", b"tEXt", b"zTXt"):
        return None
    return payload.split(b"\x00", 1)[0].decode("latin-1", "replace")


def _embed_png(data: bytes, meta_json: str, description: str | None) -> bytes:
    kept = bytearray(data[:len(PNG_SIGNATURE)])
    found_end = False
    for pos, ctype, payload in png_chunks(data):
        if _text_keyword(ctype, payload) in (METADATA_KEY, "Description") and ctype != b"IEND":
            continue
        if ctype == b"IEND":
            if description:
                kept += _itxt("Description", description)
            kept += _itxt(METADATA_KEY, meta_json)
            found_end = True
        kept += data[pos:pos + 12 + len(payload)]
    if not found_end:
        raise ValueError("the PNG has no IEND chunk")
    return bytes(kept)


_COM_PREFIX: Final = METADATA_KEY.encode() + b":"
_COM_MORE: Final = METADATA_KEY.encode() + b"+"
_COM_ROOM: Final = 65533 - len(_COM_PREFIX)


def _embed_jpeg(data: bytes, meta_json: str) -> bytes:
    payload = meta_json.encode("utf-8", "replace")
    pieces = [payload[i:i + _COM_ROOM] for i in range(0, len(payload), _COM_ROOM)] or [b""]
    segments = b"".join(
        b"\xff\xfe" + struct.pack(">H", len(piece) + len(_COM_PREFIX) + 2)
        + (_COM_PREFIX if i == 0 else _COM_MORE) + piece
        for i, piece in enumerate(pieces)
    )
    # Our comment goes after the leading APPn segments (JFIF/EXIF readers expect those
    # right after SOI); earlier copies of our comment are dropped.
    out = bytearray(data[:2])
    insert_at: int | None = None
    tail = 2
    for marker, start, end in jpeg_segments(data):
        tail = end
        if insert_at is None and not 0xE0 <= marker <= 0xEF:
            insert_at = len(out)
            out += segments
        body = data[start + 4:end]
        if marker == 0xFE and body.startswith((_COM_PREFIX, _COM_MORE)):
            continue
        out += data[start:end]
        if marker == 0xDA:
            break
    if insert_at is None:
        out += segments
    out += data[tail:]
    return bytes(out)


def embed_metadata(data: bytes, meta: Mapping[str, Any]) -> bytes:
    """Store ``meta`` as JSON inside encoded image bytes without touching the pixels.

    PNG gets an ``iTXt`` chunk (keyword ``nanobanana``, plus ``Description`` with the
    prompt); JPEG gets a ``COM`` comment segment; other formats are converted to PNG.
    """
    meta_json = json.dumps(dict(meta), ensure_ascii=False, default=str, sort_keys=True)
    prompt = meta.get("prompt")
    description = prompt if isinstance(prompt, str) and prompt else None
    data = bytes(data)
    kind = extension_for(data)
    if kind == ".png":
        try:
            return _embed_png(data, meta_json, description)
        except (ValueError, struct.error):
            pass  # damaged chunk structure: re-encode below
    elif kind == ".jpg":
        return _embed_jpeg(data, meta_json)
    label = f"<bytes, {len(data)} bytes>"
    with quiet_pillow():
        img = open_checked(Raw(data, label), DEFAULT_MAX_PIXELS)
        if img.mode not in ("1", "L", "LA", "RGB", "RGBA", "P", "I;16", "I"):
            img, _icc = normalise_mode(img)
        buf = io.BytesIO()
        img.save(buf, "PNG")
    return _embed_png(buf.getvalue(), meta_json, description)


def _parse_meta(text: str | bytes) -> dict[str, Any]:
    """The metadata JSON of a file as it was written; ``{}`` when it is damaged (nested
    100,000 levels deep included: a file is as hostile as a server)."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_png_meta(data: bytes) -> dict[str, Any]:
    for _pos, ctype, payload in png_chunks(data):
        if _text_keyword(ctype, payload) != METADATA_KEY:
            continue
        rest = payload.split(b"\x00", 1)[1] if b"\x00" in payload else b""
        try:
            if ctype == b"tEXt":
                return _parse_meta(rest.decode("latin-1"))
            if ctype == b"zTXt":
                return _parse_meta(zlib.decompress(rest[1:]))
            compressed = rest[0] == 1
            text = rest[2:].split(b"\x00", 2)[2]  # skip language tag and translated keyword
            return _parse_meta(zlib.decompress(text) if compressed else text)
        except (IndexError, zlib.error):
            return {}
    return {}


def _read_jpeg_meta(data: bytes) -> dict[str, Any]:
    parts: list[bytes] = []
    for marker, start, end in jpeg_segments(data):
        if marker != 0xFE:
            continue
        body = data[start + 4:end]
        if body.startswith(_COM_PREFIX):
            parts = [body[len(_COM_PREFIX):]]
        elif body.startswith(_COM_MORE) and parts:
            parts.append(body[len(_COM_MORE):])
    return _parse_meta(b"".join(parts)) if parts else {}


def read_metadata(path_or_bytes: str | os.PathLike[str] | bytes) -> dict[str, Any]:
    """The dict :func:`embed_metadata` stored in a file or bytes (``{}`` when none)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        label = label_for(path_or_bytes)
        data = read_path(Path(os.fspath(path_or_bytes)), label).data
    kind = extension_for(data)
    if kind == ".png":
        return _read_png_meta(data)
    if kind == ".jpg":
        return _read_jpeg_meta(data)
    return {}
