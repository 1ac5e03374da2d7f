"""What kind of image bytes these are: magic numbers, PNG chunks and JPEG segments,
walked without decoding."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

__all__ = ["PNG_SIGNATURE", "extension_for", "jpeg_segments", "png_chunks"]

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def extension_for(data: bytes) -> str:
    """The file extension for encoded image bytes, from their magic number (``.bin``
    when unknown)."""
    head = bytes(data[:16])
    if head.startswith(PNG_SIGNATURE):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if head[:2] == b"BM":
        return ".bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return ".tif"
    return ".bin"


def png_chunks(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """``(offset, type, payload)`` for each chunk; stops at IEND or a damaged chunk."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return
        yield pos, ctype, data[pos + 8:pos + 8 + length]
        if ctype == b"IEND":
            return
        pos = end


def jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """``(marker, start, end)`` of each header segment after SOI, up to SOS."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            yield marker, pos, pos + 2
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return
        yield marker, pos, end
        if marker == 0xDA:  # start of scan: the compressed data follows
            return
        pos = end
