"""The one input normaliser: whatever a notebook user holds, as the service wants it.

``to_image_url`` turns a path, bytes, a file object, a ``PIL.Image``, a numpy array, a URL,
a data URI, an ipywidgets ``FileUpload`` value or a result into an ``http(s)`` URL or a
``data:image/...;base64,`` URI of at most 10 MB; ``load_image`` decodes the same inputs.
Every failure is an :class:`~nanobanana_widgets.service.errors.ImageInputError` naming the
input.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from PIL import Image

from nanobanana_widgets.images._pixels import (
    encode_image,
    from_array,
    load_pil,
    orientation,
    transpose,
)
from nanobanana_widgets.images._shared import (
    DEFAULT_MAX_PIXELS,
    MAX_INPUT_BYTES,
    Raw,
    check_positive,
    open_checked,
    parse_data_uri,
    quiet_pillow,
)
from nanobanana_widgets.images.fetch import download, url_problem
from nanobanana_widgets.service import models
from nanobanana_widgets.service.errors import DownloadError, ImageInputError, describe_error
from nanobanana_widgets.service.text import data_uri as _data_uri
from nanobanana_widgets.service.text import data_uri_length as _data_uri_length
from nanobanana_widgets.service.text import short_url as _short_url
from nanobanana_widgets.service.text import shorten as _short
from nanobanana_widgets.service.types import GeneratedImage, Result

__all__ = ["DEFAULT_MAX_PIXELS", "load_image", "to_image_url", "to_image_urls"]

_PASS_THROUGH_FORMATS: Final[dict[str, str]] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # multi-picture camera JPEGs: the bytes are a plain JPEG
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
_READ_CHUNK: Final = 1 << 20
_HINT_TOO_BIG: Final = "Convert it to a PNG or JPEG of a sensible size first."
_ACCEPTED: Final = (
    "Pass a file path, bytes, a binary file object, a PIL.Image, a numpy array, an "
    "http(s) URL, a data:image/...;base64 URI, a FileUpload value or a result."
)


def _is_numpy(obj: object) -> bool:
    module = type(obj).__module__ or ""
    return module == "numpy" or module.startswith("numpy.")


def label_for(source: object) -> str:
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
    if isinstance(source, Result):
        url = source.images[0].url if source.images else ""
        return f"result {_short_url(url)!r}"
    if isinstance(source, GeneratedImage):
        return f"result image {_short_url(source.url)!r}"
    name = getattr(source, "name", None)
    if hasattr(source, "read"):
        if isinstance(name, str) and name:
            return f"'{_short(name, 200)}'"
        return f"<file object {type(source).__name__}>"
    return f"<{type(source).__name__} object>"


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
    problem = url_problem(url)
    if problem is not None:  # a port out of range, a host that is not a DNS name, ...
        raise ImageInputError(label, f"is not a usable URL: {problem}",
                              hint="Expected a URL such as https://example.com/image.png.")
    scheme, rest = url.split(":", 1)
    return scheme.lower() + ":" + rest  # "HTTPS://..." is valid, but sent as "https://..."


def read_path(path: Path, label: str, *, limit: int = MAX_INPUT_BYTES) -> Raw:
    """The bytes of a file (``~`` expanded); raises :class:`ImageInputError` naming
    ``label`` for a missing, unreadable or oversized file and for anything that is not a
    regular file (a folder, a FIFO, a device such as ``/dev/zero``, a socket).

    The file is opened without blocking (a FIFO with no writer would block ``open()``
    forever) and its type and size are checked on the open descriptor before one byte is
    read; at most ``limit`` bytes are ever read, even from a file growing meanwhile.
    """
    with contextlib.suppress(RuntimeError):  # no home directory to expand "~" into
        path = path.expanduser()
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) \
        | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
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
    except ValueError:  # "embedded null byte": no file can have that name
        raise ImageInputError(label, "is not a file path (it contains a NUL character)",
                              hint=_ACCEPTED) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG or "too long" in str(exc).lower():
            raise ImageInputError(label, "no such file (the name is too long for a path)",
                                  hint=_ACCEPTED) from None
        raise ImageInputError(label, f"cannot be read ({exc.strerror or exc})") from None
    try:
        return Raw(_read_regular(fd, label, limit), label)
    finally:
        os.close(fd)


def _read_regular(fd: int, label: str, limit: int) -> bytes:
    """The content of the open file ``fd`` if it is a regular file of at most ``limit``
    bytes (checked before reading)."""
    try:
        info = os.fstat(fd)
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            raise ImageInputError(label, "is a folder, not a file",
                                  hint="Pass the path of an image file inside it.")
        if not stat.S_ISREG(mode):
            kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode)
                    else "a character device" if stat.S_ISCHR(mode)
                    else "a block device" if stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
            raise ImageInputError(label, f"is {kind}, not an image file",
                                  hint="Pass the path of an image file.")
        if info.st_size > limit:
            raise ImageInputError(label, _too_big(info.st_size, limit), hint=_HINT_TOO_BIG)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise ImageInputError(label, _too_big(total, limit), hint=_HINT_TOO_BIG)
            chunks.append(chunk)
        return b"".join(chunks)
    except ImageInputError:
        raise
    except (OSError, MemoryError) as exc:
        raise ImageInputError(label, f"cannot be read ({describe_error(exc)})") from exc


def _too_big(size: int, limit: int) -> str:
    return (f"is {size / 1e6:.0f} MB, over the limit of {limit / 1e6:.0f} MB read for an "
            "input image")


def _read_string(source: str, label: str) -> str | Raw:
    """A URL to pass through (returned as ``str``) or the bytes the string refers to."""
    stripped = source.strip()
    lowered = stripped[:12].lower()
    if lowered.startswith(("http://", "https://")):
        return _check_http_url(stripped, label)
    if lowered.startswith("data:"):
        return Raw(parse_data_uri(stripped, label), label)
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
    return read_path(Path(source), label)


def _read_filelike(source: Any, label: str, *, limit: int = MAX_INPUT_BYTES) -> Raw:
    """The bytes a file-like object's ``read()`` gives, at most ``limit``; anything its
    ``read()`` raises (a closed file, the user's own error) becomes an
    :class:`ImageInputError` naming the input, with the exception as its cause."""
    if getattr(source, "closed", False) is True:
        raise ImageInputError(label, "is a closed file",
                              hint="Pass it while it is open, or pass its path.")
    chunks: list[bytes] = []
    total = 0
    sized = True
    try:
        while True:
            if sized:
                try:
                    data = source.read(_READ_CHUNK)
                except TypeError:
                    if chunks:
                        raise
                    sized = False  # a read() that takes no size: one call, checked after
                    data = source.read()
            else:
                data = source.read()
            if data is None:
                raise ImageInputError(label, "is a non-blocking stream with no data ready",
                                      hint="Read it into bytes first.")
            if isinstance(data, str):
                raise ImageInputError(label, "is a file opened in text mode",
                                      hint="Open it with open(path, 'rb').")
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ImageInputError(label, f"read() returned {type(data).__name__}, not bytes",
                                      hint=_ACCEPTED)
            if not data:
                break
            total += memoryview(data).nbytes
            if total > limit:
                raise ImageInputError(label, _too_big(total, limit), hint=_HINT_TOO_BIG)
            chunks.append(bytes(data))
            if not sized:
                break
    except ImageInputError:
        raise
    except Exception as exc:  # the user's own read(): whatever it raises is named
        raise ImageInputError(label, f"could not be read: {describe_error(exc)}") from exc
    return Raw(b"".join(chunks), label)


def _read_upload(entry: Mapping[str, Any], label: str) -> Raw:
    content = entry.get("content")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return Raw(bytes(content), label)
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


def single_upload(seq: Sequence[Any], label: str) -> Any:
    """The one entry of a FileUpload value where one image is expected."""
    if len(seq) == 1:
        return seq[0]
    if not seq:
        raise ImageInputError(label, "is empty: no file was uploaded",
                              hint="Choose a file in the upload widget first.")
    raise ImageInputError(label, f"holds {len(seq)} images where one was expected",
                          hint="Use to_image_urls(...) for several images.")


def _encode_raw(raw: Raw, max_side: int, max_bytes: int, max_pixels: int) -> str:
    with quiet_pillow():
        img = open_checked(raw, max_pixels, draft_side=max_side)
        mime = _PASS_THROUGH_FORMATS.get(img.format or "")
        width, height = img.size
        if (
            mime is not None
            and img.mode != "CMYK"
            and max(width, height) <= max_side
            and orientation(img) == 1
            and _data_uri_length(len(raw.data), mime) <= max_bytes
        ):
            return _data_uri(raw.data, mime)
        return encode_image(img, max_side, max_bytes, raw.label)


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
    check_positive("max_side", max_side)
    check_positive("max_bytes", max_bytes)
    check_positive("max_pixels", max_pixels)
    if isinstance(source, (list, tuple)):  # a FileUpload value holding one file
        source = single_upload(source, name or f"<{type(source).__name__} of {len(source)}>")
    label = name or label_for(source)
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
        with quiet_pillow():
            return encode_image(load_pil(source, label), max_side, max_bytes, label)
    if _is_numpy(source):
        with quiet_pillow():
            return encode_image(from_array(source, label), max_side, max_bytes, label)
    return _encode_raw(_read_raw(source, label), max_side, max_bytes, max_pixels)


def _read_raw(source: Any, label: str) -> Raw:
    """Bytes-like sources: path objects, bytes, uploads, file objects."""
    if isinstance(source, os.PathLike):
        path = os.fspath(source)
        return read_path(Path(os.fsdecode(path)), label)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Raw(bytes(source), label)
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
        label = f"#{i} ({label_for(item)})" if many else None
        urls.append(to_image_url(item, max_side=max_side, max_bytes=max_bytes,
                                 max_pixels=max_pixels, name=label))
    return urls


def read_for_decoding(source: Any, label: str) -> Raw | Image.Image:
    """What :func:`load_image` and ``thumbnail`` decode: the undecoded bytes of ``source``
    (URLs and results downloaded), or the image itself for PIL images and arrays."""
    url = _result_url(source, label)
    if url is not None:
        image = source if isinstance(source, GeneratedImage) else None
        if isinstance(source, Result):
            image = source.images[0]
        assert image is not None
        try:
            return Raw(image.bytes(), label)
        except DownloadError as exc:
            raise ImageInputError(label, f"could not be downloaded ({exc.message})") from exc
    if isinstance(source, str):
        got = _read_string(source, label)
        if isinstance(got, Raw):
            return got
        try:
            return Raw(download(got), label)
        except DownloadError as exc:
            raise ImageInputError(label, f"could not be downloaded ({exc.message})") from exc
    if isinstance(source, Image.Image):
        return load_pil(source, label)
    if _is_numpy(source):
        return from_array(source, label)
    return _read_raw(source, label)


def load_image(
    source: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
) -> Image.Image:
    """Decode any :func:`to_image_url` source into a ``PIL.Image`` with EXIF orientation
    applied (URLs and results are downloaded). Raises :class:`ImageInputError`."""
    check_positive("max_pixels", max_pixels)
    if isinstance(source, (list, tuple)):
        source = single_upload(source, name or f"<{type(source).__name__} of {len(source)}>")
    label = name or label_for(source)
    got = read_for_decoding(source, label)
    with quiet_pillow():
        img = got if isinstance(got, Image.Image) else open_checked(got, max_pixels)
        return transpose(img)
