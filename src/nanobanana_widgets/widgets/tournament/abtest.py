"""A/B tests that account for chance: generate both arms, vote blind, get a verdict.

::

    ab = ab_test("a lighthouse at dusk", "a lighthouse at dusk, cinematic")   # two prompts
    ab = ab_test({"model": "nano-banana"}, {"model": "nano-banana-pro"},
                 prompt="a lighthouse at dusk", samples=6)                   # two models
    ab                       # cost, progress, then the blind pairs to vote on
    ab.vote("left")          # or click / press 1, 2, =, s in the view
    ab.verdict               # "B preferred in 7 of 8 votes; a split this uneven ..."
    ab.p_value; ab.wins; ab.variation

**Cost first.** The view states the paid generations before anything is sent
(``2 × samples`` images, in requests of up to four). Above ``max_calls`` (default 16, as a
grid) nothing is spent until the "Run N paid generations" button or ``ab.confirm()``
(or ``confirm=True``). With the history's replay on, requests identical to recorded ones
are answered from the history.

**Voting.** Each pair is one image of A against one of B, sides at random; with
``blind=True`` nothing says which arm an image is from until the verdict is shown (the
"Show the verdict" button or ``ab.reveal()``). Every vote is recorded in the history.

**The verdict** (:mod:`.verdict`): a win for the arm of each preferred image, ties set
aside, and the exact two-sided sign test's p-value, in plain words. **The variation**
(:mod:`.variation`): how much images of one arm differ from each other against images of
different arms, so the change can be weighed against the service's own variation (it has
no seed). The work runs in background threads; the view changes through a Painter.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from nanobanana_widgets.images import load_image
from nanobanana_widgets.render.page import page_html
from nanobanana_widgets.render.parts import plural, seconds
from nanobanana_widgets.render.static import static_frame, static_styles
from nanobanana_widgets.render.tournament import (
    ab_budget_html,
    ab_plan_html,
    arms_html,
    status_html,
    tournament_styles,
    variation_html,
    verdict_html,
)
from nanobanana_widgets.service.errors import (
    InvalidParameterError,
    NanoBananaError,
    WaitTimeoutError,
    describe_error,
    not_confirmed_error,
)
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.session import choose_history, default_client
from nanobanana_widgets.store import History, Vote
from nanobanana_widgets.widgets._static import StaticRendition
from nanobanana_widgets.widgets._ui import Painter, ViewSync, close_view, guarded
from nanobanana_widgets.widgets.tournament.arms import DEFAULT_MAX_CALLS, ABPlan, make_plan
from nanobanana_widgets.widgets.tournament.items import Item, collect_items
from nanobanana_widgets.widgets.tournament.runner import ABRunner, Outcomes
from nanobanana_widgets.widgets.tournament.tournament import Pair, Tournament, derive_id
from nanobanana_widgets.widgets.tournament.variation import Variation, variation
from nanobanana_widgets.widgets.tournament.verdict import Verdict, judge

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client

__all__ = ["ABTest", "ab_test"]


class ABTest(w.VBox):  # type: ignore[misc]
    """An A/B test's view and state (see the module docs); made by :func:`ab_test`.

    ``id``, ``plan``, ``state`` (``"awaiting confirmation"``, ``"generating"``,
    ``"voting"``, ``"failed"``, ``"cancelled"``), ``confirm()``, ``cancel()``,
    ``wait(timeout)``, ``images`` (per arm), ``tournament``, ``current``, ``vote()``,
    ``undo()``, ``reveal()``, ``verdict``, ``p_value``, ``wins``, ``ties``, ``variation``,
    ``static_html()`` and ``to_html(path)``.
    """

    def __init__(self, plan: ABPlan, *, blind: bool = True, client: Client | None = None,
                 history: History | None = None, max_calls: int = DEFAULT_MAX_CALLS,
                 confirm: bool = False) -> None:
        self.plan = plan
        self.id = plan.test_id
        self.blind = bool(blind)
        self.max_calls = max_calls
        self._client = client
        self._history = history
        self._lock = threading.RLock()
        self._painter = Painter()
        self._revision = 0
        self._ready = threading.Event()
        self._revealed = not blind
        self.state = "ready"
        self.tournament: Tournament | None = None
        self.images: dict[str, list[GeneratedImage]] = {a.label: [] for a in plan.arms}
        self.variation: Variation | None = None
        self._problem: str | None = None
        self._started = 0.0
        self.runner = ABRunner(plan, client=self._client_now, on_progress=self._on_progress,
                               on_end=self._on_end)

        replay = history is not None and bool(history.replay)
        self.plan_line = w.HTML(ab_plan_html(
            self.id, [(a.label, a.request.prompt, a.shown_params) for a in plan.arms],
            samples=plan.samples, requests=plan.requests, paid=plan.paid, replay=replay))
        self.confirm_button = w.Button(description=f"Run {plan.paid} paid generations",
                                       button_style="warning", icon="play",
                                       tooltip="Start the A/B test: every image is billed",
                                       layout=w.Layout(width="auto", min_width="max-content"))
        self.confirm_button.on_click(guarded(lambda _b: self.confirm(), self._report))
        self.budget_row = w.HBox([w.HTML(ab_budget_html(plan.paid, max_calls),
                                         layout=w.Layout(flex="1 1 auto", min_width="0")),
                                  self.confirm_button],
                                 layout=w.Layout(width="100%", display="none",
                                                 align_items="center", flex_flow="row wrap"))
        self.status = w.HTML(layout=w.Layout(flex="1 1 auto", min_width="0"))
        self.cancel_button = w.Button(description="Cancel", icon="times",
                                      tooltip="Stop waiting (requests sent may still run and "
                                              "be billed)",
                                      layout=w.Layout(width="auto", display="none"))
        self.cancel_button.on_click(guarded(lambda _b: self.cancel(), self._report))
        self.arena = w.VBox(layout=w.Layout(width="100%"))
        self.result = w.HTML(layout=w.Layout(width="100%"))
        super().__init__([w.HTML(tournament_styles(), layout=w.Layout(display="none")),
                          ViewSync(self), self.plan_line, self.budget_row,
                          w.HBox([self.status, self.cancel_button],
                                 layout=w.Layout(width="100%", align_items="center")),
                          self.arena, self.result],
                         layout=w.Layout(width="100%", max_width="100%", overflow="hidden"))
        self.add_class("nbw-trn")
        self.add_class("nbw-ab")
        self.static = StaticRendition(self, self._static_copy)
        """The copy of the A/B test a saved notebook shows (blind as the view is)."""
        if plan.paid > max_calls and not confirm:
            self.state = "awaiting confirmation"
            self._paint_controls(0, budget=True, cancel=False)
            self._paint()
        else:
            self._start()

    # --- running -------------------------------------------------------------------------

    def confirm(self) -> ABTest:
        """Start a test that waits for confirmation (no effect once started)."""
        if self.state == "awaiting confirmation":
            self._start()
        return self

    def cancel(self) -> None:
        """Stop sending and waiting (requests sent may still run and be billed)."""
        with self._lock:
            if self.state == "awaiting confirmation":
                self.state = "cancelled"
                self._problem = "Cancelled before anything was sent."
                self._ready.set()
        self.runner.cancel()
        self._paint_controls(2, budget=False, cancel=False)
        self._paint()

    def wait(self, timeout: float | None = None) -> ABTest:
        """Block until the images are made and voting can start (or the test ended)."""
        if self.state == "awaiting confirmation":
            raise not_confirmed_error("A/B test", "ab", self.plan.paid, self.max_calls)
        if timeout is None:
            timeout = float(getattr(self._client, "wait_timeout", 600.0)) + 60.0
        if not self._ready.wait(timeout):
            raise WaitTimeoutError(f"The A/B test's images were not all made after "
                                   f"{timeout:g} s. Wait again with ab.wait(), or ab.cancel().")
        return self

    def _client_now(self) -> Client:
        if self._client is None:
            self._client = default_client()
        if self._history is not None:
            self._history.attach(self._client)
        return self._client

    def _start(self) -> None:
        with self._lock:
            if self.state not in ("ready", "awaiting confirmation"):
                return
            self.state = "generating"
            self._started = time.monotonic()
        self._paint_controls(1, budget=False, cancel=True)
        self._paint()
        self.runner.start()

    def _on_progress(self, done: int, total: int, secs: float) -> None:
        self._paint(f"Generating: {done} of {plural(total, 'request')} done · {seconds(secs)}.")

    def _on_end(self, outcomes: Outcomes) -> None:
        try:
            items = self._items(outcomes)
            if self.runner.cancelled:
                self._end("cancelled", "Cancelled: requests already sent may still run and be "
                                       "billed; history.resume() looks them up.")
                return
            missing = [a.label for a in self.plan.arms if not any(i.arm == a.label
                                                                  for i in items)]
            if missing:
                errors = "; ".join(describe_error(e) for e in outcomes.errors()[:2])
                self._end("failed", f"Arm {' and '.join(missing)} has no image, so there is "
                                    f"nothing to vote on. {errors}".strip())
                return
            self.tournament = Tournament(
                items, blind=self.blind, history=self._history,
                tournament_id=derive_id(items, prefix=f"{self.id}/"), reveal="end",
                allowed=lambda a, b: a.arm != b.arm, show_rankings=False,
                title=f"A/B test {self.id}", on_vote=self._on_vote,
                on_reveal=self._on_reveal, reveal_label="Show the verdict")
            self.variation = self._variation(items)
            short = [f"{label}: {len(imgs)} of {self.plan.samples}"
                     for label, imgs in self.images.items() if len(imgs) < self.plan.samples]
            note = f" Fewer images than asked ({', '.join(short)})." if short else ""
            with self._lock:
                self.state = "voting"
            tournament = self.tournament
            self._painter.paint(("arena",), (1,), lambda: setattr(
                self.arena, "children", (tournament,)))
            self._paint(f"{plural(len(items), 'image')} made.{note} Vote on the pairs below.")
        except Exception as exc:  # said in the view, never lost in a thread
            self._end("failed", f"The A/B test could not start voting: {describe_error(exc)}")
        finally:
            self._paint_controls(2, budget=False, cancel=False)
            self._paint_result()
            self._ready.set()

    def _items(self, outcomes: Outcomes) -> list[Item]:
        items: list[Item] = []
        for arm in self.plan.arms:
            images = [img for o in outcomes.by_arm.get(arm.label, []) if isinstance(o, Result)
                      for img in o.images]
            self.images[arm.label] = images
            found, _skipped = collect_items(images, self._history)
            items += [dataclasses.replace(item, arm=arm.label, label=f"{arm.label}{k + 1}")
                      for k, item in enumerate(found)]
        return items

    def _variation(self, items: list[Item]) -> Variation | None:
        try:
            pictures: dict[str, list[Any]] = {a.label: [] for a in self.plan.arms}
            for item in items:
                source = item.source
                if isinstance(source, GeneratedImage):
                    source = source.bytes()
                pictures[str(item.arm)].append(load_image(source))
            return variation(pictures)
        except Exception:  # the verdict stands without it; the view says it is missing
            return None

    def _end(self, state: str, text: str) -> None:
        with self._lock:
            self.state = state
            self._problem = text
        self._paint()

    # --- votes ---------------------------------------------------------------------------

    @property
    def current(self) -> Pair | None:
        """The pair on stage (``None`` before the images are made)."""
        return self.tournament.current if self.tournament is not None else None

    def _arena(self) -> Tournament:
        if self.tournament is None:
            raise NanoBananaError(f"No pair to vote on yet: the A/B test is {self.state}. "
                                  "ab.wait() waits for its images.")
        return self.tournament

    def vote(self, outcome: str) -> Vote:
        """Vote on the pair on stage: ``"left"``, ``"right"``, ``"tie"`` or ``"skip"``."""
        return self._arena().vote(outcome)

    def undo(self) -> Vote | None:
        """Take back the last vote cast here."""
        return self._arena().undo()

    def reveal(self) -> None:
        """Show which image is from which arm, and the verdict."""
        if self.tournament is not None:
            self.tournament.reveal()  # calls _on_reveal
        else:
            self._on_reveal()

    @property
    def votes(self) -> list[Vote]:
        """Every vote of this test."""
        return self.tournament.votes if self.tournament is not None else []

    def judgement(self) -> Verdict:
        """The verdict as data: text, p-value, wins per arm, ties, preferred arm."""
        arm_of = {i.key: i.arm for i in (self.tournament.items if self.tournament else ())}
        a, b = (arm.label for arm in self.plan.arms)
        wins = {a: 0, b: 0}
        ties = 0
        for v in self.votes:
            if v.outcome == "tie":
                ties += 1
            elif v.winner is not None and arm_of.get(v.winner.key) in wins:
                wins[str(arm_of[v.winner.key])] += 1
        return judge((a, b), wins[a], wins[b], ties)

    @property
    def verdict(self) -> str:
        """The verdict in plain words (available from Python at any time)."""
        return self.judgement().text

    @property
    def p_value(self) -> float:
        """The exact two-sided sign test's p-value (ties set aside; 1.0 without votes)."""
        return self.judgement().p_value

    @property
    def wins(self) -> dict[str, int]:
        """Decisive votes won by each arm."""
        return self.judgement().wins

    @property
    def ties(self) -> int:
        """Votes that were ties."""
        return self.judgement().ties

    def _on_vote(self, _vote: Vote) -> None:
        self._paint_result()

    def _on_reveal(self) -> None:
        with self._lock:
            self._revealed = True
        self._paint_result()

    # --- painting ------------------------------------------------------------------------

    def _report(self, exc: BaseException) -> None:
        self._paint(f"Could not do that: {describe_error(exc)}", css="nbw-warn")

    def _paint_controls(self, phase: int, *, budget: bool, cancel: bool) -> None:
        def apply() -> None:
            self.budget_row.layout.display = "flex" if budget else "none"
            self.cancel_button.layout.display = "flex" if cancel else "none"

        self._painter.paint(("controls",), (phase,), apply)

    def _paint(self, text: str | None = None, css: str = "nbw-muted") -> None:
        with self._lock:
            self._revision += 1
            revision = self._revision
            if text is None:
                text = self._problem or {
                    "awaiting confirmation": "Waiting for confirmation; nothing has been sent.",
                    "generating": "Generating…",
                    "voting": "Vote on the pairs below.",
                }.get(self.state, self.state)
                css = "nbw-warn" if self._problem and self.state != "cancelled" else css
        markup = status_html(text, css)
        self._painter.paint(("status",), (revision,),
                            lambda: setattr(self.status, "value", markup))
        static = getattr(self, "static", None)
        if static is not None:  # the saved copy follows (throttled)
            static.update()

    def _static_copy(self) -> str:
        """:meth:`static_html` in the frame a saved notebook shows (see ``widgets._static``)."""
        return static_frame(self.static.view_id, "ab", self.static_html(),
                            styles=static_styles("frame"))

    def _result_html(self) -> str:
        if not self._revealed or self.tournament is None:
            return ""
        found = self.judgement()
        parts = [verdict_html(found.text, found.wins, found.ties,
                              found.p_value if sum(found.wins.values()) else None,
                              conclusive=found.conclusive)]
        if self.variation is not None:
            within = {k: v for k, v in self.variation.within.items() if v is not None}
            parts.append(variation_html(within, self.variation.between,
                                        self.variation.summary))
        ranking = self.tournament.rankings()
        tally = {r.key: {"wins": r.wins, "losses": r.losses, "ties": r.ties} for r in ranking}
        thumbs = self.tournament.thumbnail
        parts.append(arms_html([(arm.label, [(thumbs(i.key), tally.get(i.key, {}))
                                             for i in self.tournament.items
                                             if i.arm == arm.label])
                                for arm in self.plan.arms]))
        return "".join(parts)

    def _paint_result(self) -> None:
        with self._lock:
            self._revision += 1
            revision = self._revision
            markup = self._result_html()
        self._painter.paint(("result",), (revision,),
                            lambda: setattr(self.result, "value", markup))

    def static_html(self) -> str:
        """The test as it is now, as HTML (blind as the view is)."""
        arena = self.tournament.static_html() if self.tournament is not None else ""
        return (f'{tournament_styles()}<div class="nbw-trn nbw-ab">{self.plan_line.value}'
                f"{self.status.value}{arena}{self._result_html()}</div>")

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`static_html` as a standalone page; returns the path."""
        target = Path(path)
        target.write_text(page_html(f"A/B test {self.id}", self.static_html()),
                          encoding="utf-8")
        return target

    def close(self) -> None:
        """Close the view (and its tournament)."""
        if getattr(self, "tournament", None) is not None:
            self.tournament.close()  # type: ignore[union-attr]
        close_view(self, super().close)

    def __repr__(self) -> str:
        return (f"<ABTest {self.id}: {self.plan.samples} samples per arm, {self.state}, "
                f"{len(self.votes)} votes>")


def ab_test(a: Any, b: Any, *, samples: int = 4, blind: bool = True,
            client: Client | None = None, history: History | bool | None = None,
            max_calls: int = DEFAULT_MAX_CALLS, confirm: bool = False,
            labels: tuple[str, str] = ("A", "B"), **params: Any) -> ABTest:
    """Settle "is A or B better?" with ``samples`` images per arm and blind votes.

    ``a`` and ``b`` are prompts, or dicts of parameters laid over ``params`` (which both
    arms share: ``prompt``, ``model``, ``aspect_ratio``, ``resolution``, ``action``,
    ``images``). States the paid generations (``2 × samples``) before anything is sent;
    above ``max_calls`` waits for ``ab.confirm()`` unless ``confirm=True``. ``client`` and
    ``history`` default to the package's. Returns at once; images are made in the
    background. Invalid arms raise ``InvalidParameterError`` before anything is sent.
    """
    plan = make_plan(a, b, samples=samples, labels=labels, **params)
    if isinstance(max_calls, bool) or not isinstance(max_calls, int) or max_calls < 0:
        raise InvalidParameterError("max_calls", max_calls, None,
                                    hint="a whole number of paid generations, 0 or more")
    chosen = choose_history(history, client)
    return ABTest(plan, blind=blind, client=client, history=chosen, max_calls=max_calls,
                  confirm=confirm)

