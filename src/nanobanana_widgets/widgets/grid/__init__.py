"""Prompt × parameter grids run concurrently and shown as a matrix that fills in.

``plan`` checks the axes (pure), ``runner`` runs the cells (no widgets), ``view`` is the
``Grid`` widget, ``grid`` the functions ``grid()`` and ``open_grid()``.
"""

from nanobanana_widgets.widgets.grid.grid import Cell, Grid, GridPlan, grid, open_grid

__all__ = ["Cell", "Grid", "GridPlan", "grid", "open_grid"]
