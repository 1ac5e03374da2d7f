"""Real image files for the image I/O tests, made with Pillow (or by hand where Pillow
would refuse or be too slow), plus a small loopback HTTP server for download tests."""

from __future__ import annotations

import base64
import contextlib
import io
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def encode(img: Image.Image, fmt: str, **params: Any) -> bytes:
    """``img`` saved in ``fmt`` as bytes."""
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def halves(size: tuple[int, int] = (40, 20), left: tuple[int, int, int] = RED,
           right: tuple[int, int, int] = BLUE) -> Image.Image:
    """An RGB image whose left half is ``left`` and right half ``right``."""
    img = Image.new("RGB", size, right)
    img.paste(left, (0, 0, size[0] // 2, size[1]))
    return img


def noisy(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """An RGB image of random noise (compresses badly: good for size limits)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def waves(size: tuple[int, int]) -> Image.Image:
    """A smooth RGB image (no hard edges, so resampling never overshoots and clips)."""
    import numpy as np

    y, x = np.mgrid[0:size[1], 0:size[0]].astype(float)
    bands = [128 + 90 * np.sin(x / 37), 128 + 90 * np.cos(y / 23), 128 + 90 * np.sin((x + y) / 51)]
    return Image.fromarray(np.stack(bands, -1).astype(np.uint8))


def with_orientation(img: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    """``img`` encoded with an EXIF orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    params: dict[str, Any] = {"exif": exif.tobytes()}
    if fmt == "JPEG":
        params["quality"] = 95
    return encode(img, fmt, **params)


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 8-bit gray pixels.

    The IDAT holds only a few compressed rows, so the file is a few dozen bytes: a
    decoder that trusted the header would try to allocate width*height bytes.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 2)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + \
        _chunk(b"IEND", b"")


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def decode_uri(uri: str) -> tuple[str, bytes, Image.Image]:
    """The media type, bytes and decoded image of a data URI."""
    head, _, payload = uri.partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64"), head
    data = base64.b64decode(payload, validate=True)
    img = Image.open(io.BytesIO(data))
    img.load()
    return head[5:-7], data, img


# --- a loopback HTTP server ------------------------------------------------------------

Route = Callable[[BaseHTTPRequestHandler, int], None]
"""A route handler gets the request handler and how many times it was hit before."""


@dataclass
class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 with per-path routes and a request log."""

    routes: dict[str, Route] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    headers_seen: list[dict[str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def start(self) -> LoopbackServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                count = owner.hits.get(path, 0)
                owner.hits[path] = count + 1
                owner.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                route = owner.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    route(self, count)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def send_bytes(handler: BaseHTTPRequestHandler, data: bytes, *, status: int = 200,
               content_type: str = "image/png", length: int | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data) if length is None else length))
    handler.end_headers()
    handler.wfile.write(data)
