"""What the browser tests share about the page: scripts run in it, and the theme switch."""

from __future__ import annotations

from typing import Any

ALL_DECODED = """
([sel, n]) => {
  const imgs = [...document.querySelectorAll(sel)];
  return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0);
}
"""
"""At least ``n`` images match ``sel`` and every one of them is decoded (``[sel, n]``)."""

ELEMENT_CONTRAST = """
(el) => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bgEl = el, bg = null;
  while (bgEl) {
    const c = rgb(getComputedStyle(bgEl).backgroundColor);
    if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c; break; }
    bgEl = bgEl.parentElement;
  }
  bg = bg || [255, 255, 255];
  const fg = rgb(getComputedStyle(el).color);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return {contrast: (a + 0.05) / (b + 0.05), bg: lum(bg)};
}
"""
"""The WCAG contrast ratio of an element's text against the first opaque background
behind it (``contrast``), and that background's luminance (``bg``)."""

CONTRAST = f"(selector) => ({ELEMENT_CONTRAST.strip()})(document.querySelector(selector)).contrast"
"""As :data:`ELEMENT_CONTRAST`, the ratio alone, for the first ``selector`` element."""


def set_theme(page: Any, name: str) -> None:
    """Switch JupyterLab to the theme ``name`` and wait until the page says it is on."""
    page.evaluate(
        "(name) => { window.jupyterapp.commands.execute('apputils:change-theme', {theme: name}); }",
        name,
    )
    page.wait_for_function(
        "(name) => document.body.dataset.jpThemeName === name", arg=name, timeout=30_000
    )
