"""The history's storage: where it lives, WAL and the schema version, what a record keeps,
and several History objects, processes and threads on one database."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.service.errors import HistoryVersionError
from nanobanana_widgets.service.types import ImageRequest, Result
from nanobanana_widgets.store import History, Record, request_fingerprint
from nanobanana_widgets.store.schema import SCHEMA_VERSION
from support import png_data_uri


def test_default_location_wal_and_schema_version(tmp_path: Path) -> None:
    h = History()
    assert h.path == Path.cwd() / ".nanobanana" / "history.sqlite"
    assert h.path.is_file()
    with sqlite3.connect(h.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    h.close()
    as_file = History(tmp_path / "elsewhere" / "mine.sqlite")
    assert as_file.path == tmp_path / "elsewhere" / "mine.sqlite"
    assert as_file.folder == tmp_path / "elsewhere"
    as_file.close()


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(HistoryVersionError, match="newer nanobanana-widgets") as err:
        History(db)
    assert str(db) in str(err.value) and "Upgrade" in str(err.value)


def test_add_stores_everything_and_reads_it_back(history: History, png: Callable[..., bytes],
                                                 make_result: Callable[..., Result]) -> None:
    h = history
    source = png((0, 90, 200))
    req = ImageRequest("edit", "make it blue", model="nano-banana-2", count=2,
                       aspect_ratio="3:2", resolution="2K", image_urls=(png_data_uri(source),))
    result = make_result(req, "task-abc", [(1, 2, 3), (4, 5, 6)])
    rec = h.add(req, result)
    assert isinstance(rec, Record)
    assert (rec.action, rec.prompt, rec.model, rec.count) == ("edit", "make it blue",
                                                               "nano-banana-2", 2)
    assert (rec.aspect_ratio, rec.resolution) == ("3:2", "2K")
    assert rec.parameters["resolution"] == "2K" and rec.parameters["inputs"] == 1
    assert rec.status == "succeeded" and rec.task_id == "task-abc"
    assert rec.trace_id == "trace-task-abc"
    assert rec.timings.finished_at == 112.5 and rec.elapsed == pytest.approx(13.0)
    # the input: hash, full copy in the content-addressed folder, JPEG thumbnail
    (inp,) = rec.inputs
    assert inp.path is not None and inp.path.read_bytes() == source
    assert inp.path.relative_to(h.folder).parts[:2] == ("images", inp.sha256[:2])
    assert inp.path.name == f"{inp.sha256}.png"
    assert inp.thumbnail is not None and inp.thumbnail[:2] == b"\xff\xd8"
    # the results: URL, echoed prompt, local copy with metadata embedded
    assert len(rec.results) == 2 and all(r.local for r in rec.results)
    meta = read_metadata(rec.results[1].path)  # type: ignore[arg-type]
    assert meta["task_id"] == "task-abc" and meta["prompt"] == "make it blue"
    assert meta["model"] == "nano-banana-2" and meta["index"] == 1
    # the Result rebuilt from the history: bytes from the local copies
    again = rec.result()
    assert isinstance(again, Result) and again.status == "succeeded"
    assert again.task_id == "task-abc" and len(again) == 2
    assert "data" in again.image._cache
    assert Image.open(io.BytesIO(again[1].bytes())).getpixel((0, 0)) == (4, 5, 6)
    assert rec.request().image_urls == (png_data_uri(source),)
    assert rec.fingerprint == request_fingerprint(req)


def test_persists_across_history_objects(tmp_path: Path, populate: Callable[..., None]) -> None:
    with History(tmp_path / "h") as h:
        populate(h, 4)
        h.note(2, "keeper")
        h.favourite(3)
    with History(tmp_path / "h") as again:
        assert len(again) == 4
        assert again[2].notes == "keeper" and again[3].favourite
        assert [r.rating for r in again] == [0, 1, 2, 3]
        assert all(r.results[0].local for r in again)


def test_another_process_writes_and_two_write_at_once(
        tmp_path: Path, run_python: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    folder = str(tmp_path / "shared")
    writer = """
        import sys
        from nanobanana_widgets.store import History
        from nanobanana_widgets.service.types import ImageRequest
        h = History(sys.argv[1])
        for i in range(int(sys.argv[3])):
            h.add(ImageRequest("generate", f"{sys.argv[2]} {i}"), status="succeeded")
        h.close()
    """
    done = run_python(writer, folder, "child", "5")
    assert done.returncode == 0, done.stderr
    h = History(folder)
    assert [r.prompt for r in h] == [f"child {i}" for i in range(5)]
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(writer), folder, name, "60"],
                              stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    h.add(ImageRequest("generate", "parent"))  # the parent writes too, on the same file
    assert len(h) == 126
    assert len(h.search("a ")) == 60 and len(h.search("b ")) == 60
    assert len({r.id for r in h}) == 126
    h.close()


def test_threads_share_one_history(history: History) -> None:
    def work(k: int) -> None:
        for i in range(20):
            history.add(ImageRequest("generate", f"thread {k} {i}"))
            len(history)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(history) == 80
