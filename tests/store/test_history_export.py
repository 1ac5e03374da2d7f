"""Records out of the history: plain dicts, CSV, JSON, pandas, and a folder of images with
their metadata and manifests."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import History


def test_records_csv_json_and_pandas_round_trip(history: History, tmp_path: Path,
                                                populate: Callable[..., None]) -> None:
    pd = pytest.importorskip("pandas")
    h = history
    populate(h, 3)
    tricky = 'a "quoted", comma\nnewline — ünïcode'
    h.add(ImageRequest("generate", tricky))
    records = h.to_records()
    assert [r["prompt"] for r in records][-1] == tricky
    assert records[0]["results"][0]["url"].startswith("data:image/png")
    json.dumps(records)  # plain, serialisable values
    df = h.to_pandas()
    assert len(df) == 4 and list(df["prompt"]) == [r["prompt"] for r in records]
    assert df.loc[records[1]["id"], "model"] == "nano-banana-pro"
    csv_path = h.to_csv(tmp_path / "out" / "h.csv")
    back = pd.read_csv(csv_path)
    assert list(back["prompt"]) == list(df["prompt"])
    assert list(back["rating"]) == list(df["rating"])
    assert json.loads(back["results"][0])[0]["sha256"] == records[0]["results"][0]["sha256"]
    json_path = h.to_json(tmp_path / "out" / "h.json")
    assert json.loads(json_path.read_text(encoding="utf-8")) == records
    assert pd.read_json(json_path)["prompt"].tolist() == list(df["prompt"])


def test_to_pandas_without_pandas_says_how_to_install(history: History,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match="pip install pandas"):
        history.to_pandas()


def test_export_writes_images_with_metadata_and_manifests(
        history: History, tmp_path: Path, populate: Callable[..., None]) -> None:
    h = history
    populate(h, 3)
    h.delete(0)
    out = h.export(tmp_path / "export")
    files = sorted(p for p in out.iterdir() if p.suffix == ".png")
    assert len(files) == 2
    metas = [read_metadata(p) for p in files]
    assert [m["task_id"] for m in metas] == ["task-1", "task-2"]
    assert metas[0]["prompt"] == h[0].prompt and metas[0]["model"] == "nano-banana-pro"
    with (out / "manifest.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["file"] for r in rows] == [p.name for p in files]
    assert rows[1]["task_id"] == "task-2" and rows[1]["prompt"] == h[1].prompt
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [m["file"] for m in manifest] == [p.name for p in files]
    # a view exports only its records
    only = h.filter(task_id="task-2").export(tmp_path / "one")
    assert len(list(only.glob("*.png"))) == 1
