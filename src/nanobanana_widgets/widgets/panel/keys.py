"""The front-end pieces ipywidgets lacks: Ctrl/Cmd+Enter, dropped and pasted images, and
copying an id.

A tiny ``anywidget`` (a plain ES module in ``static/``, no build step) placed inside a
:class:`~nanobanana_widgets.panel.PromptPanel`. It sends ``{"event": "submit"}`` when the
shortcut is pressed in that panel's prompt textarea; Python handles it like a click. Just
before a click on Generate it sends ``{"event": "prompt"}`` with the text in the box. An
image file dropped on the panel, or pasted into the prompt box or onto the inputs area,
arrives as ``{"event": "file", "name": ...}`` with its bytes as the message's buffer (one
message per file; a file over 40 MB as ``{"event": "file-refused"}``). Copying an id
happens in the page alone. It also ships the panel's stylesheet (``static/panel.css``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from nanobanana_widgets.render.styles import css

__all__ = ["SubmitKeys"]

_STATIC = Path(__file__).parents[1] / "static"
_log = logging.getLogger(__name__)


class SubmitKeys(anywidget.AnyWidget):
    """Invisible widget: Ctrl/Cmd+Enter inside ``.{panel_class} .nbw-prompt`` submits.

    It also sends the prompt box's text just before a click on the panel's ``.nbw-generate``
    button, so the click never runs with a prompt that has not reached Python yet.
    """

    _esm = (_STATIC / "keys.js").read_text(encoding="utf-8")
    _css = css("panel")

    panel_class = traitlets.Unicode(
        "", help="CSS class unique to the panel whose prompt box this widget watches"
    ).tag(sync=True)

    def __init__(
        self,
        on_submit: Callable[[str | None], None],
        on_prompt: Callable[[str], None] | None = None,
        on_file: Callable[[str, bytes, str], None] | None = None,
        on_refused: Callable[[str, int, str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.layout.display = "none"  # invisible; where its module cannot load, so is the error
        self._on_submit = on_submit
        self._on_prompt = on_prompt
        self._on_file = on_file
        self._on_refused = on_refused
        self.on_msg(self._handle_message)

    def _handle_message(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        value = content.get("value")
        how = str(content.get("how") or "dropped")
        name = str(content.get("name") or "")
        try:
            if event == "submit":
                self._on_submit(value if isinstance(value, str) else None)
            elif event == "prompt" and isinstance(value, str) and self._on_prompt is not None:
                self._on_prompt(value)
            elif event == "file" and buffers and self._on_file is not None:
                self._on_file(name or f"{how} image", bytes(buffers[0]), how)
            elif event == "file-refused" and self._on_refused is not None:
                size = content.get("size")
                self._on_refused(name, size if isinstance(size, int) else 0, how)
        except Exception:  # the callbacks report their own errors; never lose one here
            _log.exception("%s handler failed", event)

    def __repr__(self) -> str:
        return f"SubmitKeys(panel_class={self.panel_class!r})"
