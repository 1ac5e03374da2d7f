"""What a comparison's pick writes to the history, and how it is taken back. No widget here.

**A pick** of one image marks its record favourite with a note line (``Picked in
comparison c-1a2b over #12 (B).``) and records one vote per other recorded image (the
picked one preferred), so comparisons feed ``history.rankings(...)``. **A tie** records a
tie vote between every two recorded images, and marks nothing. Changing one's mind takes
the previous pick back first: its note line and votes go, and the favourite mark if the
pick had set it. Images that are not recorded requests can be picked; nothing is written
for them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from nanobanana_widgets.service.errors import NanoBananaError, describe_error
from nanobanana_widgets.session import default_history
from nanobanana_widgets.store import History, Pick, Record, Vote, VoteItem
from nanobanana_widgets.widgets.compare.sides import Side

__all__ = ["PickLedger", "Recorded"]


@dataclass
class Recorded:
    """What one pick (or tie) wrote, to take it back."""

    pick: Pick | None = None
    votes: list[Vote] = field(default_factory=list)


class PickLedger:
    """The history side of a comparison's picks (``history=None``: the default history,
    where only images named by a task id are looked up)."""

    def __init__(self, comparison_id: str, sides: Sequence[Side],
                 history: History | None) -> None:
        self.comparison_id = comparison_id
        self.sides = tuple(sides)
        self._given = history
        self._written: Recorded | None = None

    @property
    def recordable(self) -> bool:
        """Whether any image is a recorded request (a pick can be written)."""
        return any(s.recordable for s in self.sides)

    def _history(self) -> History | None:
        if self._given is not None:
            return self._given
        return default_history() if self.recordable else None

    def _find(self, history: History, side: Side) -> Record | None:
        if side.task_id is None and side.record_id is None:
            return None
        if self._given is None:  # the default history: only what a task id names
            return history.find(task_id=side.task_id) if side.task_id else None
        return history.find(task_id=side.task_id, record_id=side.record_id)

    @staticmethod
    def _item(record: Record, side: Side) -> VoteItem:
        return VoteItem(key=f"r{record.id}.{side.image}", record_id=record.id,
                        image=side.image, prompt=record.prompt, model=record.model)

    def _undo(self, history: History) -> None:
        written, self._written = self._written, None
        if written is None:
            return
        for vote in written.votes:
            history.withdraw_vote(vote)
        if written.pick is not None:
            history.withdraw_pick(written.pick)

    def pick(self, i: int) -> tuple[str, str]:
        """Write a pick of side ``i``; returns the status text and its CSS class."""
        side = self.sides[i]
        label = side.label
        history = self._history()
        if history is None:
            return (f"{label} picked (not recorded: these images are not requests in a "
                    "history).", "nbw-ok")
        try:
            self._undo(history)
            records = [self._find(history, s) if s.recordable else None for s in self.sides]
            rec = records[i]
            if rec is None:
                return (f"{label} picked (not recorded: this image is not a request in the "
                        f"history at {history.folder}).", "nbw-ok")
            others = [f"#{r.id} ({s.label})" if r is not None else s.label
                      for k, (s, r) in enumerate(zip(self.sides, records, strict=True))
                      if k != i]
            written = Recorded(pick=history.record_pick(self.comparison_id, rec, others))
            self._written = written
            winner = self._item(rec, side)
            for k, (s, r) in enumerate(zip(self.sides, records, strict=True)):
                if k != i and r is not None and self._item(r, s).key != winner.key:
                    written.votes.append(history.record_vote(
                        self.comparison_id, winner, self._item(r, s), "left"))
        except (NanoBananaError, KeyError, OSError, ValueError) as exc:
            return (f"{label} picked, but the history could not record it: "
                    f"{describe_error(exc)}", "nbw-warn")
        return (f"{label} picked: recorded in the history (record #{rec.id} marked favourite, "
                "with a note).", "nbw-ok")

    def tie(self) -> tuple[str, str]:
        """Write a tie between every two recorded images; returns the status and its class."""
        history = self._history()
        if history is None:
            return "Tie (not recorded: these images are not requests in a history).", "nbw-ok"
        try:
            self._undo(history)
            items = []
            for s in self.sides:
                rec = self._find(history, s) if s.recordable else None
                if rec is not None:
                    items.append(self._item(rec, s))
            written = Recorded()
            self._written = written
            for a, b in itertools.combinations(items, 2):
                if a.key != b.key:
                    written.votes.append(history.record_vote(self.comparison_id, a, b, "tie"))
        except (NanoBananaError, KeyError, OSError, ValueError) as exc:
            return f"Tie, but the history could not record it: {describe_error(exc)}", "nbw-warn"
        if not written.votes:
            return ("Tie (not recorded: fewer than two of these images are requests in the "
                    "history).", "nbw-ok")
        n = len(written.votes)
        return f"Tie: recorded in the history ({n} tie vote{'s' if n != 1 else ''}).", "nbw-ok"
