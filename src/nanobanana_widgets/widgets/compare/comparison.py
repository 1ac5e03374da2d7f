"""A/B comparison of images: side by side, a word-level prompt diff, a before/after slider
and a pick recorded in the history.

::

    compare(h[-2], h[-1])                 # two history records
    compare(result_a, result_b, result_c) # results (their first image), generated images,
                                          # PIL images, arrays, bytes or paths
    compare(edit_result)                  # one edit: its input against its output

``compare`` returns a :class:`Comparison`, an ``ipywidgets.VBox`` (make it the last expression
of a cell; it works in Voilà). Each image is shown with its prompt and parameters (those that
differ from the first image's are emphasised), and the prompts are diffed word by word
against the first one (``<ins>``/``<del>`` marks). For exactly two images a *Slider* view
stacks them and an ``IntSlider`` reveals the first over the second (a CSS ``clip-path``
rule driven by the slider's value; no JavaScript). A button per image ("A is better")
records the pick.

**What a pick records.** The winner's history record is marked favourite and gets one note
line, ``Picked in comparison <id> over #12 (B).``; its rating is left alone. Picking
another image undoes both (the favourite flag only if the comparison set it). Images that
are not recorded requests (files, PIL images, ...) can be picked, but nothing is written.
Records are found by task id in ``history`` (default: the package's default history).

What is compared is :mod:`.sides`'; the HTML is :mod:`nanobanana_widgets.render.compare`'s.
A pick may come from any thread: the buttons, cards and status it shows are painted through
a :class:`~nanobanana_widgets.widgets._ui.Painter` at the pick's number, so the view never
shows an earlier pick than the one recorded last. The widget state holds only JPEG
thumbnails of at most 512 px, and every user-supplied string is escaped.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w
from PIL import Image

from nanobanana_widgets.render.compare import (
    card_html,
    clip_css,
    clip_rule_html,
    comparison_styles,
    comparison_title_html,
    diff_html,
    pick_status_html,
    prompt_diff_html,
    stage_html,
    word_diff,
)
from nanobanana_widgets.render.results import data_uri, thumbnail_data_uri
from nanobanana_widgets.render.static import cards_html, static_frame, static_styles
from nanobanana_widgets.service.errors import InvalidParameterError, NanoBananaError, describe_error
from nanobanana_widgets.service.text import parse_data_uri
from nanobanana_widgets.session import default_history
from nanobanana_widgets.store import History, Pick, Record
from nanobanana_widgets.widgets._static import StaticRendition, source_link
from nanobanana_widgets.widgets._ui import Painter, ViewSync, guarded
from nanobanana_widgets.widgets.compare.report import write_comparison_report
from nanobanana_widgets.widgets.compare.sides import (
    Side,
    default_labels,
    edit_sides,
    expand,
    record_of_edit,
    side_of,
)

__all__ = ["THUMB_SIDE", "Comparison", "Side", "compare", "prompt_diff_html", "word_diff"]

THUMB_SIDE = 512
"""Longest side, in pixels, of the JPEG thumbnails a comparison keeps in widget state."""


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
    """The widget :func:`compare` returns: cards, prompt diff, slider (two images), pick buttons.

    From Python: ``sides`` (what is compared), ``pick(i_or_label)``, ``picked`` (the label or
    ``None``), ``view`` (``"side"`` or ``"slider"``), ``slider`` (the ``IntSlider``, the
    percentage of the first image revealed), ``clip_style`` (the CSS it drives), ``buttons``,
    ``status`` and ``id``.
    """

    def __init__(self, sides: Sequence[Side], *, history: History | None = None,
                 edit: bool = False) -> None:
        if len(sides) < 2:
            raise InvalidParameterError("images", f"{len(sides)} image(s)", None,
                                        hint="two or more images, or one edit record/result")
        self.id = "c-" + uuid.uuid4().hex[:8]
        self.sides: tuple[Side, ...] = tuple(sides)
        self.edit = edit
        self._history = history
        self._lock = threading.Lock()
        self._painter = Painter()
        self._revision = 0
        self._picked: int | None = None
        self._picks: list[Pick] = []  # recorded picks, taken back when the pick changes
        self._thumbs: list[str | None] = []
        self._problems: list[str | None] = []
        self._aspect: list[tuple[int, int] | None] = []
        self._links: list[str | None] = []
        for side in self.sides:
            self._make_thumb(side)
            self._links.append(source_link(side.source, side.link))
        self._uid = f"nbw-cmp-{uuid.uuid4().hex[:10]}"

        self.title = w.HTML(comparison_title_html(self.sides, self.id, edit=edit))
        self.cards: list[w.VBox] = []
        self.buttons: list[w.Button] = []
        first = self.sides[0].params
        for i, side in enumerate(self.sides):
            body = w.HTML(card_html(self._linked(i), self._thumbs[i], self._problems[i],
                                    first=first if i else None),
                          layout=w.Layout(width="100%"))
            button = w.Button(description=f"{side.label} is better"[:60],
                              tooltip=f"Pick {side.label} as the better image",
                              layout=w.Layout(width="auto", max_width="100%"))
            button.on_click(guarded(lambda _b, i=i: self.pick(i), self._report))
            card = w.VBox([body, button], layout=w.Layout(
                flex="1 1 200px", min_width="0", max_width=f"{THUMB_SIDE + 16}px",
                margin="0 8px 8px 0"))
            card.add_class("nbw-cmp-card")
            self.cards.append(card)
            self.buttons.append(button)
        self.cards_box = w.Box(self.cards, layout=w.Layout(
            display="flex", flex_flow="row wrap", align_items="flex-start", width="100%"))
        self.diff = w.HTML(diff_html(self.sides, edit=edit), layout=w.Layout(width="100%"))
        recorded = " (recorded in the history)" if self._any_recordable() else ""
        self.status = w.HTML(pick_status_html(f"Pick the better image{recorded}.",
                                              "nbw-muted"))

        self.slider = w.IntSlider(value=50, min=0, max=100, step=1,
                                  description=f"{self.sides[0].label[:20]} shown",
                                  readout_format="d", continuous_update=True,
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="100%", max_width=f"{THUMB_SIDE}px"))
        self._clip = w.HTML(clip_rule_html(self._uid, 50),
                            layout=w.Layout(width="0px", height="0px"))
        self._stage = w.HTML(layout=w.Layout(width="100%"))
        self.slider_box = w.VBox([self._clip, self._stage, self.slider],
                                 layout=w.Layout(width="100%", display="none"))
        self.slider.observe(self._on_slide, names="value")
        style = w.HTML(comparison_styles(), layout=w.Layout(display="none"))
        children: list[w.Widget] = [style, self.title]
        self.view_toggle: w.ToggleButtons | None = None
        if len(self.sides) == 2:
            self.view_toggle = w.ToggleButtons(
                options=[("Side by side", "side"), ("Slider", "slider")], value="side",
                tooltips=["Both images next to each other",
                          "One image over the other; the slider reveals the first"],
                style={"button_width": "auto"})
            self.view_toggle.observe(self._on_view, names="value")
            children.append(self.view_toggle)
        children += [self.cards_box, self.slider_box, self.diff, self.status, ViewSync(self)]
        super().__init__(children, layout=w.Layout(width="100%", max_width="100%",
                                                   overflow="hidden"))
        self.add_class("nbw-cmp")
        self.add_class(self._uid)
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
        """``"side"`` (side by side) or ``"slider"`` (two images only)."""
        return self.view_toggle.value if self.view_toggle is not None else "side"

    @view.setter
    def view(self, value: str) -> None:
        if self.view_toggle is None:
            if value != "side":
                raise InvalidParameterError("view", value, ("side",),
                                            hint="the slider view for exactly two images")
            return
        if value not in ("side", "slider"):
            raise InvalidParameterError("view", value, ("side", "slider"))
        self.view_toggle.value = value

    def _on_view(self, change: dict[str, Any]) -> None:
        slider = change["new"] == "slider"
        if slider and not self._stage.value:  # built on first use: no duplicate state
            a, b = self.sides
            self._stage.value = stage_html(a, b, self._thumbs[0], self._thumbs[1],
                                           aspect=self._aspect[1] or self._aspect[0] or (1, 1),
                                           max_side=THUMB_SIDE)
        self.slider_box.layout.display = "flex" if slider else "none"
        self.cards_box.layout.display = "none" if slider else "flex"

    def _on_slide(self, change: dict[str, Any]) -> None:
        self._clip.value = clip_rule_html(self._uid, int(change["new"]))

    @property
    def clip_style(self) -> str:
        """The CSS applied to the top (first) image in the slider view."""
        return clip_css(int(self.slider.value))

    # --- picking -------------------------------------------------------------------------

    @property
    def picked(self) -> str | None:
        """The label of the picked image, or ``None``."""
        return None if self._picked is None else self.sides[self._picked].label

    @property
    def winner(self) -> Side | None:
        """The picked :class:`Side`, or ``None``."""
        return None if self._picked is None else self.sides[self._picked]

    def _any_recordable(self) -> bool:
        return any(s.recordable for s in self.sides)

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
        raise InvalidParameterError("pick", which, labels)

    def _report(self, exc: BaseException) -> None:
        """A click never loses its error: it goes to the status line."""
        with self._lock:
            self._revision += 1
            revision = self._revision
        self._paint_status(revision, f"Could not record the pick: {describe_error(exc)}",
                           "nbw-warn")

    def pick(self, which: int | str) -> str:
        """Pick an image (position or label) as the better one; returns the status text.

        The winner's history record is marked favourite with a note (see the module docs);
        a previous pick is undone first. Errors of the history are reported, not raised.
        """
        i = self._index(which)
        with self._lock:
            previous, self._picked = self._picked, i
            self._revision += 1
            revision = self._revision
            text, css = self._record(i, previous)
        self._paint_pick(revision, i)
        self._paint_status(revision, text, css)
        return text

    def _paint_pick(self, revision: int, i: int) -> None:
        def apply() -> None:
            for k, (button, card) in enumerate(zip(self.buttons, self.cards, strict=True)):
                label = self.sides[k].label
                if k == i:
                    button.description = f"✓ {label} picked"[:60]
                    button.button_style = "success"
                    card.add_class("nbw-picked")
                else:
                    button.description = f"{label} is better"[:60]
                    button.button_style = ""
                    card.remove_class("nbw-picked")

        self._painter.paint(("pick",), (revision,), apply)

    def _paint_status(self, revision: int, text: str, css: str) -> None:
        markup = pick_status_html(text, css)
        self._painter.paint(("status",), (revision,),
                            lambda: setattr(self.status, "value", markup))
        self.static.update()

    def _linked(self, i: int) -> Side:
        """Side ``i`` with a link that lasts (its full-size copy beside the notebook)."""
        return dataclasses.replace(self.sides[i], link=self._links[i])

    def static_html(self) -> str:
        """The comparison as a saved notebook shows it: the images side by side with their
        labels, prompts and parameters, the prompt changes and the pick."""
        first = self.sides[0].params
        cards = [card_html(self._linked(i), self._thumbs[i], self._problems[i],
                           first=first if i else None) for i in range(len(self.sides))]
        body = (self.title.value + cards_html(cards, picked=self._picked, width=296)
                + self.diff.value + self.status.value)
        return static_frame(self.static.view_id, "cmp", body,
                            styles=static_styles("frame", "compare"))

    def to_html(self, path: str | os.PathLike[str], *, embed: bool = False) -> Path:
        """Write the comparison as one HTML page readable offline (see
        :func:`~nanobanana_widgets.widgets.compare.report.write_comparison_report`);
        returns its path."""
        labels = ", ".join(s.label for s in self.sides)
        return write_comparison_report(
            self.sides, self._thumbs, self._problems, picked=self._picked,
            header=self.title.value, diff=self.diff.value, status=self.status.value,
            title=f"Comparison {self.id}: {labels}", path=path, embed=embed)

    def _history_for_pick(self) -> History | None:
        if self._history is not None:
            return self._history
        if not self._any_recordable():
            return None
        return default_history()

    def _find(self, history: History, side: Side) -> Record | None:
        if side.task_id is None and side.record_id is None:
            return None
        if self._history is None:  # the default history: only what a task id names
            return history.find(task_id=side.task_id) if side.task_id else None
        return history.find(task_id=side.task_id, record_id=side.record_id)

    def _record(self, i: int, previous: int | None) -> tuple[str, str]:
        side = self.sides[i]
        label = side.label
        if previous == i:
            return f"{label} is already picked.", "nbw-ok"
        history = self._history_for_pick()
        if history is None:
            return (f"{label} picked (not recorded: these images are not requests in a "
                    "history).", "nbw-ok")
        try:
            while self._picks:  # undo the previous pick first
                history.withdraw_pick(self._picks.pop())
            rec = self._find(history, side)
            if rec is None:
                return (f"{label} picked (not recorded: this image is not a request in the "
                        f"history at {history.folder}).", "nbw-ok")
            others = []
            for k, s in enumerate(self.sides):
                if k == i:
                    continue
                other = self._find(history, s) if s.recordable else None
                others.append(f"#{other.id} ({s.label})" if other is not None else s.label)
            self._picks.append(history.record_pick(self.id, rec, others))
        except (NanoBananaError, KeyError, OSError, ValueError) as exc:
            return f"{label} picked, but the history could not record it: " \
                   f"{describe_error(exc)}", "nbw-warn"
        return (f"{label} picked: recorded in the history (record #{rec.id} marked favourite, "
                "with a note).", "nbw-ok")

    def __repr__(self) -> str:
        labels = ", ".join(s.label for s in self.sides)
        picked = f", picked={self.picked!r}" if self._picked is not None else ""
        return f"<Comparison {self.id} of {labels}{picked}>"


def compare(a: Any, b: Any = None, *more: Any, labels: Iterable[str] | None = None,
            history: History | None = None) -> Comparison:
    """Compare images side by side, with a prompt diff and, for two, a before/after slider.

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
