"""Closing a view closes every model it is made of: none stays alive in the kernel, and
no live model is left naming a closed one (which breaks ``Widget.get_manager_state()``,
and with it ``ipywidgets.embed``, for every widget of the kernel)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w
import pytest
from ipywidgets.widgets.widget import _instances

from nanobanana_widgets.client import Client
from nanobanana_widgets.service.types import Result
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets._ui import widget_tree
from nanobanana_widgets.widgets.batch import batch
from nanobanana_widgets.widgets.compare import compare
from nanobanana_widgets.widgets.grid import grid
from nanobanana_widgets.widgets.tournament import ab_test, tournament

PROMPTS = ["a kite over the dunes", "a kite over the sea", "a kite in the fog"]


def made(client: Client, history: History) -> list[Result]:
    results = [client.generate(p) for p in PROMPTS]
    assert history.flush(timeout=10)
    return results


def open_comparison(client: Client, history: History) -> Any:
    a, b, c = made(client, history)
    return compare(a, b, c, history=history)


def open_tournament(client: Client, history: History) -> Any:
    return tournament(made(client, history), history=history)


def open_ab_test(client: Client, history: History) -> Any:
    return ab_test(PROMPTS[0], PROMPTS[1], samples=2, client=client, history=history).wait(30)


def open_grid(client: Client, history: History) -> Any:
    g = grid(prompts=PROMPTS, client=client, history=history)
    g.wait(30)
    return g


def open_batch_view(client: Client, history: History) -> Any:
    job = batch(PROMPTS, client=client, history=history, name="kites")
    job.wait(30)
    return job.view


VIEWS: dict[str, Callable[[Client, History], Any]] = {
    "compare": open_comparison, "tournament": open_tournament, "ab_test": open_ab_test,
    "grid": open_grid, "batch": open_batch_view,
}


@pytest.mark.parametrize("kind", list(VIEWS))
def test_closing_a_view_closes_every_model_it_is_made_of(
        kind: str, client: Client, history: History) -> None:
    view = VIEWS[kind](client, history)
    models = list(widget_tree(view))
    assert len(models) > 10  # a real view: children, layouts, styles
    ids = {m.model_id for m in models}
    view.close()
    alive = [type(m).__name__ for m in models if m.comm is not None]
    assert alive == []
    assert not ids & set(_instances)
    # Every model still open can be written out (what a notebook's widget state and
    # ipywidgets.embed do): none names a model closed with the view.
    w.Widget.get_manager_state(drop_defaults=True)


def test_a_closed_batch_view_is_made_again_and_no_longer_repainted(
        client: Client, history: History) -> None:
    job = batch(PROMPTS, client=client, history=history, name="kites")
    job.wait(30)
    first = job.view
    first.close()
    again = job.view
    assert again is not first and again.comm is not None
    assert first.refresh not in job._observers and again.refresh in job._observers
    again.close()
