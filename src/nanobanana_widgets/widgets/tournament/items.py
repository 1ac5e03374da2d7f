"""What a tournament ranks: one :class:`Item` per image, from results, images, a grid, a
history (or a view of it), records, or image files and objects. No widget here.

Every item has a *key* that names the same image in every process, so a tournament over
the same items finds its votes again: ``r12.0`` for the first image of history record 12
(a result or generated image is looked up in the history by its task id), else a hash of
the image's URL or content (``u…`` for a URL, ``c…`` for bytes, a file or a picture).
A result with several images gives one item per image; a grid gives its finished cells'
images; records and results without an image are left out (and named, to say why).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nanobanana_widgets.images import load_image, read_metadata
from nanobanana_widgets.render.results import describe_source
from nanobanana_widgets.service.errors import InvalidParameterError, NanoBananaError
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result
from nanobanana_widgets.store import History, HistoryView, Record, VoteItem

__all__ = ["Item", "collect_items"]


@dataclass(frozen=True)
class Item:
    """One image in a tournament: its stable ``key``, how it is shown, where it comes from."""

    key: str
    label: str
    prompt: str | None
    model: str | None
    params: tuple[tuple[str, str], ...]
    source: Any = field(repr=False, compare=False)
    """What its thumbnails are made from (a path, bytes, a generated image, ...)."""
    record_id: int | None = None
    image: int | None = None
    task_id: str | None = None
    arm: str | None = None
    """The A/B test arm it belongs to (``None`` in a plain tournament)."""

    def vote_item(self) -> VoteItem:
        """The item as one side of a recorded vote."""
        return VoteItem(key=self.key, record_id=self.record_id, image=self.image,
                        prompt=self.prompt, model=self.model)


def _hash(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part)
        h.update(b"\x00")
    return h.hexdigest()[:20]


def _params(model: str | None, aspect_ratio: str | None, resolution: str | None,
            action: str | None = None) -> tuple[tuple[str, str], ...]:
    out = []
    if action and action != "generate":
        out.append(("action", action))
    if model:
        out.append(("model", model))
    if aspect_ratio:
        out.append(("aspect ratio", aspect_ratio))
    if resolution:
        out.append(("resolution", resolution))
    return tuple(out)


def _record_items(rec: Record, skipped: list[str]) -> Iterator[Item]:
    if rec.status != "succeeded" or not rec.results:
        skipped.append(f"record #{rec.id} ({rec.status}, no image)")
        return
    many = len(rec.results) > 1
    for r in rec.results:
        source: Any = r.path if r.local else (r.thumbnail or r.url)
        yield Item(key=f"r{rec.id}.{r.position}",
                   label=f"#{rec.id}·{r.position + 1}" if many else f"#{rec.id}",
                   prompt=rec.prompt, model=rec.model,
                   params=_params(rec.model, rec.aspect_ratio, rec.resolution, rec.action),
                   source=source, record_id=rec.id, image=r.position, task_id=rec.task_id)


def _image_item(image: GeneratedImage, history: History | None, n: int) -> Item:
    request: ImageRequest | None = image.request
    rec = history.find(task_id=image.task_id) if history is not None and image.task_id else None
    prompt = (request.prompt if request is not None else "") or image.prompt or None
    model = request.model if request is not None else None
    params = (_params(request.model, request.aspect_ratio, request.resolution, request.action)
              if request is not None else ())
    if rec is not None:
        many = rec.count > 1 or len(rec.results) > 1
        return Item(key=f"r{rec.id}.{image.index}",
                    label=f"#{rec.id}·{image.index + 1}" if many else f"#{rec.id}",
                    prompt=rec.prompt, model=rec.model, params=params, source=image,
                    record_id=rec.id, image=image.index, task_id=rec.task_id)
    return Item(key="u" + _hash(image.url), label=f"image {n}", prompt=prompt, model=model,
                params=params, source=image, task_id=image.task_id or None)


def _other_item(source: Any, n: int) -> Item:
    """A file, bytes, a URL or a picture: keyed by its content (or URL)."""
    meta: dict[str, Any] = {}
    label = f"image {n}"
    if isinstance(source, (str, Path)) and not str(source).startswith(("data:", "http://",
                                                                        "https://")):
        path = Path(source)
        if not path.is_file():
            raise InvalidParameterError("items", str(source), None,
                                        hint="images, results, a grid or a history view; this "
                                             "file does not exist")
        data = path.read_bytes()
        key = "c" + _hash(data)
        label = path.name
        try:
            meta = read_metadata(data)
        except Exception:  # metadata is a nicety
            meta = {}
    elif isinstance(source, str):
        key = "u" + _hash(source)
        label = describe_source(source)[:60] if source.startswith("http") else label
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        key = "c" + _hash(data)
        try:
            meta = read_metadata(data)
        except Exception:
            meta = {}
    else:
        try:
            picture = load_image(source)
        except Exception as exc:
            raise TypeError(
                f"tournament() cannot rank {type(source).__name__}: pass results, generated "
                "images, a grid, a history (or a view of it), records, or images (paths, "
                "bytes, PIL images, arrays).") from exc
        key = "c" + _hash(picture.mode, str(picture.size), picture.tobytes())
    prompt = meta.get("request_prompt") or meta.get("prompt")
    model = meta.get("model")
    return Item(key=key, label=label, prompt=prompt if isinstance(prompt, str) and prompt else None,
                model=model if isinstance(model, str) and model else None,
                params=_params(model if isinstance(model, str) else None,
                               meta.get("aspect_ratio"), meta.get("resolution")),
                source=source)


def _is_grid(x: Any) -> bool:
    return hasattr(x, "plan") and isinstance(getattr(x, "results", None), dict)


def _flatten(x: Any) -> Iterator[Any]:
    if isinstance(x, HistoryView):
        yield from x
    elif _is_grid(x):
        yield from x.results.values()
    elif isinstance(x, (list, tuple)):
        for y in x:
            yield from _flatten(y)
    else:
        yield x


def collect_items(items: Any, history: History | None) -> tuple[list[Item], list[str]]:
    """The items of ``items`` (one thing or a list of them), each image once, and the
    names of what was left out (no image)."""
    out: list[Item] = []
    skipped: list[str] = []
    seen: set[str] = set()

    def add(item: Item) -> None:
        if item.key not in seen:
            seen.add(item.key)
            out.append(item)

    for x in _flatten(items):
        n = len(out) + 1
        if isinstance(x, Record):
            for item in _record_items(x, skipped):
                add(item)
        elif isinstance(x, Result):
            if not x.images:
                skipped.append(f"task {x.task_id or '?'} ({x.status}, no image)")
            for image in x.images:
                add(_image_item(image, history, len(out) + 1))
        elif isinstance(x, GeneratedImage):
            add(_image_item(x, history, n))
        elif isinstance(x, NanoBananaError):
            skipped.append(f"a failed request ({x.message[:80]})")
        elif x is None or isinstance(x, (int, float, bool, dict)):
            raise TypeError(f"tournament() cannot rank {type(x).__name__} {x!r}: pass "
                            "results, generated images, a grid, a history view, records or "
                            "images.")
        else:
            add(_other_item(x, n))
    labels: dict[str, int] = {}
    unique = []
    for item in out:  # labels people can tell apart
        k = labels.get(item.label, 0)
        labels[item.label] = k + 1
        unique.append(item if k == 0 else replace(item, label=f"{item.label} ({k + 1})"))
    return unique, skipped
