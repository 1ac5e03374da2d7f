"""IPython magics: ``%%nanobanana`` (the cell is the prompt) and ``%nanobanana_history``.

Load with ``%load_ext nanobanana_widgets``. A mistake in the options or the prompt, or a
failed request, fails the cell with a one-line message (no traceback), so "Run All" stops
there instead of carrying on without the image. Options are checked before anything is sent.
"""

from __future__ import annotations

import keyword
import shlex
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from nanobanana_widgets import functions
from nanobanana_widgets.service.errors import NanoBananaError
from nanobanana_widgets.service.models import (
    ASPECT_RATIOS,
    MAX_COUNT,
    MIN_COUNT,
    MODELS,
    RESOLUTIONS,
)
from nanobanana_widgets.service.shown import notebook_lines
from nanobanana_widgets.session import default_history

USAGE = (
    "%%nanobanana [--model NAME] [--count N] [--aspect-ratio R] [--resolution R] "
    "[--edit INPUT ...] [--as NAME]\n"
    "<prompt, with {name} filled from your variables>"
)

HISTORY_FLUSH_TIMEOUT = 10.0
"""Seconds ``%nanobanana_history`` waits for pending image downloads before showing."""


class MagicUsageError(NanoBananaError, ValueError):
    """The magic's options or prompt template are wrong; nothing was sent."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message alone."""
        return [f"\x1b[0;31mUsageError\x1b[0m: {self}"]


class MagicRequestError(NanoBananaError):
    """The request of a ``%%nanobanana`` cell failed; the original error is ``__cause__``."""

    def __init__(self, error: NanoBananaError) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.error = error

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the error's class and message (and
        how to see the full traceback)."""
        return notebook_lines(self, shown_as=self.error)


def fill_prompt(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}`` fields from ``namespace``; ``{{`` and ``}}`` stay literal braces."""
    formatter = string.Formatter()
    for _, field, _, _ in formatter.parse(template):
        if field is not None and not field.split(".")[0].split("[")[0].isidentifier():
            raise MagicUsageError(
                f"The prompt has {{{field}}}, which is not a variable name. Put the value in "
                "a variable in a cell above and write {name}, or write {{ and }} for "
                "literal braces."
            )
    missing = [
        field.split(".")[0].split("[")[0]
        for _, field, _, _ in formatter.parse(template)
        if field is not None and field.split(".")[0].split("[")[0] not in namespace
    ]
    if missing:
        raise MagicUsageError(
            f"The prompt uses {{{missing[0]}}} but no variable {missing[0]!r} is defined. "
            "Define it in a cell above, or write {{ and }} for literal braces."
        )
    try:
        return formatter.vformat(template, (), dict(namespace))
    except (ValueError, IndexError, KeyError, AttributeError) as exc:
        raise MagicUsageError(f"The prompt template could not be filled: {exc}.") from None


def parse_options(line: str) -> dict[str, Any]:
    """Parse the magic's option line into keyword arguments."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise MagicUsageError(f"Could not read the options ({exc}). Usage:\n{USAGE}") from None
    options: dict[str, Any] = {"edit": []}
    names = {
        "--model": "model",
        "-m": "model",
        "--count": "count",
        "-n": "count",
        "--aspect-ratio": "aspect_ratio",
        "--aspect_ratio": "aspect_ratio",
        "-a": "aspect_ratio",
        "--resolution": "resolution",
        "-r": "resolution",
        "--as": "target",
    }
    expanded: list[str] = []
    for word in words:  # --model=NAME is --model NAME
        if word.startswith("--") and "=" in word:
            expanded.extend(word.split("=", 1))
        else:
            expanded.append(word)
    words = expanded
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--edit", "-e"):
            i += 1
            before = len(options["edit"])
            while i < len(words) and not words[i].startswith("-"):
                options["edit"].append(words[i])
                i += 1
            if len(options["edit"]) == before:
                raise MagicUsageError("--edit needs at least one input (a path or a variable).")
            continue
        if word not in names:
            raise MagicUsageError(f"Unknown option {word!r}. Usage:\n{USAGE}")
        if i + 1 >= len(words) or words[i + 1].startswith("--"):
            raise MagicUsageError(f"Option {word} needs a value. Usage:\n{USAGE}")
        options[names[word]] = words[i + 1]
        i += 2
    target = options.get("target")
    if target is not None and (not target.isidentifier() or keyword.iskeyword(target)):
        raise MagicUsageError(f"--as needs a variable name, not {target!r}.")
    if "count" in options:
        try:
            options["count"] = int(options["count"])
        except ValueError:
            raise MagicUsageError(
                f"--count must be a whole number from {MIN_COUNT} to {MAX_COUNT}, "
                f"not {options['count']!r}."
            ) from None
        if not MIN_COUNT <= options["count"] <= MAX_COUNT:
            raise MagicUsageError(
                f"--count must be a whole number from {MIN_COUNT} to {MAX_COUNT}, "
                f"not {options['count']}."
            )
    if "model" in options and options["model"] not in MODELS:
        raise MagicUsageError(
            f"Unknown model {options['model']!r}. Models: {', '.join(MODELS)}."
        )
    if "aspect_ratio" in options and options["aspect_ratio"] not in ASPECT_RATIOS:
        raise MagicUsageError(
            f"Unknown aspect ratio {options['aspect_ratio']!r}. "
            f"Choose one of: {', '.join(ASPECT_RATIOS)}."
        )
    if "resolution" in options and options["resolution"] not in RESOLUTIONS:
        raise MagicUsageError(
            f"Unknown resolution {options['resolution']!r}. "
            f"Choose one of: {', '.join(RESOLUTIONS)}."
        )
    return options


def _resolve_input(word: str, namespace: Mapping[str, Any]) -> Any:
    """A variable's value when ``word`` names one, else ``word`` itself (a path or URL)."""
    if word.isidentifier() and word in namespace:
        return namespace[word]
    if word.isidentifier() and not Path(word).exists():
        raise MagicUsageError(
            f"--edit {word}: there is no variable {word!r} and no file {word!r} in "
            f"{Path.cwd()}. Define the variable in a cell above (e.g. with --as {word}), "
            "or give the path of an image file."
        )
    return word


@magics_class
class NanoBananaMagics(Magics):
    """``%%nanobanana`` and ``%nanobanana_history``."""

    @cell_magic
    def nanobanana(self, line: str, cell: str) -> Any:
        """Generate (or, with ``--edit``, edit) from the cell's text as the prompt.

        ``{name}`` in the cell is filled from your variables; ``--edit`` takes paths,
        URLs or variable names (results, PIL images, bytes, lists of them); ``--as NAME``
        also stores the result in the variable ``NAME``. IPython expands ``{expr}`` and
        ``$name`` in the option line as for every magic.
        """
        namespace: Mapping[str, Any] = self.shell.user_ns if self.shell is not None else {}
        options = parse_options(line)
        prompt = fill_prompt(cell.strip(), namespace)
        inputs = [_resolve_input(w, namespace) for w in options.pop("edit")]
        target = options.pop("target", None)
        try:
            if inputs:
                result = functions.edit(prompt, inputs, **options)
            else:
                result = functions.generate(prompt, **options)
        except NanoBananaError as exc:
            raise MagicRequestError(exc) from exc
        if target and self.shell is not None:
            self.shell.user_ns[target] = result
        return result

    @line_magic
    def nanobanana_history(self, line: str) -> Any:
        """Show the last N records of the session history (default 10)."""
        text = line.strip()
        try:
            n = int(text or 10)
        except ValueError:
            n = 0
        if n < 1:
            raise MagicUsageError(
                f"%nanobanana_history takes a number of records (1 or more), not {text!r}."
            )
        history = default_history()
        history.flush(timeout=HISTORY_FLUSH_TIMEOUT)  # so the newest rows have thumbnails
        return history.tail(n)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext nanobanana_widgets``)."""
    ipython.register_magics(NanoBananaMagics)
