"""A/B comparison of 2 to 6 images: side by side, a word-level prompt diff, a before/after
slider you drag on the image itself, a difference heat map, and a pick (or a tie) recorded in
the history.

::

    compare(h[-2], h[-1])                 # two history records
    compare(result_a, result_b, result_c) # results (their first image), generated images,
                                          # PIL images, arrays, bytes or paths
    compare(edit_result)                  # one edit: its input against its output

``compare`` returns a :class:`Comparison`, an ``ipywidgets.VBox`` (make it the last expression
of a cell; it works in Voilà). Each image is shown with its prompt and parameters (those that
differ from the first image's are emphasised), and the prompts are diffed word by word
against the first one (``<ins>``/``<del>`` marks).

**Views** (two images). *Slider* stacks them: drag anywhere on the image (mouse, pen or
touch) to move the divider, or focus it and use the arrow keys; the ``IntSlider`` under it
follows (:mod:`.divider`). *Difference* shows where they differ, as a heat map with the
share of changed pixels (:mod:`.difference`; an edit against its input answers "what did
the edit change?"). Images of different sizes are scaled to the first one's, and the view
says so. The difference is computed in the background the first time it is shown.

**Picks.** "A is better", "B is better", ... and "Tie" stay under every view. What a pick
writes (a favourite mark, a note line, votes that feed ``history.rankings()``) is
:mod:`.picks`; picking again takes the previous pick back first. Records are found by task
id in ``history`` (default: the package's default history).

What is compared is :mod:`.sides`; the HTML is :mod:`nanobanana_widgets.render.compare`'s.
A pick may come from any thread: the buttons, cards and status it shows are painted through
a :class:`~nanobanana_widgets.widgets._ui.Painter` at the pick's number, so the view never
shows an earlier pick than the one recorded last. The widget state holds only JPEG
thumbnails of at most 512 px, and every user-supplied string is escaped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w
import traitlets
from PIL import Image

from nanobanana_widgets.render.compare import (
    card_html,
    clip_css,
    comparison_styles,
    comparison_title_html,
    diff_html,
    difference_html,
    difference_waiting_html,
    pick_status_html,
    prompt_diff_html,
    stage_html,
    word_diff,
)
from nanobanana_widgets.render.results import data_uri, thumbnail_data_uri
from nanobanana_widgets.render.static import cards_html, static_frame, static_styles
from nanobanana_widgets.service.errors import InvalidParameterError, describe_error
from nanobanana_widgets.service.text import parse_data_uri
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets._static import StaticRendition, source_link
from nanobanana_widgets.widgets._ui import Painter, ViewSync, close_view, guarded
from nanobanana_widgets.widgets.compare.difference import THRESHOLD, Difference, difference
from nanobanana_widgets.widgets.compare.divider import Divider
from nanobanana_widgets.widgets.compare.picks import PickLedger
from nanobanana_widgets.widgets.compare.report import write_comparison_report
from nanobanana_widgets.widgets.compare.sides import (
    Side,
    default_labels,
    edit_sides,
    expand,
    record_of_edit,
    side_of,
)

__all__ = ["MAX_IMAGES", "THUMB_SIDE", "Comparison", "Side", "compare", "prompt_diff_html",
           "word_diff"]

THUMB_SIDE = 512
"""Longest side, in pixels, of the JPEG thumbnails a comparison keeps in widget state."""
MAX_IMAGES = 6
"""The most images one comparison shows (a tournament ranks more)."""
TIE = "tie"

_VIEWS = (("Side by side", "side"), ("Slider", "slider"), ("Difference", "difference"))
_VIEW_TIPS = ("Both images next to each other",
              "One image over the other: drag on the image (or use the arrow keys) to move "
              "the divider",
              "Where the two images differ: a heat map and the share of changed pixels")


def _jpeg_size(uri: str) -> tuple[int, int] | None:
    """Pixel size of a thumbnail data URI (for the slider stage's aspect ratio)."""
    decoded = parse_data_uri(uri)
    if decoded is None:
        return None
    try:
        with Image.open(io.BytesIO(decoded[0])) as img:
            width, height = img.size
            return int(width), int(height)
    except Exception:
        return None


class Comparison(w.VBox):  # type: ignore[misc]
    """The widget :func:`compare` returns: cards, prompt diff, slider and difference views
    (two images), and the pick buttons with a tie under every view.

    From Python: ``sides`` (what is compared), ``pick(i_or_label)``, ``tie()``, ``picked``
    (the label, ``"tie"`` or ``None``), ``view`` (``"side"``, ``"slider"`` or
    ``"difference"``), ``slider`` (the ``IntSlider``: percent of the first image shown) and
    ``divider`` (the draggable stage it is linked to), ``clip_style``, ``difference`` (a
    :class:`~.difference.Difference`, computed on first use), ``buttons``, ``tie_button``,
    ``status``, ``id``, and ``static_html()`` / ``to_html(path)`` (the view as it is now).
    """

    def __init__(self, sides: Sequence[Side], *, history: History | None = None,
                 edit: bool = False) -> None:
        if not 2 <= len(sides) <= MAX_IMAGES:
            raise InvalidParameterError(
                "images", f"{len(sides)} image(s)", None,
                hint=f"2 to {MAX_IMAGES} images, or one edit record/result (to rank more "
                     "images, use nb.tournament(items): pairwise votes)")
        self.id = "c-" + uuid.uuid4().hex[:8]
        self.sides: tuple[Side, ...] = tuple(sides)
        self.edit = edit
        self._lock = threading.Lock()
        self._painter = Painter()
        self._revision = 0
        self._picked: int | str | None = None
        self._ledger = PickLedger(self.id, self.sides, history)
        self._thumbs: list[str | None] = []
        self._problems: list[str | None] = []
        self._aspect: list[tuple[int, int] | None] = []
        self._links: list[str | None] = []
        for side in self.sides:
            self._make_thumb(side)
            self._links.append(source_link(side.source, side.link))
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._difference: concurrent.futures.Future[Difference] | None = None

        self.title = w.HTML(comparison_title_html(self.sides, self.id, edit=edit))
        self.cards: list[w.VBox] = []
        first = self.sides[0].params
        for i in range(len(self.sides)):
            body = w.HTML(card_html(self._linked(i), self._thumbs[i], self._problems[i],
                                    first=first if i else None),
                          layout=w.Layout(width="100%"))
            card = w.VBox([body], layout=w.Layout(min_width="0", max_width=f"{THUMB_SIDE + 16}px"))
            card.add_class("nbw-cmp-card")
            self.cards.append(card)
        # Equal columns, at most two for 2 or 4 images and three for 3, 5 or 6; fewer when
        # the output is narrow (each at least 200 px). A last row never stretches a card.
        columns = 2 if len(self.sides) in (2, 4) else 3
        self.cards_box = w.Box(self.cards, layout=w.Layout(
            display="grid", width="100%", grid_gap="8px", align_items="flex-start",
            grid_template_columns=f"repeat(auto-fill, minmax(max(200px, calc(100% / {columns}"
                                  " - 8px)), 1fr))", margin="0 0 8px 0"))
        self.buttons: list[w.Button] = []
        for i, side in enumerate(self.sides):
            button = w.Button(description=f"{side.label} is better"[:60],
                              tooltip=f"Pick {side.label} as the better image",
                              layout=w.Layout(width="auto", max_width="100%"))
            button.on_click(guarded(lambda _b, i=i: self.pick(i), self._report))
            button.add_class("nbw-cmp-pick")
            self.buttons.append(button)
        self.tie_button = w.Button(description="Tie", icon="equals",
                                   tooltip="Neither image is better",
                                   layout=w.Layout(width="auto"))
        self.tie_button.on_click(guarded(lambda _b: self.tie(), self._report))
        self.tie_button.add_class("nbw-cmp-pick")
        self.pick_bar = w.HBox([*self.buttons, self.tie_button], layout=w.Layout(
            width="100%", flex_flow="row wrap", margin="2px 0 4px 0"))
        self.pick_bar.add_class("nbw-cmp-pickbar")
        self.diff = w.HTML(diff_html(self.sides, edit=edit), layout=w.Layout(width="100%"))
        recorded = " (recorded in the history)" if self._ledger.recordable else ""
        self.status = w.HTML(pick_status_html(f"Pick the better image{recorded}.",
                                              "nbw-muted"))

        self.slider = w.IntSlider(value=50, min=0, max=100, step=1,
                                  description=f"{self.sides[0].label[:20]} shown",
                                  readout_format="d", continuous_update=True,
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="100%", max_width=f"{THUMB_SIDE}px"))
        self.divider = Divider(layout=w.Layout(width="100%"))
        traitlets.link((self.slider, "value"), (self.divider, "value"))
        self.slider_box = w.VBox([self.divider, self.slider],
                                 layout=w.Layout(width="100%", display="none",
                                                 align_items="center"))
        self.heat = w.HTML(layout=w.Layout(width="100%"))
        self.heat_box = w.VBox([self.heat], layout=w.Layout(width="100%", display="none"))
        style = w.HTML(comparison_styles(), layout=w.Layout(display="none"))
        children: list[w.Widget] = [style, self.title]
        self.view_toggle: w.ToggleButtons | None = None
        if len(self.sides) == 2:
            self.view_toggle = w.ToggleButtons(options=list(_VIEWS), value="side",
                                               tooltips=list(_VIEW_TIPS),
                                               style={"button_width": "auto"})
            self.view_toggle.observe(self._on_view, names="value")
            children.append(self.view_toggle)
        children += [self.cards_box, self.slider_box, self.heat_box, self.pick_bar, self.diff,
                     self.status, ViewSync(self)]
        super().__init__(children, layout=w.Layout(width="100%", max_width="100%",
                                                   overflow="hidden"))
        self.add_class("nbw-cmp")
        self.static = StaticRendition(self, self.static_html)
        """The copy of the comparison a saved notebook shows (:meth:`static_html`)."""

    def _make_thumb(self, side: Side) -> None:
        uri: str | None = None
        problem = side.problem
        size: tuple[int, int] | None = None
        if side.source is not None and problem is None:
            try:
                if isinstance(side.source, bytes) and side.kind == "record":
                    uri = data_uri(side.source)  # the history's stored JPEG thumbnail
                else:
                    uri = thumbnail_data_uri(side.source, max_side=THUMB_SIDE)
                size = _jpeg_size(uri)
            except Exception as exc:  # a card that says why, never a traceback
                problem = f"Could not show this image: {describe_error(exc)}"
        self._thumbs.append(uri)
        self._problems.append(problem)
        self._aspect.append(size)

    # --- views ---------------------------------------------------------------------------

    @property
    def view(self) -> str:
        """``"side"`` (side by side), ``"slider"`` or ``"difference"`` (two images only)."""
        return self.view_toggle.value if self.view_toggle is not None else "side"

    @view.setter
    def view(self, value: str) -> None:
        names = tuple(v for _, v in _VIEWS)
        if self.view_toggle is None:
            if value != "side":
                raise InvalidParameterError("view", value, ("side",),
                                            hint="the slider and difference views for exactly "
                                                 "two images")
            return
        if value not in names:
            raise InvalidParameterError("view", value, names)
        self.view_toggle.value = value

    def _on_view(self, change: dict[str, Any]) -> None:
        view = change["new"]
        if view == "slider" and not self.divider.html:  # built on first use: no duplicates
            a, b = self.sides
            self.divider.html = stage_html(
                a, b, self._thumbs[0], self._thumbs[1],
                aspect=self._aspect[1] or self._aspect[0] or (1, 1), max_side=THUMB_SIDE,
                value=int(self.slider.value))
        if view == "difference":
            self._show_difference()
        self.slider_box.layout.display = "flex" if view == "slider" else "none"
        self.heat_box.layout.display = "flex" if view == "difference" else "none"
        self.cards_box.layout.display = "grid" if view == "side" else "none"

    @property
    def clip_style(self) -> str:
        """The CSS applied to the top (first) image in the slider view."""
        return clip_css(int(self.slider.value))

    # --- the difference ------------------------------------------------------------------

    def _difference_future(self) -> concurrent.futures.Future[Difference]:
        with self._lock:
            if self._difference is None:
                if len(self.sides) != 2:
                    raise InvalidParameterError("view", "difference", None,
                                                hint="the difference of exactly two images")
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=f"nbw-{self.id}-difference")
                a, b = self.sides
                missing = next((s for s in self.sides if s.source is None or s.problem), None)
                if missing is not None:
                    future: concurrent.futures.Future[Difference] = concurrent.futures.Future()
                    future.set_exception(InvalidParameterError(
                        "images", missing.label, None,
                        hint=f"two images; {missing.label} has none"))
                    self._difference = future
                else:
                    self._difference = self._pool.submit(
                        difference, a.source, b.source, labels=(a.label, b.label))
            return self._difference

    @property
    def difference(self) -> Difference:
        """Where the two images differ (computed once, on first use; waits for it)."""
        return self._difference_future().result()

    def _show_difference(self) -> None:
        future = self._difference_future()
        if not future.done():
            self._painter.paint(("heat",), (0,), lambda: setattr(
                self.heat, "value", difference_waiting_html("Computing the difference…")))
        future.add_done_callback(self._paint_difference)

    def _paint_difference(self, future: concurrent.futures.Future[Difference]) -> None:
        a, b = self.sides
        try:
            found = future.result()
            markup = difference_html(a, b, data_uri(found.heatmap), share=found.share,
                                     mean=found.mean, size=found.size, note=found.note,
                                     threshold=THRESHOLD)
        except Exception as exc:  # shown in the view, never a traceback
            markup = difference_waiting_html(
                f"Could not compute the difference: {describe_error(exc)}", error=True)
        self._painter.paint(("heat",), (1,), lambda: setattr(self.heat, "value", markup))
        self.static.update()

    # --- picking -------------------------------------------------------------------------

    @property
    def picked(self) -> str | None:
        """The label of the picked image, ``"tie"``, or ``None``."""
        if self._picked is None:
            return None
        if self._picked == TIE:
            return TIE
        return self.sides[int(self._picked)].label

    @property
    def winner(self) -> Side | None:
        """The picked :class:`Side` (``None`` before a pick, or for a tie)."""
        return self.sides[self._picked] if isinstance(self._picked, int) else None

    def _index(self, which: int | str) -> int:
        if isinstance(which, bool):
            raise TypeError("pick() takes an image's position or label, not a bool")
        if isinstance(which, int):
            n = len(self.sides)
            if not -n <= which < n:
                raise InvalidParameterError("pick", which, range(n))
            return which % n
        labels = [s.label for s in self.sides]
        if which in labels:
            return labels.index(which)
        raise InvalidParameterError("pick", which, [*labels, TIE])

    def _report(self, exc: BaseException) -> None:
        """A click never loses its error: it goes to the status line."""
        with self._lock:
            self._revision += 1
            revision = self._revision
        self._paint_status(revision, f"Could not record the pick: {describe_error(exc)}",
                           "nbw-warn")

    def pick(self, which: int | str) -> str:
        """Pick an image (position or label; ``"tie"`` for a tie) as the better one; returns
        the status text.

        The winner's history record is marked favourite with a note, and votes are
        recorded (see :mod:`.picks`); a previous pick is undone first. Errors of the history
        are reported, not raised.
        """
        labels = [s.label for s in self.sides]
        if which == TIE and TIE not in labels:
            return self.tie()
        i = self._index(which)
        with self._lock:
            previous, self._picked = self._picked, i
            self._revision += 1
            revision = self._revision
            if previous == i:
                text, css = f"{self.sides[i].label} is already picked.", "nbw-ok"
            else:
                text, css = self._ledger.pick(i)
        self._paint_pick(revision, i)
        self._paint_status(revision, text, css)
        self.static.update()
        return text

    def tie(self) -> str:
        """Call it a tie (no image is better): tie votes are recorded; returns the status."""
        with self._lock:
            previous, self._picked = self._picked, TIE
            self._revision += 1
            revision = self._revision
            if previous == TIE:
                text, css = "Already a tie.", "nbw-ok"
            else:
                text, css = self._ledger.tie()
        self._paint_pick(revision, TIE)
        self._paint_status(revision, text, css)
        self.static.update()
        return text

    def _paint_pick(self, revision: int, chosen: int | str) -> None:
        def apply() -> None:
            for k, (button, card) in enumerate(zip(self.buttons, self.cards, strict=True)):
                label = self.sides[k].label
                if k == chosen:
                    button.description = f"✓ {label} picked"[:60]
                    button.button_style = "success"
                    card.add_class("nbw-picked")
                else:
                    button.description = f"{label} is better"[:60]
                    button.button_style = ""
                    card.remove_class("nbw-picked")
            tie = chosen == TIE
            self.tie_button.description = "✓ Tie" if tie else "Tie"
            self.tie_button.button_style = "success" if tie else ""

        self._painter.paint(("pick",), (revision,), apply)

    def _paint_status(self, revision: int, text: str, css: str) -> None:
        markup = pick_status_html(text, css)
        self._painter.paint(("status",), (revision,),
                            lambda: setattr(self.status, "value", markup))

    def _linked(self, i: int) -> Side:
        """Side ``i`` with a link that lasts (its full-size copy beside the notebook)."""
        return dataclasses.replace(self.sides[i], link=self._links[i])

    def static_html(self) -> str:
        """The comparison as it shows now (its view, pick and status), as a saved notebook
        shows it: from the same render functions as the live view, thumbnails linked to
        full-size copies that outlive the kernel."""
        return static_frame(self.static.view_id, "cmp", self._view_html(),
                            styles=static_styles("frame", "compare"))

    def _view_html(self) -> str:
        view = self.view
        if view == "slider" and self.divider.html:
            a, b = self.sides
            body = stage_html(a, b, self._thumbs[0], self._thumbs[1],
                              aspect=self._aspect[1] or self._aspect[0] or (1, 1),
                              max_side=THUMB_SIDE, value=int(self.slider.value))
        elif view == "difference":
            body = self.heat.value
        else:
            first = self.sides[0].params
            cards = [card_html(self._linked(i), self._thumbs[i], self._problems[i],
                               first=first if i else None) for i in range(len(self.sides))]
            picked = self._picked if isinstance(self._picked, int) else None
            body = cards_html(cards, picked=picked, width=296)
        return f"{self.title.value}{body}{self.status.value}{self.diff.value}"

    def to_html(self, path: str | os.PathLike[str], *, embed: bool = False) -> Path:
        """Write the comparison as one HTML page readable offline: thumbnails in the page,
        full-size copies in a folder beside it (all in the page with ``embed=True``), the
        prompts, parameters, prompt changes and the pick (see
        :func:`~nanobanana_widgets.widgets.compare.report.write_comparison_report`);
        returns its path."""
        labels = ", ".join(s.label for s in self.sides)
        picked = self._picked if isinstance(self._picked, int) else None
        return write_comparison_report(
            self.sides, self._thumbs, self._problems, picked=picked,
            header=self.title.value, diff=self.diff.value, status=self.status.value,
            title=f"Comparison {self.id}: {labels}", path=path, embed=embed)

    def close(self) -> None:
        """Close the widgets and stop the background worker."""
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        close_view(self, super().close)

    def __repr__(self) -> str:
        labels = ", ".join(s.label for s in self.sides)
        picked = f", picked={self.picked!r}" if self._picked is not None else ""
        return f"<Comparison {self.id} of {labels}{picked}>"


def compare(a: Any, b: Any = None, *more: Any, labels: Iterable[str] | None = None,
            history: History | None = None) -> Comparison:
    """Compare 2 to 6 images side by side, with a prompt diff and, for two, a before/after
    slider and a difference heat map.

    ``a``, ``b``, ... are history records, results (their first image), generated images,
    PIL images, arrays, bytes or paths (a list or history view as the only argument works
    too). One edit record or result alone compares its input with its output. ``labels``
    name the images (default ``A``, ``B``, ...; ``input``/``output`` for an edit).
    ``history`` is where picks are recorded (default: the package's default history).
    """
    items = expand([a] if b is None and not more else [a, b, *more])
    given = [str(x) for x in labels] if labels is not None else None
    if len(items) == 1:
        names = given or ["input", "output"]
        if len(names) != 2:
            raise InvalidParameterError("labels", given, None,
                                        hint="two labels for an edit (input, output)")
        sides = edit_sides(items[0], names)
        if sides is None:
            record = record_of_edit(items[0], history)
            sides = edit_sides(record, names) if record is not None else None
        if sides is None:
            raise InvalidParameterError(
                "images", "one image", None,
                hint="two or more images, or one edit record/result (its input is compared "
                "with its output)")
        return Comparison(sides, history=history, edit=True)
    names = given or default_labels(len(items))
    if len(names) != len(items):
        raise InvalidParameterError("labels", given, None,
                                    hint=f"{len(items)} labels, one per image")
    if len(set(names)) != len(names):
        raise InvalidParameterError("labels", given, None, hint="labels that differ")
    return Comparison([side_of(x, n) for x, n in zip(items, names, strict=True)],
                      history=history)
