"""A/B comparisons of results, images and history records."""

from nanobanana_widgets.widgets.compare.comparison import Comparison, Side, compare

__all__ = ["Comparison", "Side", "compare"]
