"""The history table from plain data: rows are mappings, a record is any object with the
right attributes (render/ imports no store), every string is escaped."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nanobanana_widgets.render.history_table import (
    first_thumbnail,
    history_page_html,
    history_row,
    record_html,
)

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>"


@dataclass
class Thumb:
    thumbnail: bytes | None


@dataclass
class FakeRecord:
    id: int
    fields: dict[str, Any]
    results: list[Thumb] = field(default_factory=list)
    inputs: list[Thumb] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.fields}


def test_a_row_shows_the_parameters_status_rating_and_escapes_everything() -> None:
    row = {"id": 7, "prompt": HOSTILE + " " + "x" * 400, "model": HOSTILE, "action": "edit",
           "aspect_ratio": "16:9", "resolution": "2K", "count": 2, "grid_id": "g1",
           "grid_cell": "r0c1", "status": "failed", "error_code": HOSTILE,
           "error_message": HOSTILE, "rating": 3, "favourite": 1, "notes": HOSTILE,
           "created_at": 1_750_000_000.0, "task_id": HOSTILE}
    cells = history_row(4, row, b"\xff\xd8jpeg")
    markup = "".join(cells)
    assert cells[0] == '<span title="id 7">4</span>'
    assert cells[1].startswith('<img src="data:image/jpeg;base64,')
    assert "edit · 16:9 · 2K · ×2 · grid g1 [r0c1]" in cells[4]
    assert '<span class="failed">failed</span>' in cells[5]
    assert cells[6] == "♥ ★★★☆☆"
    assert "…" in cells[2]  # a long prompt is cut short; its tooltip keeps more
    assert "<script>" not in markup and "<img src=x" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


def test_a_page_says_where_it_is_and_uses_the_first_thumbnail() -> None:
    rows = [{"id": 10 + k, "prompt": f"p{k}", "status": "succeeded",
             "result_thumb": None, "input_thumb": b"in" if k else None} for k in range(3)]
    page = history_page_html(rows, offset=50, total=120, page=2, pages=3)
    assert "showing 51–53 of 120 records (page 2 of 3); more with .page(3)" in page
    assert page.count("<tr>") == 4 and page.count("<img") == 2
    assert '<table class="nbw-history">' in page and "<style>" in page
    assert "no records" in history_page_html([], offset=0, total=0, page=1, pages=1)


def test_a_record_alone_is_labelled_by_its_id() -> None:
    record = FakeRecord(3, {"prompt": "a fox", "status": "succeeded"},
                        results=[Thumb(None), Thumb(b"result")], inputs=[Thumb(b"input")])
    assert first_thumbnail(record) == b"result"
    assert first_thumbnail(FakeRecord(4, {}, inputs=[Thumb(b"input")])) == b"input"
    assert first_thumbnail(FakeRecord(5, {})) is None
    markup = record_html(record)
    assert "<td>id 3</td>" in markup and "<th></th><th></th><th>prompt</th>" in markup
