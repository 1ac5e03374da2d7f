"""Blind tournaments: rank many images by pairwise votes, with the keyboard or from Python.

::

    t = tournament(g)                   # a grid, results, images, a history (view), records
    t                                   # the pair on stage, the vote bar, the ranking chart
    t.current                           # Pair(left=Item, right=Item, number=1)
    t.vote("left")                      # or "right", "tie", "skip"; t.undo()
    t.rankings()                        # item, prompt, model, wins, losses, ties, score, low, high

**Voting.** Pairs are shown one at a time, sides drawn at random. Click the better image,
or focus the view (click it, or Tab) and press ``1`` (left), ``2`` (right), ``=`` (tie),
``s`` (skip) or ``u`` (undo); the buttons do the same (:mod:`.keys`). Pairs are chosen to
learn the ranking with few votes: close and seldom compared pairs first (:mod:`.pairs`).

**Blind.** With ``blind=True`` (the default) the pair shows no prompt, model or label, in
the page or anywhere in the widget state, until it is voted on; then the vote just cast
is revealed under the next pair (``reveal="vote"``; the next pair avoids both images when
there are four or more), or only at the end with ``reveal="end"`` (an image seen again is
then still anonymous). ``t.reveal()`` (the Reveal
button) ends blindness: the pair, the revealed vote and the chart show everything.

**Recorded.** Every vote goes to the history (``history``, default: the package's default
history; ``False``: kept in memory only): which two images (records and positions), which
won, blind or not, when. The tournament's id is derived from its items, so
``tournament(...)`` on the same items, in this process or another, continues where the
votes stopped, and the votes feed ``history.rankings(by="prompt" | "model" | "record")``.

**Rankings.** ``t.rankings()`` gives Bradley–Terry scores on the Elo scale with 95 %
intervals (:mod:`nanobanana_widgets.store.stats`), also charted under the pair.
Thumbnails are made off the kernel's thread (:mod:`.thumbs`); the view changes only
through a :class:`~nanobanana_widgets.widgets._ui.Painter`.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import ipywidgets as w

from nanobanana_widgets.render.page import page_html
from nanobanana_widgets.render.rankings import rankings_html
from nanobanana_widgets.render.static import static_frame, static_styles
from nanobanana_widgets.render.tournament import (
    pair_html,
    pair_waiting_html,
    reveal_html,
    status_html,
    tournament_header_html,
    tournament_styles,
)
from nanobanana_widgets.service.errors import InvalidParameterError, NanoBananaError, describe_error
from nanobanana_widgets.session import choose_history
from nanobanana_widgets.store import (
    VOTE_OUTCOMES,
    Entry,
    History,
    Rankings,
    Vote,
    bradley_terry,
    rank,
)
from nanobanana_widgets.widgets._static import StaticRendition
from nanobanana_widgets.widgets._ui import Painter, ViewSync, close_view, guarded
from nanobanana_widgets.widgets.tournament.items import Item, collect_items
from nanobanana_widgets.widgets.tournament.keys import VoteKeys
from nanobanana_widgets.widgets.tournament.pairs import choose_pair, pair_counts, suggested_votes
from nanobanana_widgets.widgets.tournament.thumbs import STAGE_SIDE, Thumbs

__all__ = ["Pair", "Tournament", "derive_id", "tournament"]

CHART_ROWS = 20
"""Rows of the ranking chart under the tournament (``rankings()`` has them all)."""
_SCORES = {"left": 1.0, "right": 0.0, "tie": 0.5}
_BUTTONS = (("left", "◀ Left is better (1)", "The left image is better (key 1 or ←)"),
            ("tie", "Tie (=)", "Neither is better (key =)"),
            ("right", "Right is better (2) ▶", "The right image is better (key 2 or →)"),
            ("skip", "Skip (s)", "Show another pair; this one is not counted (key s)"),
            ("undo", "Undo (u)", "Take back the last vote cast here (key u)"))


class Pair(NamedTuple):
    """The pair on stage: its ``left`` and ``right`` :class:`~.items.Item` and its number."""

    left: Item
    right: Item
    number: int


def derive_id(items: Sequence[Item], prefix: str = "t-") -> str:
    """An id derived from the items' keys (the same items give the same tournament)."""
    text = "\n".join(sorted(item.key for item in items))
    return prefix + hashlib.sha256(text.encode()).hexdigest()[:12]


class Tournament(w.VBox):  # type: ignore[misc]
    """A tournament's view and state (see the module docs); made by :func:`tournament`.

    ``items``, ``id``, ``blind``, ``current``, ``vote(outcome)``, ``undo()``, ``reveal()``,
    ``votes``, ``rankings()``, ``wait_ready(timeout)``, ``static_html()``, ``to_html(path)``;
    the widgets: ``stage``, ``buttons`` (by outcome), ``revealed``, ``status``, ``chart``.
    """

    def __init__(self, items: Sequence[Item], *, blind: bool = True,
                 history: History | None = None, tournament_id: str | None = None,
                 reveal: str = "vote", allowed: Callable[[Item, Item], bool] | None = None,
                 show_rankings: bool = True, title: str = "",
                 on_vote: Callable[[Vote], object] | None = None,
                 on_reveal: Callable[[], object] | None = None,
                 reveal_label: str = "Reveal") -> None:
        if len(items) < 2:
            raise InvalidParameterError("items", f"{len(items)} image(s)", None,
                                        hint="two or more images to compare in pairs")
        if reveal not in ("vote", "end"):
            raise InvalidParameterError("reveal", reveal, ("vote", "end"))
        self.items: tuple[Item, ...] = tuple(items)
        self._by_key = {item.key: item for item in self.items}
        self.id = tournament_id or derive_id(self.items)
        self.blind = bool(blind)
        self.reveal_mode = reveal
        self._history = history
        self._allowed = allowed
        self._show_rankings = show_rankings
        self._title = title or self.id
        self._on_vote = on_vote
        self._on_reveal = on_reveal
        self._lock = threading.RLock()
        self._painter = Painter()
        self._revision = 0
        self._memory: list[Vote] = []   # votes the history did not take (or no history)
        self._votes: list[Vote] = []
        self._mine: list[Vote] = []     # cast here, for undo
        self._pair: Pair | None = None
        self._last: tuple[Pair, str] | None = None
        self._notice: tuple[str, str] | None = None
        self._uid = f"nbw-trn-{uuid.uuid4().hex[:10]}"
        self._thumbs = Thumbs(self._thumb_ready, name=self.id)

        self.header = w.HTML()
        self.stage = w.HTML(layout=w.Layout(width="100%"))
        self.buttons: dict[str, w.Button] = {}
        for outcome, text, tip in _BUTTONS:
            button = w.Button(description=text, tooltip=tip, layout=w.Layout(width="auto"))
            button.add_class(f"nbw-trn-vote-{outcome}")
            button.on_click(guarded(lambda _b, o=outcome: self._button(o), self._report))
            self.buttons[outcome] = button
        self.reveal_button = w.Button(description=reveal_label, icon="eye",
                                      tooltip="Show the prompts, models and labels from now on",
                                      layout=w.Layout(width="auto"))
        self.reveal_button.on_click(guarded(lambda _b: self.reveal(), self._report))
        self.vote_bar = w.HBox([*self.buttons.values(), self.reveal_button], layout=w.Layout(
            flex_flow="row wrap", justify_content="center", width="100%"))
        self.vote_bar.add_class("nbw-trn-votebar")
        self.revealed = w.HTML(layout=w.Layout(width="100%"))
        self.status = w.HTML(layout=w.Layout(width="100%"))
        self.chart = w.HTML(layout=w.Layout(width="100%",
                                            display="flex" if show_rankings else "none"))
        self.shortcuts = VoteKeys(self._key_vote, scope=self._uid)
        super().__init__([w.HTML(tournament_styles(), layout=w.Layout(display="none")),
                          self.shortcuts, ViewSync(self), self.header, self.stage, self.vote_bar,
                          self.revealed, self.status, self.chart],
                         layout=w.Layout(width="100%", max_width="100%", overflow="hidden"))
        self.add_class("nbw-trn")
        self.add_class(self._uid)
        self.static = StaticRendition(self, self._static_copy)
        """The copy of the tournament a saved notebook shows (blind as the view is)."""
        with self._lock:
            self._reload()
            self._pair = self._choose()
        self._thumbs.want(self._pair_items())
        self._thumbs.want(self.items)
        self._repaint()

    # --- public API --------------------------------------------------------------------

    @property
    def current(self) -> Pair | None:
        """The pair on stage (``None`` when no pair can be shown)."""
        with self._lock:
            return self._pair

    @property
    def votes(self) -> list[Vote]:
        """Every vote of this tournament (all processes, and any kept in memory)."""
        with self._lock:
            return list(self._votes)

    @property
    def history(self) -> History | None:
        """Where the votes are recorded (``None``: in memory only)."""
        return self._history

    def vote(self, outcome: str, *, pair: int | None = None) -> Vote:
        """Vote on the pair on stage: ``"left"``, ``"right"``, ``"tie"`` or ``"skip"``.

        Records the vote and moves to the next pair; returns the vote. ``pair`` (the pair's
        number) refuses a vote meant for a pair no longer on stage.
        """
        if outcome not in VOTE_OUTCOMES:
            raise InvalidParameterError("vote", outcome, VOTE_OUTCOMES,
                                        hint='"left" or "right" (the better side), "tie" or '
                                             '"skip"')
        with self._lock:
            shown = self._pair
            if shown is None:
                raise NanoBananaError("There is no pair to vote on: no two of these images "
                                      "may be compared.")
            if pair is not None and pair != shown.number:
                raise InvalidParameterError(
                    "pair", pair, (shown.number,),
                    hint=f"a vote for the pair on stage (pair {shown.number}); pair {pair} "
                         "was voted on already")
            vote = self._record(shown, outcome)
            self._mine.append(vote)
            self._last = (shown, outcome)
            self._reload()
            self._pair = self._choose()
        self._thumbs.want(self._pair_items())
        self._repaint()
        if self._on_vote is not None:
            self._on_vote(vote)
        return vote

    def undo(self) -> Vote | None:
        """Take back the last vote cast here and show its pair again (``None``: none)."""
        with self._lock:
            if not self._mine:
                self._notice = ("Nothing to undo: no vote was cast here yet.", "nbw-muted")
                vote = None
            else:
                vote = self._mine.pop()
                if vote in self._memory:
                    self._memory.remove(vote)
                elif self._history is not None:
                    self._history.withdraw_vote(vote)
                left, right = self._by_key[vote.left.key], self._by_key[vote.right.key]
                self._reload()
                self._pair = Pair(left, right, len(self._votes) + 1)
                self._last = None
                self._notice = ("The last vote is taken back: vote on its pair again.",
                                "nbw-ok")
        self._repaint()
        if vote is not None and self._on_vote is not None:
            self._on_vote(vote)
        return vote

    def reveal(self) -> None:
        """End blindness: prompts, models and labels show from now on."""
        with self._lock:
            self.blind = False
        self._repaint()
        if self._on_reveal is not None:
            self._on_reveal()

    def rankings(self) -> Rankings:
        """The items ranked by Bradley–Terry score (best first), with 95 % intervals."""
        with self._lock:
            outcomes = self._outcomes()
        entries = [Entry(key=i.key, item=i.label, prompt=i.prompt, model=i.model)
                   for i in self.items]
        return rank(entries, outcomes, title=f"Rankings of tournament {self.id}")

    def wait_ready(self, timeout: float | None = 30.0) -> bool:
        """Wait until the pair on stage has its images; ``True`` when it has."""
        ok = self._thumbs.wait([i.key for i in self._pair_items()], timeout)
        self._repaint()
        return ok

    def thumbnail(self, key: str) -> str | None:
        """The small thumbnail (a ``data:`` URI) of the item with this key, once made."""
        return self._thumbs.chart(key)

    def static_html(self) -> str:
        """The view as it is now, as HTML (blind as the view is): for static renditions."""
        parts = self._parts()
        return (f'{tournament_styles()}<div class="nbw-trn">{parts["header"]}{parts["stage"]}'
                f'{parts["revealed"]}{parts["status"]}{parts["chart"]}</div>')

    def _static_copy(self) -> str:
        """:meth:`static_html` in the frame a saved notebook shows (see ``widgets._static``)."""
        return static_frame(self.static.view_id, "trn", self.static_html(),
                            styles=static_styles("frame"))

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`static_html` as a standalone page; returns the path."""
        target = Path(path)
        target.write_text(page_html(f"Tournament {self.id}", self.static_html()),
                          encoding="utf-8")
        return target

    def close(self) -> None:
        """Close the view and stop making thumbnails."""
        thumbs = getattr(self, "_thumbs", None)
        if thumbs is not None:
            thumbs.close()
        close_view(self, super().close)

    def __repr__(self) -> str:
        pair = self._pair.number if self._pair is not None else None
        kind = "blind " if self.blind else ""
        return (f"<Tournament {self.id}: {kind}{len(self.items)} images, "
                f"{len(self._votes)} votes, pair {pair}>")

    # --- votes ---------------------------------------------------------------------------

    def _record(self, pair: Pair, outcome: str) -> Vote:
        left, right = pair.left.vote_item(), pair.right.vote_item()
        if self._history is not None:
            try:
                vote = self._history.record_vote(self.id, left, right, outcome,
                                                 blind=self.blind)
                self._notice = None
                return vote
            except Exception as exc:  # kept here; said in the status line
                self._notice = (f"The vote counts here but could not be recorded in the "
                                f"history: {describe_error(exc)}", "nbw-warn")
        vote = Vote(id=-(len(self._memory) + 1), created_at=0.0, tournament=self.id, left=left,
                    right=right, outcome=outcome, blind=self.blind)  # type: ignore[arg-type]
        self._memory.append(vote)
        return vote

    def _reload(self) -> None:
        recorded: list[Vote] = []
        if self._history is not None:
            try:
                recorded = self._history.votes(self.id)
            except Exception as exc:
                self._notice = (f"Could not read the votes from the history: "
                                f"{describe_error(exc)}", "nbw-warn")
                recorded = [v for v in self._votes if v.id > 0]
        self._votes = recorded + self._memory

    def _outcomes(self) -> list[tuple[str, str, float]]:
        return [(v.left.key, v.right.key, _SCORES[v.outcome]) for v in self._votes
                if v.outcome in _SCORES and v.left.key in self._by_key
                and v.right.key in self._by_key]

    def _choose(self) -> Pair | None:
        keys = [i.key for i in self.items]
        strengths = bradley_terry(keys, self._outcomes())
        counts = pair_counts([(v.left.key, v.right.key) for v in self._votes])
        avoid: set[str] = set()
        if self._last is not None:
            avoid = {self._last[0].left.key, self._last[0].right.key}
        allowed = None
        if self._allowed is not None:
            test = self._allowed
            allowed = lambda a, b: test(self._by_key[a], self._by_key[b])  # noqa: E731
        rng = random.Random(f"{self.id}:{len(self._votes)}")
        chosen = choose_pair(keys, strengths, counts, rng, avoid=avoid, allowed=allowed)
        if chosen is None:
            return None
        return Pair(self._by_key[chosen[0]], self._by_key[chosen[1]], len(self._votes) + 1)

    def _pair_items(self) -> list[Item]:
        pair = self._pair
        return [] if pair is None else [pair.left, pair.right]

    # --- input ---------------------------------------------------------------------------

    def _button(self, outcome: str) -> None:
        if outcome == "undo":
            self.undo()
        else:
            self.vote(outcome)

    def _key_vote(self, outcome: str, pair: int | None) -> None:
        """A key press or click in the page, naming the pair it was meant for."""
        try:
            if outcome == "undo":
                self.undo()
            else:
                self.vote(outcome, pair=pair)
        except InvalidParameterError as exc:
            if exc.field == "pair":
                self._say(f"That vote was for pair {pair}, which is voted on already; this is "
                          "a new pair.", "nbw-muted")
            else:
                self._report(exc)
        except Exception as exc:
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        self._say(f"Could not vote: {describe_error(exc)}", "nbw-warn")

    def _say(self, text: str, css: str) -> None:
        with self._lock:
            self._notice = (text, css)
        self._repaint()

    def _thumb_ready(self, key: str) -> None:
        """Repaint when the pair on stage (or the vote revealed) can show its images, and
        once every thumbnail is made (the chart's), not for each one."""
        with self._lock:
            shown = {i.key for i in self._pair_items()}
            if self._last is not None:
                shown |= {self._last[0].left.key, self._last[0].right.key}
        if key in shown or self._thumbs.done() >= len(self.items):
            self._repaint()

    # --- painting ------------------------------------------------------------------------

    def _parts(self) -> dict[str, str]:
        """Every piece of the view as HTML, from the state now (under the lock)."""
        with self._lock:
            pair, last, blind = self._pair, self._last, self.blind
            votes = len([v for v in self._votes if v.outcome != "skip"])
            notice = self._notice
            outcomes = self._outcomes()
        parts = {"header": tournament_header_html(
            title=self._title, blind=blind, n_items=len(self.items),
            pair=pair.number if pair else None, votes=votes,
            suggested=suggested_votes(len(self.items)), reveal=self.reveal_mode)}
        parts["stage"] = self._stage_html(pair, blind)
        parts["revealed"] = ""
        if last is not None:
            shown, outcome = last
            identities = not blind or self.reveal_mode == "vote"
            parts["revealed"] = reveal_html(
                shown.left, shown.right, outcome, shown.number,
                thumbs=(self._thumbs.chart(shown.left.key), self._thumbs.chart(shown.right.key))
                if identities else (None, None), identities=identities)
        kept = "" if self._history is not None else (
            " Votes are kept in this session only: recording in a history is off.")
        text, css = notice or (
            "Click the better image, or click here and press 1 (left), 2 (right), = (tie), "
            f"s (skip), u (undo).{kept}", "nbw-muted")
        parts["status"] = status_html(text, css)
        parts["chart"] = ""
        if self._show_rankings:
            entries = [Entry(key=i.key, item=i.label, prompt=i.prompt, model=i.model)
                       for i in self.items]
            table = rank(entries, outcomes)
            parts["chart"] = rankings_html(table.rows, votes=table.votes, title="Ranking so far",
                                           thumbs=self._thumbs.charts(), blind=blind,
                                           styles=False, limit=CHART_ROWS)
        return parts

    def _stage_html(self, pair: Pair | None, blind: bool) -> str:
        if pair is None:
            return pair_waiting_html("No pair to show: none of these images may be compared "
                                     "with another.", error=True)
        left, right = pair.left, pair.right
        uris = (self._thumbs.stage(left.key), self._thumbs.stage(right.key))
        if uris[0] is None or uris[1] is None:
            problems = [p for p in (self._thumbs.problem(left.key),
                                    self._thumbs.problem(right.key)) if p]
            if problems:
                return pair_waiting_html(f"An image of this pair cannot be shown "
                                         f"({problems[0]}); press s to skip it.",
                                         number=pair.number, error=True)
            return pair_waiting_html("Loading the images…", number=pair.number)
        sizes = [self._thumbs.aspect(left.key) or (1, 1), self._thumbs.aspect(right.key) or (1, 1)]
        aspect = max(sizes, key=lambda s: s[0] / max(s[1], 1))
        return pair_html(left, right, uris[0], uris[1], number=pair.number, blind=blind,
                         max_side=STAGE_SIDE, aspect=aspect)

    def _repaint(self) -> None:
        with self._lock:
            self._revision += 1
            revision = self._revision
            parts = self._parts()
            blind = self.blind
            can_undo = bool(self._mine)
            has_pair = self._pair is not None

        def apply() -> None:
            self.header.value = parts["header"]
            self.stage.value = parts["stage"]
            self.revealed.value = parts["revealed"]
            self.status.value = parts["status"]
            if self._show_rankings:
                self.chart.value = parts["chart"]
            for outcome, button in self.buttons.items():
                button.disabled = not can_undo if outcome == "undo" else not has_pair
            self.reveal_button.layout.display = "flex" if blind else "none"

        self._painter.paint(("view",), (revision,), apply)
        static = getattr(self, "static", None)
        if static is not None:  # the saved copy follows (throttled)
            static.update()


def tournament(items: Any, *, blind: bool = True, history: History | bool | None = None,
               reveal: str = "vote") -> Tournament:
    """A tournament of ``items``: results, generated images, a grid, a history (or a view of
    it), records, or images (paths, bytes, PIL images, arrays), in any mix or list.

    ``blind`` hides prompts, models and labels until each vote (``reveal="end"``: until
    :meth:`Tournament.reveal`). Votes are recorded in ``history`` (default: the package's
    default history; ``False``: in memory only), and the same items continue the same
    tournament. Raises ``InvalidParameterError`` for fewer than two images.
    """
    chosen = choose_history(history, owner="history")
    found, skipped = collect_items(items, chosen)
    if len(found) < 2:
        left_out = f"; left out: {', '.join(skipped[:5])}" if skipped else ""
        raise InvalidParameterError("items", f"{len(found)} image(s)", None,
                                    hint=f"two or more images to compare in pairs{left_out}")
    t = Tournament(found, blind=blind, history=chosen, reveal=reveal)
    if skipped:
        t._say(f"Left out (no image): {', '.join(skipped[:8])}"
               f"{'…' if len(skipped) > 8 else ''}.", "nbw-muted")
    return t
