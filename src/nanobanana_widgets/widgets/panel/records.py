"""History records back into a panel: "Load" (a record's request into the controls and
inputs) and "Use as input" (a record's image into the inputs).

Values the controls cannot take are named in the status area instead of being raised; a
stored input without a thumbnail (a URL) is checked in the panel's pool, and a record
loaded meanwhile wins over it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nanobanana_widgets.render.strip import record_summary
from nanobanana_widgets.service.models import (
    ACTIONS,
    ASPECT_RATIOS,
    DEFAULT_RESOLUTION,
    MAX_COUNT,
    MIN_COUNT,
    MODELS,
)
from nanobanana_widgets.store import History, Record
from nanobanana_widgets.widgets.panel.controls import Controls, ControlState
from nanobanana_widgets.widgets.panel.inputs import EditInput, Inputs
from nanobanana_widgets.widgets.panel.runs import Level

__all__ = ["RecordLoader"]

Entry = tuple[str, Any, bytes | None]
"""A stored input: ``(label, source, thumbnail or None)``."""


class RecordLoader:
    """Loads history records into a panel's state, controls and inputs.

    ``notify(text, level)`` reports; ``run_job(fn, *args)`` runs work in the panel's pool;
    ``extra_thumb(record)`` gives the panel's own thumbnail of a record's image.
    """

    def __init__(self, state: ControlState, controls: Controls, inputs: Inputs,
                 history: History | None, *, notify: Callable[[str, Level], object],
                 run_job: Callable[..., object],
                 extra_thumb: Callable[[Record], bytes | None]) -> None:
        self._state = state
        self._controls = controls
        self._inputs = inputs
        self._history = history
        self._notify = notify
        self._run_job = run_job
        self._extra_thumb = extra_thumb

    def record(self, record: Record | int) -> Record:
        """``record`` itself, or the history's record with that id."""
        if isinstance(record, Record):
            return record
        if isinstance(record, int) and not isinstance(record, bool):
            if self._history is None:
                raise ValueError("This panel keeps no history (history=False); pass a Record.")
            return self._history.get(record)
        raise TypeError(f"expected a history Record or a record id, not {type(record).__name__}")

    def load(self, record: Record | int) -> None:
        """Put a record's request into the controls (and an edit's inputs into the inputs)."""
        rec = self.record(record)
        problems = self._set_controls(rec)
        generation = self._inputs.start_load()
        extra = ""
        if rec.action == "edit":
            entries, missing = self._stored_inputs(rec)
            problems.extend(missing)
            n = len(entries)
            extra = f", with its {n} input image{'s' if n != 1 else ''}"
            if all(jpeg is not None for _label, _source, jpeg in entries):
                self._finish_load(generation, entries)
            else:  # some have no stored thumbnail (URLs): make them off the kernel's thread
                self._inputs.clear()
                extra += " (loading…)"
                self._run_job(self._finish_load, generation, entries)
        verb = "Edit" if self._state.action == "edit" else "Generate"
        self._notify(f"Loaded id {rec.id} into the controls ({record_summary(rec)}){extra}. "
                     f"Click {verb} to run it again.", "info")
        for problem in problems:
            self._notify(f"Loading id {rec.id}: {problem}.", "warning")

    def _set_controls(self, rec: Record) -> list[str]:
        """Set every parameter the controls can take; what they cannot, in words."""
        state = self._state
        problems: list[str] = []
        with self._controls.loading():
            if rec.action in ACTIONS:
                state.action = rec.action
            else:
                problems.append(f"action {rec.action!r} is unknown here")
            if rec.model in MODELS:
                state.model = rec.model
            else:
                problems.append(f"model {rec.model!r} is unknown here; kept {state.model}")
            resolution = rec.resolution or DEFAULT_RESOLUTION
            if resolution in MODELS[state.model]:
                state.resolution = resolution
            else:
                problems.append(f"{state.model} cannot make {resolution} images; "
                                f"kept {state.resolution}")
            if MIN_COUNT <= rec.count <= MAX_COUNT:
                state.count = rec.count
            else:
                problems.append(f"count {rec.count} is outside {MIN_COUNT}–{MAX_COUNT}; "
                                f"kept {state.count}")
            if rec.aspect_ratio is None or rec.aspect_ratio in ASPECT_RATIOS:
                state.aspect_ratio = rec.aspect_ratio
            else:
                problems.append(f"aspect ratio {rec.aspect_ratio!r} is unknown here; "
                                f"kept {state.aspect_ratio or 'auto'}")
            state.prompt = rec.prompt
        return problems

    def _stored_inputs(self, rec: Record) -> tuple[list[Entry], list[str]]:
        """``(label, source, thumbnail)`` for each stored input, and what is missing."""
        entries: list[Entry] = []
        missing: list[str] = []
        for k, inp in enumerate(rec.inputs):
            label = f"id {rec.id} input {k + 1}"
            if inp.url is not None:
                entries.append((label, inp.url, inp.thumbnail))
            elif inp.path is not None and inp.path.is_file():
                entries.append((label, inp.path, inp.thumbnail))
            else:
                missing.append(f"{label} is missing from the history folder "
                               f"({self._history.folder if self._history else 'no history'}) "
                               "and was left out")
        return entries, missing

    def _finish_load(self, generation: int, entries: list[Entry]) -> None:
        items: list[EditInput] = []
        for label, source, jpeg in entries:
            if jpeg is not None:
                items.append(EditInput(label=label, source=source, jpeg=jpeg))
            elif (item := self._inputs.make(label, source)) is not None:
                items.append(item)
        self._inputs.finish_load(generation, items)

    def use_as_input(self, record: Record | int, *, add: bool = False) -> None:
        """Continue from the (first) image of a record that succeeded: it replaces the
        inputs (``add``: it goes after them); switch to Edit."""
        rec = self.record(record)
        if rec.status != "succeeded" or not rec.results:
            raise ValueError(f"id {rec.id} has no image to use as an input (it is {rec.status})")
        image = rec.results[0]
        source: Any = image.path if image.local else image.url
        label = f"id {rec.id} result"
        jpeg = image.thumbnail or self._extra_thumb(rec)
        if jpeg is not None:
            self._notify(self._inputs.take(EditInput(label=label, source=source, jpeg=jpeg),
                                           add=add), "info")
        else:
            self._run_job(self._take_later, label, source, add)
        self._state.action = "edit"

    def _take_later(self, label: str, source: Any, add: bool) -> None:
        """Check a stored image without a thumbnail (a URL), then take it (a background job)."""
        item = self._inputs.make(label, source)
        if item is not None:
            self._notify(self._inputs.take(item, add=add), "info")
