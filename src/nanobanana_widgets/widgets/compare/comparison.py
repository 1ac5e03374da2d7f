"""A/B comparison of images: side by side, a word-level prompt diff, a before/after slider
and a pick recorded in the history.

::

    compare(h[-2], h[-1])                 # two history records
    compare(result_a, result_b, result_c) # results (their first image), generated images,
                                          # PIL images, arrays, bytes or paths
    compare(edit_result)                  # one edit: its input against its output

``compare`` returns a :class:`Comparison`, an ``ipywidgets.VBox`` (make it the last expression
of a cell; it works in Voilà). Each image is shown with its prompt and parameters (those that
differ from the first image's are emphasised), and the prompts are diffed word by word
against the first one (``<ins>``/``<del>`` marks). For exactly two images a *Slider* view
stacks them and an ``IntSlider`` reveals the first over the second (a CSS ``clip-path``
rule driven by the slider's value; no JavaScript). A button per image ("A is better")
records the pick.

**What a pick records.** The winner's history record is marked favourite and gets one note
line, ``Picked in comparison <id> over #12 (B).``; its rating is left alone. Picking
another image undoes both (the favourite flag only if the comparison set it). Images that
are not recorded requests (files, PIL images, ...) can be picked, but nothing is written.
Records are found by task id in ``history`` (default: the package's default history).

The widget state holds only JPEG thumbnails of at most 512 px, and every user-supplied
string (labels, prompts, parameters, file names, error messages) is escaped.
"""

from __future__ import annotations

import difflib
import html
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ipywidgets as w

from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.render.results import (
    data_uri,
    describe_source,
    safe_link,
    thumbnail_data_uri,
)
from nanobanana_widgets.render.styles import style_element
from nanobanana_widgets.service.errors import InvalidParameterError, NanoBananaError, describe_error
from nanobanana_widgets.service.text import parse_data_uri
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from nanobanana_widgets.session import default_history
from nanobanana_widgets.store import History, HistoryView, Pick, Record
from nanobanana_widgets.widgets._ui import ViewSync

__all__ = ["Comparison", "Side", "compare", "prompt_diff_html", "word_diff"]

_log = logging.getLogger(__name__)

THUMB_SIDE = 512
"""Longest side, in pixels, of the JPEG thumbnails a comparison keeps in widget state."""

DiffOp = Literal["equal", "delete", "insert"]


# --- word diff ---------------------------------------------------------------------------


def word_diff(a: str, b: str) -> list[tuple[DiffOp, str]]:
    """The word-level edit from prompt ``a`` to prompt ``b``.

    A list of ``(op, words)`` where ``op`` is ``"equal"``, ``"delete"`` (words only in
    ``a``) or ``"insert"`` (words only in ``b``); a replacement is a delete followed by an
    insert. Words are runs of non-blank characters; whitespace differences are ignored.
    """
    wa, wb = a.split(), b.split()
    out: list[tuple[DiffOp, str]] = []
    matcher = difflib.SequenceMatcher(None, wa, wb, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.append(("equal", " ".join(wa[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            out.append(("delete", " ".join(wa[i1:i2])))
        if tag in ("insert", "replace"):
            out.append(("insert", " ".join(wb[j1:j2])))
    return out


def prompt_diff_html(a: str, b: str) -> str:
    """``b`` as HTML with the words not in ``a`` in ``<ins>`` and the removed ones in ``<del>``.

    Everything is escaped; the marks carry classes ``nbw-ins`` / ``nbw-del`` and inline
    styles, so the diff reads without the stylesheet too.
    """
    esc = html.escape
    parts = []
    for op, words in word_diff(a, b):
        if op == "equal":
            parts.append(esc(words))
        elif op == "insert":
            parts.append(f'<ins class="nbw-ins" style="{_INS_STYLE}">{esc(words)}</ins>')
        else:
            parts.append(f'<del class="nbw-del" style="{_DEL_STYLE}">{esc(words)}</del>')
    return " ".join(parts)


_INS_STYLE = "text-decoration:none;background:rgba(46,160,67,0.28);border-radius:3px;"
_DEL_STYLE = "text-decoration:line-through;background:rgba(248,81,73,0.25);border-radius:3px;"


# --- what is compared --------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One compared image: its label, prompt (``None`` when unknown), parameters, source."""

    label: str
    prompt: str | None
    params: tuple[tuple[str, str], ...]
    source: Any = field(repr=False)
    """What the thumbnail is made from (``None``: there is no image; see ``problem``)."""
    kind: str = "image"
    """``record``, ``result``, ``image`` (a generated image), ``input`` or ``file``."""
    task_id: str | None = None
    record_id: int | None = None
    problem: str | None = None
    link: str | None = None

    @property
    def recordable(self) -> bool:
        """Whether a pick of this image can be written to a history."""
        return bool(self.task_id) or self.record_id is not None


def _params(action: str, model: str, aspect_ratio: str | None, resolution: str | None,
            count: int, n_inputs: int) -> list[tuple[str, str]]:
    """The parameters shown on a card, the defaults left out."""
    params: list[tuple[str, str]] = []
    if action != "generate":
        params.append(("action", action))
    params.append(("model", model))
    if aspect_ratio:
        params.append(("aspect ratio", aspect_ratio))
    if resolution:
        params.append(("resolution", resolution))
    if count != 1:
        params.append(("count", str(count)))
    if n_inputs:
        params.append(("inputs", f"{n_inputs} image{'s' if n_inputs != 1 else ''}"))
    return params


def _request_params(request: ImageRequest) -> list[tuple[str, str]]:
    return _params(request.action, request.model, request.aspect_ratio, request.resolution,
                   request.count, len(request.image_urls))


def _elapsed(seconds: float | None) -> list[tuple[str, str]]:
    return [] if seconds is None else [("time", f"{seconds:.1f} s")]


def _record_side(rec: Record, label: str) -> Side:
    params = _params(rec.action, rec.model, rec.aspect_ratio, rec.resolution, rec.count,
                     len(rec.inputs))
    if rec.status != "succeeded":
        params.append(("status", rec.status))
    if rec.rating:
        params.append(("rating", "★" * rec.rating))
    params.extend(_elapsed(rec.elapsed))
    params.append(("record", f"#{rec.id}"))
    source: Any = None
    problem: str | None = None
    link: str | None = None
    if rec.results:
        first = rec.results[0]
        link = safe_link(first.url)
        if first.local:
            source = first.path
        elif first.thumbnail:
            source = first.thumbnail  # small, but it needs no network
        else:
            source = first.url
    else:
        reason = rec.error.message if rec.error is not None else f"status {rec.status}"
        problem = f"No image: {reason}"
    return Side(label=label, prompt=rec.prompt, params=tuple(params), source=source,
                kind="record", task_id=rec.task_id, record_id=rec.id, problem=problem,
                link=link)


def _result_side(result: Result, label: str) -> Side:
    params = _request_params(result.request) + _elapsed(result.timings.elapsed)
    if result.images:
        image = result.images[0]
        if len(result.images) > 1:
            params.append(("image", f"1 of {len(result.images)}"))
        return Side(label=label, prompt=result.request.prompt, params=tuple(params),
                    source=image, kind="result", task_id=result.task_id or None,
                    link=safe_link(image.url))
    reason = str(result.error) if result.error is not None else f"status {result.status}"
    return Side(label=label, prompt=result.request.prompt, params=tuple(params), source=None,
                kind="result", task_id=result.task_id or None, problem=f"No image: {reason}")


def _image_side(image: GeneratedImage, label: str) -> Side:
    request = image.request
    prompt = (request.prompt if request is not None else "") or image.prompt
    params = _request_params(request) if request is not None else []
    if image.index:
        params.append(("image", f"#{image.index + 1}"))
    return Side(label=label, prompt=prompt, params=tuple(params), source=image, kind="image",
                task_id=image.task_id or None, link=safe_link(image.url))


def _meta_side(source: Any, label: str, name: str, meta: dict[str, Any]) -> Side:
    params: list[tuple[str, str]] = []
    for key, shown in (("action", "action"), ("model", "model"),
                       ("aspect_ratio", "aspect ratio"), ("resolution", "resolution")):
        value = meta.get(key)
        if isinstance(value, str) and value and not (key == "action" and value == "generate"):
            params.append((shown, value))
    params.append(("file", name))
    prompt = meta.get("request_prompt") or meta.get("prompt")
    task_id = meta.get("task_id")
    return Side(label=label, prompt=prompt if isinstance(prompt, str) and prompt else None,
                params=tuple(params), source=source, kind="file",
                task_id=task_id if isinstance(task_id, str) and task_id else None,
                link=safe_link(source) if isinstance(source, str) else None)


def _other_side(source: Any, label: str) -> Side:
    name = describe_source(source)
    meta: dict[str, Any] = {}
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            meta = read_metadata(bytes(source))
        elif isinstance(source, (str, Path)) and not str(source).startswith(
                ("data:", "http://", "https://")) and Path(source).is_file():
            meta = read_metadata(source)
    except Exception:  # metadata is a nicety; the image itself may still be fine
        meta = {}
    return _meta_side(source, label, name, meta)


def _is_record(x: Any) -> bool:
    return isinstance(x, Record)


def _side(x: Any, label: str) -> Side:
    if _is_record(x):
        return _record_side(x, label)
    if isinstance(x, Result):
        return _result_side(x, label)
    if isinstance(x, GeneratedImage):
        return _image_side(x, label)
    if x is None or isinstance(x, (int, float, bool)):
        raise TypeError(
            f"compare() cannot show {type(x).__name__} {x!r}: pass history records, results, "
            "generated images, PIL images, arrays, bytes or image paths."
        )
    return _other_side(x, label)


def _edit_sides(x: Any, labels: Sequence[str]) -> list[Side] | None:
    """Input and output of one edit (record or result), or ``None`` when ``x`` is no edit."""
    if _is_record(x):
        rec: Record = x
        if rec.action != "edit" or not rec.inputs:
            return None
        first = rec.inputs[0]
        src: Any = first.path if first.path is not None and first.path.is_file() else (
            first.url or first.thumbnail)
        output = _record_side(rec, labels[1])
    elif isinstance(x, Result):
        if x.request.action != "edit" or not x.request.image_urls:
            return None
        src = x.request.image_urls[0]
        if src.startswith("sha256:"):  # a result rebuilt from a record: the record has it
            return None
        output = _result_side(x, labels[1])
    else:
        return None
    meta: dict[str, Any] = {}
    try:
        if isinstance(src, Path):
            meta = read_metadata(src)
        elif isinstance(src, str) and src.startswith("data:"):
            decoded = parse_data_uri(src)
            meta = read_metadata(decoded[0]) if decoded else {}
    except Exception:
        meta = {}
    prompt = meta.get("request_prompt") or meta.get("prompt")
    n = len(x.inputs) if _is_record(x) else len(x.request.image_urls)
    params = [("input", f"1 of {n}")]
    if isinstance(meta.get("model"), str):
        params.append(("model", str(meta["model"])))
    problem = None if src is not None else "The input image is not available."
    inp = Side(label=labels[0], prompt=prompt if isinstance(prompt, str) and prompt else None,
               params=tuple(params), source=src, kind="input", problem=problem,
               link=safe_link(src) if isinstance(src, str) else None)
    return [inp, output]


def _record_of_edit(x: Any, history: History | None) -> Record | None:
    """The history record of an edit result whose inputs were rebuilt from a record
    (``Record.result()`` names them ``sha256:...``): there the input files are kept."""
    if not (isinstance(x, Result) and x.request.action == "edit" and x.task_id
            and any(u.startswith("sha256:") for u in x.request.image_urls)):
        return None
    if history is None:
        history = default_history()
    found = history.filter(task_id=x.task_id)
    return found[0] if len(found) else None


def _default_labels(n: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[i] if i < len(letters) else f"#{i + 1}" for i in range(n)]


def _expand(items: Sequence[Any]) -> list[Any]:
    if len(items) == 1 and isinstance(items[0], (list, tuple, HistoryView)):
        return list(items[0])
    return list(items)


# --- the widget --------------------------------------------------------------------------

_COMPARED = frozenset({"action", "model", "aspect ratio", "resolution", "count", "inputs"})
"""Parameters emphasised on a card when they differ from the first image's."""
_CARD_IMG_STYLE = ("display:block;max-width:100%;height:auto;margin:0 auto;border-radius:4px;"
                   "background:var(--jp-layout-color2, rgba(128,128,128,0.15));")
_MUTED = "font-size:var(--jp-ui-font-size0, 11px);color:var(--jp-ui-font-color2, inherit);"
_ERROR = "color:var(--jp-error-color1, #d32f2f);overflow-wrap:anywhere;"


class Comparison(w.VBox):  # type: ignore[misc]
    """The widget :func:`compare` returns: cards, prompt diff, slider (two images), pick buttons.

    From Python: ``sides`` (what is compared), ``pick(i_or_label)``, ``picked`` (the label or
    ``None``), ``view`` (``"side"`` or ``"slider"``), ``slider`` (the ``IntSlider``, the
    percentage of the first image revealed), ``clip_style`` (the CSS it drives), ``buttons``,
    ``status`` and ``id``.
    """

    def __init__(self, sides: Sequence[Side], *, history: History | None = None,
                 edit: bool = False) -> None:
        if len(sides) < 2:
            raise InvalidParameterError("images", f"{len(sides)} image(s)", None,
                                        hint="two or more images, or one edit record/result")
        self.id = "c-" + uuid.uuid4().hex[:8]
        self.sides: tuple[Side, ...] = tuple(sides)
        self.edit = edit
        self._history = history
        self._lock = threading.Lock()
        self._picked: int | None = None
        self._picks: list[Pick] = []  # recorded picks, taken back when the pick changes
        self._thumbs: list[str | None] = []
        self._problems: list[str | None] = []
        self._aspect: list[tuple[int, int] | None] = []
        for side in self.sides:
            self._make_thumb(side)
        self._uid = f"nbw-cmp-{uuid.uuid4().hex[:10]}"

        self.title = w.HTML(self._title_html())
        self.cards: list[w.VBox] = []
        self.buttons: list[w.Button] = []
        for i, side in enumerate(self.sides):
            body = w.HTML(self._card_html(i), layout=w.Layout(width="100%"))
            button = w.Button(description=f"{side.label} is better"[:60],
                              tooltip=f"Pick {side.label} as the better image",
                              layout=w.Layout(width="auto", max_width="100%"))
            button.on_click(lambda _b, i=i: self._on_pick(i))
            card = w.VBox([body, button], layout=w.Layout(
                flex="1 1 200px", min_width="0", max_width=f"{THUMB_SIDE + 16}px",
                margin="0 8px 8px 0"))
            card.add_class("nbw-cmp-card")
            self.cards.append(card)
            self.buttons.append(button)
        self.cards_box = w.Box(self.cards, layout=w.Layout(
            display="flex", flex_flow="row wrap", align_items="flex-start", width="100%"))
        self.diff = w.HTML(self._diff_html(), layout=w.Layout(width="100%"))
        self.status = w.HTML(f'<div class="nbw-cmp-status nbw-muted">Pick the better image'
                             f'{" (recorded in the history)" if self._any_recordable() else ""}'
                             ".</div>")

        self.slider = w.IntSlider(value=50, min=0, max=100, step=1,
                                  description=f"{self.sides[0].label[:20]} shown",
                                  readout_format="d", continuous_update=True,
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width="100%", max_width=f"{THUMB_SIDE}px"))
        self._clip = w.HTML(self._clip_rule(50), layout=w.Layout(width="0px", height="0px"))
        self._stage = w.HTML(layout=w.Layout(width="100%"))
        self.slider_box = w.VBox([self._clip, self._stage, self.slider],
                                 layout=w.Layout(width="100%", display="none"))
        self.slider.observe(self._on_slide, names="value")
        style = w.HTML(style_element("compare"), layout=w.Layout(display="none"))
        children: list[w.Widget] = [style, self.title]
        if len(self.sides) == 2:
            self.view_toggle = w.ToggleButtons(
                options=[("Side by side", "side"), ("Slider", "slider")], value="side",
                tooltips=["Both images next to each other",
                          "One image over the other; the slider reveals the first"],
                style={"button_width": "auto"})
            self.view_toggle.observe(self._on_view, names="value")
            children.append(self.view_toggle)
        else:
            self.view_toggle = None
        children += [self.cards_box, self.slider_box, self.diff, self.status, ViewSync(self)]
        super().__init__(children, layout=w.Layout(width="100%", max_width="100%",
                                                   overflow="hidden"))
        self.add_class("nbw-cmp")
        self.add_class(self._uid)

    # --- thumbnails ----------------------------------------------------------------------

    def _make_thumb(self, side: Side) -> None:
        uri: str | None = None
        problem = side.problem
        size: tuple[int, int] | None = None
        if side.source is not None and problem is None:
            try:
                if isinstance(side.source, bytes) and side.kind == "record":
                    uri = data_uri(side.source)  # the history's stored JPEG thumbnail
                else:
                    uri = thumbnail_data_uri(side.source, max_side=THUMB_SIDE)
                size = _jpeg_size(uri)
            except Exception as exc:  # a card that says why, never a traceback
                problem = f"Could not show this image: {describe_error(exc)}"
        self._thumbs.append(uri)
        self._problems.append(problem)
        self._aspect.append(size)

    # --- HTML ----------------------------------------------------------------------------

    def _title_html(self) -> str:
        esc = html.escape
        if self.edit:
            what = f"Edit: {self.sides[0].label} → {self.sides[1].label}"
        else:
            what = f"Comparing {len(self.sides)} images"
        return (f'<div><span class="nbw-title">{esc(what)}</span> '
                f'<span class="nbw-muted">comparison {esc(self.id)}</span></div>')

    def _card_html(self, i: int) -> str:
        esc = html.escape
        side = self.sides[i]
        first = dict(self.sides[0].params)
        parts = [f'<div style="display:flex;gap:6px;align-items:baseline;margin-bottom:4px;">'
                 f'<span class="nbw-cmp-badge">{esc(side.label)}</span>'
                 f'<span class="nbw-muted">{esc(side.kind)}</span></div>']
        uri, problem = self._thumbs[i], self._problems[i]
        if uri is not None:
            alt = esc((side.prompt or side.label)[:200], quote=True)
            img = f'<img src="{uri}" alt="{alt}" style="{_CARD_IMG_STYLE}">'
            if side.link:
                img = (f'<a href="{esc(side.link, quote=True)}" target="_blank" '
                       f'rel="noopener noreferrer" title="Open the full-size image">{img}</a>')
            parts.append(img)
        else:
            parts.append(f'<div style="{_ERROR}padding:8px;min-height:48px;">'
                         f'{esc(problem or "No image.")}</div>')
        if side.prompt is not None:
            parts.append(f'<div class="nbw-cmp-prompt" style="margin-top:6px;white-space:'
                         f'pre-wrap;overflow-wrap:anywhere;">{esc(side.prompt)}</div>')
        else:
            parts.append(f'<div style="{_MUTED}margin-top:6px;">(no prompt known)</div>')
        params = []
        for key, value in side.params:
            text = f"{esc(key)}: {esc(value)}"
            if i and key in _COMPARED and key in first and first[key] != value:
                text = f'<span class="nbw-cmp-changed" style="font-weight:600;">{text}</span>'
            params.append(text)
        if side.task_id:
            params.append(f"task {esc(side.task_id)}")
        if params:
            parts.append(f'<div class="nbw-muted" style="{_MUTED}overflow-wrap:anywhere;">'
                         f'{" · ".join(params)}</div>')
        return "".join(parts)

    def _diff_html(self) -> str:
        esc = html.escape
        base = next((s for s in self.sides if s.prompt is not None), None)
        head = '<div class="nbw-title" style="font-size:var(--jp-ui-font-size1, 13px);">'
        if base is None:
            return (f'{head}Prompts</div>'
                    '<div class="nbw-muted">No prompt is known for these images.</div>')
        if self.edit:
            out = self.sides[1]
            rows = [f'<div class="nbw-cmp-prompt">{esc(out.prompt or "")}</div>']
            if self.sides[0].prompt is not None and out.prompt is not None:
                rows.append(f'<div class="nbw-muted">{esc(self.sides[0].label)} was made from: '
                            f'{esc(self.sides[0].prompt)}</div>')
            return f'{head}Edit instruction</div>{"".join(rows)}'
        rows = []
        for side in self.sides:
            if side is base:
                continue
            label = f"{base.label} → {side.label}"
            if side.prompt is None:
                body = '<span class="nbw-muted">(no prompt known)</span>'
            elif side.prompt.split() == base.prompt.split():  # type: ignore[union-attr]
                body = '<span class="nbw-muted">same prompt</span>'
            else:
                body = prompt_diff_html(base.prompt or "", side.prompt)
            rows.append(f'<div class="nbw-cmp-diff" style="margin:2px 0;overflow-wrap:anywhere;">'
                        f'<span class="nbw-cmp-badge">{esc(label)}</span> {body}</div>')
        return f'{head}Prompt changes</div>{"".join(rows)}'

    def _clip_rule(self, value: int) -> str:
        return (f"<style>.{self._uid} .nbw-cmp-top{{{self._clip_css(value)}}}"
                f".{self._uid} .nbw-cmp-divider{{left:{value}%;}}</style>")

    @staticmethod
    def _clip_css(value: int) -> str:
        return f"clip-path:inset(0 {100 - value}% 0 0);"

    def _stage_html(self) -> str:
        esc = html.escape
        a, b = self.sides
        ua, ub = self._thumbs
        if ua is None or ub is None:
            missing = a if ua is None else b
            return (f'<div style="{_ERROR}padding:8px;">The slider needs both images; '
                    f'{esc(missing.label)} has none.</div>')
        w_, h_ = self._aspect[1] or self._aspect[0] or (1, 1)
        fill = "position:absolute;inset:0;width:100%;height:100%;object-fit:contain;"
        tag = ("position:absolute;top:6px;padding:1px 6px;border-radius:4px;font-size:12px;"
               "background:rgba(0,0,0,0.6);color:#fff;max-width:45%;overflow:hidden;"
               "text-overflow:ellipsis;white-space:nowrap;")
        return (
            f'<div class="nbw-cmp-stage" style="position:relative;width:100%;'
            f'max-width:{THUMB_SIDE}px;aspect-ratio:{w_} / {h_};margin:0 auto;overflow:hidden;'
            f'border-radius:4px;">'
            f'<img class="nbw-cmp-bottom" src="{ub}" alt="{esc(b.label, quote=True)}" '
            f'style="{fill}">'
            f'<img class="nbw-cmp-top" src="{ua}" alt="{esc(a.label, quote=True)}" '
            f'style="{fill}">'
            f'<div class="nbw-cmp-divider" style="position:absolute;top:0;bottom:0;width:2px;'
            f'margin-left:-1px;background:#fff;"></div>'
            f'<span class="nbw-cmp-tag" style="{tag}left:6px;">{esc(a.label)}</span>'
            f'<span class="nbw-cmp-tag" style="{tag}right:6px;">{esc(b.label)}</span>'
            f"</div>"
        )

    # --- views ---------------------------------------------------------------------------

    @property
    def view(self) -> str:
        """``"side"`` (side by side) or ``"slider"`` (two images only)."""
        return self.view_toggle.value if self.view_toggle is not None else "side"

    @view.setter
    def view(self, value: str) -> None:
        if self.view_toggle is None:
            if value != "side":
                raise InvalidParameterError("view", value, ("side",),
                                            hint="the slider view for exactly two images")
            return
        if value not in ("side", "slider"):
            raise InvalidParameterError("view", value, ("side", "slider"))
        self.view_toggle.value = value

    def _on_view(self, change: dict[str, Any]) -> None:
        slider = change["new"] == "slider"
        if slider and not self._stage.value:
            self._stage.value = self._stage_html()  # built on first use: no duplicate state
        self.slider_box.layout.display = "flex" if slider else "none"
        self.cards_box.layout.display = "none" if slider else "flex"

    def _on_slide(self, change: dict[str, Any]) -> None:
        self._clip.value = self._clip_rule(int(change["new"]))

    @property
    def clip_style(self) -> str:
        """The CSS applied to the top (first) image in the slider view."""
        return self._clip_css(int(self.slider.value))

    # --- picking -------------------------------------------------------------------------

    @property
    def picked(self) -> str | None:
        """The label of the picked image, or ``None``."""
        return None if self._picked is None else self.sides[self._picked].label

    @property
    def winner(self) -> Side | None:
        """The picked :class:`Side`, or ``None``."""
        return None if self._picked is None else self.sides[self._picked]

    def _any_recordable(self) -> bool:
        return any(s.recordable for s in self.sides)

    def _index(self, which: int | str) -> int:
        if isinstance(which, bool):
            raise TypeError("pick() takes an image's position or label, not a bool")
        if isinstance(which, int):
            n = len(self.sides)
            if not -n <= which < n:
                raise InvalidParameterError("pick", which, range(n))
            return which % n
        labels = [s.label for s in self.sides]
        if which in labels:
            return labels.index(which)
        raise InvalidParameterError("pick", which, labels)

    def _on_pick(self, i: int) -> None:
        try:
            self.pick(i)
        except Exception as exc:  # a click never loses its error: it goes to the status
            self._set_status(f"Could not record the pick: {describe_error(exc)}", "nbw-warn")

    def pick(self, which: int | str) -> str:
        """Pick an image (position or label) as the better one; returns the status text.

        The winner's history record is marked favourite with a note (see the module docs);
        a previous pick is undone first. Errors of the history are reported, not raised.
        """
        i = self._index(which)
        with self._lock:
            previous, self._picked = self._picked, i
            for k, (button, card) in enumerate(zip(self.buttons, self.cards, strict=True)):
                label = self.sides[k].label
                if k == i:
                    button.description = f"✓ {label} picked"[:60]
                    button.button_style = "success"
                    card.add_class("nbw-picked")
                else:
                    button.description = f"{label} is better"[:60]
                    button.button_style = ""
                    card.remove_class("nbw-picked")
            text, css = self._record(i, previous)
        self._set_status(text, css)
        return text

    def _set_status(self, text: str, css: str) -> None:
        self.status.value = (f'<div class="nbw-cmp-status {css}" style="overflow-wrap:anywhere;">'
                             f"{html.escape(text)}</div>")

    def _history_for_pick(self) -> History | None:
        if self._history is not None:
            return self._history
        if not self._any_recordable():
            return None
        return default_history()

    def _find(self, history: History, side: Side) -> Record | None:
        if side.task_id is None and side.record_id is None:
            return None
        if self._history is None:  # the default history: only what a task id names
            return history.find(task_id=side.task_id) if side.task_id else None
        return history.find(task_id=side.task_id, record_id=side.record_id)

    def _record(self, i: int, previous: int | None) -> tuple[str, str]:
        side = self.sides[i]
        label = side.label
        if previous == i:
            return f"{label} is already picked.", "nbw-ok"
        history = self._history_for_pick()
        if history is None:
            return (f"{label} picked (not recorded: these images are not requests in a "
                    "history).", "nbw-ok")
        try:
            self._undo(history)
            rec = self._find(history, side)
            if rec is None:
                return (f"{label} picked (not recorded: this image is not a request in the "
                        f"history at {history.folder}).", "nbw-ok")
            others = []
            for k, s in enumerate(self.sides):
                if k == i:
                    continue
                other = self._find(history, s) if s.recordable else None
                others.append(f"#{other.id} ({s.label})" if other is not None else s.label)
            self._picks.append(history.record_pick(self.id, rec, others))
        except (NanoBananaError, KeyError, OSError, ValueError) as exc:
            return f"{label} picked, but the history could not record it: " \
                   f"{describe_error(exc)}", "nbw-warn"
        return (f"{label} picked: recorded in the history (record #{rec.id} marked favourite, "
                "with a note).", "nbw-ok")

    def _undo(self, history: History) -> None:
        while self._picks:
            history.withdraw_pick(self._picks.pop())

    def __repr__(self) -> str:
        labels = ", ".join(s.label for s in self.sides)
        picked = f", picked={self.picked!r}" if self._picked is not None else ""
        return f"<Comparison {self.id} of {labels}{picked}>"


def _jpeg_size(uri: str) -> tuple[int, int] | None:
    """Pixel size of a thumbnail data URI (for the slider stage's aspect ratio)."""
    import base64
    import io

    from PIL import Image

    try:
        data = base64.b64decode(uri.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            return int(width), int(height)
    except Exception:
        return None


# --- the function ------------------------------------------------------------------------


def compare(a: Any, b: Any = None, *more: Any, labels: Iterable[str] | None = None,
            history: History | None = None) -> Comparison:
    """Compare images side by side, with a prompt diff and, for two, a before/after slider.

    ``a``, ``b``, ... are history records, results (their first image), generated images,
    PIL images, arrays, bytes or paths (a list or history view as the only argument works
    too). One edit record or result alone compares its input with its output. ``labels``
    name the images (default ``A``, ``B``, ...; ``input``/``output`` for an edit).
    ``history`` is where picks are recorded (default: the package's default history).
    """
    items = _expand([a] if b is None and not more else [a, b, *more])
    given = [str(x) for x in labels] if labels is not None else None
    if len(items) == 1:
        names = given or ["input", "output"]
        if len(names) != 2:
            raise InvalidParameterError("labels", given, None,
                                        hint="two labels for an edit (input, output)")
        sides = _edit_sides(items[0], names)
        if sides is None:
            record = _record_of_edit(items[0], history)
            sides = _edit_sides(record, names) if record is not None else None
        if sides is None:
            raise InvalidParameterError(
                "images", "one image", None,
                hint="two or more images, or one edit record/result (its input is compared "
                "with its output)")
        return Comparison(sides, history=history, edit=True)
    names = given or _default_labels(len(items))
    if len(names) != len(items):
        raise InvalidParameterError("labels", given, None,
                                    hint=f"{len(items)} labels, one per image")
    if len(set(names)) != len(names):
        raise InvalidParameterError("labels", given, None, hint="labels that differ")
    return Comparison([_side(x, n) for x, n in zip(items, names, strict=True)], history=history)
