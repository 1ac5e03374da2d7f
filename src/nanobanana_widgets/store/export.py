"""Records out of the history: a folder of result images with manifests, CSV, JSON, pandas.

Each function takes records (any iterable of :class:`Record`, such as a view) or their plain
dicts (:meth:`Record.to_dict`), so a new format is one more function here.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanobanana_widgets.images import extension_for, read_metadata, write_with_metadata
from nanobanana_widgets.store.records import RECORD_KEYS, Record, ResultImage, image_metadata

if TYPE_CHECKING:
    import pandas

__all__ = ["MANIFEST_KEYS", "export_images", "to_dataframe", "write_csv", "write_json"]

MANIFEST_KEYS: tuple[str, ...] = (
    "file", "record_id", "index", "prompt", "echoed_prompt", "action", "model", "count",
    "aspect_ratio", "resolution", "task_id", "trace_id", "created_at", "rating", "favourite",
    "notes", "grid_id", "grid_cell", "url", "sha256",
)
"""The columns of ``manifest.csv`` (and the keys of ``manifest.json``), one row per image."""


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
            for k, v in record.items()}


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
    """Write one CSV row per record (nested fields as JSON); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(RECORD_KEYS))
        writer.writeheader()
        for rec in records:
            writer.writerow(_flat(rec.to_dict()))
    return target


def write_json(records: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write record dicts as a JSON list; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(list(records), ensure_ascii=False, indent=1), encoding="utf-8")
    return target


def export_images(records: Iterable[Record], path: str | os.PathLike[str],
                  image_bytes: Callable[[Record, ResultImage], bytes | None]) -> Path:
    """Write every result image of ``records`` (with metadata) plus ``manifest.csv`` and
    ``manifest.json`` into the folder ``path``; returns the folder.

    ``image_bytes(record, image)`` gives an image's bytes (``None`` to leave it out).
    Images that carry this task's metadata already are copied as they are.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for rec in records:
        for img in rec.results:
            data = image_bytes(rec, img)
            if data is None:
                continue
            name = f"{rec.id:06d}-{img.position}{extension_for(data)}"
            meta = image_metadata(rec.to_dict(), img.position, img.url, img.prompt)
            try:
                has_meta = bool(read_metadata(data).get("task_id") == (rec.task_id or ""))
            except Exception:
                has_meta = False
            if has_meta:
                (folder / name).write_bytes(data)
            else:
                write_with_metadata(folder / name, data, meta)
            rows.append({
                "file": name, "record_id": rec.id, "index": img.position,
                "prompt": rec.prompt, "echoed_prompt": img.prompt, "action": rec.action,
                "model": rec.model, "count": rec.count, "aspect_ratio": rec.aspect_ratio,
                "resolution": rec.resolution, "task_id": rec.task_id,
                "trace_id": rec.trace_id, "created_at": rec.created_at,
                "rating": rec.rating, "favourite": rec.favourite, "notes": rec.notes,
                "grid_id": rec.grid_id, "grid_cell": rec.grid_cell,
                "url": img.url if not img.url.startswith("data:") else "",
                "sha256": hashlib.sha256(data).hexdigest(),
            })
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_KEYS))
        writer.writeheader()
        writer.writerows(rows)
    (folder / "manifest.json").write_text(
        json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return folder
