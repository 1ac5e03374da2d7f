"""What a comparison compares: one :class:`Side` per image, made from a history record, a
result, a generated image or any image source (files, PIL images, arrays, bytes).

Each side knows its label, prompt (``None`` when unknown), the parameters shown on its card
(defaults left out), where its thumbnail comes from, and the task or record a pick of it
is written to. A file's metadata (written by ``GeneratedImage.save``) gives its prompt and
task id. One edit (a record or a result) gives two sides: its input and its output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.render.results import describe_source, safe_link
from nanobanana_widgets.service.text import parse_data_uri
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from nanobanana_widgets.session import default_history
from nanobanana_widgets.store import History, HistoryView, Record

__all__ = ["Side", "default_labels", "edit_sides", "expand", "record_of_edit", "side_of"]

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
    image: int = 0
    """The image's position among its request's results (what a vote names)."""

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
                task_id=image.task_id or None, link=safe_link(image.url), image=image.index)


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


def side_of(x: Any, label: str) -> Side:
    """The side of one compared item (a record, result, generated image or image source)."""
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


def edit_sides(x: Any, labels: Sequence[str]) -> list[Side] | None:
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


def record_of_edit(x: Any, history: History | None) -> Record | None:
    """The history record of an edit result whose inputs were rebuilt from a record
    (``Record.result()`` names them ``sha256:...``): there the input files are kept."""
    if not (isinstance(x, Result) and x.request.action == "edit" and x.task_id
            and any(u.startswith("sha256:") for u in x.request.image_urls)):
        return None
    if history is None:
        history = default_history()
    found = history.filter(task_id=x.task_id)
    return found[0] if len(found) else None


def default_labels(n: int) -> list[str]:
    """``A``, ``B``, ... (``#27`` and on past ``Z``)."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[i] if i < len(letters) else f"#{i + 1}" for i in range(n)]


def expand(items: Sequence[Any]) -> list[Any]:
    """The items compared: a list or history view given alone stands for its items."""
    if len(items) == 1 and isinstance(items[0], (list, tuple, HistoryView)):
        return list(items[0])
    return list(items)
