"""Damaged files: a history that is not a database, truncated, from a newer version or in a
folder that cannot be used raises a typed error and is never overwritten; open_safely keeps
it aside and goes on; a damaged image copy is never served; exports go on past a bad image,
never replace nor follow a file, and write no spreadsheet formula."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.service.errors import (
    HistoryAccessError,
    HistoryDamagedError,
    HistoryVersionError,
    HistoryWarning,
    ImageInputError,
    NanoBananaError,
)
from nanobanana_widgets.service.types import ImageRequest, Result
from nanobanana_widgets.store import History
from nanobanana_widgets.store.schema import SCHEMA_VERSION
from support import png, png_data_uri

from .smallfs import run_on_small_disk


def _filled(folder: Path, populate: Callable[..., None], n: int = 3) -> Path:
    with History(folder) as h:
        populate(h, n)
        return h.path


def _damaged_files() -> dict[str, Callable[[Path, Callable[..., None]], Path]]:
    def not_a_database(folder: Path, populate: Callable[..., None]) -> Path:
        folder.mkdir(parents=True)
        (folder / "history.sqlite").write_bytes(b"this is my shopping list, not SQLite\n" * 20)
        return folder / "history.sqlite"

    def truncated(folder: Path, populate: Callable[..., None]) -> Path:
        db = _filled(folder, populate, 40)
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
        return db

    def garbage_pages(folder: Path, populate: Callable[..., None]) -> Path:
        db = _filled(folder, populate, 40)
        data = bytearray(db.read_bytes())
        data[4096:] = b"\xa5" * (len(data) - 4096)
        db.write_bytes(bytes(data))
        return db

    return {"not a database": not_a_database, "truncated": truncated,
            "garbage pages": garbage_pages}


@pytest.mark.parametrize("damage", list(_damaged_files()))
def test_a_damaged_history_is_a_typed_error_and_is_left_as_it_is(
        tmp_path: Path, populate: Callable[..., None], damage: str) -> None:
    db = _damaged_files()[damage](tmp_path / "h", populate)
    before = db.read_bytes()
    with pytest.raises(HistoryDamagedError) as err:
        History(tmp_path / "h")
    assert isinstance(err.value, NanoBananaError) and err.value.path == str(db)
    assert str(db) in str(err.value) and "open_safely" in str(err.value)
    assert db.read_bytes() == before


def test_a_history_from_a_newer_version_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "h" / "history.sqlite"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    before = db.read_bytes()
    with pytest.raises(HistoryVersionError, match="newer nanobanana-widgets"):
        History(db.parent)
    assert db.read_bytes() == before
    with pytest.warns(HistoryWarning, match="newer nanobanana-widgets"):
        h = History.open_safely(db.parent)
    assert h.path == db.with_name(f"history.v{SCHEMA_VERSION}.sqlite")
    h.add(ImageRequest("generate", "recorded beside it"))
    h.close()
    assert db.read_bytes() == before


READ_ONLY = """
    import json, warnings
    from pathlib import Path
    from nanobanana_widgets.service.errors import HistoryAccessError, HistoryWarning
    from nanobanana_widgets.service.types import ImageRequest
    from nanobanana_widgets.store import History
    folder = Path(FOLDER) / "h"
    with History(folder) as h:
        h.add(ImageRequest("generate", "made before the folder became read-only"))
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    read_only()
    out = {}
    for where in (folder, Path(FOLDER) / "new"):
        try:
            History(where)
            out[where.name] = "opened"
        except HistoryAccessError as exc:
            out[where.name] = str(exc)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        fallback = History.open_safely(folder)
    fallback.add(ImageRequest("generate", "kept in a temporary folder"))
    out["fallback"] = [str(fallback.folder), len(fallback)]
    out["warned"] = [str(w.message) for w in shown if w.category is HistoryWarning]
    out["unchanged"] = before == {p.name: p.read_bytes() for p in folder.iterdir()
                                  if p.is_file()}
    fallback.close()
    print(json.dumps(out))
"""


def test_a_read_only_folder_is_a_typed_error_and_open_safely_goes_on(tmp_path: Path) -> None:
    done = run_on_small_disk(READ_ONLY, tmp_path / "ro")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("h", "new"):
        assert "Could not" in out[name] and "writable" in out[name], out[name]
    assert str(tmp_path / "ro" / "h") in out["h"]
    folder, count = out["fallback"]
    assert "nanobanana-history-" in folder and count == 1
    assert any("temporary folder" in m for m in out["warned"])
    assert out["unchanged"]


def test_a_folder_that_cannot_be_made_is_a_typed_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(HistoryAccessError) as err:
        History(blocker / "sub")
    assert str(blocker / "sub") in str(err.value) and "writable" in str(err.value)
    with pytest.warns(HistoryWarning, match="temporary folder"):
        h = History.open_safely(blocker / "sub")
    assert h.add(ImageRequest("generate", "kept somewhere")).id == 1
    assert blocker.read_text() == "not a folder"
    assert "nanobanana-history-" in str(h.folder)
    h.close()


@pytest.mark.parametrize("damage", list(_damaged_files()))
def test_open_safely_keeps_a_damaged_history_aside_and_starts_afresh(
        tmp_path: Path, populate: Callable[..., None], damage: str) -> None:
    db = _damaged_files()[damage](tmp_path / "h", populate)
    before = db.read_bytes()
    with pytest.warns(HistoryWarning, match="is damaged") as shown:
        h = History.open_safely(tmp_path / "h")
    (aside,) = tmp_path.joinpath("h").glob("history.sqlite.damaged-*[0-9]")
    assert aside.read_bytes() == before  # kept, byte for byte
    assert aside.name in str(shown[0].message)
    assert h.path == db and len(h) == 0
    assert h.add(ImageRequest("generate", "a fresh start")).status == "submitted"
    assert [p.kind for p in h.problems] == ["set_aside"]
    h.close()


# --- kept files are checked against their hash ------------------------------------------


def test_a_damaged_image_copy_is_never_served(history: History,
                                              make_result: Callable[..., Result]) -> None:
    source = png((200, 10, 10))
    req = ImageRequest("edit", "make it red", image_urls=(png_data_uri(source),))
    rec = history.add(req, make_result(req, "task-dmg", [(0, 128, 0)]))
    result_file, input_file = rec.results[0].path, rec.inputs[0].path
    assert result_file is not None and input_file is not None
    sound = result_file.read_bytes()
    result_file.write_bytes(sound[:-20] + b"\0" * 20)
    input_file.write_bytes(b"not the input any more")
    rec = history.get(rec.id)
    assert rec.results[0].read() is None
    with pytest.raises(ImageInputError, match="damaged"):
        rec.inputs[0].bytes()
    again = rec.result()
    assert "data" not in again.image._cache  # downloads again rather than serve it
    with pytest.warns(HistoryWarning, match="damaged"):
        out = history.export(history.folder.parent / "out")
    (exported,) = out.glob("*.png")
    assert read_metadata(exported)["task_id"] == "task-dmg"
    assert history.get(rec.id).results[0].read() is not None  # repaired from its URL


# --- exports ---------------------------------------------------------------------------


def test_export_goes_on_past_a_bad_image_and_reports_it(
        history: History, tmp_path: Path, populate: Callable[..., None]) -> None:
    populate(history, 3)
    missing = ImageRequest("generate", "its image is gone")
    history.add(missing, status="succeeded")
    rid = history[-1].id
    history._store.set_results(rid, [{"url": "http://127.0.0.1:9/gone.png", "prompt": ""}])
    bad = history[1].results[0].path
    assert bad is not None
    bad.write_bytes(b"garbage")
    with pytest.warns(HistoryWarning) as shown:
        out = history.export(tmp_path / "out")
    messages = [str(w.message) for w in shown]
    assert any("skipped 1 image" in m and "its image is gone" not in m for m in messages)
    assert any("is damaged" in m for m in messages)
    assert len(list(out.glob("*.png"))) == 3  # the damaged one came back from its URL
    rows = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [r["record_id"] for r in rows] == [1, 2, 3]
    assert any(p.kind == "export" for p in history.problems)


def test_export_never_replaces_nor_follows_a_file(
        history: History, tmp_path: Path, populate: Callable[..., None]) -> None:
    populate(history, 2)
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "000001-0.png"
    mine.write_bytes(b"my own file")
    outside = tmp_path / "outside.txt"
    outside.write_text("do not touch")
    os.symlink(outside, out / "manifest.csv")
    os.symlink(outside, out / "000002-0.png")
    with pytest.warns(HistoryWarning, match="left them as they were"):
        history.export(out)
    assert mine.read_bytes() == b"my own file"
    assert outside.read_text() == "do not touch"
    assert (out / "000001-0-2.png").is_file() and (out / "000002-0-2.png").is_file()
    with (out / "manifest-2.csv").open(encoding="utf-8") as fh:
        assert [r["file"] for r in csv.DictReader(fh)] == ["000001-0-2.png", "000002-0-2.png"]
    again = history.export(out)  # the same export again: identical files are kept
    assert again == out


def test_no_csv_cell_is_a_spreadsheet_formula(history: History, tmp_path: Path,
                                              make_result: Callable[..., Result]) -> None:
    for i, prompt in enumerate(['=HYPERLINK("http://evil","x")', "+1+1", "-2-2",
                                "@SUM(A1)", "\t=1", "fine"]):
        req = ImageRequest("generate", prompt)
        rec = history.add(req, make_result(req, f"t{i}", [(i, i, i)]))
        history.note(rec, "=cmd|' /C calc'!A0")
    history.to_csv(tmp_path / "records.csv")
    out = history.export(tmp_path / "out")
    for path, column in ((tmp_path / "records.csv", "prompt"),
                         (out / "manifest.csv", "prompt")):
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        cells = [row[column] for row in rows] + [row["notes"] for row in rows]
        assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells), cells
        assert rows[0][column] == "'=HYPERLINK(\"http://evil\",\"x\")"
        assert rows[-1][column] == "fine"

