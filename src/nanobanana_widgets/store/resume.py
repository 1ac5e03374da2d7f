"""``History.resume()``: look up the tasks that may still bring a result, within a deadline.

Every record that may still bring a result (see ``HistoryStore.open_tasks``: submitted,
pending, cancelled without results, or failed without an error code) is looked up with
``client.tasks`` in batches of 50. Each lookup runs on a short-lived daemon thread and is
waited for only until resume's own deadline, so ``resume(timeout=2)`` ends in about two
seconds whatever the server does (the abandoned lookup ends by the client's own deadlines).
Each record is handled on its own: one that cannot be stored is reported
(``History.problems`` and a ``HistoryWarning``) and the others go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from nanobanana_widgets.service.errors import NanoBananaError
from nanobanana_widgets.service.protocol import BATCH_SIZE
from nanobanana_widgets.service.types import ImageRequest, TaskRecord
from nanobanana_widgets.store.problems import Problems
from nanobanana_widgets.store.records import load_records

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client
    from nanobanana_widgets.store.recorder import Recorder
    from nanobanana_widgets.store.schema import HistoryStore

__all__ = ["resume"]

_T = TypeVar("_T")


class _Late(Exception):
    """The deadline passed before the call returned."""


def _within(deadline: float, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` on a daemon thread, waited for until ``deadline`` (monotonic);
    raises :class:`_Late` when it has not returned by then."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="nanobanana-history-lookup", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise _Late
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def resume(store: HistoryStore, recorder: Recorder, problems: Problems, client: Client, *,
           wait: bool = False, timeout: float | None = None) -> list[int]:
    """Look up every open task and store what it brought (see the module docs); with
    ``wait=True``, poll until all are done or the deadline (``timeout``, default the
    client's ``wait_timeout``) passes. Returns the ids of the records looked up.

    Raises the first lookup error only when no lookup succeeded at all (a missing token,
    an unreachable service); a lookup that is still running at the deadline ends
    ``resume`` with a warning instead."""
    limit = timeout if timeout is not None else float(getattr(client, "wait_timeout", 600.0))
    deadline = time.monotonic() + max(0.0, limit)
    interval = float(getattr(client, "poll_interval", 1.0))
    # A record kept unsaved (the disk was full) is looked up too, once it can be saved.
    recorder.pending.wait_saved(min(1.0, max(0.0, deadline - time.monotonic()) / 2))
    by_task = store.open_tasks()
    open_ids = list(by_task)
    looked_up = 0
    errors: list[NanoBananaError] = []
    late = False
    while open_ids and not late:
        still: list[str] = []
        for k in range(0, len(open_ids), BATCH_SIZE):
            chunk = open_ids[k:k + BATCH_SIZE]
            try:
                found = {rec.id: rec for rec in _within(deadline, client.tasks, chunk)}
            except _Late:
                still.extend(open_ids[k:])
                late = True
                break
            except Exception as exc:  # a broken answer must not stop the other batches
                errors.append(exc if isinstance(exc, NanoBananaError) else NanoBananaError(
                    f"The task lookup failed ({type(exc).__name__}: {exc})."))
                still.extend(chunk)
                continue
            looked_up += 1
            for task_id in chunk:
                if not _apply_all(store, recorder, problems, by_task[task_id],
                                  found.get(task_id)):
                    still.append(task_id)
        open_ids = still
        if not wait or not open_ids or time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
    if errors and not looked_up:
        raise errors[0]
    if errors:
        problems.report("resume", f"History.resume(): {len(errors)} lookup(s) failed "
                        f"({errors[0]}); their records stay as they were. Call resume() "
                        "again later.")
    if late:
        problems.report("resume", f"History.resume(): the service did not answer within "
                        f"{limit:g} s; {len(open_ids)} record(s) stay as they were. Call "
                        "resume() again later.")
    recorder.download_missing()
    if wait:
        recorder.flush(timeout=max(0.0, deadline - time.monotonic()))
    return [rid for rids in by_task.values() for rid in rids]


def _apply_all(store: HistoryStore, recorder: Recorder, problems: Problems,
               rids: Sequence[int], record: TaskRecord | None) -> bool:
    """Store a looked-up task in each of its records; ``True`` when it is finished (or
    could not be stored: reported, and not looked up again in this call)."""
    if record is None:
        return False
    finished = True
    for rid in rids:
        try:
            finished = _apply(store, recorder, rid, record) and finished
        except Exception as exc:
            problems.report(
                "resume", f"History.resume() could not store task {record.id} in record "
                f"{rid}: {exc} The other records went on; call resume() again later.",
                task_id=record.id)
    return finished


def _apply(store: HistoryStore, recorder: Recorder, rid: int, record: TaskRecord) -> bool:
    """Store a looked-up task in record ``rid``; ``True`` when it is finished."""
    if record.status == "pending":
        store.mark_running(rid)
        return False
    found = load_records(store, [rid])
    if not found:
        return True
    rec = found[0]
    request = ImageRequest(action=rec.action, prompt=rec.prompt, model=rec.model,
                           count=rec.count, aspect_ratio=rec.aspect_ratio,
                           resolution=rec.resolution)
    result = record.to_result(request, submitted_at=rec.timings.submitted_at)
    recorder.store_result(rid, result, fetch=False, cap=rec.count)
    return True
