"""What a history holds: a :class:`Record` per request, its input and result images, its
error, and how records are read from the store.

A record is a frozen snapshot; changes go through the :class:`~nanobanana_widgets.store.History`
façade. :func:`request_fingerprint` says which requests are identical (the key of replay).
"""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nanobanana_widgets.render.history_table import record_html
from nanobanana_widgets.service import errors as _errors
from nanobanana_widgets.service.errors import ImageInputError, NanoBananaError
from nanobanana_widgets.service.status import Status
from nanobanana_widgets.service.text import data_uri, parse_data_uri
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result, Timings
from nanobanana_widgets.store.clean import clean_value
from nanobanana_widgets.store.schema import HistoryStore, dumps, read_sound

if TYPE_CHECKING:
    from typing import TypeAlias

    from nanobanana_widgets.client import Task

__all__ = ["RECORD_KEYS", "RECORD_STATUSES", "ErrorInfo", "InputImage", "Pick", "Record",
           "RecordId", "RecordStatus", "ResultImage", "error_info", "image_metadata",
           "input_hash", "load_records", "record_key", "request_fingerprint",
           "result_from_record"]

RecordStatus = Literal["submitted", "pending", "succeeded", "failed", "cancelled"]
RECORD_STATUSES: tuple[str, ...] = ("submitted", "pending", "succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class InputImage:
    """One input image of a request: its content hash, local copy and thumbnail."""

    sha256: str
    mime: str | None
    path: Path | None
    url: str | None = None
    thumbnail: bytes | None = field(default=None, repr=False, compare=False)

    def bytes(self) -> bytes:
        """The input file's bytes from the history folder (checked against its hash)."""
        data = read_sound(self.path, self.sha256)
        if data is None:
            problem = ("its copy is missing from the history folder"
                       if self.path is None or not self.path.is_file()
                       else "its copy in the history folder is damaged (its hash differs)")
            raise ImageInputError(
                f"sha256 {self.sha256[:12]}", problem,
                hint="Pass the image again with rerun(..., images=[...]).",
            )
        return data

    def source(self) -> builtins.bytes | str:
        """What to send again: the stored bytes, or the URL when the input was a URL."""
        return self.url if self.url is not None else self.bytes()

    def data_uri(self) -> str:
        """The input as it was sent (its URL, or a ``data:`` URI of the stored bytes)."""
        if self.url is not None:
            return self.url
        return data_uri(self.bytes(), self.mime or "image/png")


@dataclass(frozen=True)
class ResultImage:
    """One result image: the service's URL, the echoed prompt and the local copy."""

    position: int
    url: str
    prompt: str
    sha256: str | None = None
    path: Path | None = None
    thumbnail: bytes | None = field(default=None, repr=False, compare=False)
    download_error: str | None = None

    @property
    def local(self) -> bool:
        """Whether the downloaded copy is in the history folder (see :meth:`read` for a
        copy checked against its hash)."""
        return self.path is not None and self.path.is_file()

    def read(self) -> builtins.bytes | None:
        """The local copy's bytes when they have the recorded hash; ``None`` when there
        is no copy or it is damaged (never served as if it were sound)."""
        return read_sound(self.path, self.sha256)


@dataclass(frozen=True)
class Pick:
    """A pick recorded by :meth:`History.record_pick` (enough to take it back)."""

    record_id: int
    line: str
    was_favourite: bool


@dataclass(frozen=True)
class ErrorInfo:
    """Why a request failed: the error class name, the service's code, message, trace id."""

    type: str
    code: str | None
    message: str
    trace_id: str | None = None

    def to_exception(self, task_id: str | None = None) -> NanoBananaError:
        """The error as an instance of its class (``NanoBananaError`` if unknown)."""
        cls = getattr(_errors, self.type, None)
        if not (isinstance(cls, type) and issubclass(cls, NanoBananaError)):
            cls = NanoBananaError
        err = cls.__new__(cls)
        NanoBananaError.__init__(err, self.message, code=self.code, trace_id=self.trace_id,
                                 task_id=task_id)
        return err


def error_info(error: BaseException) -> ErrorInfo:
    """What the history keeps of an exception."""
    if isinstance(error, NanoBananaError):
        return ErrorInfo(type(error).__name__, error.code, error.message, error.trace_id)
    return ErrorInfo(type(error).__name__, None, str(error) or type(error).__name__, None)


@dataclass(frozen=True)
class Record:
    """One recorded request, read from the history (a snapshot; actions go through the view)."""

    id: int
    created_at: float
    action: str
    prompt: str
    model: str
    count: int
    aspect_ratio: str | None
    resolution: str | None
    parameters: Mapping[str, Any] = field(hash=False)
    inputs: tuple[InputImage, ...]
    task_id: str | None
    trace_id: str | None
    timings: Timings
    status: RecordStatus
    error: ErrorInfo | None
    results: tuple[ResultImage, ...]
    rating: int
    favourite: bool
    notes: str
    deleted: bool
    grid_id: str | None
    grid_cell: str | None
    fingerprint: str
    replays: int = 0

    @property
    def elapsed(self) -> float | None:
        """Seconds from submission to the result (``None`` while unknown)."""
        return self.timings.elapsed

    def request(self) -> ImageRequest:
        """The request as it was sent (inputs rebuilt from the history folder)."""
        return ImageRequest(
            action=self.action, prompt=self.prompt, model=self.model, count=self.count,
            aspect_ratio=self.aspect_ratio, resolution=self.resolution,
            image_urls=tuple(i.data_uri() for i in self.inputs),
            callback_url=self.parameters.get("callback_url"),
        )

    def result(self) -> Result:
        """The record as a :class:`Result`; image bytes come from the local copies.

        ``status`` is ``"pending"`` for a task still running (or not looked up yet) and
        ``"failed"`` for failed or cancelled ones, with ``error`` set when known.
        """
        request = ImageRequest(
            action=self.action, prompt=self.prompt, model=self.model, count=self.count,
            aspect_ratio=self.aspect_ratio, resolution=self.resolution,
            image_urls=tuple(i.url or f"sha256:{i.sha256}" for i in self.inputs),
        )
        return result_from_record(self, request)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of everything recorded (no thumbnails), JSON-serialisable."""
        err = self.error
        return {
            "id": self.id,
            "created_at": self.created_at,
            "action": self.action,
            "prompt": self.prompt,
            "model": self.model,
            "count": self.count,
            "aspect_ratio": self.aspect_ratio,
            "resolution": self.resolution,
            "parameters": dict(self.parameters),
            "task_id": self.task_id,
            "trace_id": self.trace_id,
            "submitted_at": self.timings.submitted_at,
            "started_at": self.timings.started_at,
            "finished_at": self.timings.finished_at,
            "received_at": self.timings.received_at,
            "elapsed": self.elapsed,
            "status": self.status,
            "error_type": err.type if err else None,
            "error_code": err.code if err else None,
            "error_message": err.message if err else None,
            "error_trace_id": err.trace_id if err else None,
            "rating": self.rating,
            "favourite": self.favourite,
            "notes": self.notes,
            "deleted": self.deleted,
            "grid_id": self.grid_id,
            "grid_cell": self.grid_cell,
            "fingerprint": self.fingerprint,
            "replays": self.replays,
            "inputs": [{"sha256": i.sha256, "path": str(i.path) if i.path else None,
                        "url": i.url} for i in self.inputs],
            "results": [{"url": r.url, "prompt": r.prompt, "sha256": r.sha256,
                         "path": str(r.path) if r.path else None} for r in self.results],
        }

    def _repr_html_(self) -> str:
        # One record alone has no position: its first cell shows its id ("id 7"), which
        # ``history.get(7)`` takes; views number their rows by position instead.
        return record_html(self)

    def __repr__(self) -> str:
        return (f"Record(id={self.id}, status={self.status!r}, prompt={self.prompt[:60]!r}, "
                f"model={self.model!r}, images={len(self.results)}, rating={self.rating})")


RECORD_KEYS: tuple[str, ...] = (
    "id", "created_at", "action", "prompt", "model", "count", "aspect_ratio", "resolution",
    "parameters", "task_id", "trace_id", "submitted_at", "started_at", "finished_at",
    "received_at", "elapsed", "status", "error_type", "error_code", "error_message",
    "error_trace_id", "rating", "favourite", "notes", "deleted", "grid_id", "grid_cell",
    "fingerprint", "replays", "inputs", "results",
)
"""The keys of :meth:`Record.to_dict`, in order (the columns of the CSV and pandas exports)."""


class RecordId(int):
    """A record's id (``Record.id``) given where a plain ``int`` means a position in a view."""


if TYPE_CHECKING:
    RecordTarget: TypeAlias = int | Record | str | Task
    """What record actions take: a position in the view, a :class:`Record`, a task id or a
    ``Task``, or a :class:`RecordId`."""


def result_from_record(record: Record, request: ImageRequest) -> Result:
    """``record`` as a :class:`Result` of ``request``, with image bytes from local copies."""
    images = []
    for r in record.results:
        image = GeneratedImage(url=r.url, prompt=r.prompt or record.prompt,
                               task_id=record.task_id or "", index=r.position, request=request)
        data = r.read()
        if data is not None:  # a damaged copy is left out: the image downloads again
            image._cache["data"] = data
        images.append(image)
    status: Status
    if record.status == "succeeded":
        status = "succeeded"
    elif record.status in ("failed", "cancelled"):
        status = "failed"
    else:
        status = "pending"
    return Result(
        task_id=record.task_id or "",
        trace_id=record.trace_id,
        request=request,
        images=tuple(images),
        status=status,
        timings=record.timings,
        error=record.error.to_exception(record.task_id) if record.error else None,
    )


def input_hash(url: str) -> str:
    """The content hash of an input image: of its bytes for a ``data:`` URI, else of its URL."""
    decoded = parse_data_uri(url)
    if decoded is not None:
        return hashlib.sha256(decoded[0]).hexdigest()
    return hashlib.sha256(f"url:{url}".encode()).hexdigest()


def request_fingerprint(request: ImageRequest, input_hashes: Sequence[str] | None = None) -> str:
    """A hash of what decides a request's output: action, prompt, parameters, input bytes."""
    hashes = list(input_hashes) if input_hashes is not None else [
        input_hash(u) for u in request.image_urls]
    payload = {
        "action": request.action, "prompt": request.prompt, "model": request.model,
        "count": request.count, "aspect_ratio": request.aspect_ratio,
        "resolution": request.resolution, "inputs": hashes,
    }
    return hashlib.sha256(dumps(payload).encode()).hexdigest()


def image_metadata(record: Mapping[str, Any], position: int, url: str,
                   prompt: str) -> dict[str, Any]:
    """What a stored or exported result image carries in its metadata: the request of
    ``record`` (a ``requests`` row or :meth:`Record.to_dict`), its place and its URL."""
    params = record.get("parameters")
    if isinstance(params, str):
        params = json.loads(params or "{}")
    meta = {
        "prompt": prompt or record["prompt"], "request_prompt": record["prompt"],
        "action": record["action"], "model": record["model"], "count": record["count"],
        "aspect_ratio": record["aspect_ratio"], "resolution": record["resolution"],
        "parameters": params or {}, "task_id": record["task_id"] or "",
        "trace_id": record["trace_id"] or "", "index": position,
        "source_url": url if not url.startswith("data:") else "",
        "created_at": record["created_at"],
    }
    return dict(clean_value(meta))


def record_key(task_id: str | None, submitted_at: float | None, fingerprint: str) -> str:
    """The ``record_key`` of one submission: the same for every event of one task handle
    (so two listeners, or a journal replayed, write one record), different for two requests
    a broken service answered with one task id. Without a task id, a new key each time."""
    if not task_id:
        return "local-" + uuid.uuid4().hex
    text = json.dumps([task_id, repr(submitted_at), fingerprint], ensure_ascii=True)
    return "task-" + hashlib.sha256(text.encode("ascii")).hexdigest()


def load_records(store: HistoryStore, ids: Sequence[int]) -> list[Record]:
    """The records ``ids`` in that order (ids not in the store are left out)."""
    if not ids:
        return []
    rows, input_rows, result_rows = store.record_rows(ids)
    inputs: dict[int, list[InputImage]] = {}
    for row in input_rows:
        inputs.setdefault(int(row["request_id"]), []).append(InputImage(
            sha256=row["sha256"], mime=row["mime"], path=store.file_path(row["path"]),
            url=row["url"], thumbnail=row["thumbnail"]))
    results: dict[int, list[ResultImage]] = {}
    for row in result_rows:
        results.setdefault(int(row["request_id"]), []).append(ResultImage(
            position=int(row["position"]), url=row["url"], prompt=row["prompt"],
            sha256=row["sha256"], path=store.file_path(row["path"]),
            thumbnail=row["thumbnail"], download_error=row["download_error"]))
    out = []
    for row in rows:
        rid = int(row["id"])
        error = None
        if row["error_class"]:
            error = ErrorInfo(row["error_class"], row["error_code"],
                              row["error_message"] or "", row["error_trace_id"])
        out.append(Record(
            id=rid, created_at=row["created_at"], action=row["action"],
            prompt=row["prompt"], model=row["model"], count=int(row["count"]),
            aspect_ratio=row["aspect_ratio"], resolution=row["resolution"],
            parameters=json.loads(row["parameters"] or "{}"),
            inputs=tuple(inputs.get(rid, ())), task_id=row["task_id"],
            trace_id=row["trace_id"],
            timings=Timings(submitted_at=row["submitted_at"],
                            created_at=row["service_created_at"],
                            started_at=row["started_at"], finished_at=row["finished_at"],
                            received_at=row["received_at"]),
            status=row["status"], error=error, results=tuple(results.get(rid, ())),
            rating=int(row["rating"]), favourite=bool(row["favourite"]),
            notes=row["notes"] or "", deleted=bool(row["deleted"]),
            grid_id=row["grid_id"], grid_cell=row["grid_cell"],
            fingerprint=row["fingerprint"], replays=int(row["replays"]),
        ))
    return out
