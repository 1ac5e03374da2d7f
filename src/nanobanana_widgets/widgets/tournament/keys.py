"""The tournament's keyboard and clicks: a tiny ``anywidget`` (``static/vote_keys.js``).

Placed inside a tournament's view, it makes the view focusable and, while the focus is in
it, turns the keys 1 / ← (left), 2 / → (right), = (tie), s (skip) and u (undo) into votes,
as well as clicks on the images and on the vote buttons. Each message names the pair shown
(``{"event": "vote", "outcome": "left", "pair": 7}``), so a vote for a pair that is no
longer shown is refused. It also ships the tournament's stylesheet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from nanobanana_widgets.render.styles import css

__all__ = ["VoteKeys"]

_STATIC = Path(__file__).parents[1] / "static"
_log = logging.getLogger(__name__)


class VoteKeys(anywidget.AnyWidget):
    """Invisible: keys and clicks inside ``.{scope}`` become ``on_vote(outcome, pair)``."""

    _esm = (_STATIC / "vote_keys.js").read_text(encoding="utf-8")
    _css = css("tournament") + css("rankings")

    scope = traitlets.Unicode("", help="CSS class unique to the tournament's view").tag(
        sync=True)

    def __init__(self, on_vote: Callable[[str, int | None], object], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_vote = on_vote
        self.on_msg(self._handle_message)

    def _handle_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("event") != "vote":
            return
        outcome = content.get("outcome")
        pair = content.get("pair")
        if not isinstance(outcome, str):
            return
        try:
            self._on_vote(outcome, pair if isinstance(pair, int) else None)
        except Exception:  # the tournament reports its own errors; never lose one here
            _log.exception("a vote from the keyboard failed")

    def __repr__(self) -> str:
        return f"VoteKeys(scope={self.scope!r})"
