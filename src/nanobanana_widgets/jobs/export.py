"""A finished batch as a dataset: an image folder with ``metadata.jsonl``, or one Parquet file.

``imagefolder`` follows the Hugging Face ImageFolder convention: the images side by side and
``metadata.jsonl``, one JSON object per image with its ``file_name`` and the columns (so
``datasets.load_dataset("imagefolder", data_dir=path)`` loads it). ``parquet`` writes one table
with the image bytes (an ``image`` column of ``{bytes, path}``, marked as an ``Image`` feature
for ``datasets``) and the same columns; it needs ``pyarrow`` (``pip install
'nanobanana-widgets[parquet]'``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["EXPORT_FORMATS", "ExportItem", "write_imagefolder", "write_parquet"]

EXPORT_FORMATS: Final = ("imagefolder", "parquet")
_PARQUET_BATCH: Final = 64
"""Images held in memory at once while writing Parquet."""


@dataclass(frozen=True)
class ExportItem:
    """One image of the dataset: its file name, how to get its bytes, and its columns."""

    file_name: str
    data: Callable[[], bytes | None]
    columns: dict[str, Any] = field(default_factory=dict)


def write_imagefolder(items: Sequence[ExportItem], folder: str | os.PathLike[str]) -> Path:
    """Write the images and ``metadata.jsonl`` into ``folder``; returns it. An image whose
    bytes cannot be had is left out (and not listed)."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for item in items:
        data = item.data()
        if data is None:
            continue
        (target / item.file_name).write_bytes(data)
        lines.append(json.dumps({"file_name": item.file_name, **item.columns},
                                ensure_ascii=False, default=str))
    tmp = target / ".metadata.jsonl.tmp"
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, target / "metadata.jsonl")
    return target


def _feature(arrow_type: Any, pa: Any) -> dict[str, str]:
    names = {pa.string(): "string", pa.int64(): "int64", pa.float64(): "float64",
             pa.bool_(): "bool", pa.null(): "null"}
    return {"dtype": names.get(arrow_type, "string"), "_type": "Value"}


def write_parquet(items: Sequence[ExportItem], path: str | os.PathLike[str]) -> Path:
    """Write one Parquet file (a ``.parquet`` path, or ``data.parquet`` inside a folder);
    returns its path. Needs ``pyarrow``."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(
            "job.export(..., format='parquet') needs pyarrow, which is not installed: pip "
            "install pyarrow (or pip install 'nanobanana-widgets[parquet]'). "
            "format='imagefolder' needs nothing more.") from exc
    target = Path(path)
    if target.suffix.lower() != ".parquet":
        target = target / "data.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(k for item in items for k in item.columns))
    fields = [pa.field("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))]
    for name in names:
        values = [item.columns.get(name) for item in items]
        try:
            kind = pa.array(values).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            kind = pa.string()
        if kind not in (pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.null()):
            kind = pa.string()
        fields.append(pa.field(name, kind))
    features = {"image": {"_type": "Image"}}
    features.update({f.name: _feature(f.type, pa) for f in fields[1:]})
    schema = pa.schema(fields, metadata={
        "huggingface": json.dumps({"info": {"features": features}})})
    tmp = target.with_name(f".{target.name}.tmp")
    with pq.ParquetWriter(str(tmp), schema) as writer:
        for start in range(0, len(items), _PARQUET_BATCH):
            batch: dict[str, list[Any]] = {f.name: [] for f in fields}
            for item in items[start:start + _PARQUET_BATCH]:
                data = item.data()
                if data is None:
                    continue
                batch["image"].append({"bytes": data, "path": item.file_name})
                for f in fields[1:]:
                    value = item.columns.get(f.name)
                    if value is not None and f.type == pa.string() and not isinstance(value, str):
                        value = json.dumps(value, default=str) if isinstance(
                            value, (dict, list)) else str(value)
                    batch[f.name].append(value)
            if batch["image"]:
                writer.write_table(pa.table(batch, schema=schema))
    os.replace(tmp, target)
    return target
