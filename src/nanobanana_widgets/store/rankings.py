"""Rankings from pairwise votes: a small DataFrame-like table of Bradley–Terry scores.

:func:`rank` turns items and their votes into :class:`Rankings`, one row per item, best
first, with the columns ``item, prompt, model, wins, losses, ties, score, low, high``
(``score`` on the Elo scale with its 95 % interval ``low``–``high``; see
:mod:`~nanobanana_widgets.store.stats`). :func:`group_votes` regroups a history's votes by
prompt, model or record, for ``History.rankings(by=...)``: votes between two items of the
same group say nothing about the groups and are left out.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, overload

from nanobanana_widgets.render.rankings import rankings_html, rankings_text
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.store.stats import Strength, bradley_terry
from nanobanana_widgets.store.votes import Vote, VoteItem

if TYPE_CHECKING:
    import pandas

__all__ = ["RANKING_COLUMNS", "RANK_BY", "Entry", "RankBy", "RankingRow", "Rankings",
           "group_votes", "rank"]

RANKING_COLUMNS: tuple[str, ...] = ("item", "prompt", "model", "wins", "losses", "ties",
                                    "score", "low", "high")
RankBy = Literal["prompt", "model", "record"]
RANK_BY: tuple[str, ...] = ("prompt", "model", "record")


@dataclass(frozen=True)
class Entry:
    """Something ranked: its identity ``key`` and how it is shown."""

    key: Hashable
    item: str
    prompt: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class RankingRow:
    """One row of :class:`Rankings` (the columns of :data:`RANKING_COLUMNS`, then ``key``)."""

    item: str
    prompt: str | None
    model: str | None
    wins: int
    losses: int
    ties: int
    score: float
    low: float
    high: float
    key: Hashable = field(default=None, compare=False)

    @property
    def votes(self) -> int:
        """Decisive votes and ties this item took part in."""
        return self.wins + self.losses + self.ties

    def to_dict(self) -> dict[str, Any]:
        """The row's columns as a dict (without ``key``)."""
        data = asdict(self)
        data.pop("key")
        return data


class Rankings:
    """Items ranked by Bradley–Terry score, best first; used like a small DataFrame.

    ``len``, iteration over rows, ``r[0]`` (the best row), ``r["score"]`` (a column as a
    list), ``columns``, ``to_records()``, ``to_pandas()``; shown as a table with an
    interval chart in a notebook. ``votes`` counts the decisive votes and ties used.
    """

    columns: tuple[str, ...] = RANKING_COLUMNS

    def __init__(self, rows: Sequence[RankingRow], *, votes: int = 0, title: str = "") -> None:
        self.rows: tuple[RankingRow, ...] = tuple(rows)
        self.votes = votes
        self.title = title

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[RankingRow]:
        return iter(self.rows)

    @overload
    def __getitem__(self, key: int) -> RankingRow: ...
    @overload
    def __getitem__(self, key: str) -> list[Any]: ...
    def __getitem__(self, key: int | str) -> RankingRow | list[Any]:
        if isinstance(key, str):
            if key not in self.columns:
                raise KeyError(f"no column {key!r}; columns: {', '.join(self.columns)}")
            return [getattr(row, key) for row in self.rows]
        return self.rows[key]

    def row(self, key: Hashable) -> RankingRow:
        """The row of the item with this ``key``."""
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(key)

    def to_records(self) -> list[dict[str, Any]]:
        """Every row as a dict of the columns."""
        return [r.to_dict() for r in self.rows]

    def to_pandas(self) -> pandas.DataFrame:
        """The table as a ``pandas.DataFrame`` (pandas must be installed)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Rankings.to_pandas() needs pandas: pip install pandas. "
                              "to_records() gives plain dicts.") from exc
        return pd.DataFrame.from_records(self.to_records(), columns=list(self.columns))

    def _repr_html_(self) -> str:
        return rankings_html(self.rows, votes=self.votes, title=self.title)

    def __repr__(self) -> str:
        return rankings_text(self.rows, votes=self.votes)


def rank(entries: Sequence[Entry], outcomes: Iterable[tuple[Hashable, Hashable, float]], *,
         title: str = "") -> Rankings:
    """Rank ``entries`` from ``outcomes`` (``(a, b, score)``: 1 ``a`` won, 0 ``b`` won,
    0.5 a tie); outcomes naming other keys are ignored."""
    keys = [e.key for e in entries]
    known = set(keys)
    used = [(a, b, s) for a, b, s in outcomes if a in known and b in known and a != b]
    tally = {k: [0, 0, 0] for k in keys}
    for a, b, s in used:
        if s == 0.5:
            tally[a][2] += 1
            tally[b][2] += 1
        else:
            winner, loser = (a, b) if s == 1.0 else (b, a)
            tally[winner][0] += 1
            tally[loser][1] += 1
    strengths: dict[Hashable, Strength] = bradley_terry(keys, used)
    rows = []
    for e in entries:
        est = strengths[e.key]
        w, lost, t = tally[e.key]
        rows.append(RankingRow(item=e.item, prompt=e.prompt, model=e.model, wins=w,
                               losses=lost, ties=t, score=est.score, low=est.low,
                               high=est.high, key=e.key))
    rows.sort(key=lambda r: (-r.score, -r.wins, r.item))
    return Rankings(rows, votes=len(used), title=title)


def _group(item: VoteItem, by: str) -> str | None:
    if by == "record":
        return None if item.record_id is None else f"#{item.record_id}"
    if by == "prompt":
        return item.prompt or None
    return item.model or None


def group_votes(votes: Iterable[Vote], by: str) -> Rankings:
    """Rankings of the prompts, models or records (``by``) that ``votes`` compared."""
    if by not in RANK_BY:
        raise InvalidParameterError("by", by, RANK_BY)
    entries: dict[str, dict[str, set[str]]] = {}
    outcomes: list[tuple[Hashable, Hashable, float]] = []
    for vote in votes:
        score = vote.score
        if score is None:
            continue
        a, b = _group(vote.left, by), _group(vote.right, by)
        if a is None or b is None or a == b:
            continue
        for key, side in ((a, vote.left), (b, vote.right)):
            seen = entries.setdefault(key, {"prompt": set(), "model": set()})
            if side.prompt:
                seen["prompt"].add(side.prompt)
            if side.model:
                seen["model"].add(side.model)
        outcomes.append((a, b, score))

    def one(values: set[str]) -> str | None:
        return next(iter(values)) if len(values) == 1 else None

    listed = [Entry(key=k, item=k, prompt=one(v["prompt"]), model=one(v["model"]))
              for k, v in sorted(entries.items())]
    return rank(listed, outcomes, title=f"Rankings by {by}")
