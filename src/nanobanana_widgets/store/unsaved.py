"""Records that could not be written yet: kept, retried, journaled, and never silently lost.

A full disk, a write lock another process holds past ``busy_timeout`` or an I/O error must
not lose the record of a paid request. Every write of a client event is a
:class:`RecordWrite` (self-contained and idempotent: it names its record by
``record_key``). :class:`PendingWrites` writes it at once; when the database refuses, the
write is kept in memory (in order: later writes queue behind it), appended to a small
journal beside the database when the disk allows, retried by a background thread (at once
when space is freed on the disk, else backing off up to 10 s) and reported (a
``HistoryWarning`` in the cell output, ``History.unsaved``,
``History.problems``). When a retry succeeds the journal is removed.

A journal is a JSON-lines file ``<db name>.unsaved-<pid>-<random>.jsonl`` owned (locked)
by its process while it lives. Opening a history replays the journals nobody owns any more:
the writes of a process that died before the database came back. At interpreter exit what
is still unsaved is journaled one last time, or listed on stderr.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from nanobanana_widgets.service.errors import HistoryError
from nanobanana_widgets.service.text import shorten
from nanobanana_widgets.store.clean import clean_value
from nanobanana_widgets.store.problems import Problems

fcntl: Any
try:  # advisory locks tell a live journal from an orphaned one (POSIX)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["JOURNAL_INFIX", "PendingWrites", "RecordWrite", "UnsavedRecord",
           "orphaned_journals"]

logger = logging.getLogger("nanobanana_widgets.history")

JOURNAL_INFIX = ".unsaved-"
"""Journal files are named ``<db name>.unsaved-<pid>-<random>.jsonl``."""
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
"""Seconds between retries: from the first, doubling up to the last."""
SPACE_CHECK = 0.5
SPACE_RETURNED = 64 * 1024
"""Meanwhile the free space of the disk is checked every half second: when 64 KB or more
were freed, the retry comes at once ("written when space returns")."""


@dataclass
class RecordWrite:
    """One event of a request for its record (see ``HistoryStore.apply_write``): the row
    inserted when the record is new, the input rows, the result rows and fields to set.

    ``request`` and ``then`` live only in memory: the request rebuilds the input rows
    (its images are stored in the folder) and ``then(record_id)`` runs once the write
    is in the database (it schedules the downloads)."""

    key: str
    row: dict[str, Any]
    results: list[dict[str, Any]] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    keep_success: bool = False
    match_task: bool = False
    inputs: list[dict[str, Any]] | None = None
    request: Any = field(default=None, repr=False)
    then: Callable[[int], None] | None = field(default=None, repr=False)
    since: float = field(default_factory=time.time)
    journaled: bool = False

    @property
    def task_id(self) -> str | None:
        value = self.row.get("task_id")
        return value if isinstance(value, str) and value else None

    @property
    def status(self) -> str:
        return str(self.fields.get("status") or self.row.get("status") or "submitted")

    def describe(self) -> str:
        """``task <id> ("<prompt>")`` for messages."""
        prompt = shorten(str(self.row.get("prompt") or ""), 60)
        task = f"task {self.task_id}" if self.task_id else "a request with no task id"
        return f'{task} ("{prompt}")'

    def to_json(self) -> str:
        """One journal line (cleaned text; thumbnails left out)."""
        inputs = [{k: v for k, v in item.items() if k != "thumbnail"}
                  for item in (self.inputs or [])]
        return json.dumps(clean_value({
            "key": self.key, "row": self.row, "results": self.results, "fields": self.fields,
            "keep_success": self.keep_success, "match_task": self.match_task,
            "inputs": inputs, "since": self.since,
        }), ensure_ascii=True, default=str)

    @classmethod
    def from_json(cls, line: str) -> RecordWrite:
        """The write of one journal line (raises ``ValueError`` when it is not one)."""
        data = json.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("key"), str) or not \
                isinstance(data.get("row"), dict):
            raise ValueError("not a journal entry")
        return cls(key=data["key"], row=data["row"], results=data.get("results"),
                   fields=data.get("fields") or {}, keep_success=bool(data.get("keep_success")),
                   match_task=bool(data.get("match_task")), inputs=data.get("inputs") or [],
                   since=float(data.get("since") or time.time()), journaled=True)


@dataclass(frozen=True)
class UnsavedRecord:
    """A record the history holds but could not write to its database yet (see
    ``History.unsaved``): its task id, prompt and status, why it is not saved, since when,
    and the journal file keeping it on disk (``None``: only in memory)."""

    task_id: str | None
    prompt: str
    status: str
    reason: str
    since: float
    journal: Path | None

    def __str__(self) -> str:
        where = f"kept in {self.journal}" if self.journal else "kept in memory only"
        task = self.task_id or "no task id"
        return f"{task}: {shorten(self.prompt, 60)!r} ({self.status}; {where}): {self.reason}"


class _Journal:
    """This process's journal file for one database (made on first use, locked while used)."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(
            f"{db_path.name}{JOURNAL_INFIX}{os.getpid()}-{secrets.token_hex(4)}.jsonl")
        self._lock_file: IO[bytes] | None = None
        self.lock = threading.RLock()

    def _own(self) -> None:
        if self._lock_file is None:
            handle = open(self.path, "ab", buffering=0)  # noqa: SIM115 - held while it lives
            _lock(handle)
            self._lock_file = handle

    def append(self, writes: list[RecordWrite]) -> bool:
        """Add ``writes`` to the journal; ``False`` when the disk refuses."""
        with self.lock:
            return self._append(writes)

    def _append(self, writes: list[RecordWrite]) -> bool:
        start = None
        try:
            self._own()
            assert self._lock_file is not None
            start = os.fstat(self._lock_file.fileno()).st_size
            data = "".join(w.to_json() + "\n" for w in writes).encode("ascii")
            if self._lock_file.write(data) != len(data):  # unbuffered: a short write
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(self._lock_file.fileno())
        except OSError as exc:
            logger.debug("history: journal %s not written: %s", self.path, exc)
            if start is not None and self._lock_file is not None:
                with contextlib.suppress(OSError):  # no half line left behind
                    os.ftruncate(self._lock_file.fileno(), start)
            return False
        for w in writes:
            w.journaled = True
        return True

    def rewrite(self, writes: list[RecordWrite]) -> bool:
        """Make the journal hold exactly ``writes`` (removed when there are none)."""
        with self.lock:
            return self._rewrite(writes)

    def _rewrite(self, writes: list[RecordWrite]) -> bool:
        if not writes:
            self.remove()
            return True
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            handle = open(tmp, "wb", buffering=0)  # noqa: SIM115 - becomes the journal's
        except OSError:
            return False
        try:
            _lock(handle)  # locked before it takes the journal's name: never seen orphaned
            data = "".join(w.to_json() + "\n" for w in writes).encode("ascii")
            if handle.write(data) != len(data):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                handle.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        self._release()
        self._lock_file = handle
        for w in writes:
            w.journaled = True
        return True

    def remove(self) -> None:
        with self.lock:
            self._release()
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _release(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()
            self._lock_file = None

    @property
    def exists(self) -> bool:
        return self._lock_file is not None and self.path.exists()


def _lock(handle: IO[bytes]) -> None:
    """Hold an exclusive advisory lock on an open journal (while its process lives)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def orphaned_journals(db_path: Path) -> list[Path]:
    """The journals beside ``db_path`` that no live process owns, oldest first."""
    def age(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    found = []
    try:
        candidates = sorted(db_path.parent.glob(f"{db_path.name}{JOURNAL_INFIX}*.jsonl"),
                            key=age)
    except OSError:
        return []
    for path in candidates:
        if fcntl is None:
            pid = path.name[len(db_path.name) + len(JOURNAL_INFIX):].split("-", 1)[0]
            if pid != str(os.getpid()):
                found.append(path)
            continue
        try:
            with open(path, "rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        except OSError:
            continue  # locked: its process is alive and still retrying
        found.append(path)
    return found


class PendingWrites:
    """Writes a :class:`RecordWrite` now, or keeps it until the database takes it.

    ``apply(write) -> record id`` does the writing and raises a ``HistoryError`` when the
    database refuses. Writes are applied in the order they came; ``then`` runs after each.
    """

    def __init__(self, db_path: Path, apply: Callable[[RecordWrite], int],
                 problems: Problems) -> None:
        self._db_path = db_path
        self._apply = apply
        self._problems = problems
        self._queue: list[RecordWrite] = []
        self._reasons: dict[str, str] = {}
        self._reported: set[str] = set()
        self._state = threading.Lock()  # guards the queue (quick)
        self._drained = threading.Condition(self._state)
        self._writing = threading.RLock()  # one writer at a time, in order (may wait)
        self._wake = threading.Event()
        self._retrying = False
        self._closed = False
        self._journal = _Journal(db_path)
        _LIVE.add(self)

    # --- writing ----------------------------------------------------------------------

    def write(self, w: RecordWrite) -> int | None:
        """Write ``w`` now; when the database refuses (or earlier writes still wait), keep
        it, journal it, report it and retry later. The record id, or ``None`` when kept."""
        if self._queued(w, "earlier records are still waiting to be saved"):
            return None
        with self._writing:
            if self._queued(w, "earlier records are still waiting to be saved"):
                return None
            try:
                rid = self._apply(w)
            except Exception as exc:
                self._keep(w, _reason(exc))
                return None
        self._done(w, rid)
        return rid

    def _queued(self, w: RecordWrite, reason: str) -> bool:
        """Queue ``w`` behind the writes already kept, if there are any."""
        with self._state:
            if not self._queue:
                return False
        self._keep(w, reason)
        return True

    def _keep(self, w: RecordWrite, reason: str) -> None:
        with self._state:
            self._queue.append(w)
            self._reasons[w.key] = reason
            first = w.key not in self._reported
            self._reported.add(w.key)
            start = not self._retrying and not self._closed
            if start:
                self._retrying = True
        journaled = self._journal.append([w])
        if first:
            where = (f"in memory and in {self._journal.path}" if journaled
                     else "in memory only (the journal could not be written either)")
            self._problems.report(
                "unsaved",
                f"The history {self._db_path} could not save the record of {w.describe()}: "
                f"{reason} It is kept {where} and saved as soon as the history can be "
                "written; History.unsaved lists it. Do not end this session before it is "
                "saved.", task_id=w.task_id)
        if start:
            threading.Thread(target=self._retry_loop, name="nanobanana-history-retry",
                             daemon=True).start()
        else:
            self._wake.set()

    def _done(self, w: RecordWrite, rid: int) -> None:
        if w.then is not None:
            try:
                w.then(rid)
            except Exception:
                logger.exception("history: after saving record %s", rid)

    # --- retrying ---------------------------------------------------------------------

    def retry(self) -> bool:
        """Try to save the kept writes, in order; ``True`` when none is left.

        A refusal of the database ends the round (the next write would meet it too); a
        write failing for another reason stays kept and the others go on."""
        saved: list[tuple[RecordWrite, int]] = []
        with self._writing:
            for w in self._pending_list():
                try:
                    rid = self._apply(w)
                except HistoryError as exc:
                    with self._state:
                        self._reasons[w.key] = exc.message
                    break
                except Exception as exc:
                    with self._state:
                        self._reasons[w.key] = _reason(exc)
                    continue
                self._done(w, rid)  # before it leaves the queue: flush() sees its downloads
                with self._state:
                    self._queue.remove(w)
                    if not any(x.key == w.key for x in self._queue):
                        self._reasons.pop(w.key, None)
                    self._drained.notify_all()
                saved.append((w, rid))
            rest = self._pending_list()
            if saved or not all(x.journaled for x in rest):
                self._journal.rewrite(rest)
        self._note_saved([w for w, _rid in saved])
        return not rest

    def wait_saved(self, timeout: float | None) -> bool:
        """Ask the retry thread to try now and wait up to ``timeout`` seconds for every
        kept write to be saved; ``True`` when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._state:
            if not self._queue:
                return True
        self._wake.set()
        with self._drained:
            while self._queue:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._drained.wait(remaining if remaining is not None else 1.0)
            return True

    def _note_saved(self, saved: list[RecordWrite]) -> None:
        keys = {w.key: w for w in saved}
        with self._state:
            still = {w.key for w in self._queue}
        done = [w for k, w in keys.items() if k not in still]
        if done:
            self._problems.report(
                "saved",
                f"{len(done)} record(s) kept while the history could not be written are now "
                f"saved in {self._db_path}: " + ", ".join(w.describe() for w in done[:5])
                + (" ..." if len(done) > 5 else "") + ".", warn=True)

    def _free_space(self) -> int | None:
        try:
            return shutil.disk_usage(self._db_path.parent).free
        except OSError:
            return None

    def _wait_for_a_chance(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less: until woken, or until space is freed on the
        history's disk (checked every half second)."""
        free = self._free_space()
        deadline = time.monotonic() + delay
        while not self._wake.wait(min(SPACE_CHECK, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return
            now = self._free_space()
            if free is not None and now is not None and now > free + SPACE_RETURNED:
                return
            free = now if free is None or (now is not None and now < free) else free

    def _retry_loop(self) -> None:
        delay = RETRY_FIRST
        while True:
            self._wait_for_a_chance(delay)
            self._wake.clear()
            if self._closed:
                break
            if self.retry():
                with self._state:
                    if not self._queue:
                        self._retrying = False
                        return
            delay = min(delay * 2, RETRY_MAX)
        with self._state:
            self._retrying = False

    # --- what is kept -----------------------------------------------------------------

    def unsaved(self) -> tuple[UnsavedRecord, ...]:
        """One entry per record not saved yet (its latest state), oldest first."""
        with self._state:
            queue = list(self._queue)
            reasons = dict(self._reasons)
        latest: dict[str, RecordWrite] = {}
        first: dict[str, RecordWrite] = {}
        for w in queue:
            first.setdefault(w.key, w)
            latest[w.key] = w
        return tuple(
            UnsavedRecord(task_id=w.task_id, prompt=str(w.row.get("prompt") or ""),
                          status=w.status, reason=reasons.get(key, ""),
                          since=first[key].since,
                          journal=self._journal.path if all(
                              x.journaled for x in queue if x.key == key) and
                          self._journal.exists else None)
            for key, w in latest.items())

    def adopt(self, path: Path) -> tuple[int, int]:
        """Replay an orphaned journal: write what the database takes, keep the rest;
        returns ``(saved, kept)``. A journal that cannot be read is set aside."""
        try:
            lines = path.read_bytes().decode("ascii", "replace").splitlines()
        except OSError as exc:
            self._problems.report(
                "unsaved", f"A journal of records an earlier session could not save, {path}, "
                f"cannot be read ({exc}); it was left as it is.")
            return 0, 0
        writes, bad = [], 0
        for line in lines:
            if line.strip():
                try:
                    writes.append(RecordWrite.from_json(line))
                except (ValueError, TypeError):
                    bad += 1
        if bad:  # what could not be read is kept aside, never deleted
            aside = path.with_name(path.name + f".unreadable-{int(time.time())}")
            with contextlib.suppress(OSError):
                shutil.copyfile(path, aside)
            self._problems.report(
                "unsaved", f"{bad} line(s) of {path}, a journal of records an earlier session "
                f"could not save, cannot be read; a copy was kept as {aside.name}.")
        saved = kept = 0
        for w in writes:
            w.journaled = False
            if self.write(w) is None:
                kept += 1
            else:
                saved += 1
        with self._state:
            all_journaled = all(w.journaled for w in self._queue)
        if all_journaled or self._journal.rewrite(self._pending_list()):
            with contextlib.suppress(OSError):
                path.unlink()
        return saved, kept

    def _pending_list(self) -> list[RecordWrite]:
        with self._state:
            return list(self._queue)

    def close(self) -> None:
        """One last attempt; what is left stays in the journal (or is listed on stderr)."""
        if self._closed:
            return
        self.retry()
        self._closed = True
        self._wake.set()
        self._last_word()
        _LIVE.discard(self)

    def _last_word(self) -> None:
        queue = self._pending_list()
        if not queue:
            self._journal.remove()
            return
        if not all(w.journaled for w in queue):
            self._journal.rewrite(queue)
        if all(w.journaled for w in queue):
            self._journal._release()
            message = (f"{len(queue)} history write(s) could not be saved in "
                       f"{self._db_path}; they are kept in {self._journal.path}, which the "
                       "next History opened on this folder saves.")
        else:
            message = (f"{len(queue)} history write(s) could not be saved in "
                       f"{self._db_path}, nor journaled: " + "; ".join(
                           w.describe() for w in queue[:20]) +
                       ". Note these task ids: History.resume() cannot find them later.")
        self._problems.report("unsaved", message)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HistoryError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


_LIVE: weakref.WeakSet[PendingWrites] = weakref.WeakSet()


def _at_exit() -> None:  # pragma: no cover - runs at interpreter exit
    for pending in list(_LIVE):
        with contextlib.suppress(Exception):
            pending.close()


# threading's exit hooks run before atexit callbacks and the weakref finalizer that closes
# the database, so the last attempt can still write there.
getattr(threading, "_register_atexit", atexit.register)(_at_exit)
