"""A batch job: hundreds to thousands of generations, at the service's limit, resumable.

::

    job = BatchJob.create("products.csv", model="nano-banana", history=h, client=c)
    job.wait(); job.summary; job.results[36]; job.to_pandas()
    job.export("dataset/")                     # images + metadata.jsonl (ImageFolder)
    BatchJob.open(job.name, history=h)         # after a kernel died: looks up, continues

(Users call ``nb.batch`` and ``nb.Job``, which add the progress view and the package's
defaults to this class.) **Before anything is sent** every row is checked (:mod:`.rows`)
and the job with its rows is written into the history: the paid generations are counted
(``job.paid``) and, above ``max_calls``, nothing is spent until :meth:`BatchJob.confirm`.
**Running** (:mod:`.runner`): submits are paced by AIMD (:mod:`.aimd`), each row's state (with
its task id) is in the history before anything waits, and the tasks are waited for through
the client's one batched poller. **Resuming**: the same rows under the same name (the default
name is derived from the rows) re-attach to the job; rows already submitted are looked up,
never resubmitted. One process runs a job at a time (a second one is refused while the first
lives).
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nanobanana_widgets.jobs.aimd import Pacer
from nanobanana_widgets.jobs.export import (
    EXPORT_FORMATS,
    ExportItem,
    write_imagefolder,
    write_parquet,
)
from nanobanana_widgets.jobs.rows import RowSpec, check_rows, job_fingerprint, read_rows
from nanobanana_widgets.jobs.runner import FINAL_STATES, JobRunner, RowStatus, error_of_row
from nanobanana_widgets.jobs.summary import JobSummary
from nanobanana_widgets.service.errors import (
    InvalidParameterError,
    NanoBananaError,
    WaitTimeoutError,
    not_confirmed_error,
)
from nanobanana_widgets.service.models import (
    DEFAULT_ASPECT_RATIO,
    DEFAULT_MODEL,
    DEFAULT_RESOLUTION,
)
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History, request_fingerprint
from nanobanana_widgets.store.jobs import new_owner

if TYPE_CHECKING:
    import os

    import pandas

    from nanobanana_widgets.client import Client
    from nanobanana_widgets.store import Record

__all__ = ["BatchJob", "Outcome"]

Outcome = Result | NanoBananaError | None
"""What a row holds: its result, the error it ended with, or ``None`` while unfinished."""
_RESERVED = ("file_name", "row", "image_index", "prompt", "action", "model", "count",
             "aspect_ratio", "resolution", "task_id", "trace_id", "rating", "favourite")


def _check_concurrency(value: Any) -> int | None:
    if value == "auto":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidParameterError("concurrency", value, None,
                                    hint='"auto" or a whole number of rows in flight, 1 or more')
    return value


def _check_max_calls(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError("max_calls", value, None,
                                    hint="a whole number of paid generations, 0 or more, "
                                         "or None for no cap")
    return value


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InvalidParameterError("name", name, None,
                                    hint="a non-empty text of at most 100 characters")
    return name.strip()


class BatchJob:
    """A batch of generations recorded in a history (made by :meth:`create` or :meth:`open`).

    ``name``, ``total`` (rows), ``paid`` (paid generations it asks for), ``state``
    (``"awaiting confirmation"``, ``"running"``, ``"paused"``, ``"cancelled"``, ``"done"``),
    ``wait()``, ``pause()``, ``resume()``, ``cancel()``, ``confirm()``, ``results``,
    ``summary``, ``to_pandas()``, ``retry_failed()``, ``export()``.
    """

    _live: ClassVar[weakref.WeakValueDictionary[tuple[str, str], BatchJob]] = (
        weakref.WeakValueDictionary())
    _live_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str, *, history: History, client: Client | None,
                 client_factory: Callable[[], Client] | None = None,
                 concurrency: Any = "auto", max_calls: int | None = None) -> None:
        job = history.jobs.get(name)
        if job is None:
            raise KeyError(f"No batch job {name!r} in the history at {history.folder}.")
        self.name = name
        self.history = history
        self._client = client
        self._client_factory = client_factory
        self.max_calls = _check_max_calls(max_calls)
        self.paid = int(job["paid"])
        self.state: str = str(job["state"])
        self._owner = new_owner()
        self._lock = threading.RLock()
        self._observers: list[Callable[[], object]] = []
        statuses = []
        for row in history.jobs.rows(name):
            spec = RowSpec.from_json(int(row["position"]), row["request"], row["meta"])
            statuses.append(RowStatus(spec=spec, state=row["state"], task_id=row["task_id"],
                                      trace_id=row["trace_id"], sent_at=row["sent_at"],
                                      images=int(row["images"]), error=error_of_row(row)))
        self.specs = [s.spec for s in statuses]
        self.runner = JobRunner(name, statuses, history=history, client=self._client_now,
                                concurrency=_check_concurrency(concurrency), pacer=Pacer(),
                                owner=self._owner, on_change=self._notify,
                                on_end=self._on_end)

    # --- making and opening --------------------------------------------------------------

    @classmethod
    def create(cls, rows: Any, *, history: History, client: Client | None = None,
               client_factory: Callable[[], Client] | None = None,
               model: str = DEFAULT_MODEL, count: int = 1, aspect_ratio: str | None = None,
               resolution: str | None = None, images: Any = None,
               max_calls: int | None = None, concurrency: Any = "auto",
               name: str | None = None) -> BatchJob:
        """Check every row, record the job and start it (see the module docstring); the
        same rows under the same name re-attach to the job recorded before."""
        max_calls = _check_max_calls(max_calls)
        _check_concurrency(concurrency)
        raw, source = read_rows(rows)
        specs = check_rows(raw, model=model, count=count, aspect_ratio=aspect_ratio,
                           resolution=resolution, images=images,
                           keep_image=history.jobs.keep_image, source=source)
        fingerprint = job_fingerprint(specs)
        name = _check_name(name) if name is not None else f"job-{fingerprint[:12]}"
        with cls._live_lock:
            live = cls._live.get((str(history.path), name))
            existing = history.jobs.get(name)
            if existing is not None and existing["fingerprint"] != fingerprint:
                raise InvalidParameterError(
                    "name", name, None,
                    hint=f"a new name: the job {name!r} in the history at {history.folder} "
                         f"has other rows ({existing['total']}). Reopen it with "
                         f"nb.Job.open({name!r})")
            if live is not None:
                return live
            if existing is None:
                paid = sum(s.count for s in specs)
                waits = max_calls is not None and paid > max_calls
                history.jobs.create(
                    name, fingerprint=fingerprint, paid=paid,
                    state="awaiting confirmation" if waits else "running",
                    spec={"model": model, "count": count, "aspect_ratio": aspect_ratio,
                          "resolution": resolution, "source": source.name or "rows"},
                    rows=[(_dumps(s.request_json()), _dumps(dict(s.meta)),
                           _fingerprint(s)) for s in specs])
            job = cls(name, history=history, client=client, client_factory=client_factory,
                      concurrency=concurrency, max_calls=max_calls)
            cls._live[(str(history.path), name)] = job
        job._begin()
        return job

    @classmethod
    def open(cls, name: str, *, history: History, client: Client | None = None,
             client_factory: Callable[[], Client] | None = None,
             concurrency: Any = "auto") -> BatchJob:
        """Re-attach to a recorded job: a job that was running when its process died goes
        on (rows submitted are looked up, never sent again); a paused, cancelled or
        unconfirmed one waits for :meth:`resume` or :meth:`confirm`. ``KeyError`` for an
        unknown name."""
        with cls._live_lock:
            live = cls._live.get((str(history.path), name))
            if live is not None:
                return live
            job = cls(name, history=history, client=client, client_factory=client_factory,
                      concurrency=concurrency)
            cls._live[(str(history.path), name)] = job
        job._begin()
        return job

    def _begin(self) -> None:
        if self.state == "running":
            self._start()
        else:
            self._notify()

    def _client_now(self) -> Client:
        if self._client is None:
            if self._client_factory is None:
                raise NanoBananaError("This job has no client: pass client=...")
            self._client = self._client_factory()
        return self._client

    def _start(self) -> None:
        # The previous run's ending sets the job's state: let it happen before this run's.
        self.runner.end_previous()
        other = self.history.jobs.claim(self.name, self._owner)
        if other is not None:
            raise NanoBananaError(
                f"The batch job {self.name!r} is being run by another process ({other}); "
                "nothing was sent from here. Stop it there (or let that process end), then "
                f"nb.Job.open({self.name!r}).", code="job_busy")
        self.runner.reconcile()
        self._set_state("running")
        self.runner.start()
        self._notify()

    def _on_end(self) -> None:
        with self._lock:
            if self.runner.cancelled:
                state = "cancelled"
            elif all(r.state in FINAL_STATES for r in self.runner.rows):
                state = "done"
            else:
                state = "paused"
            self._set_state(state)
        self.history.jobs.release(self.name, self._owner)
        if state == "done":
            self.history.download_missing()

    def _set_state(self, state: str) -> None:
        with self._lock:
            self.state = state
        self.history.jobs.set_state(self.name, state)

    # --- observing -----------------------------------------------------------------------

    def add_observer(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` after every change (from background threads; must not block)."""
        self._observers.append(callback)

    def remove_observer(self, callback: Callable[[], object]) -> None:
        """Stop calling ``callback`` (no effect if it was not added)."""
        if callback in self._observers:
            self._observers.remove(callback)

    def _notify(self) -> None:
        if self.runner.paused and self.state == "running":  # it paused itself (see reason)
            self._set_state("paused")
        for callback in list(self._observers):
            try:
                callback()
            except Exception:  # an observer never stops the job
                continue

    # --- the public API ------------------------------------------------------------------

    @property
    def total(self) -> int:
        """How many rows the job has."""
        return len(self.specs)

    @property
    def summary(self) -> JobSummary:
        """Where the job stands (counts, rate, ETA, paid so far, the last errors)."""
        return self.runner.summary(self.state, self.paid)

    def wait(self, timeout: float | None = None) -> JobSummary:
        """Block until the job stops running (every row finished, paused or cancelled) and
        return its :attr:`summary`; ``timeout`` seconds at most (``None``: until it stops;
        every row has its own deadline, the client's ``wait_timeout``). Raises
        :class:`WaitTimeoutError` at the deadline, and :class:`NanoBananaError` for a job
        waiting for confirmation (nothing would end)."""
        if self.state == "awaiting confirmation":
            raise not_confirmed_error("job", "job", self.paid, self.max_calls)
        # After a pause or a cancel the run still ends: submits under way get their answers
        # (and task ids) first, so the summary returned never shows a row half sent.
        if (self.state == "running" or self.runner.running) \
                and not self.runner.stopped.wait(timeout):
            raise WaitTimeoutError(
                f"The job was still running after {timeout:g} s ({self.summary}). Wait again "
                "with job.wait(), or pause or cancel it.")
        return self.summary

    def confirm(self) -> BatchJob:
        """Start a job that waits for confirmation (above ``max_calls``); no effect otherwise."""
        if self.state == "awaiting confirmation":
            self._start()
        return self

    def pause(self) -> None:
        """Send nothing more until :meth:`resume`; tasks sent are still waited for."""
        if self.state == "running":
            self.runner.pause()
            self._set_state("paused")
            self._notify()

    def resume(self) -> None:
        """Go on after :meth:`pause` or :meth:`cancel`, or in a job reopened paused."""
        if self.state == "awaiting confirmation":
            raise NanoBananaError("This job waits for confirmation: call job.confirm().",
                                  code="not_confirmed")
        if self.state == "cancelled":
            self.runner.uncancel()
            never_sent = not any(r.task_id or r.state not in ("queued", "cancelled")
                                 for r in self.runner.rows)
            if never_sent and self.max_calls is not None and self.paid > self.max_calls:
                self._set_state("awaiting confirmation")  # a cancel is no confirmation
                self._notify()
                return
        if self.state in ("paused", "cancelled"):
            self.runner.resume()
            if self.runner.running and not self.runner.cancelled and self.state == "paused":
                self._set_state("running")
                self.runner.start()
                self._notify()
            else:
                self._start()

    def cancel(self) -> None:
        """Send nothing more and stop waiting. Tasks already sent may still run and be
        billed: their ids are in the history, and :meth:`resume` (or ``Job.open``) looks
        them up."""
        if self.state in ("done", "cancelled"):
            return
        was_running = self.runner.running
        self.runner.cancel()
        self._set_state("cancelled")
        if not was_running:
            self.history.jobs.release(self.name, self._owner)
        self._notify()

    def retry_failed(self, *, possibly_billed: bool = False) -> BatchJob:
        """Run the failed rows again: a row whose task outlived its deadline is waited for
        again (not sent again); a row the service refused or whose task failed (neither is
        billed) is sent again. A row that may have been billed without a task id is sent
        again only with ``possibly_billed=True`` (it may be paid twice). Returns the job."""
        again, wait_again = [], []
        for row in self.runner.rows:
            if row.state == "failed" and isinstance(row.error, WaitTimeoutError) and row.task_id:
                wait_again.append(row.spec.position)
            elif row.state == "failed" or (row.state == "uncertain" and possibly_billed):
                again.append(row.spec.position)
        if not again and not wait_again:
            return self
        self.runner.requeue(again, wait_again=wait_again)
        if self.state != "running" or not self.runner.running:
            self._start()
        return self

    @property
    def results(self) -> list[Outcome]:
        """One entry per row, in the rows' order: its ``Result`` (images from the history's
        copies), the error it ended with, or ``None`` while it is not finished."""
        records = self._records()
        out: list[Outcome] = []
        for row in self.runner.rows:
            rec = records.get(row.task_id or "")
            if row.state == "succeeded" and rec is not None:
                out.append(rec.result())
            elif row.state in ("failed", "uncertain"):
                out.append(row.error or NanoBananaError(f"Row {row.number} failed."))
            else:
                out.append(None)
        return out

    def _records(self) -> dict[str, Record]:
        ids = [r.task_id for r in self.runner.rows if r.task_id]
        return self.history.jobs.records_for_tasks(ids)

    def to_pandas(self) -> pandas.DataFrame:
        """One row per job row (index: the row's position, from 0): its request, state,
        task id, error, images (local paths), rating and its metadata columns."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("job.to_pandas() needs pandas: pip install pandas (or "
                              "pip install 'nanobanana-widgets[pandas]').") from exc
        records = self._records()
        table = []
        for row in self.runner.rows:
            rec = records.get(row.task_id or "")
            spec = row.spec
            err = row.error
            table.append({
                "row": row.number, "prompt": spec.prompt, "action": spec.action,
                "model": spec.model, "count": spec.count, "aspect_ratio": spec.aspect_ratio,
                "resolution": spec.resolution, "state": row.state, "task_id": row.task_id,
                "trace_id": row.trace_id,
                "images": [str(r.path) for r in rec.results if r.path] if rec else [],
                "error_type": type(err).__name__ if err else None,
                "error_message": err.message if err else None,
                "rating": rec.rating if rec else 0, **dict(spec.meta)})
        return pd.DataFrame.from_records(table)

    def export(self, path: str | os.PathLike[str], format: str = "imagefolder") -> Path:
        """Write the succeeded rows' images as a dataset; returns what was written.

        ``"imagefolder"``: the images and ``metadata.jsonl`` (``file_name``, row, prompt,
        parameters, task id, rating and the rows' other columns), which
        ``datasets.load_dataset("imagefolder", data_dir=path)`` loads. ``"parquet"``: one
        table with the image bytes and the same columns (a ``.parquet`` path, or
        ``data.parquet`` inside a folder; needs ``pyarrow``). Images not downloaded yet are
        downloaded first.
        """
        if format not in EXPORT_FORMATS:
            raise InvalidParameterError("format", format, EXPORT_FORMATS)
        self.history.flush(timeout=None)
        items = self._export_items()
        if format == "parquet":
            return write_parquet(items, path)
        return write_imagefolder(items, path)

    def _export_items(self) -> list[ExportItem]:
        records = self._records()
        items = []
        for row in self.runner.rows:
            rec = records.get(row.task_id or "")
            if row.state != "succeeded" or rec is None:
                continue
            spec = row.spec
            for img in rec.results:
                meta = {(k if k not in _RESERVED else f"row_{k}"): v
                        for k, v in spec.meta.items()}
                ext = img.path.suffix if img.path is not None else ".png"
                items.append(ExportItem(
                    file_name=f"{row.number:05d}-{img.position}{ext}",
                    data=_bytes_of(self.history, rec, img),
                    columns={"row": row.number, "image_index": img.position,
                             "prompt": spec.prompt, "action": spec.action,
                             "model": spec.model, "count": spec.count,
                             "aspect_ratio": spec.aspect_ratio or (
                                 DEFAULT_ASPECT_RATIO if spec.action == "generate" else None),
                             "resolution": spec.resolution or DEFAULT_RESOLUTION,
                             "task_id": rec.task_id,
                             "trace_id": rec.trace_id, "rating": rec.rating,
                             "favourite": rec.favourite, **meta}))
        return items

    def __repr__(self) -> str:
        return f"<BatchJob {self.summary}>"


def _bytes_of(history: History, rec: Record, img: Any) -> Callable[[], bytes | None]:
    return lambda: history.image_bytes(rec, img)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _fingerprint(spec: RowSpec) -> str:
    return request_fingerprint(spec.bare_request(), spec.input_hashes())

