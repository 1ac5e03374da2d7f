"""What the image modules share: Pillow's warnings kept quiet, bounded opening of
undecoded bytes, and small checks.

Every decode is bounded: the pixel count is checked before decoding and truncated files are
refused, each failure an :class:`~nanobanana_widgets.service.errors.ImageInputError` naming
the input.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from typing import Any, Final, cast

from PIL import Image, UnidentifiedImageError

from nanobanana_widgets.service.errors import ImageInputError, InvalidParameterError

DEFAULT_MAX_PIXELS: Final = 100_000_000
"""Largest input (width × height) decoded by default; checked before decoding."""

MAX_INPUT_BYTES: Final = 256 * 1024 * 1024
"""Most bytes read from one input file or file object (before decoding): far above any
real photo, and a stop for ``/dev/zero``-like inputs and sparse files of gigabytes."""

RESULT_MAX_PIXELS: Final = 40_000_000
"""Largest result image ``GeneratedImage.pil()`` decodes (width × height), checked before
decoding: more than twice the largest image the service makes (4K, about 17 megapixels),
well under what a hostile one would cost (144 megapixels took 437 MB)."""

HINT_FORMATS: Final = "Use a PNG, JPEG, WebP or GIF file."

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
def quiet_pillow() -> Iterator[None]:
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


def check_positive(name: str, value: Any) -> int:
    """``value`` if it is a positive whole number, else :class:`InvalidParameterError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidParameterError(name, value, None, hint="a positive whole number")
    return value


def looks_like_text(data: bytes) -> str | None:
    """The start of ``data`` if it is plain text (for 'this is a text file' messages)."""
    head = data[:200]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    return text.strip()[:40]


class Raw:
    """Undecoded bytes from a path, bytes, file object, upload or data URI."""

    def __init__(self, data: bytes, label: str) -> None:
        self.data = data
        self.label = label


def parse_data_uri(uri: str, label: str) -> bytes:
    """The bytes of a ``data:image/...;base64,`` URI; anything else raises
    :class:`ImageInputError` naming ``label``."""
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


def open_checked(raw: Raw, max_pixels: int, *, draft_side: int | None = None) -> Image.Image:
    """Open, check the pixel count before decoding, optionally draft, and load fully.

    Must run under :func:`quiet_pillow`.
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
        text = looks_like_text(data)
        problem = (f"is not an image: it contains text ({text!r}…)" if text is not None
                   else f"is not an image Pillow can read (it starts with {data[:8]!r})")
        raise ImageInputError(label, problem, hint=HINT_FORMATS) from None
    except (OSError, ValueError, SyntaxError, struct.error, EOFError) as exc:
        raise ImageInputError(label, f"is damaged or not an image ({exc})",
                              hint=HINT_FORMATS) from None
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
