"""Rows are read from every shape and checked before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.jobs import BatchJob, InvalidRowError
from nanobanana_widgets.jobs.rows import check_rows, read_rows
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.store import History


def keep(data: bytes, ext: str) -> tuple[str, str]:
    return "sha-" + str(len(data)), f"images/x{ext}"


def checked(rows: object, **kwargs: object) -> list:  # type: ignore[type-arg]
    raw, source = read_rows(rows)
    return check_rows(raw, keep_image=keep, source=source, **kwargs)  # type: ignore[arg-type]


def test_a_list_of_prompts_takes_the_batch_defaults() -> None:
    specs = checked(["a red kite", "a blue kite"], model="nano-banana-pro", count=2,
                    aspect_ratio="16:9", resolution="2K")
    assert [s.prompt for s in specs] == ["a red kite", "a blue kite"]
    assert {(s.model, s.count, s.aspect_ratio, s.resolution, s.action) for s in specs} == {
        ("nano-banana-pro", 2, "16:9", "2K", "generate")}


def test_dicts_override_defaults_and_keep_other_columns_as_metadata() -> None:
    specs = checked([{"prompt": "a cat", "aspect_ratio": "3:4", "label": "cat", "id": 7},
                     {"prompt": "a dog", "count": 3}])
    assert specs[0].aspect_ratio == "3:4" and dict(specs[0].meta) == {"label": "cat", "id": 7}
    assert specs[1].count == 3 and specs[1].aspect_ratio is None


def test_a_dataframe_with_empty_cells_and_numpy_values() -> None:
    frame = pd.DataFrame({"prompt": ["a cat", "a dog"], "count": [1.0, float("nan")],
                          "score": [0.5, 2.0]})
    specs = checked(frame, count=2)
    assert [s.count for s in specs] == [1, 2]
    assert specs[1].meta == {"score": 2.0}
    with pytest.raises(InvalidParameterError, match="'prompt' column"):
        checked(pd.DataFrame({"text": ["a cat"]}))


def test_csv_and_json_lines_files(tmp_path: Path, png: Callable[..., bytes]) -> None:
    (tmp_path / "ref.png").write_bytes(png())
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("prompt,images,label\na cat,ref.png,cat\na dog,,dog\n",
                        encoding="utf-8")
    specs = checked(csv_file)
    assert specs[0].action == "edit" and specs[0].images[0]["path"] == "images/x.png"
    assert specs[1].action == "generate" and specs[1].meta == {"label": "dog"}
    lines = tmp_path / "rows.jsonl"
    lines.write_text(json.dumps({"prompt": "a cat", "count": 2}) + "\n" + json.dumps("a dog")
                     + "\n", encoding="utf-8")
    assert [(s.prompt, s.count) for s in checked(lines)] == [("a cat", 2), ("a dog", 1)]


@pytest.mark.parametrize(("row", "field", "words"), [
    ({"prompt": ""}, "prompt", "non-empty"),
    ({"prompt": "   "}, "prompt", "non-empty"),
    ({"label": "no prompt"}, "prompt", "missing"),
    ({"prompt": "a cat", "model": "nano-bananas"}, "model", "nano-banana-pro"),
    ({"prompt": "a cat", "count": 9}, "count", "Allowed values"),
    ({"prompt": "a cat", "count": "two"}, "count", "whole number"),
    ({"prompt": "a cat", "aspect_ratio": "5:4"}, "aspect_ratio", "16:9"),
    ({"prompt": "a cat", "resolution": "4K"}, "resolution", "supports (1K)"),
    ({"prompt": "a cat", "action": "edit"}, "images", "at least one input image"),
])
def test_a_bad_row_names_its_number_and_field(row: dict[str, object], field: str,
                                              words: str) -> None:
    rows: list[object] = ["fine"] * 4 + [row]
    with pytest.raises(InvalidRowError) as caught:
        checked(rows)
    err = caught.value
    assert (err.row, err.field) == (5, field)
    assert str(err).startswith(f"Row 5, {field}: ")
    assert words in str(err) and "Nothing was sent" in str(err)
    assert isinstance(err, ValueError)


def test_a_missing_image_in_row_37_of_a_csv_sends_nothing(
        tmp_path: Path, png: Callable[..., bytes], client: Client, emulator: Emulator,
        job_history: History) -> None:
    (tmp_path / "ok.png").write_bytes(png())
    lines = ["prompt,images"] + [f"product {i},ok.png" for i in range(1, 37)]
    lines.append("product 37,missing.png")
    lines += [f"product {i},ok.png" for i in range(38, 41)]
    csv_file = tmp_path / "products.csv"
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InvalidRowError) as caught:
        BatchJob.create(csv_file, history=job_history, client=client)
    err = caught.value
    assert (err.row, err.field) == (37, "images")
    assert "line 38 of products.csv" in str(err) and "missing.png" in str(err)
    assert "no such file" in str(err)
    assert emulator.submissions == 0
    assert job_history.jobs.names() == []


def test_not_rows_at_all() -> None:
    for bad in (42, {"prompt": "a cat"}):
        with pytest.raises(InvalidParameterError, match="list of prompts"):
            checked(bad)
    with pytest.raises(InvalidRowError, match="Row 2, row"):
        checked(["a cat", 3])
    with pytest.raises(InvalidParameterError, match="at least one row"):
        checked([])
    with pytest.raises(InvalidParameterError, match=r"\.csv or \.jsonl"):
        checked("rows.txt")
    with pytest.raises(InvalidParameterError, match="an existing file"):
        checked("nowhere.csv")


def test_the_same_image_is_read_once(tmp_path: Path, png: Callable[..., bytes]) -> None:
    (tmp_path / "ref.png").write_bytes(png())
    calls = []

    def counting(data: bytes, ext: str) -> tuple[str, str]:
        calls.append(len(data))
        return keep(data, ext)

    raw, source = read_rows([{"prompt": f"p{i}", "images": str(tmp_path / "ref.png")}
                             for i in range(50)])
    specs = check_rows(raw, keep_image=counting, source=source)
    assert len(calls) == 1 and all(s.action == "edit" for s in specs)
