"""IPython magics: ``%%nanobanana`` (the cell is the prompt) and ``%nanobanana_history``.

Load with ``%load_ext nanobanana_widgets``.
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Mapping
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .errors import NanoBananaError
from .models import ASPECT_RATIOS, MODELS, RESOLUTIONS

USAGE = (
    "%%nanobanana [--model NAME] [--count N] [--aspect-ratio R] [--resolution R] "
    "[--edit INPUT ...] [--as NAME]\n"
    "<prompt, with {name} filled from your variables>"
)


class MagicUsageError(NanoBananaError, ValueError):
    """The magic's options or prompt template are wrong."""


def fill_prompt(template: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}`` fields from ``namespace``; ``{{`` and ``}}`` stay literal braces."""
    formatter = string.Formatter()
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
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("--edit", "-e"):
            i += 1
            while i < len(words) and not words[i].startswith("-"):
                options["edit"].append(words[i])
                i += 1
            if not options["edit"]:
                raise MagicUsageError("--edit needs at least one input (a path or a variable).")
            continue
        if word not in names:
            raise MagicUsageError(f"Unknown option {word!r}. Usage:\n{USAGE}")
        if i + 1 >= len(words):
            raise MagicUsageError(f"Option {word} needs a value. Usage:\n{USAGE}")
        options[names[word]] = words[i + 1]
        i += 2
    if "count" in options:
        try:
            options["count"] = int(options["count"])
        except ValueError:
            raise MagicUsageError(
                f"--count must be a whole number from 1 to 4, not {options['count']!r}."
            ) from None
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
    return namespace[word] if word.isidentifier() and word in namespace else word


@magics_class
class NanoBananaMagics(Magics):
    """``%%nanobanana`` and ``%nanobanana_history``."""

    @cell_magic
    def nanobanana(self, line: str, cell: str) -> Any:
        """Generate (or, with ``--edit``, edit) from the cell's text as the prompt."""
        from . import helpers

        namespace: Mapping[str, Any] = self.shell.user_ns if self.shell is not None else {}
        try:
            options = parse_options(line)
            prompt = fill_prompt(cell.strip(), namespace)
            inputs = [_resolve_input(w, namespace) for w in options.pop("edit")]
            target = options.pop("target", None)
            if inputs:
                result = helpers.edit(prompt, inputs, **options)
            else:
                result = helpers.generate(prompt, **options)
        except NanoBananaError as exc:
            return _ErrorMessage(str(exc))
        if target:
            if not target.isidentifier():
                return _ErrorMessage(f"--as needs a variable name, not {target!r}.")
            if self.shell is not None:
                self.shell.user_ns[target] = result
        return result

    @line_magic
    def nanobanana_history(self, line: str) -> Any:
        """Show the last N records of the session history (default 10)."""
        from .history import default_history

        try:
            n = int(line.strip() or 10)
        except ValueError:
            return _ErrorMessage(f"%nanobanana_history takes a number, not {line.strip()!r}.")
        return default_history().tail(n)


class _ErrorMessage:
    """A readable error shown as the cell's output instead of a traceback."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        import html

        return (
            '<div class="nanobanana-error" style="color: var(--jp-error-color1, #c62828);'
            ' white-space: pre-wrap">' + html.escape(self.text) + "</div>"
        )


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics (``%load_ext nanobanana_widgets``)."""
    ipython.register_magics(NanoBananaMagics)
