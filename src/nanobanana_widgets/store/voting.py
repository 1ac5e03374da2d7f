"""The :class:`~nanobanana_widgets.store.History` façade's vote methods (a mixin, kept apart).

::

    h.record_vote("t-3f2a9c", left, right, "left", blind=True)  # VoteItems or Records
    h.votes("t-3f2a9c")              # that tournament's votes, oldest first
    h.rankings(by="prompt")          # every vote in the history, prompts ranked
    h.rankings(by="model"); h.rankings(by="record")

Comparisons and tournaments write their votes here; ``rankings`` pools every vote of the
history (or of the given tournaments) by prompt, model or record and ranks them with
Bradley–Terry scores and intervals (see :mod:`~nanobanana_widgets.store.rankings`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nanobanana_widgets.store.rankings import Rankings, group_votes
from nanobanana_widgets.store.records import Record
from nanobanana_widgets.store.votes import (
    Vote,
    VoteItem,
    check_outcome,
    delete_vote,
    insert_vote,
    select_votes,
)

if TYPE_CHECKING:
    from nanobanana_widgets.store.schema import HistoryStore

__all__ = ["Voting", "record_item"]


def record_item(record: Record, image: int = 0) -> VoteItem:
    """The vote side of one image of a recorded request (key ``r<record id>.<image>``)."""
    return VoteItem(key=f"r{record.id}.{image}", record_id=record.id, image=image,
                    prompt=record.prompt, model=record.model)


class Voting:
    """Pairwise votes: record, withdraw, list and rank them (mixed into ``History``)."""

    _store: HistoryStore

    def record_vote(self, tournament: str, left: VoteItem | Record, right: VoteItem | Record,
                    outcome: str, *, blind: bool = False, at: float | None = None) -> Vote:
        """Record one vote of ``tournament`` (a comparison's or tournament's id): ``"left"``
        or ``"right"`` (the preferred side), ``"tie"`` or ``"skip"``; ``blind`` says whether
        prompts and models were hidden when it was cast. Returns the vote with its id."""
        if not isinstance(tournament, str) or not tournament:
            raise TypeError("record_vote() needs the tournament's id (a non-empty str)")
        sides = [record_item(x) if isinstance(x, Record) else x for x in (left, right)]
        for side in sides:
            if not isinstance(side, VoteItem):
                raise TypeError("record_vote() takes VoteItems or Records for left and right, "
                                f"not {type(side).__name__}")
        if sides[0].key == sides[1].key:
            raise ValueError("a vote compares two different items; both sides are "
                             f"{sides[0].key!r}")
        return insert_vote(self._store, tournament, sides[0], sides[1], check_outcome(outcome),
                           blind=blind, at=at)

    def withdraw_vote(self, vote: Vote | int) -> bool:
        """Remove a recorded vote (a :class:`Vote` or its id); ``True`` when it existed."""
        return delete_vote(self._store, vote.id if isinstance(vote, Vote) else int(vote))

    def votes(self, tournament: str | Sequence[str] | None = None) -> list[Vote]:
        """The recorded votes (of one tournament or several), oldest first."""
        return select_votes(self._store, tournament)

    def rankings(self, by: str = "record", *,
                 tournament: str | Sequence[str] | None = None) -> Rankings:
        """Rank prompts, models or records (``by``) from every vote in the history (or of
        ``tournament``), skips set aside, votes naming deleted records left out.

        Returns a :class:`~nanobanana_widgets.store.rankings.Rankings` table (columns
        ``item, prompt, model, wins, losses, ties, score, low, high``; ``to_pandas()``).
        Votes between two items of the same group (two images of one prompt, for
        ``by="prompt"``) say nothing about the groups and are not counted.
        """
        return group_votes(select_votes(self._store, tournament, live_records_only=True), by)
