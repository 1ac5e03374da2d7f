"""Safe downloads of result images, on the shared retry policy and the deadline of
:mod:`.http`.

``download`` fetches from ``http``, ``https`` and ``data`` URLs with a size cap, a total
deadline that holds whatever the server does, and bounded retries
(``service.retry.DOWNLOAD_RETRY``); it checks every URL (the first and each redirect's)
before using it, never sends an ``Authorization`` header, verifies that what arrived is a
whole image, and raises nothing but :class:`DownloadError` (and
:class:`InvalidParameterError` for its own arguments).
"""

from __future__ import annotations

import io
import ipaddress
import struct
import threading
import time
import urllib.parse
import zlib
from typing import TYPE_CHECKING, Final

from PIL import Image, UnidentifiedImageError

from nanobanana_widgets.images._shared import (
    check_positive,
    looks_like_text,
    parse_data_uri,
    quiet_pillow,
)
from nanobanana_widgets.images.formats import PNG_SIGNATURE, extension_for, jpeg_segments
from nanobanana_widgets.images.http import AnswerTooLarge, Wire, WireError
from nanobanana_widgets.service.errors import (
    DownloadError,
    ImageInputError,
    InvalidParameterError,
    NanoBananaError,
)
from nanobanana_widgets.service.retry import DOWNLOAD_RETRY, Failure, failure_for_status
from nanobanana_widgets.service.text import UNSAFE_CHARACTERS, clean_text
from nanobanana_widgets.service.text import short_url as _short_url

if TYPE_CHECKING:
    import requests

__all__ = ["DOWNLOAD_DEADLINE_FACTOR", "DOWNLOAD_MAX_BYTES", "check_url", "download",
           "url_problem"]

DOWNLOAD_MAX_BYTES: Final = 64 * 1024 * 1024
"""Default size cap of :func:`download`."""
DOWNLOAD_DEADLINE_FACTOR: Final = 5.0
"""A download's default deadline, in multiples of its ``timeout``."""

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5
_MAX_URL: Final = 8192
_wire: Wire | None = None
_wire_lock = threading.Lock()


def _download_error(url: str, problem: str, *, status_code: int | None = None,
                    hint: str = "") -> DownloadError:
    """The error naming ``url`` (cut short, credentials masked, made printable)."""
    message = f"Could not download {clean_text(_short_url(url))}: {clean_text(problem)}."
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
        if end < len(PNG_SIGNATURE) + 4 or len(data) < end + 8:
            return "it ends before the PNG's IEND chunk"
    elif kind == ".jpg":
        scan = 2  # headers our walker cannot follow: look anywhere after SOI
        for marker, _start, stop in jpeg_segments(data):
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
    with quiet_pillow():
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()
        except Image.DecompressionBombError:
            raise _download_error(url, "the image has too many pixels to decode safely") \
                from None
        except UnidentifiedImageError:
            # Nothing of the body is quoted: it may be an internal page read into a
            # notebook that is shared later.
            what = ("text (an error page?)" if looks_like_text(data) is not None
                    else "bytes no image reader recognises")
            raise _download_error(url, f"the content ({len(data)} bytes) is not an image but "
                                       f"{what}") from None
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


def check_url(url: str) -> str:
    """``url`` (stripped) if it is an http(s) URL that can be used as it is; else
    :class:`DownloadError` saying what is wrong with it (:func:`url_problem`)."""
    text = url.strip()
    problem = url_problem(text)
    if problem is not None:
        raise _download_error(text, problem, hint="Only well-formed http(s) URLs are used.")
    return text


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as an image URL, in words, or ``None`` when it is fine.

    Refused: spaces or control characters anywhere, a URL that does not parse (an unclosed
    ``[``), a scheme other than http(s), no host, a port outside 1–65535, a host name that
    is not a plain DNS name (non-ASCII, a label over 63 characters, a name over 253,
    characters other than letters, digits, hyphens) or an invalid IPv6 address.
    """
    if len(url) > _MAX_URL:
        return f"the URL is longer than {_MAX_URL} characters"
    if any(c.isspace() for c in url) or UNSAFE_CHARACTERS.search(url):
        return "the URL contains spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as exc:
        return f"the URL is malformed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"the {parts.scheme + ': ' if parts.scheme else ''}scheme is not allowed"
    if not host:
        return "the URL has no host name"
    if port is not None and not 0 < port < 65536:
        return f"the port {port} is out of range"
    return _host_problem(host, bracketed="[" in parts.netloc)


def _host_problem(host: str, *, bracketed: bool) -> str | None:
    """What is wrong with a URL's host name, or ``None``."""
    if bracketed:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return "the host is not a valid IPv6 address"
        return None
    if not host.isascii():
        return "the host name has characters other than ASCII (servers send xn-- names)"
    name = host.rstrip(".")
    if not name or len(name) > 253:
        return "the host name is empty or longer than 253 characters"
    for label in name.split("."):
        if not 0 < len(label) <= 63:
            return "the host name has an empty label or one longer than 63 characters"
        if not all(c.isalnum() or c in "-_" for c in label):
            return "the host name contains characters a domain name cannot hold"
    return None


def download(
    url: str,
    *,
    max_bytes: int = DOWNLOAD_MAX_BYTES,
    timeout: float = 60.0,
    deadline: float | None = None,
    session: requests.Session | None = None,
) -> bytes:
    """Fetch an image from an ``http``, ``https`` or ``data`` URL and verify it with Pillow.

    - **Size**: at most ``max_bytes`` are read (``Content-Length`` checked first, the
      stream cut when it passes the cap, decompressed bytes counted).
    - **Time**: ``timeout`` bounds connecting and each socket read; ``deadline`` (seconds,
      default five times ``timeout``) bounds the whole download, redirects, retries,
      headers and body included, whatever the server does (one byte at a time, a body that
      never ends): by then it has ended, with :class:`DownloadError` if the image is not
      all there. Verifying the bytes (local work, no network) comes after.
    - **Safety**: every URL, the first and each redirect's, is checked before it is used
      (:func:`check_url`); redirects are followed only to http(s), at most five; no
      ``Authorization`` header is ever sent, even when ``session`` carries one; nothing of
      a body that is not an image is quoted in the error; credentials in a URL are masked.
    - **Retries**: connection failures and 5xx answers, twice, while the deadline lasts.

    Raises :class:`DownloadError` for anything that goes wrong, whatever the server sent
    (:class:`InvalidParameterError` for a bad ``max_bytes``, ``timeout`` or ``deadline``).
    """
    if not isinstance(url, str):
        raise DownloadError(f"Could not download {type(url).__name__!r}: expected a URL string.")
    check_positive("max_bytes", max_bytes)
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if value is None and name == "deadline":
            continue
        if (not isinstance(value, (int, float)) or isinstance(value, bool)
                or not 0 < value < float("inf")):
            raise InvalidParameterError(name, value, None, hint="a positive number of seconds")
    total = float(deadline) if deadline is not None else DOWNLOAD_DEADLINE_FACTOR * timeout
    try:
        return _download(url, max_bytes, float(timeout), total, session)
    except NanoBananaError:
        raise
    except Exception as exc:  # the boundary: nothing foreign escapes a download
        raise _download_error(url, f"an unexpected {type(exc).__name__} occurred") from exc


def _download(url: str, max_bytes: int, timeout: float, total: float,
              session: requests.Session | None) -> bytes:
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url else ""
    if scheme == "data":
        return _download_data(url, max_bytes)
    checked = check_url(url)
    wire = _shared_wire() if session is None else Wire(session)
    try:
        data = _fetch(wire, checked, max_bytes, timeout, time.monotonic() + total, total)
    finally:
        if session is not None:
            wire.close()
    _verify_image(data, url)
    return data


def _shared_wire() -> Wire:
    """The connection pool of downloads made without a session of the caller's."""
    global _wire
    with _wire_lock:
        if _wire is None:
            _wire = Wire()
        return _wire


def _download_data(url: str, max_bytes: int) -> bytes:
    head = url.split(",", 1)[0]
    if ";base64" not in head.lower():
        raise _download_error(url, "only base64 data URLs are supported")
    payload = url.split(",", 1)[1] if "," in url else ""
    if len(payload) * 3 // 4 > max_bytes + 3:
        raise _download_error(url, f"it holds more than the limit of {max_bytes} bytes")
    try:
        data = parse_data_uri(url, "<data URL>")
    except ImageInputError as exc:
        raise _download_error(url, exc.problem) from None
    if len(data) > max_bytes:
        raise _download_error(url, f"it holds more than the limit of {max_bytes} bytes")
    _verify_image(data, url)
    return data


def _fetch(wire: Wire, url: str, max_bytes: int, timeout: float, deadline: float,
           total: float) -> bytes:
    """GET ``url`` (following http(s) redirects) and read its body, retrying what the
    download policy allows, all by ``deadline`` (monotonic)."""
    retries = 0
    redirects = 0
    current = url
    while True:
        try:
            answer = wire.exchange(
                "GET", current, headers={"Accept": "image/*,*/*;q=0.5"},
                timeout=(min(timeout, 10.0), timeout), deadline=deadline, max_bytes=max_bytes,
                read_body=lambda status: status == 200, strip_authorization=True,
            )
        except AnswerTooLarge as exc:
            size = (f"it is {exc.declared} bytes, over the limit of {max_bytes} bytes"
                    if exc.declared is not None
                    else f"it sent more than the limit of {max_bytes} bytes")
            raise _download_error(
                current, size,
                hint="Pass a larger max_bytes= if you expect such a large image.") from None
        except WireError as exc:
            if exc.unusable:
                raise _download_error(current, f"the URL cannot be used ({exc.detail})") \
                    from None
            if exc.deadline:
                raise _download_error(
                    current, f"it did not arrive within the deadline of {total:g} s",
                    hint="Try again later, or pass a larger deadline= (or timeout=).") from None
            if exc.failure not in ("not_sent", "tls", "timeout", "broken"):
                raise _download_error(current, f"the server sent {exc.detail}") from None
            if _wait_to_retry(exc.failure, retries, deadline):
                retries += 1
                continue
            raise _download_error(current, _no_answer(exc, timeout, retries + 1),
                                  hint="Check the network, or try again later.") from None
        status = answer.status_code
        if status in _REDIRECTS and answer.headers.get("location"):
            target = _redirect_target(current, answer.headers["location"])
            redirects += 1
            if redirects > _MAX_REDIRECTS:
                raise _download_error(url, f"more than {_MAX_REDIRECTS} redirects")
            current = target
            continue
        failure = failure_for_status(status) if status >= 400 else None
        if failure is not None and _wait_to_retry(failure, retries, deadline):
            retries += 1
            continue
        if status >= 500:
            raise _download_error(
                current, f"the server answered HTTP {status} after {retries + 1} attempts",
                status_code=status, hint="Try again later.")
        if status >= 400:
            hint = ("Result URLs are temporary: download results soon after they finish."
                    if status in (403, 404, 410) else "")
            raise _download_error(current, f"the server answered HTTP {status}",
                                  status_code=status, hint=hint)
        if status != 200:
            raise _download_error(current, f"unexpected HTTP {status}", status_code=status)
        return answer.content


def _redirect_target(current: str, location: str) -> str:
    """The checked absolute URL a redirect points to (:class:`DownloadError` if unusable)."""
    try:
        target = urllib.parse.urljoin(current, location.strip())
    except ValueError:
        raise _download_error(current, "it redirects to a malformed URL") from None
    if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
        raise _download_error(current,
                              f"it redirects to {_short_url(target)}, which is not http(s)")
    problem = url_problem(target)
    if problem is not None:
        raise _download_error(current, f"it redirects to an unusable URL: {problem}")
    return target


def _no_answer(exc: WireError, timeout: float, attempts: int) -> str:
    """Why a download got no answer, in words."""
    if exc.failure == "not_sent":
        kind = "timed out connecting" if exc.timed_out else "could not connect"
        return f"{kind} after {attempts} attempts"
    if exc.failure == "tls":
        return f"the TLS handshake failed after {attempts} attempts"
    if exc.failure == "timeout":
        return f"no answer within {timeout:g} s"
    return f"the connection broke while reading the image after {attempts} attempts"


def _wait_to_retry(failure: Failure, retries: int, deadline: float) -> bool:
    """Sleep before the next attempt and return ``True`` if the download policy allows one
    after ``retries`` retries, before ``deadline`` (monotonic); else ``False``."""
    wait = DOWNLOAD_RETRY.next_wait("download", failure, retries,
                                    time_left=deadline - time.monotonic())
    if wait is None:
        return False
    time.sleep(wait)
    return True
