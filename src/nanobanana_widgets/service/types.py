"""Typed results: the request as sent, the images, the task record and its status.

Frozen dataclasses built from the service's JSON (parsed and cleaned by
:mod:`nanobanana_widgets.service.answers`). Status and progress are inferred from a task
record (:mod:`nanobanana_widgets.service.status`), since the service sends no status field.
A result keeps at most the images its request asked for.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from nanobanana_widgets.service.errors import (
    DownloadError,
    NanoBananaError,
    SaveError,
    describe_error,
    error_from_body,
)
from nanobanana_widgets.service.models import MAX_COUNT
from nanobanana_widgets.service.seams import result_io
from nanobanana_widgets.service.status import (
    Status,
    failure_reason,
    image_entries,
    infer_status,
    progress_of,
    reason_in,
)
from nanobanana_widgets.service.text import mask_url, short_url

if TYPE_CHECKING:
    from PIL import Image as PILImage

logger = logging.getLogger("nanobanana_widgets.service")


@dataclass(frozen=True)
class ImageRequest:
    """One images request exactly as sent (never holds the token)."""

    action: str
    prompt: str
    model: str = "nano-banana"
    count: int = 1
    aspect_ratio: str | None = None
    resolution: str | None = None
    image_urls: tuple[str, ...] = ()
    callback_url: str | None = None
    asynchronous: bool = True

    def to_payload(self) -> dict[str, Any]:
        """The JSON body for ``POST /nano-banana/images``."""
        payload: dict[str, Any] = {
            "action": self.action,
            "prompt": self.prompt,
            "model": self.model,
        }
        if self.count != 1:
            payload["count"] = self.count
        if self.aspect_ratio is not None:
            payload["aspect_ratio"] = self.aspect_ratio
        if self.resolution is not None:
            payload["resolution"] = self.resolution
        if self.image_urls:
            payload["image_urls"] = list(self.image_urls)
        if self.callback_url is not None:
            payload["callback_url"] = self.callback_url
        if self.asynchronous:
            payload["async"] = True
        return payload

    def parameters(self) -> dict[str, Any]:
        """The user-facing parameters (no prompt, no images), for captions and history."""
        return {
            "action": self.action,
            "model": self.model,
            "count": self.count,
            "aspect_ratio": self.aspect_ratio,
            "resolution": self.resolution,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ImageRequest:
        """Rebuild from a JSON body (e.g. a task record's ``request``).

        Defensive: a record from the service is not trusted, so a field of the wrong type
        falls back to its default instead of raising."""

        def text(key: str) -> str | None:
            value = payload.get(key)
            return value if isinstance(value, str) else None

        count = payload.get("count")
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        urls = payload.get("image_urls")
        return cls(
            action=text("action") or "generate",
            prompt=text("prompt") or "",
            model=text("model") or "nano-banana",
            count=count if isinstance(count, int) and not isinstance(count, bool) else 1,
            aspect_ratio=text("aspect_ratio"),
            resolution=text("resolution"),
            image_urls=tuple(u for u in urls if isinstance(u, str))
            if isinstance(urls, list) else (),
            callback_url=text("callback_url"),
            asynchronous=payload.get("async") is True,
        )

    def __repr__(self) -> str:
        urls = ", ".join(short_url(u) for u in self.image_urls)
        return (
            f"ImageRequest(action={self.action!r}, prompt={self.prompt[:60]!r}, "
            f"model={self.model!r}, count={self.count}, aspect_ratio={self.aspect_ratio!r}, "
            f"resolution={self.resolution!r}, image_urls=[{urls}])"
        )


@dataclass(frozen=True)
class GeneratedImage:
    """One result image: its URL and the prompt the service echoed.

    ``bytes()``, ``pil()`` and ``save()`` download it (once; the bytes are kept in memory)
    with a size cap and a deadline, accepting only well-formed http, https and data URLs,
    and verify the content with Pillow. Whatever the server sent, they raise only the
    package's errors: :class:`DownloadError` for the download and decoding,
    :class:`SaveError` for writing the file.
    """

    url: str
    prompt: str
    task_id: str = ""
    index: int = 0
    request: ImageRequest | None = field(default=None, compare=False, repr=False)
    _cache: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def bytes(self, *, max_bytes: int | None = None, timeout: float | None = None,
              deadline: float | None = None) -> bytes:
        """The image file's bytes (downloaded on first use, then kept).

        ``max_bytes``, ``timeout`` and ``deadline`` are those of
        :func:`nanobanana_widgets.images.download` (by default the whole download ends
        within five times ``timeout``). Threads asking at the same time share one
        download: the first one fetches, the others wait for it and get its bytes (or its
        error).
        """
        data = self._cache.get("data")
        if data is not None:
            return data
        kwargs: dict[str, Any] = {}
        if max_bytes is not None:
            kwargs["max_bytes"] = max_bytes
        if timeout is not None:
            kwargs["timeout"] = timeout
        if deadline is not None:
            kwargs["deadline"] = deadline
        try:
            return _fetch_once(self.url, self._cache, kwargs)
        except NanoBananaError:
            raise
        except Exception as exc:  # the boundary: nothing foreign escapes
            raise DownloadError(f"Could not download {short_url(self.url)}: "
                                f"{describe_error(exc)}") from exc

    def pil(self) -> PILImage.Image:
        """The image as a ``PIL.Image`` (downloaded on first use). Images of more than
        ``nanobanana_widgets.images.RESULT_MAX_PIXELS`` pixels are refused before decoding
        (:class:`DownloadError`)."""
        data = self.bytes()
        try:
            return result_io().decode(data)
        except NanoBananaError:
            raise
        except Exception as exc:
            raise DownloadError(f"Could not decode the image of {short_url(self.url)}: "
                                f"{describe_error(exc)}") from exc

    def metadata(self) -> dict[str, Any]:
        """What gets embedded in a saved file: prompt, model, parameters and task id."""
        meta: dict[str, Any] = {
            "prompt": self.prompt,
            "task_id": self.task_id,
            "index": self.index,
            "source_url": mask_url(self.url) if not self.url.startswith("data:") else "",
        }
        if self.request is not None:
            meta.update(self.request.parameters())
            meta["request_prompt"] = self.request.prompt
        return meta

    def save(self, path: str | Path) -> Path:
        """Write the image to ``path`` with its metadata embedded; returns the file's path.

        ``path`` is a file, or an existing folder: then the file is named after the task id
        (made safe: never a path outside the folder) and the image's index.
        """
        data = self.bytes()
        try:
            return result_io().save(self, data, path)
        except NanoBananaError:
            raise
        except Exception as exc:
            raise SaveError(f"Could not save the image to {str(path)!r}: "
                            f"{describe_error(exc)}") from exc

    def _repr_html_(self) -> str:
        return result_io().image_html(self)

    def __repr__(self) -> str:
        return f"GeneratedImage(url={short_url(self.url)!r}, prompt={self.prompt[:60]!r})"


class _Flight:
    """One image's download in progress: the callers waiting for it and how it ended."""

    __slots__ = ("callers", "error", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.callers = 0
        self.error: Exception | None = None


# Downloads in progress, keyed by the id of the image's byte cache (copies made with
# dataclasses.replace share that dict, so they share the download too). An entry lives only
# while some thread is inside _fetch_once for it, so an id is never reused meanwhile. Kept
# out of the dataclass so that images stay picklable.
_FLIGHTS: dict[int, _Flight] = {}
_FLIGHTS_LOCK = threading.Lock()


def _fetch_once(url: str, cache: dict[str, bytes], kwargs: dict[str, Any]) -> bytes:
    """Download ``url`` into ``cache["data"]`` once, however many threads ask at once."""
    key = id(cache)
    with _FLIGHTS_LOCK:
        flight = _FLIGHTS.get(key)
        if flight is None:
            flight = _FLIGHTS[key] = _Flight()
        flight.callers += 1
    try:
        with flight.lock:
            data = cache.get("data")
            if data is not None:
                return data
            if flight.error is not None:  # the download this caller waited for failed
                raise flight.error
            try:
                data = result_io().download(url, **kwargs)
            except Exception as exc:  # shared with the callers already waiting
                flight.error = exc
                raise
            cache["data"] = data
            return data
    finally:
        with _FLIGHTS_LOCK:
            flight.callers -= 1
            if flight.callers == 0:
                del _FLIGHTS[key]


@dataclass(frozen=True)
class Timings:
    """When things happened, as UNIX timestamps (``None`` when unknown)."""

    submitted_at: float | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    received_at: float | None = None

    @property
    def elapsed(self) -> float | None:
        """Seconds from submission (or creation) to the result reaching Python."""
        start = self.submitted_at or self.created_at
        end = self.received_at or self.finished_at
        if start is None or end is None:
            return None
        return max(0.0, end - start)


@dataclass(frozen=True)
class Result:
    """A finished request: task id, trace id, the request as sent, images and timings.

    Iterating, indexing and ``len`` go over the images. ``status`` is ``"succeeded"`` when
    at least one image came back; with ``count > 1`` some may be missing (billing is per
    image that succeeded). A server listing more images than the request asked for is not
    believed: the first ``count`` are kept and ``surplus_images`` says how many were not.
    """

    task_id: str
    trace_id: str | None
    request: ImageRequest
    images: tuple[GeneratedImage, ...]
    status: Status = "succeeded"
    timings: Timings = field(default_factory=Timings)
    error: NanoBananaError | None = field(default=None, compare=False)
    surplus_images: int = 0

    @property
    def image(self) -> GeneratedImage:
        """The first image (raises ``IndexError`` when there is none)."""
        return self.images[0]

    @property
    def prompt(self) -> str:
        return self.request.prompt

    @property
    def model(self) -> str:
        return self.request.model

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[GeneratedImage]:
        return iter(self.images)

    @overload
    def __getitem__(self, i: int) -> GeneratedImage: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[GeneratedImage, ...]: ...
    def __getitem__(self, i: int | slice) -> GeneratedImage | tuple[GeneratedImage, ...]:
        return self.images[i]

    def save(self, folder: str | Path = ".") -> list[Path]:
        """Save every image into ``folder`` (made if missing) with metadata; returns the
        paths. Files are named after the task id, made safe, and never land outside
        ``folder``."""
        target = Path(folder)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:
            raise SaveError(f"Could not make the folder {str(folder)!r}: "
                            f"{describe_error(exc)}") from exc
        return [image.save(target) for image in self.images]

    def _repr_html_(self) -> str:
        return result_io().result_html(self)

    def __repr__(self) -> str:
        surplus = f", surplus_images={self.surplus_images}" if self.surplus_images else ""
        return (
            f"Result(task_id={self.task_id!r}, status={self.status!r}, "
            f"images={len(self.images)}{surplus}, prompt={self.request.prompt[:60]!r}, "
            f"model={self.request.model!r})"
        )


@dataclass(frozen=True)
class TaskRecord:
    """A task as the tasks endpoint describes it, with its inferred status and, when the
    record carries one, its progress (a fraction from 0 to 1)."""

    id: str
    status: Status
    trace_id: str | None
    request: Mapping[str, Any]
    response: Mapping[str, Any]
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    elapsed: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    progress: float | None = None

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> TaskRecord:
        """Parse one record from ``retrieve`` or ``retrieve_batch``."""
        response = record.get("response")
        request = record.get("request")
        task_id = (
            _text(record.get("id"))
            or _text(record.get("task_id"))
            or (_text(response.get("task_id")) if isinstance(response, Mapping) else None)
        )
        trace = _text(record.get("trace_id")) or (
            _text(response.get("trace_id")) if isinstance(response, Mapping) else None
        )
        status = infer_status(record)
        return cls(
            id=task_id or "",
            status=status,
            trace_id=trace,
            request=request if isinstance(request, Mapping) else {},
            response=response if isinstance(response, Mapping) else {},
            created_at=_num(record.get("created_at")),
            started_at=_num(record.get("started_at")),
            finished_at=_num(record.get("finished_at")),
            elapsed=_num(record.get("elapsed")),
            raw=record,
            progress=1.0 if status != "pending" else progress_of(record),
        )

    def error(self) -> NanoBananaError | None:
        """The mapped error of a failed task, else ``None``. Its message is the reason the
        record gives (``error.message``, ``error.detail``, ``message``,
        ``failure_reason`` or ``fail_reason``, in the response or the record)."""
        if self.status != "failed":
            return None
        body = dict(self.response)
        if reason_in(body) is None:
            reason = failure_reason(self.raw) if self.raw else None
            if reason is not None:
                body["message"] = reason
        return error_from_body(body, trace_id=self.trace_id, task_id=self.id)

    def to_result(
        self, request: ImageRequest | None = None, *, submitted_at: float | None = None
    ) -> Result:
        """The :class:`Result` of a finished task (``request`` defaults to the record's).

        At most ``request.count`` images are kept (:data:`MAX_COUNT` when the request is
        the record's own echo); the rest are counted in ``surplus_images`` and logged.
        """
        req = request or ImageRequest.from_payload(self.request)
        keep = max(1, request.count) if request is not None else MAX_COUNT
        entries = image_entries(self.response)
        surplus = max(0, len(entries) - keep)
        if surplus:
            logger.warning("Task %s listed %d images where %d were asked for; kept the "
                           "first %d.", self.id, len(entries), keep, keep)
        images = tuple(
            GeneratedImage(
                url=url, prompt=prompt or req.prompt, task_id=self.id, index=i, request=req
            )
            for i, (url, prompt) in enumerate(entries[:keep])
        )
        return Result(
            task_id=self.id,
            trace_id=self.trace_id,
            request=req,
            images=images,
            status=self.status,
            timings=Timings(
                submitted_at=submitted_at,
                created_at=self.created_at,
                started_at=self.started_at,
                finished_at=self.finished_at,
                received_at=time.time(),
            ),
            error=self.error(),
            surplus_images=surplus,
        )


def _text(value: Any) -> str | None:
    """An id or a code from a record: a non-blank string (or a whole number), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None
        return number if math.isfinite(number) else None
    return None
