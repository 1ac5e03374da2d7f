"""The session history: every request recorded in SQLite, browsable like a small DataFrame.

::

    h = History()                    # .nanobanana/ under the working directory
    h = History("runs/", client=c)   # another folder (or a .sqlite file), recording c's requests
    h[-1].result()                   # the latest request as a Result (images from local copies)
    h.filter(model="nano-banana-pro").search("cat").sort("rating", descending=True)
    h.rate(-1, 5); h.favourite(-1); h.note(-1, "the one"); h.delete(0); h.deleted().undelete(0)
    h.rerun(-1, aspect_ratio="16:9")  # the same request again (inputs read from the folder)
    h.export("picked/")              # images with metadata, manifest.csv and manifest.json
    h.rankings(by="prompt")          # every comparison and tournament vote, ranked

:class:`History` is the façade of the store and its only writer. The concerns live beside it:
``schema`` (SQLite, migrations, the image folder, every SQL statement), ``records`` (what a
record is), ``views`` (read-only queries), ``recorder`` (the client listener and the download
pool), ``replay``, ``export``, and ``render.history_table`` for the HTML. Votes of
comparisons and tournaments: ``voting`` (these methods), ``votes`` (their SQL),
``rankings`` and ``stats``.

**Recording.** A :class:`History` is a client listener (``History.attach(client)`` or
``History(client=...)``). A record is written in ``on_submitted``, with its task id, before
anything waits; a submit that fails before a task id exists is recorded as failed. When a task
finishes, its image URLs are stored and the record is marked ``succeeded`` at once, so the
caller gets the result without waiting for the history; the images are then downloaded into
the content-addressed folder (with prompt, model, parameters and task id embedded) by a
background thread. A process that dies before a download ends loses nothing: the URL is
recorded, and :meth:`History.resume` downloads every result that has no local copy yet (as
well as looking up tasks still running). :meth:`History.flush` waits for the downloads.

**Opening** a history reads nothing but the row count and never touches the network, unless
``History(..., resume=True)`` asks it to look up the tasks that were still running. A
damaged file, one from a newer version or a folder that cannot be written raises a
:class:`~nanobanana_widgets.service.errors.HistoryError` naming the file and what to do, and
changes nothing; :meth:`History.open_safely` (used for the default history) keeps a damaged
file aside and goes on with a fresh history, with a ``HistoryWarning``.

**Nothing paid for is lost.** A record the database refuses (a full disk, a lock held past
``busy_timeout``) is kept in memory and in a journal beside the database, retried, listed
in :attr:`History.unsaved` and reported: a ``HistoryWarning`` in the cell output, and
:attr:`History.problems` / :meth:`History.on_problem` for the widgets. Text is cleaned
before it is stored (no lone surrogate, no token), and kept files are checked against their
hash when read.

**Replay** (off by default): with ``history.replay = True`` (or ``History(replay=True)``), a
request identical to one that succeeded before (same action, prompt, parameters and input
image bytes) returns the recorded result instead of being submitted again, so re-running a
notebook from the top does not pay twice. Each replay increments the record's ``replays``.

**Indexing.** ``h[i]`` counts positions in the view's order (oldest first unless sorted), so
``h[-1]`` is the latest record. Actions (``rate``, ``note``, ...) take the same positions, or a
:class:`Record`, or a task id. Deleted records are hidden unless
``History(include_deleted=True)``; ``h.deleted()`` lists only them.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nanobanana_widgets.service.errors import (
    HistoryError,
    InvalidParameterError,
    NanoBananaError,
)
from nanobanana_widgets.service.types import ImageRequest, Result
from nanobanana_widgets.store import recovery
from nanobanana_widgets.store.jobs import JobBook
from nanobanana_widgets.store.problems import HistoryProblem, ProblemCallback, Problems
from nanobanana_widgets.store.recorder import Recorder
from nanobanana_widgets.store.records import (
    RECORD_STATUSES,
    Pick,
    Record,
    RecordStatus,
    ResultImage,
    error_info,
    request_fingerprint,
)
from nanobanana_widgets.store.replay import ReplayMode
from nanobanana_widgets.store.resume import resume as resume_tasks
from nanobanana_widgets.store.schema import HistoryStore, Selection
from nanobanana_widgets.store.unsaved import UnsavedRecord
from nanobanana_widgets.store.views import HistoryView
from nanobanana_widgets.store.voting import Voting

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client, Task
    from nanobanana_widgets.store.records import RecordTarget

__all__ = ["History"]

_RERUN_KEYS = ("prompt", "action", "images", "model", "count", "aspect_ratio", "resolution",
               "callback_url")


class History(Voting, HistoryView):
    """The persistent record of every request: SQLite + a content-addressed image folder.

    ``path`` is a folder or a ``.sqlite`` file (default: ``.nanobanana/`` under the current
    working directory, read now). ``client`` is attached as a listener (see module docs);
    ``replay=True`` turns replay mode on; ``resume=True`` looks up tasks that were still
    running when a previous process stopped (the only way opening touches the network);
    ``include_deleted=True`` shows deleted records too. Raises a
    :class:`~nanobanana_widgets.service.errors.HistoryError` subclass when the history
    cannot be used (see :meth:`open_safely` to go on anyway).
    """

    default_client_factory: ClassVar[Callable[[], Client] | None] = None
    """Makes the client that ``resume()`` and ``rerun()`` use when none is given or
    attached (the package's default client; set by :mod:`nanobanana_widgets.session`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 client: Client | None = None, replay: bool = False, resume: bool = False,
                 include_deleted: bool = False, busy_timeout: float = 30.0) -> None:
        store = HistoryStore(path, busy_timeout=busy_timeout)
        super().__init__(self, store, Selection(deleted=None if include_deleted else False))
        self._problems = Problems()
        self._recorder = Recorder(store, self._problems)
        self._recorder.adopt_journals()
        self._replay = ReplayMode(store, on=replay)
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()
        self._client_ref: weakref.ref[Any] | None = None
        self._closed = False
        self._tag_lock = threading.Lock()
        if client is not None:
            self.attach(client)
        if resume:
            self.resume(client)

    @classmethod
    def open_safely(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any
                    ) -> History:
        """``History(path, **kwargs)``, or, when that history cannot be used, one that
        works, with a ``HistoryWarning`` saying what happened (also in :attr:`problems`):
        a damaged file is kept aside as ``<name>.damaged-<time>`` and a fresh history
        starts in its place; a history from a newer version is left alone and this one
        records beside it (``history.v<N>.sqlite``); an unwritable folder makes the session
        record into a temporary folder. The user's file is never overwritten."""

        def report(history: History, message: str) -> None:
            history._problems.report("set_aside", message)

        return recovery.open_safely(lambda p: cls(p, **kwargs), report, path)

    # --- location, lifecycle --------------------------------------------------------

    @property
    def path(self) -> Path:
        """The database file."""
        return self._store.db_path

    @property
    def folder(self) -> Path:
        """The folder holding the database and ``images/``."""
        return self._store.folder

    def __repr__(self) -> str:
        replay = ", replay on" if self._replay else ""
        try:
            count = f"{len(self)} records"
        except HistoryError as exc:  # a repr never raises: it says what is wrong
            count = f"unreadable ({exc.detail or type(exc).__name__})"
        unsaved = len(self.unsaved)
        more = f", {unsaved} not saved yet" if unsaved else ""
        return f"<History {self._store.db_path}: {count}{more}{replay}>"

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Wait for background downloads and for the records in :attr:`unsaved` to be
        saved (at most ``timeout`` seconds in all); ``True`` when no download is left and
        nothing is unsaved."""
        return self._recorder.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Detach from clients, wait up to ``timeout`` seconds for the downloads under way
        (those not finished are fetched by a later ``resume()``), save or journal what is
        unsaved, and close the database."""
        if self._closed:
            return
        for c in list(self._clients):
            self.detach(c)
        self._recorder.close(timeout)
        self._closed = True
        self._store.close()

    # --- what needs the user's attention -------------------------------------------

    @property
    def unsaved(self) -> tuple[UnsavedRecord, ...]:
        """Records this history holds but could not write to its database yet (a full
        disk, a lock held too long): kept in memory (and in a journal beside the database
        when the disk allows) and retried in the background. Empty when all is saved."""
        return self._recorder.pending.unsaved()

    def save_unsaved(self) -> bool:
        """Try now to write the records in :attr:`unsaved`; ``True`` when none is left."""
        return self._recorder.pending.retry()

    @property
    def problems(self) -> tuple[HistoryProblem, ...]:
        """What the history reported since it was opened (latest 200, oldest first): records
        not saved (or saved late), images not kept, a damaged history set aside, an
        export that skipped a file, a record ``resume()`` could not handle. Each was also
        shown as a ``HistoryWarning``."""
        return self._problems.items()

    @property
    def problem_count(self) -> int:
        """How many problems were reported since the history was opened (only grows: a
        view can poll it)."""
        return self._problems.count

    def on_problem(self, callback: ProblemCallback) -> ProblemCallback:
        """Call ``callback(problem)`` (a :class:`HistoryProblem`) for each new problem, in
        the thread where it happened; returns ``callback`` (usable as a decorator)."""
        self._problems.add_callback(callback)
        return callback

    def remove_problem_callback(self, callback: ProblemCallback) -> None:
        """Stop calling ``callback`` for new problems."""
        self._problems.remove_callback(callback)

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator[History]:
        """Group many ``add`` calls into one transaction (much faster for bulk imports)."""
        with self._store.write():
            yield self

    # --- clients --------------------------------------------------------------------

    def attach(self, client: Client) -> History:
        """Record every request ``client`` makes (registers this history as a listener)."""
        if client not in self._clients:
            client.add_listener(self)
            self._clients.add(client)
        self._client_ref = weakref.ref(client)
        return self

    def detach(self, client: Client) -> None:
        """Stop recording ``client``'s requests."""
        if client in self._clients:
            client.remove_listener(self)
            self._clients.discard(client)

    def _client_for(self, client: Client | None) -> Client:
        if client is not None:
            return client
        if self._client_ref is not None:
            attached = self._client_ref()
            if attached is not None:
                return attached  # type: ignore[no-any-return]
        factory = History.default_client_factory
        if factory is None:
            raise NanoBananaError(
                "This history has no client to look tasks up with: pass client=..., or "
                "History.attach(client) first.")
        return factory()

    def on_submitted(self, task: Task) -> None:
        """Listener: write the record as soon as the task id is known."""
        self._recorder.on_submitted(task)

    def on_finished(self, task: Task, result: Result) -> None:
        """Listener: store the result's URLs, mark it, then download the images."""
        self._recorder.on_finished(task, result)

    def on_failed(self, request: ImageRequest, error: NanoBananaError,
                  task: Task | None) -> None:
        """Listener: record the error (a deadline or a cancel leaves the task resumable)."""
        self._recorder.on_failed(request, error, task)

    @property
    def replay(self) -> ReplayMode:
        """Replay mode (off by default): ``history.replay = True`` to switch it on."""
        return self._replay

    @replay.setter
    def replay(self, on: bool | ReplayMode) -> None:
        self._replay.on = bool(on)

    # --- writing --------------------------------------------------------------------

    def _write(self, target: RecordTarget, **fields: Any) -> Record:
        rid = self._target(target)
        self._store.update(rid, **fields)
        return self.get(rid)

    def rate(self, i: RecordTarget, stars: int) -> Record:
        """Rate a record from 0 (unrated) to 5 stars."""
        if isinstance(stars, bool) or not isinstance(stars, int) or not 0 <= stars <= 5:
            raise InvalidParameterError("stars", stars, range(6))
        return self._write(i, rating=stars)

    def favourite(self, i: RecordTarget, on: bool = True) -> Record:
        """Mark (or with ``on=False`` unmark) a record as favourite."""
        return self._write(i, favourite=int(bool(on)))

    def note(self, i: RecordTarget, text: str) -> Record:
        """Set a record's notes (searchable with ``search``)."""
        return self._write(i, notes=str(text))

    def delete(self, i: RecordTarget) -> Record:
        """Hide a record from views (recoverable with ``undelete``; nothing is erased)."""
        return self._write(i, deleted=1)

    def undelete(self, i: RecordTarget) -> Record:
        """Bring a deleted record back (e.g. ``h.deleted().undelete(0)``)."""
        return self._write(i, deleted=0)

    def tag(self, i: RecordTarget, *, grid_id: str | None, cell: str | None = None) -> Record:
        """Label a record as one cell of a grid run."""
        return self._write(i, grid_id=grid_id, grid_cell=cell)

    def find(self, *, task_id: str | None = None, record_id: int | None = None
             ) -> Record | None:
        """The record of ``task_id`` (deleted or not), else the one with ``record_id`` when
        its task id agrees; ``None`` when neither is recorded."""
        if task_id:
            rid = self._store.id_for_task(task_id)
            if rid is not None:
                return self.get(rid)
        if record_id is not None:
            try:
                rec = self.get(record_id)
            except KeyError:
                return None
            if task_id is None or rec.task_id == task_id:
                return rec
        return None

    def tag_cell(self, grid_id: str, cell: str, *, task_id: str | None = None,
                 request: ImageRequest | None = None) -> Record | None:
        """Label the record of one grid cell's request: by its ``task_id``, or (a submit that
        failed before a task id existed) the latest untagged record of the same ``request``.
        A replayed record that already belongs to another cell keeps its place. Returns the
        tagged record, ``None`` when there is none to tag."""
        with self._tag_lock:
            if task_id:
                rec = self.find(task_id=task_id)
                if rec is None:
                    return None
                if rec.grid_id and (rec.grid_id, rec.grid_cell) != (grid_id, cell):
                    return rec  # a replayed record of another grid cell keeps its place
                if (rec.grid_id, rec.grid_cell) == (grid_id, cell):
                    return rec
                return self.tag(rec, grid_id=grid_id, cell=cell)
            if request is None:
                return None
            view = self.filter(fingerprint=request_fingerprint(request), task_id=None,
                               grid_id=None)
            if not len(view):
                return None
            return self.tag(view[-1], grid_id=grid_id, cell=cell)

    def record_pick(self, chooser: str, picked: Record, others: Sequence[str]) -> Pick:
        """Record that ``picked`` won a comparison ``chooser`` (its id) over ``others`` (how
        they are named): a line in its notes and the favourite mark. Returns what
        :meth:`withdraw_pick` needs to take it back."""
        line = f"Picked in comparison {chooser} over {', '.join(others)}."
        rec = self.get(picked.id)
        self.note(rec, rec.notes + ("\n" if rec.notes else "") + line)
        if not rec.favourite:
            self.favourite(rec, True)
        return Pick(record_id=rec.id, line=line, was_favourite=rec.favourite)

    def withdraw_pick(self, pick: Pick) -> None:
        """Take back a pick: its note line goes, and the favourite mark if it made it."""
        try:
            rec = self.get(pick.record_id)
        except KeyError:
            return
        lines = rec.notes.split("\n")
        if pick.line in lines:
            lines.remove(pick.line)
            self.note(rec, "\n".join(lines))
        if not pick.was_favourite:
            self.favourite(rec, False)

    def add(self, request: ImageRequest, result: Result | None = None, *,
            error: BaseException | None = None, task_id: str | None = None,
            trace_id: str | None = None, status: RecordStatus | None = None,
            created_at: float | None = None, grid_id: str | None = None,
            grid_cell: str | None = None, download: bool = False) -> Record:
        """Record a request made elsewhere (or an import); returns the new record.

        Result images whose bytes are at hand (already fetched, or ``data:`` URLs) are
        stored in the folder; others are downloaded only with ``download=True``.
        """
        if status is not None and status not in RECORD_STATUSES:
            raise InvalidParameterError("status", status, RECORD_STATUSES)
        fields: dict[str, Any] = {"status": status or "submitted"}
        if error is not None:
            info = error_info(error)
            fields.update(status=status or "failed", error_class=info.type,
                          error_code=info.code, error_message=info.message,
                          error_trace_id=info.trace_id)
            trace_id = trace_id or info.trace_id
        if result is not None:
            task_id = task_id or result.task_id or None
            trace_id = trace_id or result.trace_id
        rid = self._recorder.insert(
            request, task_id=task_id, trace_id=trace_id, created_at=created_at,
            grid_id=grid_id, grid_cell=grid_cell,
            submitted_at=result.timings.submitted_at if result else None, **fields)
        if result is not None:
            self._recorder.store_result(rid, result, background=False, fetch=download,
                                        status=status)
        return self.get(rid)

    # --- requests again -------------------------------------------------------------

    def rerun(self, i: RecordTarget, *, client: Client | None = None,
              **changes: Any) -> Task:
        """Submit a record's request again, with ``changes`` applied; returns the ``Task``.

        Input images are read from the history folder. ``changes`` may set ``prompt``,
        ``action``, ``images``, ``model``, ``count``, ``aspect_ratio``, ``resolution`` and
        ``callback_url``. The client (default: the attached one, else the package default)
        is attached to the history first, so the new request is recorded too.
        """
        unknown = set(changes) - set(_RERUN_KEYS)
        if unknown:
            raise TypeError(f"rerun() got unknown changes {sorted(unknown)}; "
                            f"allowed: {', '.join(_RERUN_KEYS)}")
        record = self.get(self._target(i))
        args: dict[str, Any] = {
            "prompt": record.prompt, "action": record.action, "model": record.model,
            "count": record.count, "aspect_ratio": record.aspect_ratio,
            "resolution": record.resolution,
        }
        callback = record.parameters.get("callback_url")
        if callback:
            args["callback_url"] = callback
        if "images" not in changes and record.inputs:
            args["images"] = [inp.source() for inp in record.inputs]
        args.update(changes)
        prompt = args.pop("prompt")
        chosen = self._client_for(client)
        self.attach(chosen)
        return chosen.submit(prompt, **args)

    def resume(self, client: Client | None = None, *, wait: bool = False,
               timeout: float | None = None) -> HistoryView:
        """Look up every task still ``submitted``/``pending`` (and cancelled ones without
        results, and failed ones without an error code, which may still be running) with
        ``client.tasks`` in batches, store finished results and errors, and download any
        result image not yet in the folder. With ``wait=True``, poll until all are done or
        ``timeout`` (default: the client's ``wait_timeout``) passes; tasks still running
        then stay ``pending``. Ends by its deadline whatever the server does. A record that
        cannot be stored is reported (``problems``, a ``HistoryWarning``) and the others go
        on. Returns a view of the records looked up.
        """
        looked_up = resume_tasks(self._store, self._recorder, self._problems,
                                 self._client_for(client), wait=wait, timeout=timeout)
        return self._derive(Selection(ids=tuple(looked_up), deleted=None))

    # --- batch jobs -----------------------------------------------------------------

    @property
    def jobs(self) -> JobBook:
        """The batch jobs recorded here (``nb.batch``): each job, its rows and their states."""
        return JobBook(self._store)

    def image_bytes(self, record: Record, image: ResultImage) -> bytes | None:
        """The bytes of one result image of ``record``: its local copy, else downloaded now
        (and kept); ``None`` when it cannot be had."""
        return self._recorder.local_bytes(record, image)

    def download_missing(self) -> None:
        """Download, in the background, every result image of a succeeded record that has
        no local copy yet (:meth:`flush` waits for them); nothing is looked up."""
        self._recorder.download_missing()
