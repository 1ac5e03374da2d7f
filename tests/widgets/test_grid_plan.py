"""A grid's plan, checked before anything is sent: cell tags, invalid axes and keywords."""

from __future__ import annotations

import pytest

from nanobanana_widgets.client import Client
from nanobanana_widgets.emulator import Emulator
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid import grid
from nanobanana_widgets.widgets.grid.plan import cell_tag, parse_cell_tag


def test_cell_tags_round_trip() -> None:
    assert cell_tag(0, 2, 1) == "r1c3#2"
    assert parse_cell_tag("r1c3#2") == (0, 2, 1)
    assert parse_cell_tag("r0c1#1") is None and parse_cell_tag(None) is None
    assert parse_cell_tag("nonsense") is None


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"prompts": []}, "prompts"),
    ({"prompts": None}, "prompts"),
    ({"prompts": ["ok", "  "]}, "prompts"),
    ({"prompts": ["same", "same"]}, "repeats="),
    ({"prompts": ["ok"], "models": ["nano-banana-9"]}, "models"),
    ({"prompts": ["ok"], "models": []}, "models"),
    ({"prompts": ["ok"], "aspect_ratios": ["5:4"]}, "aspect_ratios"),
    ({"prompts": ["ok"], "resolutions": ["8K"]}, "resolutions"),
    ({"prompts": ["ok"], "models": ["nano-banana", "nano-banana-pro"],
      "resolutions": ["4K"]}, "resolution"),
    ({"prompts": ["ok"], "repeats": 0}, "repeats"),
    ({"prompts": ["ok"], "count": 5}, "count"),
    ({"prompts": ["ok"], "action": "edit"}, r"Invalid images: \[\]\. Expected at least one"),
    ({"prompts": ["ok"], "max_calls": -1}, "max_calls"),
])
def test_invalid_axes_raise_before_anything_is_sent(
        client: Client, history: History, emulator: Emulator, kwargs: dict[str, object],
        match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        grid(client=client, history=history, **kwargs)  # type: ignore[arg-type]
    assert emulator.submissions == 0 and len(history) == 0


def test_unknown_keywords_are_refused(client: Client, history: History) -> None:
    with pytest.raises(TypeError, match="aspect_ratio"):
        grid(["ok"], aspect_ratio="1:1", client=client, history=history)

