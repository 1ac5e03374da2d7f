"""Records out of the history: a folder of result images with manifests, CSV, JSON, pandas.

Each function takes records (any iterable of :class:`Record`, such as a view) or their plain
dicts (:meth:`Record.to_dict`), so a new format is one more function here.

What is written is safe to share and to open: every text goes through
:func:`~nanobanana_widgets.store.clean.clean_value` (no token, no lone surrogate), every CSV
cell through :func:`~nanobanana_widgets.store.clean.csv_cell` (no spreadsheet formula), and
:func:`export_images` never replaces a file that exists nor writes through a symlink: a
name that is taken gets ``-2``, ``-3``... (an identical file already there is kept as it
is). An image that cannot be had (damaged, not downloadable) is skipped and reported; the
others go on.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.images import embed_metadata, extension_for
from nanobanana_widgets.store.clean import clean_image, clean_value, csv_cell
from nanobanana_widgets.store.records import RECORD_KEYS, Record, ResultImage, image_metadata

if TYPE_CHECKING:
    import pandas

__all__ = ["MANIFEST_KEYS", "export_images", "to_dataframe", "write_csv", "write_json",
           "write_new"]

MANIFEST_KEYS: tuple[str, ...] = (
    "file", "record_id", "index", "prompt", "echoed_prompt", "action", "model", "count",
    "aspect_ratio", "resolution", "task_id", "trace_id", "created_at", "rating", "favourite",
    "notes", "grid_id", "grid_cell", "url", "sha256",
)
"""The columns of ``manifest.csv`` (and the keys of ``manifest.json``), one row per image."""

Report = Callable[[str], object]
"""Tells the user about an image skipped or a file renamed (``History.problems``)."""


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
            for k, v in clean_value(record).items()}


def _csv_text(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


def to_dataframe(records: Sequence[dict[str, Any]]) -> pandas.DataFrame:
    """Record dicts as a ``pandas.DataFrame`` (one row per record, indexed by ``id``)."""
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError(
            "History.to_pandas() needs pandas, which is not installed: pip install pandas "
            "(or pip install 'nanobanana-widgets[pandas]'). to_records() gives plain dicts."
        ) from exc
    frame = pd.DataFrame.from_records(records, columns=list(RECORD_KEYS))
    return frame.set_index("id")


def write_csv(records: Iterable[Record], path: str | os.PathLike[str]) -> Path:
    """Write one CSV row per record (nested fields as JSON; no cell a spreadsheet would
    run as a formula); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = _csv_text((_flat(rec.to_dict()) for rec in records), RECORD_KEYS)
    target.write_text(text, encoding="utf-8", newline="")
    return target


def write_json(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write record dicts as a JSON list; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(clean_value(list(records)), ensure_ascii=False, indent=1),
                      encoding="utf-8")
    return target


def write_new(folder: Path, name: str, data: bytes) -> str:
    """Write ``data`` as a new file in ``folder`` named ``name`` (or ``stem-2.ext``, ...,
    when that is taken); returns the name used. An existing file is never replaced and a
    symlink never followed; a regular file with these very bytes is kept as the result."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_BINARY", 0)
    for n in range(1, 1000):
        candidate = name if n == 1 else f"{stem}-{n}{dot}{ext}"
        target = folder / candidate
        try:
            fd = os.open(target, flags, 0o666)
        except FileExistsError:
            if _same_regular_file(target, data):
                return candidate
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        except BaseException:
            with contextlib.suppress(OSError):
                target.unlink()
            raise
        return candidate
    raise FileExistsError(f"{folder / name}: no free name left beside it")


def _same_regular_file(path: Path, data: bytes) -> bool:
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def export_images(records: Iterable[Record], path: str | os.PathLike[str],
                  image_bytes: Callable[[Record, ResultImage], bytes | None],
                  report: Report | None = None) -> Path:
    """Write every result image of ``records`` (with metadata) plus ``manifest.csv`` and
    ``manifest.json`` into the folder ``path``; returns the folder.

    ``image_bytes(record, image)`` gives an image's bytes (``None`` when it cannot be had:
    reported through ``report`` and skipped, as is an image that fails to be written)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    renamed: list[str] = []
    for rec in records:
        for img in rec.results:
            label = f"image {img.position} of record {rec.id} (task {rec.task_id})"
            try:
                data = image_bytes(rec, img)
                if data is None:
                    skipped.append(f"{label}: no sound copy and it could not be downloaded")
                    continue
                meta = image_metadata(rec.to_dict(), img.position, img.url, img.prompt)
                content = embed_metadata(clean_image(data), meta)
                wanted = f"{rec.id:06d}-{img.position}{extension_for(content)}"
                name = write_new(folder, wanted, content)
            except Exception as exc:  # one bad image never stops the export
                skipped.append(f"{label}: {type(exc).__name__}: {exc}")
                continue
            if name != wanted:
                renamed.append(f"{wanted} → {name}")
            rows.append(clean_value({
                "file": name, "record_id": rec.id, "index": img.position,
                "prompt": rec.prompt, "echoed_prompt": img.prompt, "action": rec.action,
                "model": rec.model, "count": rec.count, "aspect_ratio": rec.aspect_ratio,
                "resolution": rec.resolution, "task_id": rec.task_id,
                "trace_id": rec.trace_id, "created_at": rec.created_at,
                "rating": rec.rating, "favourite": rec.favourite, "notes": rec.notes,
                "grid_id": rec.grid_id, "grid_cell": rec.grid_cell,
                "url": img.url if not img.url.startswith("data:") else "",
                "sha256": hashlib.sha256(content).hexdigest(),
            }))
    for manifest, text in (
        ("manifest.csv", _csv_text(rows, MANIFEST_KEYS)),
        ("manifest.json", json.dumps(rows, ensure_ascii=False, indent=1)),
    ):
        name = write_new(folder, manifest, text.encode("utf-8"))
        if name != manifest:
            renamed.append(f"{manifest} → {name}")
    if report is not None and skipped:
        report(f"The export to {folder} skipped {len(skipped)} image(s): "
               + "; ".join(skipped[:10]) + ("; ..." if len(skipped) > 10 else "")
               + ". The other images were exported.")
    if report is not None and renamed:
        report(f"The export to {folder} found files already there and left them as they "
               f"were; it wrote {', '.join(renamed[:10])}" + (" ..." if len(renamed) > 10
                                                               else "") + " instead.")
    return folder
