"""Image I/O on Pillow: the one input normaliser, safe downloads, thumbnails, metadata.

``to_image_url`` turns whatever a notebook user holds (a path, bytes, a file object, a
``PIL.Image``, a numpy array, a URL, a data URI, an ipywidgets ``FileUpload`` value, a
result) into what the service accepts: an ``http(s)`` URL or a
``data:image/...;base64,`` URI of at most 10 MB. Every decode is bounded (pixel count
checked before decoding, truncated files refused) and every failure is an
:class:`~nanobanana_widgets.errors.ImageInputError` naming the input.

``download`` fetches result images with a size cap, timeouts, bounded retries and never
an ``Authorization`` header. ``embed_metadata`` / ``read_metadata`` keep the prompt and
parameters inside saved PNG and JPEG files without re-encoding their pixels.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import math
import os
import random
import re
import secrets
import struct
import threading
import time
import urllib.parse
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from PIL import Image, ImageOps, UnidentifiedImageError

from nanobanana_widgets.service import models
from nanobanana_widgets.service.errors import DownloadError, ImageInputError, InvalidParameterError
from nanobanana_widgets.service.text import data_uri as _data_uri
from nanobanana_widgets.service.text import data_uri_length as _data_uri_length
from nanobanana_widgets.service.text import short_url as _short_url
from nanobanana_widgets.service.text import shorten as _short
from nanobanana_widgets.service.types import GeneratedImage, Result

if TYPE_CHECKING:
    import requests

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DOWNLOAD_MAX_BYTES",
    "download",
    "embed_metadata",
    "extension_for",
    "load_image",
    "read_metadata",
    "thumbnail",
    "to_image_url",
    "to_image_urls",
    "write_with_metadata",
]

DEFAULT_MAX_PIXELS: Final = 100_000_000
"""Largest input (width × height) decoded by default; checked before decoding."""

DOWNLOAD_MAX_BYTES: Final = 64 * 1024 * 1024
"""Default size cap of :func:`download`."""

METADATA_KEY: Final = "nanobanana"
"""PNG text keyword / JPEG comment prefix under which the metadata JSON is stored."""

_PASS_THROUGH_FORMATS: Final[dict[str, str]] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture camera JPEGs: the bytes are a plain JPEG
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
_JPEG_QUALITIES: Final = (90, 85, 78, 70)
_MIN_SIDE: Final = 16
_ORIENTATION_TAG: Final = 0x0112
_HINT_FORMATS: Final = "Use a PNG, JPEG, WebP or GIF file."
_ACCEPTED: Final = (
    "Pass a file path, bytes, a binary file object, a PIL.Image, a numpy array, an "
    "http(s) URL, a data:image/...;base64 URI, a FileUpload value or a result."
)

# Pillow's own warnings (decompression bomb, corrupt EXIF, palette transparency, ...) are
# kept quiet while our Pillow work runs: our checks turn the real problems into errors.
# One shared filter entry, put in front of ``warnings.filters`` by the first caller and taken
# out by the last, does that without serialising the work itself (``catch_warnings`` swaps
# the process-wide filter list, so concurrent uses of it would need one lock around all
# decoding). The entry only matches warnings raised inside Pillow's modules.
_QUIET_ENTRY: Final = ("ignore", None, Warning, re.compile(r"PIL(?:\.|\Z)"), 0)
_quiet_lock = threading.Lock()
_quiet_users = 0
_quiet_lists: list[list[Any]] = []  # every filter list the entry was put into

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


# --- small helpers ---------------------------------------------------------------------


def _filter_list() -> list[Any]:
    return cast("list[Any]", warnings.filters)  # a list at run time (typeshed: Sequence)


def _filters_changed() -> None:
    changed = getattr(warnings, "_filters_mutated", None)  # what filterwarnings() calls
    if changed is not None:
        changed()


def _drop_quiet_entry(filters: list[Any]) -> None:
    for i in range(len(filters) - 1, -1, -1):
        if filters[i] is _QUIET_ENTRY:
            del filters[i]


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Keep Pillow's warnings from escaping while the block runs (re-entrant, and blocks in
    several threads run at the same time)."""
    global _quiet_users
    with _quiet_lock:
        _quiet_users += 1
        filters = _filter_list()
        # Checked on every entry: a ``catch_warnings`` ending in another thread may have put
        # back a filter list without the entry.
        if not any(f is _QUIET_ENTRY for f in filters):
            filters.insert(0, _QUIET_ENTRY)
            _quiet_lists.append(filters)
            _filters_changed()
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0:
                for filters in (*_quiet_lists, _filter_list()):
                    _drop_quiet_entry(filters)
                _quiet_lists.clear()
                _filters_changed()


def _is_numpy(obj: object) -> bool:
    module = type(obj).__module__ or ""
    return module == "numpy" or module.startswith("numpy.")


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidParameterError(name, value, None, hint="a positive whole number")
    return value


def _looks_like_text(data: bytes) -> str | None:
    """The start of ``data`` if it is plain text (for 'this is a text file' messages)."""
    head = data[:200]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    return text.strip()[:40]


# --- reading sources -------------------------------------------------------------------


class _Raw:
    """Undecoded bytes from a path, bytes, file object, upload or data URI."""

    def __init__(self, data: bytes, label: str) -> None:
        self.data = data
        self.label = label


def _label_for(source: object) -> str:
    """How messages refer to ``source`` (never its content)."""
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if text[:5].lower() == "data:":
            return f"<data URI, {_short_url(text)}>"
        return f"'{_short(text, 200)}'"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<bytes, {memoryview(source).nbytes} bytes>"
    if isinstance(source, Mapping) and "content" in source:
        return f"upload '{source.get('name') or 'unnamed'}'"
    if isinstance(source, Image.Image):
        return f"<PIL image {source.width}x{source.height} {source.mode}>"
    if _is_numpy(source):
        shape = "x".join(str(n) for n in getattr(source, "shape", ()))
        return f"<array {shape} {getattr(source, 'dtype', '?')}>"
    kind = type(source).__name__
    if kind in ("GeneratedImage", "Result") and type(source).__module__.endswith(".results"):
        images = getattr(source, "images", (source,))
        url = getattr(images[0], "url", "") if images else ""
        return f"{'result' if kind == 'Result' else 'result image'} {_short_url(url)!r}"
    name = getattr(source, "name", None)
    if hasattr(source, "read"):
        if isinstance(name, str) and name:
            return f"'{_short(name, 200)}'"
        return f"<file object {type(source).__name__}>"
    return f"<{type(source).__name__} object>"


def _parse_data_uri(uri: str, label: str) -> bytes:
    head, sep, payload = uri.partition(",")
    if not sep:
        raise ImageInputError(label, "is a data URI without a comma before its content",
                              hint="Expected data:image/<format>;base64,<content>.")
    params = [p.strip().lower() for p in head[5:].split(";")]
    mime = params[0]
    if mime and not mime.startswith("image/"):
        raise ImageInputError(label, f"is a data URI of type {mime!r}, not an image",
                              hint="Expected data:image/<format>;base64,<content>.")
    if "base64" not in params[1:]:
        raise ImageInputError(label, "is a data URI that is not base64-encoded",
                              hint="Expected data:image/<format>;base64,<content>.")
    compact = "".join(payload.split())
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError(label, "is a data URI whose base64 content is damaged",
                              hint="Copy the whole URI again or pass the image file.") from None


def _check_http_url(url: str, label: str) -> str:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. "http://[" (an unclosed IPv6 address)
        raise ImageInputError(label, f"is not a valid URL ({exc})",
                              hint="Expected a URL such as https://example.com/image.png.") \
            from None
    if not parts.hostname:
        raise ImageInputError(label, "is a URL without a host name",
                              hint="Expected a URL such as https://example.com/image.png.")
    if any(c.isspace() for c in url):
        raise ImageInputError(label, "is a URL containing spaces",
                              hint="Percent-encode the spaces (%20) or check the URL.")
    scheme, rest = url.split(":", 1)
    return scheme.lower() + ":" + rest  # "HTTPS://..." is valid, but sent as "https://..."


def _read_path(path: Path, label: str) -> _Raw:
    with contextlib.suppress(RuntimeError):  # no home directory to expand "~" into
        path = path.expanduser()
    try:
        if path.is_dir():
            raise ImageInputError(label, "is a folder, not a file",
                                  hint="Pass the path of an image file inside it.")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageInputError(
            label, "no such file",
            hint=f"Check the path; relative paths start from the current folder {os.getcwd()}.",
        ) from None
    except IsADirectoryError:
        raise ImageInputError(label, "is a folder, not a file",
                              hint="Pass the path of an image file inside it.") from None
    except PermissionError:
        raise ImageInputError(label, "cannot be read: permission denied",
                              hint="Check the file's permissions.") from None
    except ImageInputError:
        raise
    except ValueError:  # "embedded null byte": no file can have that name
        raise ImageInputError(label, "is not a file path (it contains a NUL character)",
                              hint=_ACCEPTED) from None
    except OSError as exc:
        if exc.errno == 36 or "too long" in str(exc).lower():  # ENAMETOOLONG
            raise ImageInputError(label, "no such file (the name is too long for a path)",
                                  hint=_ACCEPTED) from None
        raise ImageInputError(label, f"cannot be read ({exc.strerror or exc})") from None
    return _Raw(data, label)


def _read_string(source: str, label: str) -> str | _Raw:
    """A URL to pass through (returned as ``str``) or the bytes the string refers to."""
    stripped = source.strip()
    lowered = stripped[:12].lower()
    if lowered.startswith(("http://", "https://")):
        return _check_http_url(stripped, label)
    if lowered.startswith("data:"):
        return _Raw(_parse_data_uri(stripped, label), label)
    if not source:
        raise ImageInputError("''", "is an empty string", hint=_ACCEPTED)
    scheme, sep, _ = stripped.partition(":")
    is_scheme = (
        sep and len(scheme) > 1 and scheme[0].isalpha()
        and all(c.isalnum() or c in "+-." for c in scheme)
    )
    if is_scheme:
        try:
            exists = Path(source).expanduser().exists()
        except (OSError, RuntimeError):
            exists = False
        if not exists:
            raise ImageInputError(
                label, f"uses the {scheme.lower()}: scheme, which is not supported",
                hint="Use an http(s) URL, a data:image URI or a local file path.",
            )
    return _read_path(Path(source), label)


def _read_filelike(source: Any, label: str) -> _Raw:
    try:
        data = source.read()
    except OSError as exc:
        raise ImageInputError(label, f"cannot be read ({exc})") from None
    if isinstance(data, str):
        raise ImageInputError(label, "is a file opened in text mode",
                              hint="Open it with open(path, 'rb').")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageInputError(label, f"read() returned {type(data).__name__}, not bytes",
                              hint=_ACCEPTED)
    return _Raw(bytes(data), label)


def _read_upload(entry: Mapping[str, Any], label: str) -> _Raw:
    content = entry.get("content")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return _Raw(bytes(content), label)
    raise ImageInputError(label, "is an upload entry without byte content",
                          hint="Pass FileUpload.value (ipywidgets 8) or one of its entries.")


def _result_url(source: Any, label: str) -> str | None:
    """The first image URL of a GeneratedImage or Result, or None for other objects."""
    if isinstance(source, GeneratedImage):
        return source.url
    if isinstance(source, Result):
        if not source.images:
            raise ImageInputError(label, f"is a {source.status} result without images",
                                  hint="Use a result that has at least one image.")
        return source.images[0].url
    return None


def _single_upload(seq: Sequence[Any], label: str) -> Any:
    if len(seq) == 1:
        return seq[0]
    if not seq:
        raise ImageInputError(label, "is empty: no file was uploaded",
                              hint="Choose a file in the upload widget first.")
    raise ImageInputError(label, f"holds {len(seq)} images where one was expected",
                          hint="Use to_image_urls(...) for several images.")


# --- decoding --------------------------------------------------------------------------


def _open_checked(raw: _Raw, max_pixels: int, *, draft_side: int | None = None) -> Image.Image:
    """Open, check the pixel count before decoding, optionally draft, and load fully.

    Must run under :func:`_quiet_pillow`.
    """
    label, data = raw.label, raw.data
    if not data:
        raise ImageInputError(label, "is empty (0 bytes)",
                              hint="Export or download the image again.")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageInputError(
            label, f"has too many pixels for Pillow to decode safely ({exc})",
            hint="Scale it down first (PIL.Image.MAX_IMAGE_PIXELS sets Pillow's own limit).",
        ) from None
    except UnidentifiedImageError:
        text = _looks_like_text(data)
        problem = (f"is not an image: it contains text ({text!r}…)" if text is not None
                   else f"is not an image Pillow can read (it starts with {data[:8]!r})")
        raise ImageInputError(label, problem, hint=_HINT_FORMATS) from None
    except (OSError, ValueError, SyntaxError, struct.error, EOFError) as exc:
        raise ImageInputError(label, f"is damaged or not an image ({exc})",
                              hint=_HINT_FORMATS) from None
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageInputError(label, f"claims an empty size of {width}x{height} pixels",
                              hint="The file is damaged; export it again.")
    if width * height > max_pixels:
        raise ImageInputError(
            label,
            f"is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), "
            f"over the limit of {max_pixels / 1e6:.0f} megapixels",
            hint="Scale it down first, or pass a larger max_pixels= if you trust the file.",
        )
    if draft_side is not None and img.format in ("JPEG", "MPO") and max(width, height) > draft_side:
        scale = draft_side / max(width, height)
        with contextlib.suppress(Exception):  # draft is only a speed-up
            img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageInputError(label, f"has too many pixels to decode safely ({exc})",
                              hint="Scale it down first.") from None
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, IndexError,
            zlib.error, MemoryError) as exc:
        reason = str(exc) or type(exc).__name__
        problem = ("is truncated: the file ends before the image does"
                   if "truncated" in reason.lower() else f"is damaged ({reason})")
        raise ImageInputError(label, problem,
                              hint="The file is incomplete or corrupt; export or download "
                                   "it again.") from None
    return img


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # corrupt EXIF: treat as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _transpose(img: Image.Image) -> Image.Image:
    if _orientation(img) == 1:
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block must not make a good image unusable
        return img


def _from_array(array: Any, label: str) -> Image.Image:
    import numpy as np

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ImageInputError(
            label, f"has shape {a.shape}; expected HxW, HxWx3 or HxWx4",
            hint="For channels-first arrays use array.transpose(1, 2, 0).",
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageInputError(label, "has no pixels", hint="Pass a non-empty array.")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageInputError(label, "contains NaN or infinite values",
                                  hint="Replace them, e.g. with numpy.nan_to_num.")
        low, high = float(a.min()), float(a.max())
        if low < -1e-6 or high > 1 + 1e-6:
            raise ImageInputError(
                label, f"is a float array with values from {low:g} to {high:g}; "
                "float images must be in 0..1",
                hint="Divide by 255 (or your maximum), or convert to uint8.",
            )
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        if a.dtype == np.uint16:
            a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
        elif a.dtype != np.uint8:
            low, high = int(a.min()), int(a.max())
            if low < 0 or high > 255:
                raise ImageInputError(
                    label, f"is an integer array with values from {low} to {high}",
                    hint="Use uint8 values in 0..255 or floats in 0..1.",
                )
            a = a.astype(np.uint8)
    else:
        raise ImageInputError(label, f"has dtype {a.dtype}, which is not an image type",
                              hint="Use uint8 values in 0..255 or floats in 0..1.")
    return Image.fromarray(np.ascontiguousarray(a))


def _to_8bit_gray(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float gray images to 8-bit ``L``."""
    if img.mode != "F":
        img = img.convert("I")
    extrema = img.getextrema()
    low = float(extrema[0])  # type: ignore[arg-type]  # one band: (min, max) numbers
    high = float(extrema[1])  # type: ignore[arg-type]
    if img.mode == "F" and low >= 0.0 and high <= 1.0:
        return img.point(lambda v: v * 255.0 + 0.5).convert("L")
    if img.mode == "I" and low >= 0 and high <= 255:
        return img.convert("L")
    if img.mode == "I" and low >= 0 and high <= 65535:
        return img.point(lambda v: v * (1 / 257) + 0.5).convert("L")
    span = (high - low) or 1.0
    return img.point(lambda v: (v - low) * (255.0 / span) + 0.5).convert("L")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    profile = img.info.get("icc_profile")
    if profile:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            dst = ImageCms.createProfile("sRGB")
            out = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
            if out is not None:
                return out
        except Exception:  # no littlecms or a broken profile: plain conversion below
            pass
    return img.convert("RGB")


def _normalise_mode(img: Image.Image) -> tuple[Image.Image, bytes | None]:
    """An 8-bit ``L``, ``LA``, ``RGB`` or ``RGBA`` image and the ICC profile to keep."""
    icc = img.info.get("icc_profile") or None
    mode = img.mode
    has_transparency = "transparency" in img.info
    if mode in ("L", "RGB"):
        out = img.convert("RGBA" if mode == "RGB" else "LA") if has_transparency else img
    elif mode in ("LA", "RGBA"):
        out = img
    elif mode in ("P", "PA"):
        out = img.convert("RGBA" if has_transparency or mode == "PA" else "RGB")
    elif mode == "1":
        out = img.convert("L")
    elif mode == "La":
        out = img.convert("LA")
    elif mode == "RGBa":
        out = img.convert("RGBA")
    elif mode == "CMYK":
        out, icc = _cmyk_to_rgb(img), None
    elif mode.startswith("I") or mode == "F":
        out, icc = _to_8bit_gray(img), None
    else:  # RGBX, YCbCr, LAB, HSV, ...
        out = img.convert("RGB")
        if mode in ("LAB", "HSV"):
            icc = None
    if out.mode in ("LA", "RGBA"):
        alpha_low = out.getchannel("A").getextrema()[0]
        if isinstance(alpha_low, (int, float)) and alpha_low >= 255:
            out = out.convert("L" if out.mode == "LA" else "RGB")
    if out.mode == "L" and icc is not None and not _icc_is_gray(icc):
        icc = None
    return out, icc


def _icc_is_gray(icc: bytes) -> bool:
    return len(icc) >= 20 and icc[16:20] == b"GRAY"


def _flatten(img: Image.Image) -> Image.Image:
    """Composite an image with alpha onto white (for JPEG)."""
    if img.mode not in ("LA", "RGBA"):
        return img
    base_mode = "L" if img.mode == "LA" else "RGB"
    background = Image.new(base_mode, img.size, 255 if base_mode == "L" else (255, 255, 255))
    background.paste(img.convert(base_mode), mask=img.getchannel("A"))
    return background


def _resize_to(img: Image.Image, max_side: int) -> Image.Image:
    longest = max(img.size)
    if longest <= max_side:
        return img
    scale = max_side / longest
    if img.width >= img.height:
        size = (max_side, max(1, round(img.height * scale)))
    else:
        size = (max(1, round(img.width * scale)), max_side)
    return _lanczos(img, size)


_PARALLEL_MIN_PIXELS: Final = 2_000_000


def _lanczos(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """LANCZOS resize; big images are done in horizontal bands on several threads.

    Pillow releases the GIL while resampling, and ``box=`` lets each band read the source
    rows around it, so the bands join without seams (same pixels as one call, ±1).
    """
    workers = min(os.cpu_count() or 1, 4, max(1, size[1] // 256))
    if workers < 2 or size[0] * size[1] < _PARALLEL_MIN_PIXELS or img.mode in ("P", "1"):
        return img.resize(size, Image.Resampling.LANCZOS)
    bounds = [size[1] * i // workers for i in range(workers + 1)]
    ratio = img.height / size[1]
    bands: list[Image.Image | BaseException | None] = [None] * workers

    def work(i: int) -> None:
        top, bottom = bounds[i], bounds[i + 1]
        box = (0.0, top * ratio, float(img.width), bottom * ratio)
        try:
            bands[i] = img.resize((size[0], bottom - top), Image.Resampling.LANCZOS, box=box)
        except BaseException as exc:  # re-raised in the calling thread below
            bands[i] = exc

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(1, workers)]
    for thread in threads:
        thread.start()
    work(0)
    for thread in threads:
        thread.join()
    out = Image.new(img.mode, size)
    for i, band in enumerate(bands):
        if isinstance(band, BaseException):
            raise band
        assert band is not None
        out.paste(band, (0, bounds[i]))
    return out


def _encode_to_fit(img: Image.Image, icc: bytes | None, max_bytes: int, label: str) -> str:
    """PNG when there is transparency and it fits, else JPEG (stepping quality, then size)."""
    extra: dict[str, Any] = {"icc_profile": icc} if icc else {}
    if img.mode in ("LA", "RGBA"):
        buf = io.BytesIO()
        img.save(buf, "PNG", compress_level=6, **extra)
        if _data_uri_length(buf.tell(), "image/png") <= max_bytes:
            return _data_uri(buf.getvalue(), "image/png")
        img = _flatten(img)
    current = img
    while True:
        size = 0
        for quality in _JPEG_QUALITIES:
            buf = io.BytesIO()
            current.save(buf, "JPEG", quality=quality, **extra)
            size = buf.tell()
            if _data_uri_length(size, "image/jpeg") <= max_bytes:
                return _data_uri(buf.getvalue(), "image/jpeg")
        longest = max(current.size)
        budget = max_bytes * 3 / 4
        factor = min(0.85, math.sqrt(budget / max(size, 1)) * 0.95)
        new_side = int(longest * factor)
        if new_side < _MIN_SIDE:
            raise ImageInputError(
                label, f"cannot be made to fit in {max_bytes} bytes",
                hint="Pass a larger max_bytes= or a smaller image.",
            )
        current = _resize_to(img, new_side)  # from the original: no compounded blur


def _encode_raw(raw: _Raw, max_side: int, max_bytes: int, max_pixels: int) -> str:
    with _quiet_pillow():
        img = _open_checked(raw, max_pixels, draft_side=max_side)
        mime = _PASS_THROUGH_FORMATS.get(img.format or "")
        width, height = img.size
        if (
            mime is not None
            and img.mode != "CMYK"
            and max(width, height) <= max_side
            and _orientation(img) == 1
            and _data_uri_length(len(raw.data), mime) <= max_bytes
        ):
            return _data_uri(raw.data, mime)
        return _encode_image(img, max_side, max_bytes, raw.label)


def _encode_image(img: Image.Image, max_side: int, max_bytes: int, label: str) -> str:
    """Re-encode a decoded image (must run under :func:`_quiet_pillow`)."""
    try:
        oriented = _transpose(img)
        normal, icc = _normalise_mode(oriented)
        scaled = _resize_to(normal, max_side)
        return _encode_to_fit(scaled, icc, max_bytes, label)
    except ImageInputError:
        raise
    except (OSError, ValueError, MemoryError) as exc:
        raise ImageInputError(label, f"could not be converted ({exc})",
                              hint=_HINT_FORMATS) from None


def _load_pil(img: Image.Image, label: str) -> Image.Image:
    try:
        img.load()
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, zlib.error) as exc:
        raise ImageInputError(label, f"could not be decoded ({exc})",
                              hint="The file behind this PIL image is damaged or truncated.") \
            from None
    return img


# --- the normaliser --------------------------------------------------------------------


def to_image_url(
    source: Any,
    *,
    max_side: int = 4096,
    max_bytes: int = models.MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> str:
    """Turn an image source into an ``http(s)`` URL or a ``data:image/...;base64,`` URI.

    Accepts a path (``str`` or ``pathlib``, ``~`` expanded), ``bytes``, a binary file
    object, a ``PIL.Image``, a numpy array (uint8 or float 0..1), an http(s) URL (passed
    through), a data URI, an ipywidgets ``FileUpload`` value entry, a ``GeneratedImage``
    or a ``Result`` (its first image). EXIF orientation is applied; images larger than
    ``max_side`` are scaled down; the whole URI is at most ``max_bytes`` characters.
    Original PNG/JPEG/WebP/GIF bytes are kept when nothing needs changing.

    Raises :class:`ImageInputError` naming the input (``name`` overrides how it is named).
    """
    _check_positive("max_side", max_side)
    _check_positive("max_bytes", max_bytes)
    _check_positive("max_pixels", max_pixels)
    if isinstance(source, (list, tuple)):  # a FileUpload value holding one file
        source = _single_upload(source, name or f"<{type(source).__name__} of {len(source)}>")
    label = name or _label_for(source)
    try:
        return _to_image_url(source, label, max_side, max_bytes, max_pixels)
    except MemoryError:
        raise ImageInputError(label, "is too large to process in memory",
                              hint="Scale it down first.") from None


def _to_image_url(source: Any, label: str, max_side: int, max_bytes: int,
                  max_pixels: int) -> str:
    url = _result_url(source, label)
    if url is not None:
        source = url
    if isinstance(source, str):
        got = _read_string(source, label)
        if isinstance(got, str):
            return got
        return _encode_raw(got, max_side, max_bytes, max_pixels)
    if isinstance(source, Image.Image):
        with _quiet_pillow():
            return _encode_image(_load_pil(source, label), max_side, max_bytes, label)
    if _is_numpy(source):
        with _quiet_pillow():
            return _encode_image(_from_array(source, label), max_side, max_bytes, label)
    return _encode_raw(_read_raw(source, label), max_side, max_bytes, max_pixels)


def _read_raw(source: Any, label: str) -> _Raw:
    """Bytes-like sources: path objects, bytes, uploads, file objects."""
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        return _read_path(Path(os.fsdecode(path)), label)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _Raw(bytes(source), label)
    if isinstance(source, Mapping):
        if "content" in source:
            return _read_upload(source, label)
        raise ImageInputError(label, "is a dict that is not a FileUpload entry",
                              hint="Expected a dict with 'name' and 'content' keys.")
    if hasattr(source, "read"):
        return _read_filelike(source, label)
    if source is None:
        raise ImageInputError("None", "no image was given", hint=_ACCEPTED)
    raise ImageInputError(label, f"is of type {type(source).__name__}, not an image source",
                          hint=_ACCEPTED)


def _expand(sources: Any) -> list[Any]:
    """One source or many: lists/tuples (a FileUpload value) and ipywidgets 7 dicts expand."""
    if isinstance(sources, (list, tuple)):
        out: list[Any] = []
        for item in sources:
            if isinstance(item, (list, tuple)):
                out.extend(item)
            else:
                out.append(item)
        return out
    if (
        isinstance(sources, Mapping)
        and "content" not in sources
        and sources
        and all(isinstance(v, Mapping) and "content" in v for v in sources.values())
    ):  # ipywidgets 7: {name: {"content": ..., "metadata": {...}}}
        return [{"name": key, **value} for key, value in sources.items()]
    return [sources]


def to_image_urls(
    sources: Any,
    *,
    max_side: int = 4096,
    max_bytes: int = models.MAX_IMAGE_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[str]:
    """:func:`to_image_url` for one source or a list; a ``FileUpload`` value expands.

    Errors name the position: "Input image #3 ('cat.png'): ..." for the third input.
    """
    if sources is None:
        raise ImageInputError("None", "no image was given", hint=_ACCEPTED)
    items = _expand(sources)
    many = isinstance(sources, (list, tuple)) or len(items) > 1
    urls = []
    for i, item in enumerate(items, start=1):
        label = f"#{i} ({_label_for(item)})" if many else None
        urls.append(to_image_url(item, max_side=max_side, max_bytes=max_bytes,
                                 max_pixels=max_pixels, name=label))
    return urls


def _raw_for_load(source: Any, label: str) -> _Raw | Image.Image:
    url = _result_url(source, label)
    if url is not None:
        image = source if isinstance(source, GeneratedImage) else None
        if isinstance(source, Result):
            image = source.images[0]
        assert image is not None
        try:
            return _Raw(image.bytes(), label)
        except DownloadError as exc:
            raise ImageInputError(label, f"could not be downloaded ({exc.message})") from exc
    if isinstance(source, str):
        got = _read_string(source, label)
        if isinstance(got, _Raw):
            return got
        try:
            return _Raw(download(got), label)
        except DownloadError as exc:
            raise ImageInputError(label, f"could not be downloaded ({exc.message})") from exc
    if isinstance(source, Image.Image):
        return _load_pil(source, label)
    if _is_numpy(source):
        return _from_array(source, label)
    return _read_raw(source, label)


def load_image(
    source: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
) -> Image.Image:
    """Decode any :func:`to_image_url` source into a ``PIL.Image`` with EXIF orientation
    applied (URLs and results are downloaded). Raises :class:`ImageInputError`."""
    _check_positive("max_pixels", max_pixels)
    if isinstance(source, (list, tuple)):
        source = _single_upload(source, name or f"<{type(source).__name__} of {len(source)}>")
    label = name or _label_for(source)
    got = _raw_for_load(source, label)
    with _quiet_pillow():
        img = got if isinstance(got, Image.Image) else _open_checked(got, max_pixels)
        return _transpose(img)


_THUMB_FORMATS: Final[dict[str, str]] = {"JPEG": "JPEG", "JPG": "JPEG", "WEBP": "WEBP",
                                          "PNG": "PNG"}


def thumbnail(
    source: Any, *, max_side: int = 512, format: str = "JPEG", quality: int = 80
) -> bytes:
    """A small encoded copy of any image source: JPEG (alpha on white), WebP or PNG."""
    _check_positive("max_side", max_side)
    fmt = _THUMB_FORMATS.get(str(format).upper())
    if fmt is None:
        raise InvalidParameterError("format", format, ("JPEG", "WEBP", "PNG"))
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidParameterError("quality", quality, None, hint="a whole number 1..100")
    if isinstance(source, (list, tuple)):
        source = _single_upload(source, f"<{type(source).__name__} of {len(source)}>")
    label = _label_for(source)
    got = _raw_for_load(source, label)
    with _quiet_pillow():
        img = got if isinstance(got, Image.Image) else _open_checked(
            got, DEFAULT_MAX_PIXELS, draft_side=max_side)
        try:
            img, _icc = _normalise_mode(_transpose(img))
            if max(img.size) > max_side:
                if img is got:  # the caller's own PIL image: thumbnail() works in place
                    img = img.copy()
                # reducing_gap=2.0 (Pillow's default): a box reduction first, then LANCZOS;
                # half the time of 3.0 for a 1K image, a difference no thumbnail shows
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
            if fmt == "JPEG":
                img = _flatten(img)
                if img.mode != "L":
                    img = img.convert("RGB")
            buf = io.BytesIO()
            if fmt == "PNG":
                img.save(buf, "PNG", compress_level=6)
            else:
                img.save(buf, fmt, quality=quality)
        except (OSError, ValueError) as exc:
            raise ImageInputError(label, f"could not be converted ({exc})") from None
        return buf.getvalue()


# --- downloads -------------------------------------------------------------------------

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5
_RETRIES: Final = 2
_BACKOFF: Final = (0.2, 0.6)
_CHUNK: Final = 64 * 1024


def _download_error(url: str, problem: str, *, status_code: int | None = None,
                    hint: str = "") -> DownloadError:
    message = f"Could not download {_short_url(url)}: {problem}."
    if hint:
        message += f" {hint}"
    return DownloadError(message, status_code=status_code)


def _missing_end(data: bytes) -> str | None:
    """What a PNG or JPEG lacks when its last bytes never arrived (``None`` when whole).

    Cheap, without decoding: a PNG ends with its ``IEND`` chunk (Pillow's ``verify`` walks
    the chunks but accepts a cut inside IEND's checksum), a JPEG's scan data ends with the
    EOI marker (Pillow's ``verify`` checks nothing for JPEG; entropy-coded data never holds
    ``FF D9``, so the first one after the start of scan is the end).
    """
    kind = extension_for(data)
    if kind == ".png":
        end = data.rfind(b"IEND")
        if end < len(_PNG_SIGNATURE) + 4 or len(data) < end + 8:
            return "it ends before the PNG's IEND chunk"
    elif kind == ".jpg":
        scan = 2  # headers our walker cannot follow: look anywhere after SOI
        for marker, _start, stop in _jpeg_segments(data):
            if marker == 0xDA:
                scan = stop
        if data.find(b"\xff\xd9", scan) < 0:
            return "it ends before the JPEG's end-of-image marker"
    return None


def _verify_image(data: bytes, url: str) -> None:
    """Refuse what is not a whole image: Pillow's ``verify()`` (headers and structure, no
    decoding) plus the end-of-file check of :func:`_missing_end`."""
    if not data:
        raise _download_error(url, "the server sent an empty body")
    with _quiet_pillow():
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except Image.DecompressionBombError:
            raise _download_error(url, "the image has too many pixels to decode safely") \
                from None
        except UnidentifiedImageError:
            text = _looks_like_text(data)
            what = f"text ({text!r}…)" if text is not None else f"bytes starting {data[:8]!r}"
            raise _download_error(url, f"the content is not an image but {what}") from None
        except (OSError, ValueError, SyntaxError, struct.error, EOFError, zlib.error) as exc:
            reason = str(exc) or type(exc).__name__
            if "truncated" in reason.lower():
                raise _download_error(url, f"the image is truncated ({reason})",
                                      hint="The file on the server is incomplete; try again "
                                           "later.") from None
            raise _download_error(url, f"the image is damaged ({reason})") from None
    missing = _missing_end(data)
    if missing is not None:
        raise _download_error(url, f"the image is truncated: {missing}",
                              hint="The file on the server is incomplete; try again later.")


def download(
    url: str,
    *,
    max_bytes: int = DOWNLOAD_MAX_BYTES,
    timeout: float = 60.0,
    session: requests.Session | None = None,
) -> bytes:
    """Fetch an image from an ``http``, ``https`` or ``data`` URL and verify it with Pillow.

    At most ``max_bytes`` are read (``Content-Length`` is checked first, the stream is cut
    when it passes the cap). ``timeout`` bounds connecting and each read; the whole
    download must end within five times ``timeout``. Connection errors and 5xx answers
    are retried twice. Redirects are followed only to http/https. No ``Authorization``
    header is ever sent, even when ``session`` carries one. Raises :class:`DownloadError`.
    """
    if not isinstance(url, str):
        raise DownloadError(f"Could not download {type(url).__name__!r}: expected a URL string.")
    _check_positive("max_bytes", max_bytes)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise InvalidParameterError("timeout", timeout, None, hint="a positive number of seconds")
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    if scheme == "data":
        return _download_data(url, max_bytes)
    if scheme not in ("http", "https"):
        raise _download_error(
            url, f"the {scheme + ': ' if scheme else ''}scheme is not allowed",
            hint="Only http, https and data URLs are downloaded.",
        )
    if not urllib.parse.urlsplit(url).hostname:
        raise _download_error(url, "the URL has no host name")

    import requests

    own = session is None
    sess = requests.Session() if session is None else session
    try:
        data = _fetch(sess, url.strip(), max_bytes, float(timeout))
    finally:
        if own:
            sess.close()
    _verify_image(data, url)
    return data


def _download_data(url: str, max_bytes: int) -> bytes:
    head = url.split(",", 1)[0]
    if ";base64" not in head.lower():
        raise _download_error(url, "only base64 data URLs are supported")
    payload = url.split(",", 1)[1] if "," in url else ""
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise _download_error(url, f"it holds more than the limit of {max_bytes} bytes")
    try:
        data = _parse_data_uri(url, "<data URL>")
    except ImageInputError as exc:
        raise _download_error(url, exc.problem) from None
    if len(data) > max_bytes:
        raise _download_error(url, f"it holds more than the limit of {max_bytes} bytes")
    _verify_image(data, url)
    return data


def _fetch(sess: requests.Session, url: str, max_bytes: int, timeout: float) -> bytes:
    import requests

    deadline = time.monotonic() + 5 * timeout
    connect_timeout = min(timeout, 10.0)
    attempt = 0
    redirects = 0
    current = url
    while True:
        request = requests.Request("GET", current, headers={"Accept": "image/*,*/*;q=0.5"})
        prepared = sess.prepare_request(request)
        prepared.headers.pop("Authorization", None)  # never send a token to an image host
        settings = sess.merge_environment_settings(prepared.url, {}, True, None, None)
        try:
            response = sess.send(
                prepared, stream=True, allow_redirects=False,
                timeout=(connect_timeout, timeout), proxies=settings["proxies"],
                verify=settings["verify"], cert=settings["cert"],
            )
        except requests.exceptions.ConnectionError as exc:  # includes ConnectTimeout
            if attempt < _RETRIES and time.monotonic() < deadline:
                _sleep_backoff(attempt)
                attempt += 1
                continue
            kind = ("timed out connecting" if isinstance(exc, requests.exceptions.ConnectTimeout)
                    else "could not connect")
            raise _download_error(current, f"{kind} after {attempt + 1} attempts",
                                  hint="Check the network, or try again later.") from None
        except requests.exceptions.Timeout:
            raise _download_error(current, f"no answer within {timeout:g} s",
                                  hint="Try again later or pass a larger timeout=.") from None
        except requests.exceptions.RequestException as exc:
            raise _download_error(current, f"the request failed ({type(exc).__name__})") \
                from None
        with response:
            status = response.status_code
            if status in _REDIRECTS and response.headers.get("Location"):
                target = urllib.parse.urljoin(current, response.headers["Location"])
                if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
                    raise _download_error(
                        current, f"it redirects to {_short_url(target)}, which is not http(s)")
                redirects += 1
                if redirects > _MAX_REDIRECTS:
                    raise _download_error(url, f"more than {_MAX_REDIRECTS} redirects")
                current = target
                continue
            if status >= 500:
                if attempt < _RETRIES and time.monotonic() < deadline:
                    attempt += 1
                    _sleep_backoff(attempt - 1)
                    continue
                raise _download_error(
                    current, f"the server answered HTTP {status} after {attempt + 1} attempts",
                    status_code=status, hint="Try again later.")
            if status >= 400:
                hint = ("Result URLs are temporary: download results soon after they finish."
                        if status in (403, 404, 410) else "")
                raise _download_error(current, f"the server answered HTTP {status}",
                                      status_code=status, hint=hint)
            if status != 200:
                raise _download_error(current, f"unexpected HTTP {status}", status_code=status)
            try:
                return _read_capped(response, current, max_bytes, timeout, deadline)
            except _BrokenStream as exc:
                if attempt < _RETRIES and time.monotonic() < deadline:
                    attempt += 1
                    _sleep_backoff(attempt - 1)
                    continue
                raise _download_error(current, f"{exc} after {attempt + 1} attempts",
                                      hint="Try again later.") from None


class _BrokenStream(Exception):
    """Internal: the connection broke while reading the body (retried like a refusal)."""


def _sleep_backoff(attempt: int) -> None:
    base = _BACKOFF[min(attempt, len(_BACKOFF) - 1)]
    time.sleep(base * (0.75 + random.random() / 2))


def _read_capped(response: requests.Response, url: str, max_bytes: int, timeout: float,
                 deadline: float) -> bytes:
    import requests

    length = response.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise _download_error(
            url, f"it is {int(length)} bytes, over the limit of {max_bytes} bytes",
            hint="Pass a larger max_bytes= if you expect such a large image.")
    buf = bytearray()
    try:
        for chunk in response.iter_content(_CHUNK):
            buf += chunk
            if len(buf) > max_bytes:
                raise _download_error(
                    url, f"it sent more than the limit of {max_bytes} bytes",
                    hint="Pass a larger max_bytes= if you expect such a large image.")
            if time.monotonic() > deadline:
                raise _download_error(url, f"it took longer than {5 * timeout:g} s",
                                      hint="Try again later or pass a larger timeout=.")
    except requests.exceptions.ConnectionError as exc:
        if "timed out" in str(exc).lower():
            raise _download_error(url, f"no data for {timeout:g} s while reading the image",
                                  hint="Try again later or pass a larger timeout=.") from None
        raise _BrokenStream("the connection broke while reading the image") from None
    except requests.exceptions.ChunkedEncodingError:
        raise _BrokenStream("the connection broke while reading the image") from None
    except requests.exceptions.RequestException as exc:
        raise _download_error(url, f"reading failed ({type(exc).__name__})") from None
    return bytes(buf)


# --- metadata --------------------------------------------------------------------------


def extension_for(data: bytes) -> str:
    """The file extension for encoded image bytes, from their magic number (``.bin``
    when unknown)."""
    head = bytes(data[:16])
    if head.startswith(_PNG_SIGNATURE):
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


def _png_chunks(data: bytes) -> Iterator[tuple[int, bytes, bytes]]:
    """``(offset, type, payload)`` for each chunk; stops at IEND or a damaged chunk."""
    pos = len(_PNG_SIGNATURE)
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


def _png_chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + ctype + payload + struct.pack(">I", crc)


def _itxt(keyword: str, text: str) -> bytes:
    body = keyword.encode("latin-1") + b"\x00" + b"\x00\x00" + b"\x00" + b"\x00" + \
        text.encode("utf-8")
    return _png_chunk(b"iTXt", body)


def _text_keyword(ctype: bytes, payload: bytes) -> str | None:
    if ctype not in (b"iTXt", b"tEXt", b"zTXt"):
        return None
    return payload.split(b"\x00", 1)[0].decode("latin-1", "replace")


def _embed_png(data: bytes, meta_json: str, description: str | None) -> bytes:
    kept = bytearray(data[:len(_PNG_SIGNATURE)])
    found_end = False
    for pos, ctype, payload in _png_chunks(data):
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


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
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


_COM_PREFIX: Final = METADATA_KEY.encode() + b":"
_COM_MORE: Final = METADATA_KEY.encode() + b"+"
_COM_ROOM: Final = 65533 - len(_COM_PREFIX)


def _embed_jpeg(data: bytes, meta_json: str) -> bytes:
    payload = meta_json.encode("utf-8")
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
    for marker, start, end in _jpeg_segments(data):
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
    with _quiet_pillow():
        img = _open_checked(_Raw(data, label), DEFAULT_MAX_PIXELS)
        if img.mode not in ("1", "L", "LA", "RGB", "RGBA", "P", "I;16", "I"):
            img, _icc = _normalise_mode(img)
        buf = io.BytesIO()
        img.save(buf, "PNG")
    return _embed_png(buf.getvalue(), meta_json, description)


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


def _parse_meta(text: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _read_png_meta(data: bytes) -> dict[str, Any]:
    for _pos, ctype, payload in _png_chunks(data):
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
    for marker, start, end in _jpeg_segments(data):
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
        label = _label_for(path_or_bytes)
        data = _read_path(Path(os.fspath(path_or_bytes)), label).data
    kind = extension_for(data)
    if kind == ".png":
        return _read_png_meta(data)
    if kind == ".jpg":
        return _read_jpeg_meta(data)
    return {}


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
