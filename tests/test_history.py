"""The session history: SQLite persistence, DataFrame-like views, exports, and the client
listener (recording, resume after a crash, replay, rerun) against the emulator."""

from __future__ import annotations

import base64
import csv
import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PIL import Image

from conftest import TEST_TOKEN
from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.images import read_metadata
from nanobanana_widgets.service.errors import (
    ContentRefusedError,
    ImageInputError,
    InvalidParameterError,
)
from nanobanana_widgets.service.types import GeneratedImage, ImageRequest, Result, Timings
from nanobanana_widgets.store import History, HistoryView, Record, request_fingerprint
from nanobanana_widgets.store.schema import SCHEMA_VERSION

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (24, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def make_result(request: ImageRequest, task_id: str, colors: list[tuple[int, int, int]]
                ) -> Result:
    """A finished result whose images are data: URLs (a URL form the service may use)."""
    images = tuple(GeneratedImage(url=data_uri(png(c)), prompt=request.prompt, task_id=task_id,
                                  index=i, request=request) for i, c in enumerate(colors))
    return Result(task_id=task_id, trace_id=f"trace-{task_id}", request=request, images=images,
                  timings=Timings(submitted_at=100.0, finished_at=112.5, received_at=113.0))


def populate(h: History, n: int = 12) -> None:
    """n records: models alternate, ratings 0..5, prompts with a few words in common."""
    for i in range(n):
        model = "nano-banana-pro" if i % 2 else "nano-banana"
        req = ImageRequest("generate", f"Prompt {i} of a {'cat' if i % 3 == 0 else 'dog'}",
                           model=model, aspect_ratio="16:9" if i % 4 == 0 else "1:1")
        rec = h.add(req, make_result(req, f"task-{i}", [(10 * i, 0, 0)]))
        h.rate(rec, i % 6)


def run_python(code: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


# --- storage ---------------------------------------------------------------------------


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
    with pytest.raises(sqlite3.DatabaseError, match="newer than this package"):
        History(db)


def test_add_stores_everything_and_reads_it_back(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    source = png((0, 90, 200))
    req = ImageRequest("edit", "make it blue", model="nano-banana-2", count=2,
                       aspect_ratio="3:2", resolution="2K", image_urls=(data_uri(source),))
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
    assert rec.request().image_urls == (data_uri(source),)
    assert rec.fingerprint == request_fingerprint(req)
    h.close()


def test_persists_across_history_objects(tmp_path: Path) -> None:
    with History(tmp_path / "h") as h:
        populate(h, 4)
        h.note(2, "keeper")
        h.favourite(3)
    with History(tmp_path / "h") as again:
        assert len(again) == 4
        assert again[2].notes == "keeper" and again[3].favourite
        assert [r.rating for r in again] == [0, 1, 2, 3]
        assert all(r.results[0].local for r in again)


def test_another_process_writes_and_two_write_at_once(tmp_path: Path) -> None:
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


def test_threads_share_one_history(tmp_path: Path) -> None:
    h = History(tmp_path / "h")

    def work(k: int) -> None:
        for i in range(20):
            h.add(ImageRequest("generate", f"thread {k} {i}"))
            len(h)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(h) == 80
    h.close()


# --- DataFrame-like --------------------------------------------------------------------


def test_indexing_slicing_and_iteration(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    populate(h)
    assert len(h) == 12
    assert h[0].prompt.startswith("Prompt 0 ") and h[-1].prompt.startswith("Prompt 11 ")
    assert [r.prompt.split()[1] for r in h] == [str(i) for i in range(12)]
    view = h[2:8]
    assert isinstance(view, HistoryView) and len(view) == 6
    assert view[0].prompt.startswith("Prompt 2 ") and view[-1].prompt.startswith("Prompt 7 ")
    inner = view[1:3]
    assert [r.prompt.split()[1] for r in inner] == ["3", "4"]
    assert [r.prompt.split()[1] for r in h[::-4]] == ["11", "7", "3"]
    assert [r.prompt.split()[1] for r in h.head(2)] == ["0", "1"]
    assert [r.prompt.split()[1] for r in h.tail(2)] == ["10", "11"]
    assert len(h[20:]) == 0 and len(h.tail(0)) == 0
    with pytest.raises(IndexError, match="out of range for 12 records"):
        h[12]
    with pytest.raises(IndexError):
        view[-7]


def test_filter_search_sort_and_chaining(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    populate(h)
    h.note(5, "100% Best_one")
    pro = h.filter(model="nano-banana-pro")
    assert len(pro) == 6 and {r.model for r in pro} == {"nano-banana-pro"}
    assert len(h.filter(model="nano-banana-pro", aspect_ratio="16:9")) == 0
    assert len(h.filter(aspect_ratio="16:9")) == 3
    assert len(h.filter(rating=[4, 5])) == 4
    assert [r.rating for r in h.filter(predicate=lambda r: r.rating >= 4)] == [4, 5, 4, 5]
    assert len(h.search("CAT")) == 4  # case-insensitive, prompt
    assert [r.id for r in h.search("100%")] == [h[5].id]  # notes; % is literal
    assert len(h.search("Best_one")) == 1 and len(h.search("Best one")) == 0
    by_rating = h.sort("rating", descending=True)
    assert [r.rating for r in by_rating][:4] == [5, 5, 4, 4]
    # operations compose: a slice, then a filter, then a sort
    chained = h[:6].filter(model="nano-banana").sort("rating", descending=True)
    assert [r.prompt.split()[1] for r in chained] == ["4", "2", "0"]
    assert len(h[:6].search("dog")) == 4
    with pytest.raises(InvalidParameterError, match="filter field 'colour'"):
        h.filter(colour="red")
    with pytest.raises(InvalidParameterError, match="sort field"):
        h.sort("bogus")


def test_actions_and_recoverable_delete(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    populate(h, 5)
    rec = h.rate(-1, 5)
    assert rec.rating == 5 and h[-1].rating == 5
    with pytest.raises(InvalidParameterError, match="Invalid stars"):
        h.rate(0, 6)
    h.favourite(1)
    h.favourite("task-3")  # by task id
    assert [r.task_id for r in h.favourites()] == ["task-1", "task-3"]
    h.favourite(1, on=False)
    assert len(h.favourites()) == 1
    gone = h.delete(0)
    assert gone.deleted and len(h) == 4 and h[0].task_id == "task-1"
    assert [r.task_id for r in h.deleted()] == ["task-0"]
    assert len(History(tmp_path / "h", include_deleted=True)) == 5
    h.deleted().undelete(0)
    assert len(h) == 5 and not h[0].deleted
    tagged = h.tag(2, grid_id="g1", cell="r0c1")
    assert (tagged.grid_id, tagged.grid_cell) == ("g1", "r0c1")
    assert [r.task_id for r in h.grid("g1")] == ["task-2"]
    assert h.get(gone.id).task_id == "task-0"


def test_records_csv_json_and_pandas_round_trip(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    h = History(tmp_path / "h")
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


def test_to_pandas_without_pandas_says_how_to_install(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    h = History(tmp_path / "h")
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match="pip install pandas"):
        h.to_pandas()


def test_export_writes_images_with_metadata_and_manifests(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
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


def test_hostile_strings_are_escaped_in_html(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    for payload in HOSTILE:
        req = ImageRequest("generate", payload, model=payload, aspect_ratio=payload)
        rec = h.add(req, error=ContentRefusedError(payload, code=payload), task_id=payload)
        h.note(rec, payload)
    pages = [h._repr_html_(), h[0]._repr_html_() + h[1]._repr_html_(),
             h.search("alert").html()]
    for page in pages:
        for payload in HOSTILE:
            assert payload not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        assert "<img src=x" not in page and "<script>" not in page


def test_record_html_shows_its_id_and_views_their_positions(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    populate(h, 3)
    h.delete(0)  # ids 2 and 3 are now at positions 0 and 1
    alone = h[1]._repr_html_()
    assert "<td>id 3</td>" in alone and "<th>#</th>" not in alone
    table = h.html()
    assert '<td><span title="id 2">0</span></td>' in table
    assert '<td><span title="id 3">1</span></td>' in table


def test_newest_reads_one_page_newest_first(tmp_path: Path) -> None:
    h = History(tmp_path / "h")
    populate(h, 12)
    h.delete(11)
    page = h.newest(4)
    assert [r.id for r in page] == [11, 10, 9, 8]  # id 12 is deleted
    assert [r.id for r in h.newest(4, before=page[-1].id)] == [7, 6, 5, 4]
    assert [r.id for r in h.newest(10, before=3)] == [2, 1]
    assert [r.id for r in h.filter(model="nano-banana").newest(2)] == [11, 9]
    assert h.newest(0) == []
    with pytest.raises(InvalidParameterError, match="n"):
        h.newest(-1)


def test_default_history_can_leave_the_default_client_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from nanobanana_widgets import session
    from nanobanana_widgets.session import default_history

    monkeypatch.setattr(session, "_default", None)
    quiet = default_history(attach=False)
    assert session._default is None  # no default client was made
    assert quiet.folder == Path.cwd() / ".nanobanana"
    assert default_history() is quiet
    assert session._default is not None and quiet._client_for(None) is session._default


def test_ten_thousand_records_open_filter_and_render_paginated(tmp_path: Path) -> None:
    h = History(tmp_path / "big")
    with h.batch():
        for i in range(10_000):
            h.add(ImageRequest("generate", f"prompt {i}",
                               model="nano-banana-pro" if i % 4 == 0 else "nano-banana"),
                  status="succeeded")
    h.close()
    again = History(tmp_path / "big")
    assert len(again) == 10_000
    assert len(again.filter(model="nano-banana-pro")) == 2_500
    page = again._repr_html_()
    assert "showing 1–50 of 10,000 records" in page
    assert page.count("<tr>") == 51  # the header and 50 rows
    assert "prompt 49<" in page and "prompt 50<" not in page
    last = again.html(page=200)
    assert "showing 9951–10000 of 10,000" in last and "prompt 9999" in last
    assert again[-1].prompt == "prompt 9999"
    assert again.sort("created_at", descending=True)[0].prompt == "prompt 9999"


# --- the listener, against the emulator ------------------------------------------------


def test_records_a_generate_before_it_finishes(tmp_path: Path) -> None:
    with Emulator(latency=0.4) as emu, Client(TEST_TOKEN, base_url=emu.base_url,
                                              poll_interval=0.05) as client:
        h = History(tmp_path / "h", client=client)
        task = client.submit("a lighthouse at dusk", aspect_ratio="16:9")
        rec = h[-1]
        assert rec.status == "submitted" and rec.task_id == task.id
        assert not task.done()  # recorded while the task was still running
        assert rec.trace_id == task.trace_id and rec.timings.submitted_at == task.submitted_at
        result = task.wait(timeout=10)
        assert h.flush(timeout=10)
        rec = h[-1]
        assert rec.status == "succeeded" and rec.results[0].url == result.image.url
        assert rec.results[0].local and rec.results[0].thumbnail
        meta = read_metadata(rec.results[0].path)  # type: ignore[arg-type]
        assert meta["task_id"] == task.id and meta["aspect_ratio"] == "16:9"
        assert meta["prompt"] == "a lighthouse at dusk"
        assert rec.results[0].path.read_bytes() is not None  # type: ignore[union-attr]
        assert result.image.bytes()  # the history's download filled the cache
        h.close()
    # the token is stored nowhere in the history folder
    for f in (tmp_path / "h").rglob("*"):
        if f.is_file():
            assert TEST_TOKEN.encode() not in f.read_bytes(), f


def test_failed_tasks_and_failed_submits_are_recorded(client: Client, emulator: Emulator,
                                                      tmp_path: Path) -> None:
    h = History(tmp_path / "h", client=client)
    emulator.inject("task_forbidden")
    with pytest.raises(ContentRefusedError) as refused:
        client.generate("refused in the task")
    rec = h[-1]
    assert rec.status == "failed" and rec.task_id == refused.value.task_id
    assert rec.error is not None and rec.error.type == "ContentRefusedError"
    assert rec.error.code == "forbidden" and rec.trace_id
    assert isinstance(rec.result().error, ContentRefusedError)
    emulator.inject("used_up")
    with pytest.raises(Exception) as submit_err:
        client.generate("refused at submit")
    rec = h[-1]
    assert rec.prompt == "refused at submit" and rec.status == "failed"
    assert rec.task_id is None
    assert rec.error is not None and rec.error.type == type(submit_err.value).__name__
    assert rec.error.trace_id and rec.error.trace_id == getattr(submit_err.value, "trace_id", None)
    assert len(h.filter(status="failed")) == 2


def test_resume_after_the_submitting_process_died(tmp_path: Path) -> None:
    folder = str(tmp_path / "h")
    child = """
        import os, sys
        from nanobanana_widgets.client import Client
        from nanobanana_widgets.store import History
        client = Client(sys.argv[2], base_url=sys.argv[1], poll_interval=0.05)
        History(sys.argv[3], client=client)
        for i in range(3):
            client.submit(f"crash {i}", aspect_ratio="1:1")
        os._exit(0)
    """
    with Emulator(latency=1.0) as emu:
        done = run_python(child, emu.base_url, TEST_TOKEN, folder)
        assert done.returncode == 0, done.stderr
        assert emu.submissions == 3
        lookups = emu.lookups
        h = History(folder)  # opening does not touch the network
        assert [r.status for r in h] == ["submitted"] * 3
        assert emu.lookups == lookups
        with Client(TEST_TOKEN, base_url=emu.base_url, poll_interval=0.05) as client:
            resumed = h.resume(client, wait=True, timeout=15)
        assert len(resumed) == 3
        assert [r.status for r in h] == ["succeeded"] * 3
        assert all(r.results and r.results[0].local for r in h)
        assert emu.submissions == 3  # nothing was submitted again
        h.close()


def test_resume_at_open_with_resume_true(tmp_path: Path) -> None:
    with Emulator(latency=0.2) as emu, Client(TEST_TOKEN, base_url=emu.base_url,
                                              poll_interval=0.05) as client:
        h = History(tmp_path / "h")
        req = ImageRequest("generate", "looked up later")
        task = client.submit(req.prompt)  # made while no history listened
        h.add(req, task_id=task.id)
        emu.finish_all()
        again = History(tmp_path / "h", client=client, resume=True)
        again.flush(timeout=10)
        assert again[-1].status == "succeeded" and again[-1].results[0].local


def test_replay_answers_identical_requests_without_submitting(client: Client,
                                                              emulator: Emulator,
                                                              tmp_path: Path) -> None:
    h = History(tmp_path / "h", client=client)
    assert not h.replay and h.replay == False  # noqa: E712 - off by default
    first = client.generate("a red fox", aspect_ratio="3:2")
    assert h.flush(timeout=10)
    h.replay = True
    assert h.replay
    submitted = emulator.submissions
    again = client.generate("a red fox", aspect_ratio="3:2")
    assert emulator.submissions == submitted
    assert again.task_id == first.task_id and again.image.url == first.image.url
    assert again.image._cache["data"] == h[0].results[0].path.read_bytes()  # type: ignore[union-attr]
    assert h[0].replays == 1 and len(h) == 1
    # a different parameter is a different request
    client.generate("a red fox", aspect_ratio="2:3")
    assert emulator.submissions == submitted + 1
    # edits replay only with the same input bytes
    client.edit("tint it", png((1, 1, 1)))
    h.flush(timeout=10)
    n = emulator.submissions
    client.edit("tint it", png((1, 1, 1)))
    assert emulator.submissions == n
    client.edit("tint it", png((2, 2, 2)))
    assert emulator.submissions == n + 1
    h.replay = False
    client.generate("a red fox", aspect_ratio="3:2")
    assert emulator.submissions == n + 2
    assert History(tmp_path / "h2", replay=True).replay


def test_replay_gives_repeated_requests_their_own_results_in_order(
    client: Client, emulator: Emulator, tmp_path: Path
) -> None:
    h = History(tmp_path / "h", client=client)
    originals = [client.generate("a red fox").task_id for _ in range(2)]
    assert originals[0] != originals[1]
    assert h.flush(timeout=10)
    h.replay = True
    submitted = emulator.submissions
    replayed = [client.generate("a red fox").task_id for _ in range(3)]
    assert emulator.submissions == submitted
    # one each, in the original order; past the last it starts again instead of paying
    assert replayed == [originals[0], originals[1], originals[0]]


def test_rerun_an_edit_reads_inputs_from_the_folder(client: Client, emulator: Emulator,
                                                    tmp_path: Path) -> None:
    h = History(tmp_path / "h", client=client)
    source = png((9, 99, 199), (32, 20))
    client.edit("make it night", source, aspect_ratio="16:9")
    original = h[-1]
    task = h.rerun(-1, prompt="make it dawn")
    task.wait(timeout=10)
    assert emulator.submissions == 2
    rerun = h[-1]
    assert rerun.action == "edit" and rerun.prompt == "make it dawn"
    assert rerun.aspect_ratio == "16:9" and rerun.status == "succeeded"
    assert [i.sha256 for i in rerun.inputs] == [i.sha256 for i in original.inputs]
    assert rerun.inputs[0].path is not None and rerun.inputs[0].path.read_bytes() == source
    with pytest.raises(TypeError, match="unknown changes"):
        h.rerun(-1, colour="red")
    # a missing input file is named clearly
    assert original.inputs[0].path is not None
    original.inputs[0].path.unlink()
    with pytest.raises(ImageInputError, match="missing from the history folder"):
        h.rerun(0)


def test_a_cancelled_wait_stays_resumable(tmp_path: Path) -> None:
    with Emulator(latency=30.0) as emu, Client(TEST_TOKEN, base_url=emu.base_url,
                                               poll_interval=0.05) as client:
        h = History(tmp_path / "h", client=client)
        task = client.submit("still billed after a cancel")
        task.cancel()
        assert h[-1].status == "submitted"
        emu.finish_all()
        h.resume(wait=True, timeout=10)  # the attached client is used
        rec = h[-1]
        assert rec.status == "succeeded" and rec.results[0].local
        assert emu.submissions == 1


def test_default_history_records_the_module_functions(client: Client,
                                                      emulator: Emulator) -> None:
    from nanobanana_widgets import functions, session
    from nanobanana_widgets.session import default_history, set_default_history

    session.set_default_client(client)
    try:
        h = default_history()
        assert default_history() is h
        assert h.path == Path.cwd() / ".nanobanana" / "history.sqlite"
        functions.generate("through the module function")
        assert h[-1].prompt == "through the module function"
        assert h[-1].status == "succeeded"
        h.detach(client)
        functions.generate("not recorded")
        assert len(h) == 1
    finally:
        session.set_default_client(None)
        set_default_history(None)
