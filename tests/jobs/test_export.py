"""A finished job as a dataset, loaded back with Hugging Face ``datasets`` (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.jobs import BatchJob
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.store import History

datasets = pytest.importorskip("datasets")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture
def finished(emulator: Emulator, client: Client, job_history: History) -> BatchJob:
    emulator.inject("task_error", times=1)  # row 1 fails: it is not in the dataset
    rows = [{"prompt": "a red kite <script>", "label": "kite", "rating": "x"},
            {"prompt": "a blue boat", "label": "boat", "rating": "y", "aspect_ratio": "16:9"},
            {"prompt": "a green tree", "label": "tree", "rating": "z", "count": 2}]
    job = BatchJob.create(rows, history=job_history, client=client, concurrency=1)
    job.wait(30)
    job_history.rate(job_history.find(task_id=job.runner.rows[1].task_id), 4)  # type: ignore[arg-type]
    return job


def test_imagefolder_round_trips_through_datasets(finished: BatchJob, tmp_path: Path,
                                                  offline: None) -> None:
    folder = finished.export(tmp_path / "ds")
    lines = [json.loads(x) for x in (folder / "metadata.jsonl").read_text().splitlines()]
    assert [x["file_name"] for x in lines] == ["00002-0.png", "00003-0.png", "00003-1.png"]
    ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train")
    assert ds.num_rows == 3
    first = ds[0]
    assert first["prompt"] == "a blue boat" and first["label"] == "boat"
    assert first["aspect_ratio"] == "16:9" and first["model"] == "nano-banana"
    assert first["rating"] == 4 and first["row_rating"] == "y"  # a row's own column kept
    assert first["task_id"] == finished.runner.rows[1].task_id
    assert first["image"].size == (1024, 576)
    assert [r["image_index"] for r in ds] == [0, 0, 1]


def test_parquet_round_trips_through_datasets(finished: BatchJob, tmp_path: Path,
                                              offline: None) -> None:
    path = finished.export(tmp_path / "out.parquet", format="parquet")
    assert path == tmp_path / "out.parquet"
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert ds.num_rows == 3
    assert isinstance(ds.features["image"], datasets.Image)
    row = ds[2]
    assert row["prompt"] == "a green tree" and row["count"] == 2 and row["label"] == "tree"
    assert row["image"].size == (1024, 1024)
    into_folder = finished.export(tmp_path / "pq", format="parquet")
    assert into_folder == tmp_path / "pq" / "data.parquet" and into_folder.is_file()


def test_an_unknown_format_is_refused(finished: BatchJob, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="imagefolder, parquet"):
        finished.export(tmp_path / "x", format="zip")
