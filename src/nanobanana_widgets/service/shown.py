"""How the package's errors show in a notebook: one readable block, not library frames.

IPython asks an exception for ``_render_traceback_()`` before drawing a traceback;
:class:`~nanobanana_widgets.service.errors.NanoBananaError` answers with
:func:`notebook_lines`: the error's class and message, the line of the user's own code that
led to it, and how to see everything (``%tb verbose``). With IPython's exception mode set
to ``Verbose`` (``%tb verbose`` for one error, ``%xmode Verbose`` for all) the full
traceback is shown instead.

The service layer does not import IPython: the running shell is found through
``sys.modules`` (duck typing), and without one the block is made all the same.
"""

from __future__ import annotations

import linecache
import os
import sys
from types import TracebackType
from typing import Any

__all__ = ["FULL_TRACEBACK_HINT", "notebook_lines"]

FULL_TRACEBACK_HINT = "Full traceback: %tb verbose"

_RED = "\x1b[0;31m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shell() -> Any:
    """The running IPython shell, if IPython is loaded and one runs."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    try:
        return get() if callable(get) else None
    except Exception:  # a half-torn-down IPython: no shell
        return None


def _in_package(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


def _is_machinery(filename: str) -> bool:
    """IPython's and ipykernel's own files (a magic is called from there), not user code."""
    parts = set(os.path.abspath(filename).split(os.sep))
    return bool(parts & {"IPython", "ipykernel", "traitlets"})


def _user_line(tb: TracebackType | None, shell: Any) -> str | None:
    """``Cell In[3], line 2: nb.generate("")``: the user's line that called into the
    package (the last frame outside it before it was entered), or ``None``."""
    last: TracebackType | None = None
    while tb is not None:
        if _in_package(tb.tb_frame.f_code.co_filename):
            break
        last = tb
        tb = tb.tb_next
    if last is None or _is_machinery(last.tb_frame.f_code.co_filename):
        return None
    filename = last.tb_frame.f_code.co_filename
    lineno = last.tb_lineno
    where = f"{os.path.basename(filename)}, line {lineno}"
    compiler = getattr(shell, "compile", None)
    format_name = getattr(compiler, "format_code_name", None)
    if callable(format_name):
        try:
            named = format_name(filename)
        except Exception:
            named = None
        if named:
            where = f"{named[0]} {named[1]}, line {lineno}"
    code = linecache.getline(filename, lineno).strip()
    return f"{where}: {code}" if code else where


def notebook_lines(error: BaseException, *, shown_as: BaseException | None = None
                   ) -> list[str]:
    """What IPython shows for ``error``: one short block (or, in ``Verbose`` mode, the full
    traceback). ``shown_as`` names another error in the block's first line (a wrapper
    shows the error it wraps)."""
    shell = _shell()
    formatter = getattr(shell, "InteractiveTB", None)
    if formatter is not None and getattr(formatter, "mode", None) == "Verbose":
        try:
            return list(formatter.structured_traceback(type(error), error,
                                                       error.__traceback__))
        except Exception:  # fall back to the short block
            pass
    headline = shown_as if shown_as is not None else error
    lines = [f"{_RED}{type(headline).__name__}{_RESET}: {headline}"]
    where = _user_line(error.__traceback__, shell)
    if where:
        lines.append(f"  at {where}")
    lines.append(f"{_DIM}({FULL_TRACEBACK_HINT}){_RESET}")
    return lines
