"""What a batch asks for, read and checked before anything is sent: rows → :class:`RowSpec`.

``rows`` may be a list of prompts, a list of dicts, a pandas ``DataFrame`` (duck-typed: it has
``columns`` and ``to_dict``) or the path of a CSV or JSON Lines file. A row's ``prompt`` is
required; ``model``, ``count``, ``aspect_ratio``, ``resolution``, ``action`` and ``images`` (a
path, URL, bytes, image, or several: a list, or paths joined by ``;`` in a CSV cell) override
the batch's defaults; every other column is kept as the row's metadata and goes into the
dataset export. Relative image paths in a file are looked up beside the file, then in the
working directory.

Every row is checked locally: a bad one raises :class:`InvalidRowError` naming its number and
field (and its line in a file), so nothing is spent on a batch that cannot finish. Input
images are read, checked and kept in the history folder by content (``keep_image``), so a
job re-opened later finds them even if the original files moved.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from nanobanana_widgets.images import extension_for, to_image_url
from nanobanana_widgets.service.errors import (
    ImageInputError,
    InvalidParameterError,
    NanoBananaError,
)
from nanobanana_widgets.service.models import ACTIONS, DEFAULT_MODEL, validate_request
from nanobanana_widgets.service.text import parse_data_uri, short_repr
from nanobanana_widgets.service.types import ImageRequest

__all__ = ["PARAMETER_KEYS", "ImageRef", "InvalidRowError", "RowSpec", "check_rows",
           "job_fingerprint", "read_rows"]

PARAMETER_KEYS: Final = ("prompt", "model", "count", "aspect_ratio", "resolution", "action",
                         "images")
"""The columns that make a row's request; any other column is metadata."""
_IMAGE_ALIASES: Final = ("images", "image", "image_path", "image_url")
_FILE_SUFFIXES: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

ImageRef = dict[str, str]
"""A kept input image: ``{"path", "sha256", "mime"}`` (in the history folder) or ``{"url"}``."""
KeepImage = Callable[[bytes, str], tuple[str, str]]
"""Keeps image bytes (with an extension) in the history; returns ``(sha256, path)``."""


class InvalidRowError(InvalidParameterError):
    """A row of a batch is not acceptable; nothing was sent.

    ``row`` is its number (from 1), ``field`` the column at fault, ``problem`` what is wrong.
    """

    def __init__(self, row: int, field: str, problem: str, *, where: str = "",
                 value: Any = None) -> None:
        self.row = row
        self.field = field
        self.value = value
        self.allowed = None
        self.problem = problem
        message = (f"Row {row}{where}, {field}: {problem} Nothing was sent: fix the row and "
                   "run the batch again.")
        NanoBananaError.__init__(self, message, code="invalid_row")


@dataclass(frozen=True)
class RowSpec:
    """One checked row: its request (images as kept references) and its metadata."""

    position: int
    prompt: str
    model: str
    count: int
    aspect_ratio: str | None
    resolution: str | None
    action: str
    images: tuple[ImageRef, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def request_json(self) -> dict[str, Any]:
        """The request as stored in the job's row (and hashed into its fingerprint)."""
        return {"action": self.action, "prompt": self.prompt, "model": self.model,
                "count": self.count, "aspect_ratio": self.aspect_ratio,
                "resolution": self.resolution, "images": [dict(i) for i in self.images]}

    def input_hashes(self) -> list[str]:
        """The content hashes the history gives this row's input images."""
        out = []
        for ref in self.images:
            if "sha256" in ref:
                out.append(ref["sha256"])
            else:
                out.append(hashlib.sha256(f"url:{ref['url']}".encode()).hexdigest())
        return out

    def bare_request(self) -> ImageRequest:
        """The request without image URLs (enough to name and fingerprint it)."""
        return ImageRequest(action=self.action, prompt=self.prompt, model=self.model,
                            count=self.count, aspect_ratio=self.aspect_ratio,
                            resolution=self.resolution)

    @classmethod
    def from_json(cls, position: int, request: Mapping[str, Any],
                  meta: Mapping[str, Any]) -> RowSpec:
        """A row as stored in the history (see :meth:`request_json`)."""
        return cls(position=position, prompt=str(request["prompt"]),
                   model=str(request["model"]), count=int(request["count"]),
                   aspect_ratio=request.get("aspect_ratio"),
                   resolution=request.get("resolution"), action=str(request["action"]),
                   images=tuple(dict(i) for i in request.get("images") or ()),
                   meta=dict(meta))


@dataclass(frozen=True)
class _Source:
    """Where rows came from: a name for messages, the folder relative paths start from,
    and the line of the first row (files), or none."""

    name: str = ""
    folder: Path | None = None
    first_line: int | None = None

    def where(self, index: int) -> str:
        if self.first_line is None:
            return ""
        return f" (line {self.first_line + index} of {self.name})"


# --- reading --------------------------------------------------------------------------


def read_rows(rows: Any) -> tuple[list[dict[str, Any]], _Source]:
    """The rows as dicts, and where they came from; raises on a shape that is not rows."""
    if isinstance(rows, (str, os.PathLike)):
        return _read_file(Path(rows))
    if hasattr(rows, "columns") and hasattr(rows, "to_dict"):
        columns = [str(c) for c in rows.columns]
        if "prompt" not in columns:
            raise InvalidParameterError(
                "rows", f"a DataFrame with columns {columns}", None,
                hint="a DataFrame with a 'prompt' column (and optional parameter columns)")
        records = rows.to_dict("records")
        return [{str(k): v for k, v in r.items()} for r in records], _Source("the DataFrame")
    if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
        raise InvalidParameterError(
            "rows", type(rows).__name__, None,
            hint="a list of prompts, a list of dicts, a pandas DataFrame with a 'prompt' "
                 "column, or the path of a .csv or .jsonl file")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(rows):
        if isinstance(item, str):
            out.append({"prompt": item})
        elif isinstance(item, Mapping):
            out.append({str(k): v for k, v in item.items()})
        else:
            raise InvalidRowError(i + 1, "row", f"{short_repr(item)} is neither a prompt (a "
                                  "text) nor a dict of a prompt and parameters.")
    return out, _Source()


def _read_file(path: Path) -> tuple[list[dict[str, Any]], _Source]:
    kind = _FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidParameterError(
            "rows", str(path), None,
            hint="a .csv or .jsonl file (or a list of prompts, dicts, or a DataFrame)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InvalidParameterError("rows", str(path), None,
                                    hint=f"an existing file (looked in {os.getcwd()})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError("rows", str(path), None,
                                    hint=f"a readable UTF-8 file ({exc})") from None
    source = _Source(path.name, path.resolve().parent, 2 if kind == "csv" else 1)
    if kind == "csv":
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip() for f in reader.fieldnames or []]
        if "prompt" not in fields:
            raise InvalidParameterError(
                "rows", f"{path.name} with columns {fields}", None,
                hint="a CSV file whose header has a 'prompt' column")
        rows = []
        for record in reader:
            rows.append({(k or "").strip(): (v if v != "" else None)
                         for k, v in record.items() if k is not None})
        return rows, source
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            raise InvalidRowError(number, "row", "is an empty line (JSON Lines has one "
                                  "object per line).", where=f" (line {number} of {path.name})")
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise InvalidRowError(number, "row", f"is not valid JSON ({exc}).",
                                  where=f" (line {number} of {path.name})") from None
        if isinstance(value, str):
            value = {"prompt": value}
        if not isinstance(value, dict):
            raise InvalidRowError(number, "row", "is not a JSON object with a prompt.",
                                  where=f" (line {number} of {path.name})")
        rows.append(value)
    return rows, source


# --- checking -------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    """``None``, an empty text or a NaN (pandas' empty cell)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _plain(value: Any) -> Any:
    """A metadata value as JSON can hold it (numpy scalars unwrapped, NaN as ``None``)."""
    if _missing(value):
        return None
    if hasattr(value, "item") and callable(value.item):
        with contextlib.suppress(TypeError, ValueError):
            value = value.item()
    if isinstance(value, (str, int, float, bool)):
        return value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _count(value: Any, default: int, fail: Callable[[str, str, Any], Exception]) -> int:
    if _missing(value):
        return default
    if isinstance(value, bool):
        raise fail("count", f"{value!r} is not a whole number from 1 to 4.", value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise fail("count", f"{value!r} is not a whole number from 1 to 4.",
                       value) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if hasattr(value, "item") and not isinstance(value, int):
        value = value.item()
    if not isinstance(value, int):
        raise fail("count", f"{short_repr(value)} is not a whole number from 1 to 4.", value)
    return value


def _image_sources(value: Any) -> list[Any]:
    """The images a cell names: a list as is; a text split on ``;`` (or a JSON list)."""
    if _missing(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
        if text.startswith("data:"):
            return [text]
        return [part.strip() for part in text.split(";") if part.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


class _ImageKeeper:
    """Reads, checks and keeps each distinct input image once."""

    def __init__(self, keep: KeepImage, folder: Path | None) -> None:
        self._keep = keep
        self._folder = folder
        self._seen: dict[Any, ImageRef] = {}

    def _resolve(self, source: Any) -> Any:
        if not isinstance(source, (str, os.PathLike)):
            return source
        text = os.fspath(source)
        if text.strip().lower().startswith(("http://", "https://", "data:")):
            return text
        path = Path(text).expanduser()
        if not path.is_absolute() and self._folder is not None:
            beside = self._folder / path
            if beside.exists():
                return beside
        return path

    def ref(self, source: Any, label: str) -> ImageRef:
        resolved = self._resolve(source)
        key: Any
        if isinstance(resolved, Path):
            try:
                stat = resolved.stat()
                key = ("path", str(resolved.resolve()), stat.st_mtime_ns, stat.st_size)
            except OSError:
                key = None
        elif isinstance(resolved, str):
            key = ("text", resolved)
        else:
            key = None
        if key is not None and key in self._seen:
            return self._seen[key]
        url = to_image_url(resolved, name=label)
        decoded = parse_data_uri(url)
        if decoded is None:
            ref: ImageRef = {"url": url}
        else:
            data, mime = decoded
            sha, rel = self._keep(data, extension_for(data))
            ref = {"path": rel, "sha256": sha, "mime": mime}
        if key is not None:
            self._seen[key] = ref
        return ref


def check_rows(raw: Sequence[Mapping[str, Any]], *, model: str = DEFAULT_MODEL, count: int = 1,
               aspect_ratio: str | None = None, resolution: str | None = None,
               images: Any = None, keep_image: KeepImage,
               source: _Source | None = None) -> list[RowSpec]:
    """Check every row (the keywords are the batch's defaults) and keep its input images;
    raises :class:`InvalidRowError` on the first bad row, before anything is sent."""
    source = source or _Source()
    if not raw:
        raise InvalidParameterError("rows", "no rows", None, hint="at least one row")
    validate_request(action="generate", prompt="defaults", model=model, count=count,
                     aspect_ratio=aspect_ratio, resolution=resolution)
    keeper = _ImageKeeper(keep_image, source.folder)
    shared: tuple[ImageRef, ...] = ()
    if images is not None:
        try:
            shared = tuple(keeper.ref(s, f"images #{i + 1}") for i, s in
                           enumerate(images if isinstance(images, (list, tuple)) else [images]))
        except ImageInputError as exc:
            raise InvalidParameterError("images", exc.source, None, hint=exc.problem) from None
    return [_check_row(i, row, model=model, count=count, aspect_ratio=aspect_ratio,
                       resolution=resolution, shared=shared, keeper=keeper, source=source)
            for i, row in enumerate(raw)]


def _check_row(index: int, row: Mapping[str, Any], *, model: str, count: int,
               aspect_ratio: str | None, resolution: str | None,
               shared: tuple[ImageRef, ...], keeper: _ImageKeeper, source: _Source) -> RowSpec:
    number = index + 1
    where = source.where(index)

    def fail(field_name: str, problem: str, value: Any = None) -> InvalidRowError:
        return InvalidRowError(number, field_name, problem, where=where, value=value)

    prompt = row.get("prompt")
    if _missing(prompt) or not isinstance(prompt, str):
        what = "missing" if "prompt" not in row else f"{short_repr(prompt)}"
        raise fail("prompt", f"{what}; every row needs a non-empty text describing the image.",
                   prompt)
    image_key = next((k for k in _IMAGE_ALIASES if k in row and not _missing(row[k])), None)
    sources = _image_sources(row[image_key]) if image_key else []
    refs = []
    for k, src in enumerate(sources, start=1):
        label = f"{short_repr(src)}" if isinstance(src, (str, os.PathLike)) else f"#{k}"
        try:
            refs.append(keeper.ref(src, label))
        except ImageInputError as exc:
            raise fail(image_key or "images", f"image {label}: {exc.problem}." + (
                f" (Relative paths are looked up beside {source.name}, then in "
                f"{os.getcwd()}.)" if source.folder is not None and exc.problem == "no such file"
                else ""), src) from None
    row_images = tuple(refs) if refs else shared
    action = row.get("action")
    action = ("edit" if row_images else "generate") if _missing(action) else action
    if action not in ACTIONS:
        raise fail("action", f"{short_repr(action)} is not one of {', '.join(ACTIONS)}.", action)
    spec = RowSpec(
        position=index, prompt=prompt, model=_text(row.get("model"), model),
        count=_count(row.get("count"), count, fail),
        aspect_ratio=_text(row.get("aspect_ratio"), aspect_ratio),
        resolution=_text(row.get("resolution"), resolution), action=str(action),
        images=row_images if action == "edit" else (),
        meta={str(k): _plain(v) for k, v in row.items()
              if k not in PARAMETER_KEYS and k not in _IMAGE_ALIASES},
    )
    try:
        validate_request(action=spec.action, prompt=spec.prompt, model=spec.model,
                         count=spec.count, aspect_ratio=spec.aspect_ratio,
                         resolution=spec.resolution,
                         image_urls=["https://placeholder.invalid/x.png"] * len(spec.images)
                         if spec.images else None)
    except InvalidParameterError as exc:
        field_name = "images" if exc.field == "image_urls" else exc.field
        problem = exc.message.removeprefix(f"Invalid {exc.field}: ")
        if field_name == "images" and not spec.images:
            problem = "an edit needs at least one input image (an images column or images=)."
        raise fail(field_name, problem, exc.value) from None
    return spec


def _text(value: Any, default: str | None) -> Any:
    if _missing(value):
        return default
    return value.strip() if isinstance(value, str) else value


def job_fingerprint(specs: Sequence[RowSpec]) -> str:
    """A hash of every row's request and metadata: the same rows give the same job."""
    digest = hashlib.sha256()
    for spec in specs:
        digest.update(json.dumps([spec.request_json(), dict(spec.meta)], sort_keys=True,
                                 default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()
