"""Inputs that used to hang or escape: a FIFO, a device, a sparse file of gigabytes, a
closed file object, a file-like whose ``read()`` raises (issue 11, classes 10 and 11).

Each becomes an :class:`ImageInputError` naming the input, before anything is read whole.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest

from nanobanana_widgets.images import (
    embed_metadata,
    load_image,
    read_metadata,
    thumbnail,
    to_image_url,
)
from nanobanana_widgets.images.formats import png_chunks
from nanobanana_widgets.service.errors import ImageInputError
from support import png

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")


def in_thread(call: Any, timeout: float = 10.0) -> BaseException | None:
    """Run ``call`` in a thread; fail the test (instead of hanging it) if it blocks."""
    out: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            out.append(exc)
        else:
            out.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the call blocked"
    return out[0]


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    for call in (lambda: to_image_url(fifo), lambda: to_image_url(str(fifo)),
                 lambda: load_image(fifo), lambda: thumbnail(str(fifo))):
        error = in_thread(call)
        assert isinstance(error, ImageInputError), error
        assert "FIFO" in str(error) and "pipe.png" in str(error)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_before_reading() -> None:
    error = in_thread(lambda: to_image_url("/dev/zero"))
    assert isinstance(error, ImageInputError), error
    assert "character device" in str(error)


def test_a_huge_sparse_file_is_refused_by_its_size(tmp_path: Path) -> None:
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as fh:
        fh.truncate(8 * 1024**3)  # 8 GB, no block written
    error = in_thread(lambda: to_image_url(sparse))
    assert isinstance(error, ImageInputError), error
    assert "over the limit" in str(error) and "huge.png" in str(error)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="is a folder"):
        to_image_url(tmp_path)


def test_a_closed_file_object_names_the_input(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(png())
    with open(path, "rb") as fh:
        pass
    with pytest.raises(ImageInputError, match="closed") as info:
        to_image_url(fh)
    assert "cat.png" in str(info.value)
    closed = io.BytesIO(png())
    closed.close()
    with pytest.raises(ImageInputError, match="closed"):
        to_image_url(closed)


class Exploding(io.RawIOBase):
    """A user's own file-like object whose read() fails."""

    name = "camera-stream"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise RuntimeError("the camera was unplugged")


class NoSize:
    """A file-like whose read() takes no size (it returns everything at once)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        data, self.data = self.data, b""
        return data


def test_an_exception_from_a_users_read_is_wrapped_with_its_cause() -> None:
    with pytest.raises(ImageInputError, match="camera-stream") as info:
        to_image_url(Exploding())
    assert "camera was unplugged" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_a_read_without_a_size_argument_still_works() -> None:
    assert to_image_url(NoSize(png())) == to_image_url(png())


def test_file_objects_are_read_in_bounded_pieces() -> None:
    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            assert 0 < size <= 1 << 20, "read in bounded pieces"
            return b"\0" * size

    error = in_thread(lambda: to_image_url(Endless()), timeout=60)
    assert isinstance(error, ImageInputError) and "over the limit" in str(error)


def test_ordinary_files_and_streams_still_work(tmp_path: Path) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(png())
    assert to_image_url(path).startswith("data:image/png;base64,")
    with open(path, "rb") as fh:
        assert to_image_url(fh) == to_image_url(path)
    assert to_image_url(io.BytesIO(png())) == to_image_url(path)


def test_metadata_nested_deep_in_a_file_reads_as_none() -> None:
    data = embed_metadata(png(), {"prompt": "x"})
    deep = "[" * 100_000 + "]" * 100_000
    pos, _ctype, payload = next(c for c in png_chunks(data) if c[1] == b"iTXt"
                                and c[2].startswith(b"nanobanana"))
    body = b"nanobanana\x00\x00\x00\x00\x00" + deep.encode()
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(
        ">I", zlib.crc32(b"iTXt" + body) & 0xFFFFFFFF)
    damaged = data[:pos] + chunk + data[pos + 12 + len(payload):]
    assert read_metadata(damaged) == {}


@pytest.mark.parametrize("url", ["http://example.com:99999/x.png", "http://[::1/x.png",
                                 "http://" + "a" * 300 + ".example/x.png",
                                 "https://☃.example/x.png"])
def test_a_malformed_input_url_is_refused_before_sending(url: str) -> None:
    with pytest.raises(ImageInputError):
        to_image_url(url)
