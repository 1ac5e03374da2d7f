"""The before/after stage of a two-image comparison, as a small ``anywidget``.

Its ``html`` is the stage that :func:`nanobanana_widgets.render.compare.stage_html` makes
(the two images stacked, the divider, the labels); its ``value`` is how much of the first
image shows, in percent. The front end (``static/divider.js``, no build step) lets a person
drag the divider on the image itself (mouse, pen or touch) and move it with the arrow keys
when the stage is focused; every move comes back here as ``value``, and a value set from
Python moves the divider.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["Divider"]

_STATIC = Path(__file__).parents[1] / "static"


class Divider(anywidget.AnyWidget):
    """The draggable slider stage: ``html`` (the stage) and ``value`` (0 to 100)."""

    _esm = (_STATIC / "divider.js").read_text(encoding="utf-8")

    html = traitlets.Unicode("", help="the stage's HTML (render.compare.stage_html)").tag(
        sync=True)
    value = traitlets.Int(50, help="percent of the first image shown (0 to 100)").tag(
        sync=True, page_owned=True)  # dragged in the page: never sent back over it

    @traitlets.validate("value")
    def _clamp(self, proposal: dict[str, Any]) -> int:
        return max(0, min(100, int(proposal["value"])))

    def __repr__(self) -> str:
        return f"Divider(value={self.value})"
