"""Recording: what a client reports, written into the history, and the result downloads.

A record is written in ``on_submitted``, with its task id, before anything waits; a submit
that fails before a task id exists is recorded as failed, and one that may have been billed
(:class:`~nanobanana_widgets.service.errors.PossiblyBilledError`) is recorded as such: with
its task id, ``pending`` so that ``History.resume()`` looks it up; without one, with a
message telling the user to check their usage. When a task finishes, its image URLs are
stored (at most the ``count`` asked for) and the record is marked ``succeeded`` at once, so
the caller gets the result without waiting for the history; the images are then downloaded
into the content-addressed folder (with prompt, model, parameters and task id embedded) on
the history's :class:`~nanobanana_widgets.store.downloads.DownloadPool`.

Every listener write goes through :class:`~nanobanana_widgets.store.unsaved.PendingWrites`:
a record the database refuses (a full disk, a lock held too long) is kept, journaled,
retried and reported, never dropped. Each write names its record by ``record_key``, so two
requests a broken service answered with one task id are both kept. Listener callbacks never
wait for a download, so they never block the poller.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.images import download, embed_metadata, extension_for, thumbnail
from nanobanana_widgets.service.errors import (
    CancelledError,
    HistoryError,
    NanoBananaError,
    PossiblyBilledError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.models import MAX_COUNT
from nanobanana_widgets.service.text import parse_data_uri
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from nanobanana_widgets.store.clean import clean_image
from nanobanana_widgets.store.downloads import DownloadPool
from nanobanana_widgets.store.problems import Problems
from nanobanana_widgets.store.records import (
    ErrorInfo,
    Record,
    RecordStatus,
    ResultImage,
    error_info,
    image_metadata,
    input_hash,
    load_records,
    record_key,
    request_fingerprint,
)
from nanobanana_widgets.store.schema import HistoryStore, dumps
from nanobanana_widgets.store.unsaved import PendingWrites, RecordWrite, orphaned_journals

if TYPE_CHECKING:
    from nanobanana_widgets.client import Task

__all__ = ["ERROR_MESSAGE_LIMIT", "THUMB_SIDE", "Recorder"]

logger = logging.getLogger(__name__)

THUMB_SIDE = 128
"""Longest side, in pixels, of the JPEG thumbnails kept in the database."""
ERROR_MESSAGE_LIMIT = 2000
"""Characters of an error message kept in a record (a server may send megabytes)."""

_MIME_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg",
             "image/webp": ".webp", "image/gif": ".gif", "image/bmp": ".bmp"}

_Job = tuple[int, GeneratedImage | str]
"""One result image to keep: its position, and the image (or its URL)."""


class Recorder:
    """Writes requests and their outcomes into a :class:`HistoryStore` and keeps the result
    images, downloading them on its own bounded pool."""

    def __init__(self, store: HistoryStore, problems: Problems) -> None:
        self._store = store
        self._problems = problems
        self._pool = DownloadPool()
        self._pending = PendingWrites(store.db_path, self._apply, problems)
        self._closed = False

    @property
    def pending(self) -> PendingWrites:
        """The writes not saved yet (``History.unsaved``)."""
        return self._pending

    def adopt_journals(self) -> None:
        """Save what earlier sessions journaled but could not write (see ``unsaved``)."""
        for path in orphaned_journals(self._store.db_path):
            saved, _kept = self._pending.adopt(path)
            if saved:
                self._problems.report(
                    "saved", f"{saved} record(s) an earlier session could not save were "
                    f"saved now in {self._store.db_path} (from {path.name}).", warn=True)

    # --- the client listener --------------------------------------------------------

    def on_submitted(self, task: Task) -> None:
        """Listener: write the record as soon as the task id is known."""
        self._pending.write(self._event(task.request, task_id=task.id,
                                        trace_id=task.trace_id,
                                        submitted_at=task.submitted_at))

    def on_finished(self, task: Task, result: Result) -> None:
        """Listener: store the result's URLs, mark it, then download the images."""
        w = self._event(task.request, task_id=task.id, trace_id=task.trace_id,
                        submitted_at=task.submitted_at, match_task=True)
        results, fields, jobs = self._outcome(result, cap=task.request.count)
        w.results, w.fields = results, fields
        w.then = lambda rid: self._schedule(rid, jobs)
        self._pending.write(w)

    def on_failed(self, request: ImageRequest, error: NanoBananaError,
                  task: Task | None) -> None:
        """Listener: record the error (a deadline or a cancel leaves the task resumable;
        a request that may have been billed is always recorded, saying so)."""
        task_id = task.id if task is not None else error.task_id
        trace_id = (task.trace_id if task is not None else None) or error.trace_id
        info = error_info(error)
        fields: dict[str, Any]
        if isinstance(error, WaitTimeoutError) and task_id:
            fields = {"status": "pending"}
        elif isinstance(error, CancelledError) and task_id:
            fields = {"status": "cancelled"}
        elif isinstance(error, PossiblyBilledError):
            info = ErrorInfo(info.type, info.code, _billing_note(info.message, task_id),
                             info.trace_id)
            fields = {"status": "pending"} if task_id else {"status": "failed",
                                                            "received_at": time.time()}
            fields.update(_error_fields(info))
        else:
            fields = {"status": "failed", "received_at": time.time(), **_error_fields(info)}
        if trace_id:
            fields["trace_id"] = trace_id
        w = self._event(request, task_id=task_id, trace_id=trace_id,
                        submitted_at=task.submitted_at if task is not None else None,
                        match_task=task is not None, keyed=task is not None)
        w.fields, w.keep_success = fields, True
        self._pending.write(w)

    # --- writing --------------------------------------------------------------------

    def _event(self, request: ImageRequest, *, task_id: str | None, trace_id: str | None,
               submitted_at: float | None, match_task: bool = False,
               keyed: bool = True) -> RecordWrite:
        """The write of one event of ``request`` (its record inserted when new)."""
        hashes = [input_hash(u) for u in request.image_urls]
        fingerprint = request_fingerprint(request, hashes)
        params = request.parameters()
        params["inputs"] = len(request.image_urls)
        if request.callback_url:
            params["callback_url"] = request.callback_url
        row = {
            "created_at": time.time(), "action": request.action, "prompt": request.prompt,
            "model": request.model, "count": request.count,
            "aspect_ratio": request.aspect_ratio, "resolution": request.resolution,
            "parameters": dumps(params), "task_id": task_id or None, "trace_id": trace_id,
            "submitted_at": submitted_at, "status": "submitted", "fingerprint": fingerprint,
        }
        key = record_key(task_id if keyed else None, submitted_at, fingerprint)
        return RecordWrite(key=key, row=row, match_task=match_task, request=request)

    def _apply(self, w: RecordWrite) -> int:
        """Write ``w`` into the database (its input images into the folder first, when its
        record is new); raises ``HistoryError`` when the history refuses."""
        if w.inputs is None and w.request is not None and not self._store.has_key(w.key):
            w.inputs = self._store_inputs(w.request)
        rid, inserted = self._store.apply_write(
            w.key, w.row, inputs=w.inputs or (), results=w.results, fields=w.fields,
            keep_success=w.keep_success, match_task=w.match_task)
        if inserted and any(i.get("path") is None and i.get("kept") is False
                            for i in w.inputs or ()):
            self._problems.report(
                "image", f"An input image of {w.describe()} could not be kept in the history "
                "folder (the record is saved); rerun() needs the image passed again.",
                task_id=w.task_id)
        return rid

    def insert(self, request: ImageRequest, *, task_id: str | None, trace_id: str | None,
               submitted_at: float | None, status: str, created_at: float | None = None,
               **extra: Any) -> int:
        """Write a new record of ``request`` now (for ``History.add``: raises
        ``HistoryError`` when the history refuses); returns its id, or the id of the
        record of the same submission when it is recorded already."""
        w = self._event(request, task_id=task_id, trace_id=trace_id,
                        submitted_at=submitted_at)
        if created_at is not None:
            w.row["created_at"] = created_at
        w.row.update(status=status, **extra)
        return self._apply(w)

    def _store_inputs(self, request: ImageRequest) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for url in request.image_urls:
            decoded = parse_data_uri(url)
            if decoded is None:
                items.append({"sha256": input_hash(url), "url": url})
                continue
            data, mime = decoded
            ext = _MIME_EXT.get(mime) or extension_for(data)
            try:
                sha, rel = self._store.put_file(data, ext)
            except HistoryError:  # the record matters more than its input's copy
                items.append({"sha256": input_hash(url), "mime": mime, "kept": False})
                continue
            thumb = self._store.input_thumbnail(sha)
            if thumb is None:
                try:
                    thumb = thumbnail(data, max_side=THUMB_SIDE, quality=70)
                except Exception:  # not an image Pillow reads: keep the file, skip the thumb
                    thumb = None
            items.append({"sha256": sha, "mime": mime, "path": rel, "thumbnail": thumb})
        return items

    def _outcome(self, result: Result, *, cap: int | None, status: RecordStatus | None = None
                 ) -> tuple[list[dict[str, Any]], dict[str, Any], list[_Job]]:
        """A result as result rows, record fields and the images to keep. ``cap``: keep
        at most that many images (the ``count`` asked for; a server may list more)."""
        images = list(result.images)
        if cap is not None:
            allowed = max(1, min(int(cap), MAX_COUNT))
            if len(images) > allowed:
                self._problems.report(
                    "extra", f"The service sent {len(images)} images for task "
                    f"{result.task_id}, which asked for {allowed}; the history kept the "
                    f"first {allowed}.", task_id=result.task_id or None)
                images = images[:allowed]
        timings = result.timings
        new_status: str = status or ("succeeded" if images else "failed")
        if status is None and result.status == "pending":
            new_status = "pending"
        fields: dict[str, Any] = {
            "status": new_status,
            "service_created_at": timings.created_at, "started_at": timings.started_at,
            "finished_at": timings.finished_at,
            "received_at": timings.received_at or time.time(),
        }
        if timings.submitted_at is not None:
            fields["submitted_at"] = timings.submitted_at
        if result.trace_id:
            fields["trace_id"] = result.trace_id
        if new_status == "succeeded":
            fields.update(error_class=None, error_code=None, error_message=None,
                          error_trace_id=None)
        elif result.error is not None or new_status == "failed":
            info = error_info(result.error) if result.error is not None else ErrorInfo(
                "TaskFailedError", None, "The task finished without producing images.",
                result.trace_id)
            fields.update(_error_fields(info))
        results = [{"url": img.url, "prompt": img.prompt} for img in images]
        return results, fields, list(enumerate(images))

    def store_result(self, rid: int, result: Result, *, background: bool = True,
                     fetch: bool = True, status: RecordStatus | None = None,
                     cap: int | None = None) -> None:
        """Write a result (its URLs, timings, status and error) into record ``rid`` now
        (raises ``HistoryError`` when the history refuses), then keep its images:
        downloaded on the pool (``background``) or now. Images whose bytes are not at hand
        yet are downloaded only when ``fetch``."""
        results, fields, jobs = self._outcome(result, cap=cap, status=status)
        with self._store.write():
            self._store.set_results(rid, results)
            self._store.update(rid, **fields)
        jobs = [(pos, img) for pos, img in jobs
                if fetch or (isinstance(img, GeneratedImage) and (
                    "data" in img._cache or img.url.startswith("data:")))]
        if not jobs:
            return
        if background:
            self._schedule(rid, jobs)
        else:
            self.download(rid, jobs)

    # --- downloads ------------------------------------------------------------------

    def _schedule(self, rid: int, jobs: list[_Job]) -> None:
        if jobs and not self._pool.submit(self.download, rid, jobs):
            logger.info("history: record %s's images wait for History.resume() (the "
                        "download queue is full or closed)", rid)

    def download(self, rid: int, jobs: Sequence[_Job]) -> None:
        """Fetch, embed metadata, store by content and thumbnail each result image."""
        rec = self._store.request_row(rid)
        if rec is None:
            return
        prompts = self._store.result_prompts(rid)
        for pos, item in jobs:
            url = item if isinstance(item, str) else item.url
            try:
                # A GeneratedImage shares one download with whoever else shows it (the grid,
                # the panel): its bytes() waits for a fetch already under way.
                data = clean_image(download(url) if isinstance(item, str) else item.bytes())
                meta = image_metadata(rec, pos, url, prompts.get(pos, ""))
                try:
                    stored = embed_metadata(data, meta)
                except Exception as exc:  # keep the image even if metadata cannot go in
                    logger.warning("history: could not embed metadata in image %s of record "
                                   "%s: %s", pos, rid, type(exc).__name__)
                    stored = data
                sha, rel = self._store.put_file(stored, extension_for(stored))
                try:
                    thumb: bytes | None = thumbnail(data, max_side=THUMB_SIDE, quality=70)
                except Exception:
                    thumb = None
                self._store.set_result_file(rid, pos, sha256=sha, path=rel, thumbnail=thumb)
            except HistoryError as exc:
                self._problems.report(
                    "image", f"Result image {pos} of task {rec.get('task_id')} could not be "
                    f"kept in the history folder: {exc.message} Its URL is recorded: "
                    "History.resume() downloads it again while the URL is valid.",
                    task_id=rec.get("task_id"))
            except Exception as exc:
                logger.warning("history: could not keep result image %s of record %s: %s",
                               pos, rid, exc)
                with contextlib.suppress(HistoryError):
                    self._store.set_result_file(rid, pos, sha256=None, path=None,
                                                thumbnail=None,
                                                error=f"{type(exc).__name__}: {exc}")

    def local_bytes(self, record: Record, image: ResultImage) -> bytes | None:
        """The bytes of one result image: its local copy when sound, else downloaded now
        (and kept); ``None`` when it cannot be had. A damaged copy is reported, forgotten
        and downloaded again, never served."""
        data = image.read()
        if data is not None:
            return data
        if image.path is not None and image.path.exists():
            self._problems.report(
                "image", f"The kept copy of result image {image.position} of task "
                f"{record.task_id} ({image.path}) is damaged: its hash differs from the "
                "recorded one. It is downloaded again.", task_id=record.task_id)
            with contextlib.suppress(HistoryError):
                self._store.forget_result_file(record.id, image.position,
                                               "the kept copy was damaged")
        self.download(record.id, [(image.position, image.url)])
        for fresh in load_records(self._store, [record.id]):
            for r in fresh.results:
                if r.position == image.position:
                    return r.read()
        return None

    def download_missing(self) -> None:
        """Download, on the pool, every result image of a succeeded record that has no
        local copy yet."""
        for rid, items in self._store.missing_downloads().items():
            self._schedule(rid, list(items))

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait for the downloads and for what is unsaved to be saved (at most ``timeout``
        seconds); ``True`` when no download is left and nothing is unsaved."""
        deadline = None if timeout is None else time.monotonic() + timeout
        saved = self._pending.wait_saved(timeout)  # first: a saved record may add downloads
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._pool.flush(remaining) and saved

    def close(self, timeout: float = 5.0) -> None:
        """Take no more downloads, drop the queued ones (``resume()`` fetches them later),
        wait up to ``timeout`` seconds for those running, and save or journal what is
        unsaved."""
        self._closed = True
        self._pool.flush(timeout)
        self._pool.close(timeout=0)
        self._pending.close()


def _error_fields(info: ErrorInfo) -> dict[str, Any]:
    message = info.message
    if len(message) > ERROR_MESSAGE_LIMIT:
        message = message[:ERROR_MESSAGE_LIMIT - 1] + "…"
    return {"error_class": info.type, "error_code": info.code, "error_message": message,
            "error_trace_id": info.trace_id}


def _billing_note(message: str, task_id: str | None) -> str:
    """``message`` saying that the request may have been billed, and what to do."""
    lowered = message.lower()
    if task_id:
        note = (f" It may have been billed: History.resume() looks task {task_id} up."
                if "resume()" not in lowered else "")
    else:
        note = (" It may have been billed and has no task id: check your usage on "
                "platform.acedata.cloud before sending it again."
                if "check your usage" not in lowered else "")
    return message + note
