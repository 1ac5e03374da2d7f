"""The views' HTML on its own: render/'s functions take plain values and duck types (no
widget, no store), and escape every string they are given."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from nanobanana_widgets.render import compare as compare_html
from nanobanana_widgets.render import grid as grid_html
from nanobanana_widgets.render import panel as panel_html
from nanobanana_widgets.render import strip as strip_html
from nanobanana_widgets.service.errors import ContentRefusedError

from .helpers import HOSTILE, image_bytes

BAD = " ".join(HOSTILE)


def _record(**changes: object) -> SimpleNamespace:
    fields: dict[str, object] = dict(
        id=3, prompt=BAD, action="generate", model=BAD, aspect_ratio=BAD, resolution=None,
        count=2, inputs=(), results=(), status="failed", rating=4, favourite=True,
        created_at=time.time(), task_id=BAD, trace_id=BAD, elapsed=1.5, grid_cell="r1c1#1",
        error=SimpleNamespace(type="ContentRefusedError", message=BAD + ". More.", code=BAD,
                              trace_id=BAD))
    fields.update(changes)
    return SimpleNamespace(**fields)


def _assert_escaped(markup: str) -> None:
    assert "<script>" not in markup and "<img src=x" not in markup
    assert "&lt;script&gt;" in markup


@pytest.mark.parametrize("make", [
    lambda: strip_html.strip_row_html(_record(), None),
    lambda: strip_html.strip_row_html(_record(status="succeeded"), image_bytes("JPEG")),
    lambda: strip_html.strip_message_html(BAD),
    lambda: grid_html.row_head_html(BAD, 0),
    lambda: grid_html.column_head_html((BAD, None, "2K")),
    lambda: grid_html.grid_title_html(BAD, reopened=True),
    lambda: grid_html.cell_error_html(ContentRefusedError(BAD, trace_id=BAD), BAD),
    lambda: grid_html.cell_images_html([(None, "https://x.example/a.png", BAD)], BAD, BAD),
    lambda: grid_html.cell_waiting_html(BAD),
    lambda: grid_html.status_line_html(BAD, error=True),
    lambda: panel_html.messages_html([("error", BAD), ("info", BAD)]),
    lambda: panel_html.input_card_html(BAD, image_bytes("JPEG"), side=112),
    lambda: panel_html.run_row_html(number=1, stage="failed", cancelling=False, prompt=BAD,
                                    elapsed=2.0, images=None, action="generate", model=BAD,
                                    count=1, task_id=BAD, error=BAD),
    lambda: panel_html.result_card_html(
        SimpleNamespace(url="https://x.example/a.png", task_id=BAD, index=0, prompt=BAD,
                        request=SimpleNamespace(prompt=BAD, model=BAD, action="edit",
                                                aspect_ratio=BAD, resolution=None, count=2)),
        None, error=BAD, run_number=1),
    lambda: compare_html.card_html(
        SimpleNamespace(label=BAD, kind="file", prompt=BAD, params=(("model", BAD),),
                        task_id=BAD, link="https://x.example/a.png"), None, BAD,
        first=(("model", "other"),)),
    lambda: compare_html.diff_html([SimpleNamespace(label=BAD, prompt="a cat"),
                                    SimpleNamespace(label="B", prompt=BAD)], edit=False),
    lambda: compare_html.stage_html(SimpleNamespace(label=BAD), SimpleNamespace(label=BAD),
                                    "data:image/jpeg;base64,AA==", "data:image/jpeg;base64,AA==",
                                    aspect=(3, 2), max_side=512),
    lambda: compare_html.pick_status_html(BAD, "nbw-ok"),
])
def test_every_piece_escapes_what_it_is_given(make: object) -> None:
    _assert_escaped(make())  # type: ignore[operator]


def test_the_stylesheets_come_from_render() -> None:
    grid_css, cmp_css = grid_html.grid_styles(), compare_html.comparison_styles()
    assert ".nbw-matrix .nbw-matrix-cell" in grid_css and ".nbw-cmp-card" not in grid_css
    assert ".nbw-cmp .nbw-cmp-card" in cmp_css and ".nbw-matrix-cell" not in cmp_css
    for sheet in (grid_css, cmp_css):  # the frame both views share
        assert ".nbw-cmp .widget-html-content" in sheet and sheet.count("<style>") == 2
