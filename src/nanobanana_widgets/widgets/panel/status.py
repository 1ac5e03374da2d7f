"""The panel's status area: the current state, not a log.

Up to three messages are shown, the newest first, each with a "×" that dismisses it. A
message may name its ``cause`` (what was wrong: the prompt, the inputs, ...): it folds away
when the panel sees that cause fixed (:meth:`StatusArea.resolve`), and every message shown
folds away when the next run starts (:meth:`StatusArea.fold_all`). Folded messages stay
one click away under "N earlier messages"; ``messages`` keeps every text for Python.

Messages arrive from any thread (clicks, runs, uploads, saves). Each change takes the next
revision under the area's lock with what it shows, and is painted through the panel's
:class:`~nanobanana_widgets.widgets._ui.Painter`, so a thread that was slow to paint can
never put back an older set of messages. A message's row keeps its widgets while it is
shown and closes them when it goes (the rows share their layout and style models).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

from nanobanana_widgets.render.panel import folded_messages_html, message_html
from nanobanana_widgets.widgets._ui import Painter, close_deep, guarded
from nanobanana_widgets.widgets.panel.runs import Level

__all__ = ["Level", "Message", "StatusArea"]

MAX_SHOWN = 3
"""Messages shown up front; older ones fold away."""
MAX_FOLDED = 30
"""Folded messages listed under "earlier messages" (the newest ones)."""
MAX_KEPT = 200
"""Texts kept for :attr:`StatusArea.messages`."""


@dataclass
class Message:
    """One status message: its words, how it reads, what it is about, where it is."""

    id: int
    level: Level
    text: str
    cause: str | None = None
    state: str = "shown"
    """``"shown"`` (up front), ``"folded"`` (under "earlier messages") or ``"dismissed"``."""


class StatusArea:
    """``notify(text, level, cause=None)`` from any thread; ``widget`` shows the current
    messages with a dismiss button each, and the folded ones under a disclosure."""

    KEY = ("status",)

    def __init__(self, painter: Painter) -> None:
        self._painter = painter
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._log: list[Message] = []
        self._revision = 0
        self._rows: dict[int, w.HBox] = {}
        self._row_layout = w.Layout(width="100%", align_items="flex-start")
        self._text_layout = w.Layout(flex="1 1 auto", min_width="0")
        self._button_layout = w.Layout(width="auto", flex="0 0 auto")
        self._html_style = HTMLStyle()
        self._button_style = w.ButtonStyle()
        self._shared = (self._row_layout, self._text_layout, self._button_layout,
                        self._html_style, self._button_style)
        self.folded = w.HTML(layout=w.Layout(width="100%"))
        self.folded.add_class("nbw-folded")
        self.widget = w.VBox([self.folded], layout=w.Layout(width="100%"))
        self.widget.add_class("nbw-status")

    # --- reading -----------------------------------------------------------------------

    @property
    def messages(self) -> list[str]:
        """Every message so far (the newest :data:`MAX_KEPT`), oldest first, as plain text."""
        with self._lock:
            return [m.text for m in self._log]

    @property
    def shown(self) -> list[str]:
        """The messages shown up front, newest first, as plain text."""
        with self._lock:
            return [m.text for m in reversed(self._log) if m.state == "shown"]

    @property
    def folded_texts(self) -> list[str]:
        """The messages folded under "earlier messages", newest first."""
        with self._lock:
            return [m.text for m in reversed(self._log) if m.state == "folded"]

    def row(self, text: str) -> w.HBox:
        """The row showing the message ``text`` (its HTML and its dismiss button)."""
        with self._lock:
            for m in reversed(self._log):
                if m.text == text and m.id in self._rows:
                    return self._rows[m.id]
        raise KeyError(f"no message {text!r} is shown")

    # --- changing ----------------------------------------------------------------------

    def notify(self, text: str, level: Level = "info", cause: str | None = None) -> int:
        """Show a message (plain text; it is escaped); returns its id. ``cause`` names what
        it is about, for :meth:`resolve`."""
        with self._lock:
            message = Message(next(self._ids), level, text, cause)
            self._log.append(message)
            del self._log[:-MAX_KEPT]
            shown = [m for m in self._log if m.state == "shown"]
            for old in shown[:-MAX_SHOWN]:
                old.state = "folded"
        self._paint()
        return message.id

    def resolve(self, still: Callable[[str], bool]) -> None:
        """Fold every message shown whose cause is no longer a problem (``still(cause)``
        is false)."""
        self._fold(lambda m: m.cause is not None and not still(m.cause))

    def fold_all(self) -> None:
        """Fold every message shown (a new run starts: what they said is past)."""
        self._fold(lambda m: True)

    def dismiss(self, message_id: int) -> None:
        """Take a message away (it stays in :attr:`messages`)."""
        self._fold(lambda m: m.id == message_id, state="dismissed")

    def _fold(self, which: Callable[[Message], bool], state: str = "folded") -> None:
        changed = False
        with self._lock:
            for m in self._log:
                if m.state == "shown" and which(m):
                    m.state = state
                    changed = True
        if changed:
            self._paint()

    def static_html(self) -> str:
        """The messages as a saved notebook shows them: those shown now (no buttons), then
        the earlier ones folded under their disclosure."""
        with self._lock:
            shown = [(m.level, m.text) for m in reversed(self._log) if m.state == "shown"]
            folded = [(m.level, m.text) for m in reversed(self._log)
                      if m.state == "folded"][:MAX_FOLDED]
        return ("".join(message_html(level, text) for level, text in shown)
                + folded_messages_html(folded))

    # --- painting ----------------------------------------------------------------------

    def _paint(self) -> None:
        with self._lock:
            self._revision += 1
            revision = self._revision
            shown = [m for m in reversed(self._log) if m.state == "shown"]
            folded = [(m.level, m.text) for m in reversed(self._log)
                      if m.state == "folded"][:MAX_FOLDED]
            rows = [self._rows.get(m.id) or self._make_row(m) for m in shown]
            keep = {m.id for m in shown}
            gone = [row for mid, row in self._rows.items() if mid not in keep]
            self._rows = {m.id: row for m, row in zip(shown, rows, strict=True)}
        markup = folded_messages_html(folded)
        children = (*rows, self.folded)

        def apply() -> None:
            self.widget.children = children
            self.folded.value = markup

        self._painter.paint(self.KEY, (revision,), apply)
        for row in gone:
            close_deep(row, keep=self._shared)

    def _make_row(self, message: Message) -> w.HBox:
        text = w.HTML(message_html(message.level, message.text), layout=self._text_layout,
                      style=self._html_style)
        dismiss = w.Button(icon="times", tooltip="Dismiss this message",
                           layout=self._button_layout, style=self._button_style)
        dismiss.add_class("nbw-dismiss")
        dismiss.on_click(guarded(lambda _b: self.dismiss(message.id), lambda _e: None))
        row = w.HBox([text, dismiss], layout=self._row_layout)
        row.add_class("nbw-msg-row")
        return row
