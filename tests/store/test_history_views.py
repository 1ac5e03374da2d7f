"""History views, used like a small DataFrame: indexing, slicing, filter, search, sort,
newest, the record actions and recoverable delete, the paginated HTML table, and 10,000
records opened, filtered and rendered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nanobanana_widgets.service.errors import ContentRefusedError, InvalidParameterError
from nanobanana_widgets.service.types import ImageRequest
from nanobanana_widgets.store import History, HistoryView

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def test_indexing_slicing_and_iteration(history: History,
                                        populate: Callable[..., None]) -> None:
    h = history
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


def test_filter_search_sort_and_chaining(history: History,
                                         populate: Callable[..., None]) -> None:
    h = history
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


def test_actions_and_recoverable_delete(history: History,
                                        populate: Callable[..., None]) -> None:
    h = history
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
    assert len(History(h.folder, include_deleted=True)) == 5
    h.deleted().undelete(0)
    assert len(h) == 5 and not h[0].deleted
    tagged = h.tag(2, grid_id="g1", cell="r0c1")
    assert (tagged.grid_id, tagged.grid_cell) == ("g1", "r0c1")
    assert [r.task_id for r in h.grid("g1")] == ["task-2"]
    assert h.get(gone.id).task_id == "task-0"


def test_hostile_strings_are_escaped_in_html(history: History) -> None:
    h = history
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


def test_record_html_shows_its_id_and_views_their_positions(
        history: History, populate: Callable[..., None]) -> None:
    h = history
    populate(h, 3)
    h.delete(0)  # ids 2 and 3 are now at positions 0 and 1
    alone = h[1]._repr_html_()
    assert "<td>id 3</td>" in alone and "<th>#</th>" not in alone
    table = h.html()
    assert '<td><span title="id 2">0</span></td>' in table
    assert '<td><span title="id 3">1</span></td>' in table


def test_newest_reads_one_page_newest_first(history: History,
                                            populate: Callable[..., None]) -> None:
    h = history
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
    again.close()
