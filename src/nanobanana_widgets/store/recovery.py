"""Going on when a history cannot be opened, without touching the user's file.

``History(path)`` on a damaged file raises a typed error and changes nothing.
:func:`open_safely` (``History.open_safely``, which the session's default history uses, so
that ``nb.connect()`` and the module functions always start) goes on instead:

- **damaged** (not a database, truncated, corrupt): the file (and its ``-wal``/``-shm``)
  is renamed aside to ``<name>.damaged-<YYYYmmdd-HHMMSS>`` and a fresh history starts at
  the same place;
- **from a newer version**: the file is left alone and this version records into
  ``history.v<N>.sqlite`` beside it;
- **not accessible** (a read-only folder, permissions, a lock held too long, a full disk):
  the session records into a temporary folder.

Each case is reported as a ``HistoryWarning`` in the cell output and in
``History.problems``, naming the files and what to do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from nanobanana_widgets.service.errors import (
    HistoryDamagedError,
    HistoryError,
    HistoryVersionError,
)
from nanobanana_widgets.store.schema import SCHEMA_VERSION, resolve_location

__all__ = ["open_safely", "set_aside"]

_H = TypeVar("_H")
_SIDE_FILES = ("-wal", "-shm")


def set_aside(db_path: Path) -> Path:
    """Rename a damaged database (and its ``-wal``/``-shm`` files) to
    ``<name>.damaged-<time>`` beside it, never over an existing file; returns the new path
    of the database. Falls back to a copy (the original then stays too) when renaming is
    refused; raises ``OSError`` when neither works."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        suffix = f".damaged-{stamp}" + (f"-{n}" if n else "")
        target = db_path.with_name(db_path.name + suffix)
        if not any(os.path.lexists(target.with_name(target.name + s)) for s in ("", *_SIDE_FILES)):
            break
    else:  # pragma: no cover - a hundred damaged copies in one second
        raise FileExistsError(f"no free name to keep {db_path} aside")
    try:
        _link_or_copy(db_path, target)
    except OSError:
        shutil.copy2(db_path, target)
        return target
    for side in _SIDE_FILES:
        source = db_path.with_name(db_path.name + side)
        if source.exists():
            with contextlib.suppress(OSError):
                os.replace(source, target.with_name(target.name + side))
    with contextlib.suppress(OSError):
        db_path.unlink()
    return target


def _link_or_copy(source: Path, target: Path) -> None:
    """Put ``source`` at ``target`` without ever replacing an existing ``target``."""
    try:
        os.link(source, target)  # fails when target exists: never overwrites
    except OSError:
        with open(source, "rb") as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst)


def open_safely(opener: Callable[[Path | None], _H],
                report: Callable[[_H, str], None],
                path: str | os.PathLike[str] | None = None) -> _H:
    """``opener(path)``, or, when the history there cannot be used, a history that works
    (see the module docs); ``report(history, message)`` tells the user what happened.
    Raises the original error only when nothing works."""
    try:
        return opener(None if path is None else Path(path))
    except HistoryDamagedError as exc:
        db_path = Path(exc.path) if exc.path else resolve_location(path)[0]
        try:
            backup = set_aside(db_path)
            history = opener(db_path)
        except (OSError, HistoryError):
            return _temporary(opener, report, exc)
        report(history, (
            f"The history {db_path} is damaged ({exc.detail}). It was kept as {backup.name} "
            f"beside it, and a fresh history was started at {db_path}. Nothing recorded "
            "there before is lost: the damaged file is as it was (a SQLite tool such as "
            "`sqlite3 file .recover` may get records back)."))
        return history
    except HistoryVersionError as exc:
        db_path = Path(exc.path) if exc.path else resolve_location(path)[0]
        sibling = db_path.with_name(f"{db_path.stem}.v{SCHEMA_VERSION}{db_path.suffix}")
        try:
            history = opener(sibling)
        except HistoryError:
            return _temporary(opener, report, exc)
        report(history, (
            f"The history {db_path} was written by a newer nanobanana-widgets "
            f"({exc.detail}); it was left as it is. This session records into {sibling}. "
            "Upgrade (pip install -U nanobanana-widgets) to use the newer history."))
        return history
    except HistoryError as exc:
        return _temporary(opener, report, exc)


def _temporary(opener: Callable[[Path | None], _H], report: Callable[[_H, str], None],
               exc: HistoryError) -> _H:
    folder = Path(tempfile.mkdtemp(prefix="nanobanana-history-"))
    try:
        history = opener(folder)
    except HistoryError:
        raise exc from None
    report(history, (
        f"{exc.message} This session records into a temporary folder, {folder}: copy it "
        "somewhere safe before the machine cleans it up, or pass a writable folder to "
        "History(path) / nb.session.set_default_history(History(path))."))
    return history
