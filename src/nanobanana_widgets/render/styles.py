"""The package's stylesheets (``render/static/*.css``), read once."""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["css", "style_element"]

_STATIC = Path(__file__).parent / "static"


@functools.cache
def css(name: str) -> str:
    """The text of ``render/static/<name>.css``."""
    return (_STATIC / f"{name}.css").read_text(encoding="utf-8")


def style_element(name: str) -> str:
    """``<style>`` holding ``render/static/<name>.css``."""
    return f"<style>{css(name)}</style>"
