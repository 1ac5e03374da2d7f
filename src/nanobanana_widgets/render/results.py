"""Render results and images as HTML: thumbnails in a responsive grid with escaped captions.

``show(x)`` returns an ``IPython.display.HTML`` object (it never calls ``display()``), so it
composes and tests. Thumbnails are small JPEG data URIs, never full-size PNGs, so saved
notebooks stay light; a thumbnail links to the full image when that has an http(s) URL.
Every user-supplied string (prompt, model, file name, URL, error message) is escaped.
The styles are inline and use JupyterLab's CSS variables with fallbacks, so the output
reads well in light and dark themes and outside JupyterLab.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.images import thumbnail
from nanobanana_widgets.render.links import lasting_url
from nanobanana_widgets.service.errors import NanoBananaError
from nanobanana_widgets.service.text import data_uri as _encode_data_uri
from nanobanana_widgets.service.text import squash
from nanobanana_widgets.service.types import GeneratedImage, Result

if TYPE_CHECKING:
    from IPython.display import HTML

__all__ = ["image_html", "result_html", "show", "thumbnail_data_uri"]

DEFAULT_MAX_SIDE = 256
_CAPTION_PROMPT_CHARS = 200

_GRID_STYLE = (
    "display:grid;gap:12px;width:100%;max-width:100%;box-sizing:border-box;"
    "align-items:start;font-family:var(--jp-ui-font-family, system-ui, sans-serif);"
)
_CARD_STYLE = (
    "margin:0;padding:6px;display:flex;flex-direction:column;gap:4px;min-width:0;"
    "box-sizing:border-box;border-radius:6px;"
    "border:1px solid var(--jp-border-color2, rgba(128,128,128,0.35));"
    "background:var(--jp-layout-color1, transparent);"
)
_IMG_STYLE = (
    "display:block;max-width:100%;height:auto;border-radius:4px;margin:0 auto;"
    "background:var(--jp-layout-color2, rgba(128,128,128,0.15));"
)
_CAPTION_STYLE = (
    "font-size:var(--jp-ui-font-size1, 13px);line-height:1.35;"
    "color:var(--jp-ui-font-color1, inherit);overflow-wrap:anywhere;word-break:break-word;"
)
_META_STYLE = (
    "font-size:var(--jp-ui-font-size0, 11px);color:var(--jp-ui-font-color2, inherit);"
    "opacity:0.9;overflow-wrap:anywhere;"
)
_ERROR_STYLE = (
    "font-size:var(--jp-ui-font-size1, 13px);overflow-wrap:anywhere;"
    "color:var(--jp-error-color1, #d32f2f);"
)


def thumbnail_data_uri(
    source: Any, *, max_side: int = DEFAULT_MAX_SIDE, format: str = "JPEG", quality: int = 80
) -> str:
    """A ``data:image/jpeg;base64,...`` (or WebP) thumbnail of ``source``, at most ``max_side`` px.

    ``source`` is anything :func:`nanobanana_widgets.images.thumbnail` accepts; a
    :class:`GeneratedImage` is downloaded once (its bytes are kept).
    """
    if isinstance(source, Result):
        source = source.image
    if isinstance(source, GeneratedImage):
        source = source.bytes()
    data = thumbnail(source, max_side=max_side, format=format, quality=quality)
    return data_uri(data, format)


def data_uri(data: bytes, format: str = "JPEG") -> str:
    """``data:image/<format>;base64,...`` for already encoded image bytes."""
    mime = "jpeg" if format.upper() in ("JPEG", "JPG") else format.lower()
    return _encode_data_uri(data, f"image/{mime}")


def safe_link(url: str | None) -> str | None:
    """``url`` when it is an http(s) URL that may go into an ``href`` of an output, else
    ``None``: never a loopback address (see :mod:`nanobanana_widgets.render.links`)."""
    return lasting_url(url)


# --- items -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One card: an image source (or none) with its caption parts."""

    source: Any
    title: str
    meta: tuple[str, ...] = ()
    link: str | None = None
    error: str | None = None


def _short_prompt(prompt: str) -> str:
    return squash(prompt, _CAPTION_PROMPT_CHARS)


def _image_item(image: GeneratedImage, *, numbered: bool = False) -> _Item:
    request = image.request
    prompt = (request.prompt if request is not None else "") or image.prompt
    meta: list[str] = []
    if request is not None:
        meta.append(request.model)
        params = [p for p in (request.aspect_ratio, request.resolution) if p]
        if request.action == "edit":
            params.insert(0, "edit")
        if params:
            meta.append(" ".join(params))
    if image.task_id:
        meta.append(f"task {image.task_id}" + (f" #{image.index + 1}" if numbered else ""))
    return _Item(source=image, title=prompt, meta=tuple(meta), link=safe_link(image.url))


def _result_items(result: Result) -> list[_Item]:
    numbered = len(result.images) > 1
    items = [_image_item(image, numbered=numbered) for image in result.images]
    if not items:
        reason = str(result.error) if result.error is not None else f"status {result.status}"
        meta = (result.request.model, f"task {result.task_id}")
        items.append(_Item(source=None, title=result.prompt, meta=meta,
                           error=f"No image: {reason}"))
    return items


def describe_source(source: Any) -> str:
    """A short label for an image source (file name, URL, size, type)."""
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.startswith("data:"):
            return "data URI image"
        if safe_link(text):
            return text
        return Path(text).name or text
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"image ({len(source) / 1024:.0f} KB)"
    size = getattr(source, "size", None)
    if hasattr(source, "mode") and isinstance(size, tuple) and len(size) == 2:
        return f"PIL image {size[0]}×{size[1]}"
    if isinstance(source, dict) and "name" in source:
        return str(source["name"])
    return type(source).__name__


def _items(x: Any) -> Iterator[_Item]:
    if isinstance(x, Result):
        yield from _result_items(x)
    elif isinstance(x, GeneratedImage):
        yield _image_item(x)
    elif isinstance(x, (list, tuple)) or (
        isinstance(x, Iterable)
        and not isinstance(x, (str, bytes, bytearray, memoryview, Path, dict))
        and not hasattr(x, "mode")  # a PIL image is iterable in no useful way
        and not hasattr(x, "shape")  # nor is a numpy array, for a grid
    ):
        for part in x:
            yield from _items(part)
    else:
        link = safe_link(x) if isinstance(x, str) else None
        yield _Item(source=x, title=describe_source(x), link=link)


# --- HTML ------------------------------------------------------------------------------


def _card(item: _Item, *, max_side: int, captions: bool) -> str:
    esc = html.escape
    body: str
    error = item.error
    if item.source is not None and error is None:
        try:
            uri = thumbnail_data_uri(item.source, max_side=max_side)
        except Exception as exc:  # any failure becomes a visible card, never a traceback
            error = f"Could not show this image: {_plain(exc)}"
    if error is not None:
        body = (
            f'<div style="{_ERROR_STYLE}padding:8px;min-height:48px;'
            f'border-radius:4px;background:var(--jp-layout-color2, rgba(128,128,128,0.12));">'
            f"{esc(error)}</div>"
        )
    else:
        alt = esc(_short_prompt(item.title), quote=True)
        img = f'<img src="{uri}" alt="{alt}" style="{_IMG_STYLE}max-height:{max_side}px;">'
        if item.link:
            body = (
                f'<a href="{esc(item.link, quote=True)}" target="_blank" '
                f'rel="noopener noreferrer" title="Open the full-size image">{img}</a>'
            )
        else:
            body = img
    parts = [f'<figure class="nbw-card" style="{_CARD_STYLE}">', body]
    if captions:
        title = esc(_short_prompt(item.title))
        full = esc(item.title, quote=True)
        parts.append(f'<figcaption style="{_CAPTION_STYLE}" title="{full}">{title}')
        if item.meta:
            meta = " · ".join(esc(m) for m in item.meta)
            parts.append(f'<div style="{_META_STYLE}">{meta}</div>')
        parts.append("</figcaption>")
    parts.append("</figure>")
    return "".join(parts)


def _grid(items: list[_Item], *, columns: int | None, max_side: int, captions: bool) -> str:
    if columns is not None:
        template = f"repeat({columns}, minmax(0, 1fr))"
    else:
        template = f"repeat(auto-fill, minmax(min(100%, {max_side}px), 1fr))"
    cards = "".join(_card(item, max_side=max_side, captions=captions) for item in items)
    if not items:
        cards = f'<div style="{_META_STYLE}">Nothing to show.</div>'
    return (
        f'<div class="nbw-grid" style="{_GRID_STYLE}grid-template-columns:{template};">'
        f"{cards}</div>"
    )


def _plain(exc: BaseException) -> str:
    if isinstance(exc, NanoBananaError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def render_html(
    x: Any, *, columns: int | None = None, max_side: int = DEFAULT_MAX_SIDE, captions: bool = True
) -> str:
    """The HTML that :func:`show` displays, as a string."""
    if columns is not None and (isinstance(columns, bool) or not isinstance(columns, int)
                                or columns < 1):
        raise ValueError(f"columns must be a positive integer or None, not {columns!r}.")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or not 16 <= max_side <= 1024:
        raise ValueError(f"max_side must be an integer from 16 to 1024, not {max_side!r}.")
    return _grid(list(_items(x)), columns=columns, max_side=max_side, captions=captions)


def show(
    x: Any, *, columns: int | None = None, max_side: int = DEFAULT_MAX_SIDE, captions: bool = True
) -> HTML:
    """Results, images, paths, bytes or lists of them as a grid of captioned thumbnails.

    Returns an ``IPython.display.HTML`` object: make it the last expression of a cell, or
    pass it to ``display()``. ``columns`` fixes the number of columns (default: as many as
    fit); ``max_side`` is the thumbnail size in pixels. An item that cannot be shown
    becomes a card with the reason instead of an exception.
    """
    from IPython.display import HTML

    return HTML(  # type: ignore[no-untyped-call]
        render_html(x, columns=columns, max_side=max_side, captions=captions)
    )


def image_html(image: GeneratedImage, *, max_side: int = DEFAULT_MAX_SIDE) -> str:
    """HTML for one image (``GeneratedImage._repr_html_``): thumbnail, prompt, model, task."""
    return _grid([_image_item(image)], columns=None, max_side=max_side, captions=True)


def result_html(result: Result, *, max_side: int = DEFAULT_MAX_SIDE) -> str:
    """HTML for a result (``Result._repr_html_``): its images with prompt, model and task id."""
    esc = html.escape
    status = result.status
    elapsed = result.timings.elapsed
    bits = [f"{len(result.images)} image{'s' if len(result.images) != 1 else ''}"]
    if status != "succeeded":
        bits.append(status)
    if elapsed is not None:
        bits.append(f"{elapsed:.1f} s")
    if result.trace_id:
        bits.append(f"trace {result.trace_id}")
    header = f'<div style="{_META_STYLE}margin-bottom:6px;">{esc(" · ".join(bits))}</div>'
    grid = _grid(_result_items(result), columns=None, max_side=max_side, captions=True)
    return f'<div class="nbw-result" style="max-width:100%;">{header}{grid}</div>'
