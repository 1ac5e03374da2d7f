"""The ipywidgets views: the prompt panel, comparisons and grids.

Each view is one subpackage and imports no other view; shared widget helpers (the one rule
for changing widgets from background threads, the view re-sync) live in :mod:`._ui`.
"""
