"""Safe downloads of result images, on the shared retry policy.

``download`` fetches from ``http``, ``https`` and ``data`` URLs with a size cap, timeouts,
an overall deadline and bounded retries (``service.retry.DOWNLOAD_RETRY``), never sends an
``Authorization`` header, and verifies what arrived is a whole image.
"""

from __future__ import annotations

import io
import struct
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
from nanobanana_widgets.service.errors import DownloadError, ImageInputError, InvalidParameterError
from nanobanana_widgets.service.retry import DOWNLOAD_RETRY, Failure, failure_for_status
from nanobanana_widgets.service.text import short_url as _short_url

if TYPE_CHECKING:
    import requests

__all__ = ["DOWNLOAD_MAX_BYTES", "download"]

DOWNLOAD_MAX_BYTES: Final = 64 * 1024 * 1024
"""Default size cap of :func:`download`."""

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS: Final = 5
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
            text = looks_like_text(data)
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
    check_positive("max_bytes", max_bytes)
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
        data = parse_data_uri(url, "<data URL>")
    except ImageInputError as exc:
        raise _download_error(url, exc.problem) from None
    if len(data) > max_bytes:
        raise _download_error(url, f"it holds more than the limit of {max_bytes} bytes")
    _verify_image(data, url)
    return data


def _fetch(sess: requests.Session, url: str, max_bytes: int, timeout: float) -> bytes:
    """GET ``url`` (following http(s) redirects) and read its body, retrying what the
    download policy allows while the overall deadline lasts."""
    import requests

    deadline = time.monotonic() + 5 * timeout
    connect_timeout = min(timeout, 10.0)
    retries = 0
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
            if _wait_to_retry(_connection_failure(exc), retries, deadline):
                retries += 1
                continue
            kind = ("timed out connecting" if isinstance(exc, requests.exceptions.ConnectTimeout)
                    else "could not connect")
            raise _download_error(current, f"{kind} after {retries + 1} attempts",
                                  hint="Check the network, or try again later.") from None
        except requests.exceptions.Timeout:  # a read timeout: the policy does not retry it
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
            try:
                return _read_capped(response, current, max_bytes, timeout, deadline)
            except _BrokenStream as exc:
                if _wait_to_retry("broken", retries, deadline):
                    retries += 1
                    continue
                raise _download_error(current, f"{exc} after {retries + 1} attempts",
                                      hint="Try again later.") from None


class _BrokenStream(Exception):
    """Internal: the connection broke while reading the body (retried like a refusal)."""


def _connection_failure(exc: requests.exceptions.ConnectionError) -> Failure:
    """How far a download that could not connect, or lost its connection, got."""
    import requests

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "not_sent"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    return "broken"


def _wait_to_retry(failure: Failure, retries: int, deadline: float) -> bool:
    """Sleep before the next attempt and return ``True`` if the download policy allows one
    after ``retries`` retries, before ``deadline`` (monotonic); else ``False``."""
    wait = DOWNLOAD_RETRY.next_wait("download", failure, retries,
                                    time_left=deadline - time.monotonic())
    if wait is None:
        return False
    time.sleep(wait)
    return True


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
