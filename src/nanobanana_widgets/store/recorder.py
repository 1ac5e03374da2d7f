"""Recording: what a client reports, written into the history, and the result downloads.

A record is written in ``on_submitted``, with its task id, before anything waits; a submit
that fails before a task id exists is recorded as failed. When a task finishes, its image
URLs are stored and the record is marked ``succeeded`` at once, so the caller gets the
result without waiting for the history; the images are then downloaded into the
content-addressed folder (with prompt, model, parameters and task id embedded) by the
recorder's own thread pool. A process that dies before a download ends loses nothing: the
URL is recorded, and :meth:`Recorder.resume` downloads every result that has no local copy
yet (as well as looking up the tasks still running). :meth:`Recorder.flush` waits for the
downloads. Listener callbacks never wait for a download, so they never block the poller.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.images import download, embed_metadata, extension_for, thumbnail
from nanobanana_widgets.service.errors import (
    CancelledError,
    NanoBananaError,
    PossiblyBilledError,
    WaitTimeoutError,
)
from nanobanana_widgets.service.text import parse_data_uri
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result, TaskRecord
from nanobanana_widgets.store.records import (
    ErrorInfo,
    Record,
    RecordStatus,
    ResultImage,
    error_info,
    image_metadata,
    input_hash,
    load_records,
    request_fingerprint,
)
from nanobanana_widgets.store.schema import HistoryStore, dumps

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Task

__all__ = ["THUMB_SIDE", "Recorder"]

logger = logging.getLogger(__name__)

THUMB_SIDE = 128
"""Longest side, in pixels, of the JPEG thumbnails kept in the database."""
_BATCH = 50
"""Tasks looked up per request while resuming."""

_MIME_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg",
             "image/webp": ".webp", "image/gif": ".gif", "image/bmp": ".bmp"}

_Job = tuple[int, GeneratedImage | str]
"""One result image to keep: its position, and the image (or its URL)."""


class Recorder:
    """Writes requests and their outcomes into a :class:`HistoryStore` and keeps the result
    images, downloading them on its own pool (up to 4 threads)."""

    def __init__(self, store: HistoryStore) -> None:
        self._store = store
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._futures: set[concurrent.futures.Future[None]] = set()
        self._lock = threading.Lock()
        self._closed = False

    # --- the client listener --------------------------------------------------------

    def on_submitted(self, task: Task) -> None:
        """Listener: write the record as soon as the task id is known."""
        self.insert(task.request, task_id=task.id, trace_id=task.trace_id,
                    submitted_at=task.submitted_at, status="submitted")

    def on_finished(self, task: Task, result: Result) -> None:
        """Listener: store the result's URLs, mark it, then download the images."""
        rid = self._store.id_for_task(task.id) or self.insert(
            task.request, task_id=task.id, trace_id=task.trace_id,
            submitted_at=task.submitted_at, status="submitted")
        self.store_result(rid, result)

    def on_failed(self, request: ImageRequest, error: NanoBananaError,
                  task: Task | None) -> None:
        """Listener: record the error (a deadline or a cancel leaves the task resumable)."""
        task_id = task.id if task is not None else error.task_id
        trace_id = (task.trace_id if task is not None else None) or error.trace_id
        info = error_info(error)
        fields: dict[str, Any]
        if isinstance(error, WaitTimeoutError) and task_id:
            fields = {"status": "pending"}
        elif isinstance(error, CancelledError) and task_id:
            fields = {"status": "cancelled"}
        elif isinstance(error, PossiblyBilledError) and task_id:
            fields = {"status": "pending"}
        else:
            fields = {"status": "failed", "received_at": time.time()}
        if fields["status"] != "pending":
            fields.update(error_class=info.type, error_code=info.code,
                          error_message=info.message, error_trace_id=info.trace_id)
        rid = self._store.id_for_task(task_id)
        if rid is None:
            self.insert(request, task_id=task_id, trace_id=trace_id,
                        submitted_at=task.submitted_at if task is not None else None, **fields)
            return
        if trace_id:
            fields["trace_id"] = trace_id
        self._store.update_unless_succeeded(rid, **fields)

    # --- writing --------------------------------------------------------------------

    def insert(self, request: ImageRequest, *, task_id: str | None, trace_id: str | None,
               submitted_at: float | None, status: str, created_at: float | None = None,
               **extra: Any) -> int:
        """Write a new record of ``request`` (its input images into the folder); returns
        its id, or the id of the record of ``task_id`` when that is recorded already."""
        inputs, hashes = self._store_inputs(request)
        params = request.parameters()
        params["inputs"] = len(request.image_urls)
        if request.callback_url:
            params["callback_url"] = request.callback_url
        row = {
            "created_at": created_at if created_at is not None else time.time(),
            "action": request.action, "prompt": request.prompt, "model": request.model,
            "count": request.count, "aspect_ratio": request.aspect_ratio,
            "resolution": request.resolution, "parameters": dumps(params),
            "task_id": task_id or None, "trace_id": trace_id, "submitted_at": submitted_at,
            "status": status, "fingerprint": request_fingerprint(request, hashes),
            **extra,
        }
        rid, _inserted = self._store.insert_request(row, inputs)
        return rid

    def _store_inputs(self, request: ImageRequest) -> tuple[list[dict[str, Any]], list[str]]:
        items: list[dict[str, Any]] = []
        hashes: list[str] = []
        for url in request.image_urls:
            decoded = parse_data_uri(url)
            if decoded is None:
                sha = input_hash(url)
                items.append({"sha256": sha, "url": url})
                hashes.append(sha)
                continue
            data, mime = decoded
            ext = _MIME_EXT.get(mime) or extension_for(data)
            sha, rel = self._store.put_file(data, ext)
            thumb = self._store.input_thumbnail(sha)
            if thumb is None:
                try:
                    thumb = thumbnail(data, max_side=THUMB_SIDE, quality=70)
                except Exception:  # not an image Pillow reads: keep the file, skip the thumb
                    thumb = None
            items.append({"sha256": sha, "mime": mime, "path": rel, "thumbnail": thumb})
            hashes.append(sha)
        return items, hashes

    def store_result(self, rid: int, result: Result, *, background: bool = True,
                     fetch: bool = True, status: RecordStatus | None = None) -> None:
        """Write a result (its URLs, timings, status and error) into record ``rid``, then
        keep its images: downloaded on the pool (``background``) or now. Images whose
        bytes are not at hand yet are downloaded only when ``fetch``."""
        timings = result.timings
        new_status: str = status or ("succeeded" if result.images else "failed")
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
            fields.update(error_class=info.type, error_code=info.code,
                          error_message=info.message, error_trace_id=info.trace_id)
        results = [{"url": img.url, "prompt": img.prompt} for img in result.images]
        with self._store.write():
            self._store.set_results(rid, results)
            self._store.update(rid, **fields)
        jobs: list[_Job] = [
            (pos, img) for pos, img in enumerate(result.images)
            if fetch or "data" in img._cache or img.url.startswith("data:")]
        if not jobs:
            return
        if background:
            self._schedule(rid, jobs)
        else:
            self.download(rid, jobs)

    # --- downloads ------------------------------------------------------------------

    def _schedule(self, rid: int, jobs: list[_Job]) -> None:
        with self._lock:
            if self._closed:
                return  # closed: resume() in a later session downloads what is missing
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="nanobanana-history")
            future = self._executor.submit(self.download, rid, jobs)
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

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
                data = download(url) if isinstance(item, str) else item.bytes()
                meta = image_metadata(rec, pos, url, prompts.get(pos, ""))
                try:
                    stored = embed_metadata(data, meta)
                except Exception as exc:  # keep the image even if metadata cannot go in
                    logger.warning("history: could not embed metadata in %s: %s", url[:80], exc)
                    stored = data
                sha, rel = self._store.put_file(stored, extension_for(stored))
                try:
                    thumb: bytes | None = thumbnail(data, max_side=THUMB_SIDE, quality=70)
                except Exception:
                    thumb = None
                self._store.set_result_file(rid, pos, sha256=sha, path=rel, thumbnail=thumb)
            except Exception as exc:
                logger.warning("history: could not keep result image %s of record %s: %s",
                               pos, rid, exc)
                with contextlib.suppress(Exception):
                    self._store.set_result_file(rid, pos, sha256=None, path=None, thumbnail=None,
                                                error=f"{type(exc).__name__}: {exc}")

    def local_bytes(self, record: Record, image: ResultImage) -> bytes | None:
        """The bytes of one result image: its local copy, else downloaded now (and kept);
        ``None`` when it cannot be had."""
        if image.local and image.path is not None:
            return image.path.read_bytes()
        self.download(record.id, [(image.position, image.url)])
        for fresh in load_records(self._store, [record.id]):
            for r in fresh.results:
                if r.position == image.position and r.local and r.path is not None:
                    return r.path.read_bytes()
        return None

    def download_missing(self) -> None:
        """Download, on the pool, every result image of a succeeded record that has no
        local copy yet."""
        for rid, items in self._store.missing_downloads().items():
            self._schedule(rid, list(items))

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait for the downloads under way; ``True`` when none is left."""
        with self._lock:
            pending = list(self._futures)
        if not pending:
            return True
        _done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        return not not_done

    def close(self) -> None:
        """Take no more downloads and wait for those under way."""
        with self._lock:
            self._closed = True
            executor = self._executor
        if executor is not None:
            executor.shutdown(wait=True)

    # --- resume ---------------------------------------------------------------------

    def resume(self, client: Client, *, wait: bool = False,
               timeout: float | None = None) -> list[int]:
        """Look up every task that may still bring a result (see
        :meth:`HistoryStore.open_tasks`) with ``client.tasks`` in batches, store finished
        results and errors, and download any result image not yet in the folder. With
        ``wait=True``, poll until all are done or ``timeout`` (default: the client's
        ``wait_timeout``) passes. Returns the ids of the records looked up."""
        by_task = self._store.open_tasks()
        open_ids = list(by_task)
        deadline = time.monotonic() + (
            timeout if timeout is not None else float(getattr(client, "wait_timeout", 600.0)))
        interval = float(getattr(client, "poll_interval", 1.0))
        while open_ids:
            still: list[str] = []
            for k in range(0, len(open_ids), _BATCH):
                chunk = open_ids[k:k + _BATCH]
                found = {rec.id: rec for rec in client.tasks(chunk)}
                for task_id in chunk:
                    record = found.get(task_id)
                    if record is None or not self._apply(by_task[task_id], record):
                        still.append(task_id)
            open_ids = still
            if not wait or not open_ids or time.monotonic() >= deadline:
                break
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
        if open_ids and wait:
            logger.info("history.resume: %d tasks still running at the deadline", len(open_ids))
        self.download_missing()
        if wait:
            self.flush(timeout=None)
        return list(by_task.values())

    def _apply(self, rid: int, record: TaskRecord) -> bool:
        """Store a looked-up task; ``True`` when it is finished."""
        if record.status == "pending":
            self._store.mark_running(rid)
            return False
        rec = load_records(self._store, [rid])[0]
        request = ImageRequest(action=rec.action, prompt=rec.prompt, model=rec.model,
                               count=rec.count, aspect_ratio=rec.aspect_ratio,
                               resolution=rec.resolution)
        result = record.to_result(request, submitted_at=rec.timings.submitted_at)
        self.store_result(rid, result, fetch=False)
        if record.status == "failed" and not result.images and result.error is None:
            self._store.update(rid, status="failed")
        return True
