"""Prompt × parameter grids: many generations at once, shown as a matrix that fills in.

::

    g = grid(["a cat", "a dog"], models=["nano-banana", "nano-banana-pro"],
             aspect_ratios=["1:1", "16:9"])          # 2 × 4 = 8 paid generations
    g                                                # the matrix; cells fill in as they finish
    g.wait(); g.results[Cell("a cat", "nano-banana", "16:9", None)]
    Grid.open(g.id)                                  # later, from the history, no network

**Cells** are the product of the axes (see :mod:`.plan`, which checks them before anything
is sent). **Cost.** The widget states the number of paid generations before anything is
sent (``images = cells × count``). When that number is above ``max_calls`` (default 16)
nothing is spent until the "Run N paid generations" button is clicked or
``grid.confirm()`` is called (or ``confirm=True`` was passed). With the history's replay
mode on (``history.replay = True``), a cell identical to a recorded success is answered
from the history and not paid again; the widget says when replay is on.

**Running** (:mod:`.runner`). Submits go out concurrently and all tasks are waited for
together through the client's one batched poller, in background threads: ``grid(...)``
returns at once. A failed cell shows its error (with the trace id) while the others
complete. ``grid.wait(timeout)`` blocks until every cell is done, ``grid.results`` maps each
finished :class:`Cell` to its ``Result`` or error, and ``grid.cancel()`` stops waiting
locally (the service has no cancel: tasks already submitted may still run and be billed).

**History.** Every task is tagged ``history.tag_cell(grid.id, "r1c2#1", ...)`` (row, column
and repeat, counted from 1). The id is derived from what the grid asks for (prompts, axes,
repeats, fixed parameters and input images), so running the same notebook again gives the
same id and ``Grid.open(id)`` keeps working; pass ``grid_id=`` to choose one. When a grid
ran more than once, ``Grid.open`` shows each cell's latest run. A replayed record that
already belongs to another grid cell keeps its tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nanobanana_widgets.session import choose_history
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.grid.plan import (
    DEFAULT_MAX_CALLS,
    Cell,
    GridPlan,
    cell_tag,
    check_max_calls,
    column_label,
    make_plan,
    parse_cell_tag,
)
from nanobanana_widgets.widgets.grid.view import CELL_THUMB_SIDE, Grid

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client

__all__ = ["CELL_THUMB_SIDE", "DEFAULT_MAX_CALLS", "Cell", "Grid", "GridPlan", "cell_tag",
           "column_label", "grid", "make_plan", "open_grid", "parse_cell_tag"]


def grid(prompts: Any = None, models: Any = None, aspect_ratios: Any = None,
         resolutions: Any = None, repeats: int = 1, *, client: Client | None = None,
         history: History | None = None, max_calls: int = DEFAULT_MAX_CALLS,
         confirm: bool = False, grid_id: str | None = None, **fixed: Any) -> Grid:
    """Run the product of the axes concurrently and show it as a matrix that fills in.

    ``prompts`` are the rows; ``models`` (default ``nano-banana``), ``aspect_ratios``,
    ``resolutions`` (default: the service's) and ``repeats`` make the columns. ``fixed``
    may set ``count``, ``action`` and ``images`` for every cell. Above ``max_calls`` paid
    generations (``cells × count``) nothing is sent until ``grid.confirm()`` or the button,
    unless ``confirm=True``. ``client`` defaults to the package's client and ``history`` to
    the default history (tasks are tagged there; ``Grid.open(grid.id)`` reopens the matrix).
    Returns at once; the work runs in background threads. Invalid axes raise
    ``InvalidParameterError`` before anything is sent.
    """
    plan = make_plan(prompts, models, aspect_ratios, resolutions, repeats, grid_id=grid_id,
                     **fixed)
    check_max_calls(max_calls)
    chosen = choose_history(history, client)
    return Grid(plan, client=client, history=chosen, max_calls=max_calls, confirm=confirm)


def open_grid(grid_id: str, history: History | None = None) -> Grid:
    """Reopen a grid's matrix from the history (same as ``Grid.open``; no network)."""
    return Grid._from_history(grid_id, history)
