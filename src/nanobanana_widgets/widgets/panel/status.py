"""The panel's status area: every message kept, the newest three shown.

Messages arrive from any thread (clicks, runs, uploads, saves). Each one takes the next
revision under the area's lock with the messages it shows, and is painted through the
panel's :class:`~nanobanana_widgets.widgets._ui.Painter`, so a thread that was slow to
paint can never put back an older set of messages.
"""

from __future__ import annotations

import threading

import ipywidgets as w

from nanobanana_widgets.render.panel import messages_html
from nanobanana_widgets.widgets._ui import Painter
from nanobanana_widgets.widgets.panel.runs import Level

__all__ = ["Level", "StatusArea"]

MAX_SHOWN = 3
MAX_KEPT = 200


class StatusArea:
    """``notify(text, level)`` from any thread; ``widget`` shows the newest messages."""

    KEY = ("status",)

    def __init__(self, painter: Painter) -> None:
        self._painter = painter
        self._lock = threading.Lock()
        self._messages: list[tuple[Level, str]] = []
        self._revision = 0
        self.widget = w.HTML(layout=w.Layout(width="100%"))
        self.widget.add_class("nbw-status")

    @property
    def messages(self) -> list[str]:
        """The messages so far, oldest first, as plain text."""
        with self._lock:
            return [text for _level, text in self._messages]

    def notify(self, text: str, level: Level = "info") -> None:
        """Add a message (plain text; it is escaped) and show it."""
        with self._lock:
            self._messages.append((level, text))
            del self._messages[:-MAX_KEPT]
            self._revision += 1
            revision = self._revision
            shown = self._messages[-MAX_SHOWN:]
        markup = messages_html(shown)
        self._painter.paint(self.KEY, (revision,),
                            lambda: setattr(self.widget, "value", markup))
