"""Small pieces the views' HTML shares: inline styles that hold without a stylesheet,
plurals and durations.

The styles use JupyterLab's CSS variables with fallbacks, so a view reads well in light and
dark themes and outside JupyterLab (Voilà, exported HTML) before its stylesheet arrives.
"""

from __future__ import annotations

__all__ = ["ERROR_STYLE", "IMG_STYLE", "MUTED_STYLE", "plural", "seconds"]

MUTED_STYLE = ("font-size:var(--jp-ui-font-size0, 11px);"
               "color:var(--jp-ui-font-color2, inherit);")
"""Small, quiet text (captions, details)."""

ERROR_STYLE = "color:var(--jp-error-color1, #d32f2f);overflow-wrap:anywhere;"
"""Text that reports a problem."""

IMG_STYLE = ("display:block;max-width:100%;height:auto;margin:0 auto;border-radius:4px;"
             "background:var(--jp-layout-color2, rgba(128,128,128,0.15));")
"""A thumbnail that fits its card."""


def plural(n: int, word: str, words: str | None = None) -> str:
    """``"1 image"``, ``"2 images"`` (``words`` for an irregular plural)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def seconds(s: float) -> str:
    """A duration for people: ``"4.2 s"`` under ten seconds, ``"12 s"`` above."""
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
