"""Blind tournaments and A/B tests: rank images by pairwise votes, and settle a prompt or
model question with a verdict that accounts for chance."""

from nanobanana_widgets.widgets.tournament.abtest import ABTest, ab_test
from nanobanana_widgets.widgets.tournament.items import Item
from nanobanana_widgets.widgets.tournament.tournament import Pair, Tournament, tournament
from nanobanana_widgets.widgets.tournament.variation import Variation
from nanobanana_widgets.widgets.tournament.verdict import Verdict

__all__ = ["ABTest", "Item", "Pair", "Tournament", "Variation", "Verdict", "ab_test",
           "tournament"]
