"""What went wrong with a history file, as the package's typed errors.

SQLite and the file system fail with ``sqlite3.DatabaseError`` and ``OSError`` whose text
says little to a notebook user. :func:`history_error` turns either into a
:class:`~nanobanana_widgets.service.errors.HistoryError` subclass that names the file and
what to do: damaged (not a database, truncated, corrupt), from a newer version, not
accessible (permissions, a read-only folder), locked by another process, or not writable
(a full disk, an I/O error). :func:`translated` does it for a block of code.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from nanobanana_widgets.service.errors import (
    HistoryAccessError,
    HistoryBusyError,
    HistoryDamagedError,
    HistoryError,
    HistoryWriteError,
)

__all__ = ["history_error", "kind_of", "translated"]

# SQLite's primary result codes (https://sqlite.org/rescode.html) and the words of their
# messages, for Pythons before 3.11 whose exceptions carry no code.
_KINDS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (26, "damaged", ("not a database",)),
    (11, "damaged", ("malformed", "corrupt")),
    (5, "busy", ("locked", "busy")),
    (6, "busy", ("table is locked",)),
    (13, "full", ("disk is full", "database or disk is full")),
    (8, "access", ("readonly", "read-only")),
    (14, "access", ("unable to open",)),
    (3, "access", ("access permission denied",)),
    (10, "io", ("disk i/o error",)),
)
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_ACCESS_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.ENOENT,
                  errno.EISDIR, errno.EEXIST}


def kind_of(exc: BaseException) -> str:
    """``"damaged"``, ``"busy"``, ``"full"``, ``"access"``, ``"io"`` or ``"other"``."""
    if isinstance(exc, HistoryError):
        return {HistoryDamagedError: "damaged", HistoryBusyError: "busy",
                HistoryAccessError: "access"}.get(type(exc), "other")
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        text = str(exc).lower()
        for primary, kind, _words in _KINDS:
            if isinstance(code, int) and code & 0xFF == primary:
                return kind
        for _primary, kind, words in _KINDS:
            if any(w in text for w in words):
                return kind
        return "other"
    if isinstance(exc, OSError):
        if exc.errno in _FULL_ERRNOS:
            return "full"
        if exc.errno in _ACCESS_ERRNOS or isinstance(exc, PermissionError):
            return "access"
        return "io"
    return "other"


def history_error(exc: BaseException, path: Path, doing: str) -> HistoryError:
    """The typed error for ``exc``, raised while ``doing`` something with the history at
    ``path`` (e.g. ``"open"``, ``"write to"``); its ``__cause__`` is ``exc``."""
    if isinstance(exc, HistoryError):
        return exc
    detail = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()
    kind = kind_of(exc)
    err: HistoryError
    if kind == "damaged":
        err = HistoryDamagedError(
            f"The history file {path} is damaged ({detail}). It was left as it is. Move it "
            "aside and start again, or call History.open_safely(path), which keeps it as a "
            "timestamped '.damaged' copy and starts a fresh history; or pass History(path) "
            "with another location.", path=str(path), detail=detail)
    elif kind == "busy":
        err = HistoryBusyError(
            f"Could not {doing} the history {path}: another process held its lock for too "
            f"long ({detail}). Close the other notebooks or processes using this history, or "
            "open it with a longer History(..., busy_timeout=...).", path=str(path),
            detail=detail)
    elif kind == "access":
        err = HistoryAccessError(
            f"Could not {doing} the history {path} ({detail}). Check that its folder exists "
            "and is writable, or pass History(path) with a writable folder.",
            path=str(path), detail=detail)
    elif kind == "full":
        err = HistoryWriteError(
            f"Could not {doing} the history {path}: the disk is full ({detail}). Free some "
            "space; records not saved yet are kept and saved when space returns.",
            path=str(path), detail=detail)
    else:
        err = HistoryWriteError(
            f"Could not {doing} the history {path} ({detail}). Check the disk and the "
            "folder; records not saved yet are kept and saved when the history works again.",
            path=str(path), detail=detail)
    err.__cause__ = exc
    return err


@contextlib.contextmanager
def translated(path: Path, doing: str) -> Iterator[None]:
    """Raise :func:`history_error` for a ``sqlite3.Error`` or ``OSError`` in the block."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise history_error(exc, path, doing) from exc
