"""Prompt × parameter grids run concurrently and shown as a matrix that fills in."""

from nanobanana_widgets.widgets.grid.grid import Cell, Grid, GridPlan, grid, open_grid

__all__ = ["Cell", "Grid", "GridPlan", "grid", "open_grid"]
