"""Pairwise votes in the history: what a vote is, and the SQL that writes and reads them.

A vote says that, in the comparison or tournament ``tournament``, the ``left`` item was
preferred to the ``right`` one (``"left"``), the reverse (``"right"``), neither
(``"tie"``), or that the pair was passed over (``"skip"``). Each side is a
:class:`VoteItem`: a stable key (the same image gets the same key in every process), the
history record and image position when the image is a recorded request's, and its prompt
and model as they were. The table is created by migration 2 of
:mod:`~nanobanana_widgets.store.schema`; the :class:`~nanobanana_widgets.store.History`
façade writes through these functions (``record_vote``, ``withdraw_vote``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nanobanana_widgets.service.errors import InvalidParameterError

if TYPE_CHECKING:
    from nanobanana_widgets.store.schema import HistoryStore

__all__ = ["VOTE_OUTCOMES", "Vote", "VoteItem", "VoteOutcome", "check_outcome", "delete_vote",
           "insert_vote", "select_votes"]

VoteOutcome = Literal["left", "right", "tie", "skip"]
VOTE_OUTCOMES: tuple[str, ...] = ("left", "right", "tie", "skip")


@dataclass(frozen=True)
class VoteItem:
    """One side of a vote: a stable ``key``, and what is known of the image."""

    key: str
    record_id: int | None = None
    image: int | None = None
    """The image's position among its record's results (``None`` when not a record's)."""
    prompt: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Vote:
    """A recorded vote: which two items, shown on which side, the outcome, blind or not."""

    id: int
    created_at: float
    tournament: str
    left: VoteItem
    right: VoteItem
    outcome: VoteOutcome
    blind: bool

    @property
    def winner(self) -> VoteItem | None:
        """The preferred item (``None`` for a tie or a skip)."""
        if self.outcome == "left":
            return self.left
        if self.outcome == "right":
            return self.right
        return None

    @property
    def score(self) -> float | None:
        """The left item's score: 1 won, 0 lost, 0.5 a tie, ``None`` for a skip."""
        return {"left": 1.0, "right": 0.0, "tie": 0.5}.get(self.outcome)


def check_outcome(outcome: Any) -> VoteOutcome:
    """``outcome`` when it is one of :data:`VOTE_OUTCOMES`."""
    if outcome not in VOTE_OUTCOMES:
        raise InvalidParameterError("vote", outcome, VOTE_OUTCOMES,
                                    hint='"left" or "right" (the preferred side), "tie" or '
                                         '"skip"')
    return outcome  # type: ignore[no-any-return]


_COLUMNS = ("created_at, tournament, left_key, left_record, left_image, left_prompt, "
            "left_model, right_key, right_record, right_image, right_prompt, right_model, "
            "outcome, blind")


def insert_vote(store: HistoryStore, tournament: str, left: VoteItem, right: VoteItem,
                outcome: VoteOutcome, *, blind: bool, at: float | None = None) -> Vote:
    """Write one vote; returns it with its id."""
    created = time.time() if at is None else float(at)
    values = (created, tournament,
              left.key, left.record_id, left.image, left.prompt, left.model,
              right.key, right.record_id, right.image, right.prompt, right.model,
              outcome, int(bool(blind)))
    with store.write() as conn:
        cur = conn.execute(f"INSERT INTO votes ({_COLUMNS}) VALUES "
                           f"({', '.join('?' for _ in values)})", values)
        vote_id = int(cur.lastrowid or 0)
    return Vote(vote_id, created, tournament, left, right, outcome, bool(blind))


def delete_vote(store: HistoryStore, vote_id: int) -> bool:
    """Remove one vote; ``True`` when there was one."""
    with store.write() as conn:
        return conn.execute("DELETE FROM votes WHERE id = ?", (int(vote_id),)).rowcount > 0


def _side(row: Any, side: str) -> VoteItem:
    record = row[f"{side}_record"]
    image = row[f"{side}_image"]
    return VoteItem(key=str(row[f"{side}_key"]),
                    record_id=None if record is None else int(record),
                    image=None if image is None else int(image),
                    prompt=row[f"{side}_prompt"], model=row[f"{side}_model"])


def select_votes(store: HistoryStore, tournament: str | Sequence[str] | None = None, *,
                 live_records_only: bool = False) -> list[Vote]:
    """Every vote (of ``tournament``, or of any of several), oldest first.

    With ``live_records_only``, votes that name a deleted record are left out.
    """
    where: list[str] = []
    params: list[Any] = []
    if isinstance(tournament, str):
        where.append("v.tournament = ?")
        params.append(tournament)
    elif tournament is not None:
        names = list(tournament)
        where.append(f"v.tournament IN ({', '.join('?' for _ in names)})" if names else "0")
        params.extend(names)
    if live_records_only:
        where.append("NOT EXISTS (SELECT 1 FROM requests r WHERE r.deleted = 1 AND "
                     "r.id IN (v.left_record, v.right_record))")
    sql = "SELECT v.* FROM votes v"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = store.query(sql + " ORDER BY v.id", params)
    return [Vote(id=int(r["id"]), created_at=float(r["created_at"]),
                 tournament=str(r["tournament"]), left=_side(r, "left"),
                 right=_side(r, "right"), outcome=r["outcome"], blind=bool(r["blind"]))
            for r in rows]
