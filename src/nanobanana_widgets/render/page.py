"""A standalone HTML page around a view's static HTML (what ``to_html(path)`` writes).

The page carries the light theme's colours by default and the dark ones when the reader's
system prefers dark, through the same CSS variables JupyterLab sets, so the views'
stylesheets read the same as in a notebook. No script: the page shows the view as it was.
"""

from __future__ import annotations

import html

__all__ = ["page_html"]

_THEME = """
:root { --jp-layout-color0: #fff; --jp-layout-color1: #fff; --jp-layout-color2: #eee;
  --jp-layout-color3: #bdbdbd; --jp-ui-font-color0: rgba(0,0,0,1);
  --jp-ui-font-color1: rgba(0,0,0,0.87); --jp-ui-font-color2: rgba(0,0,0,0.54);
  --jp-border-color1: #bdbdbd; --jp-border-color2: #e0e0e0; color-scheme: light dark; }
@media (prefers-color-scheme: dark) {
  :root { --jp-layout-color0: #111; --jp-layout-color1: #212121; --jp-layout-color2: #424242;
    --jp-layout-color3: #616161; --jp-ui-font-color0: rgba(255,255,255,1);
    --jp-ui-font-color1: rgba(255,255,255,0.87); --jp-ui-font-color2: rgba(255,255,255,0.54);
    --jp-border-color1: #616161; --jp-border-color2: #424242; }
}
body { margin: 16px; background: var(--jp-layout-color0); color: var(--jp-ui-font-color1);
  font-family: system-ui, sans-serif; }
"""


def page_html(title: str, body: str) -> str:
    """A whole HTML document titled ``title`` (escaped) holding ``body`` (trusted HTML)."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_THEME}</style></head>"
            f"<body>{body}</body></html>\n")
