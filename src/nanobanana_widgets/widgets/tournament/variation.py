"""How much images differ within an A/B test's arms against between them. No widget here.

The service has no seed: one prompt gives a different image each time. Whether a change of
prompt or model shows is a matter of how much images of *different* arms differ, compared
with how much images of the *same* arm already do. Each image is reduced to
:data:`SIDE` × :data:`SIDE` pixels (its shape set aside), and the difference of two images
is their mean absolute pixel difference (0: the same, 1: black against white); the figures
are the means over every pair within each arm, and over every pair across the arms.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageStat

__all__ = ["SIDE", "Variation", "image_difference", "variation"]

SIDE = 96


@dataclass(frozen=True)
class Variation:
    """Mean pairwise differences (0 to 1): ``within`` each arm (``None`` for an arm of one
    image) and ``between`` the arms, with a sentence saying what they mean."""

    within: Mapping[str, float | None]
    between: float | None
    summary: str

    @property
    def ratio(self) -> float | None:
        """``between`` over the mean of ``within`` (``None`` when either is unknown)."""
        known = [v for v in self.within.values() if v is not None]
        if self.between is None or not known or sum(known) == 0:
            return None
        return self.between / (sum(known) / len(known))


def _reduced(image: Image.Image) -> Image.Image:
    return image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)


def image_difference(a: Image.Image, b: Image.Image) -> float:
    """The mean absolute pixel difference of two images (0 to 1), at :data:`SIDE` px."""
    diff = ImageChops.difference(_reduced(a), _reduced(b))
    return sum(ImageStat.Stat(diff).mean) / (3 * 255.0)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def variation(arms: Mapping[str, Sequence[Image.Image]]) -> Variation:
    """The within- and between-arm differences of two arms' images."""
    labels = list(arms)
    reduced = {k: [_reduced(img) for img in arms[k]] for k in labels}

    def diff(x: Image.Image, y: Image.Image) -> float:
        return sum(ImageStat.Stat(ImageChops.difference(x, y)).mean) / (3 * 255.0)

    within = {k: _mean([diff(x, y) for x, y in itertools.combinations(reduced[k], 2)])
              for k in labels}
    between = None
    if len(labels) == 2:
        between = _mean([diff(x, y) for x in reduced[labels[0]] for y in reduced[labels[1]]])
    return Variation(within=within, between=between, summary=_summary(within, between))


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _summary(within: Mapping[str, float | None], between: float | None) -> str:
    if between is None:
        return "Not enough images to compare the arms."
    known = {k: v for k, v in within.items() if v is not None}
    if not known:
        return (f"Images of different arms differ by {_pct(between)} on average. With one "
                "image per arm, the service's own variation cannot be measured: use "
                "samples=2 or more.")
    parts = " and ".join(f"{_pct(v)} ({k})" for k, v in known.items())
    mean_within = sum(known.values()) / len(known)
    head = (f"Images of the same arm differ by {parts} on average; images of different "
            f"arms by {_pct(between)}.")
    ratio = between / mean_within if mean_within else float("inf")
    if ratio >= 1.25:
        tail = ("The arms differ clearly more than the service varies by itself: the change "
                "shows in the pictures.")
    elif ratio >= 1.1:
        tail = ("The arms differ a little more than the service varies by itself: the change "
                "is faint next to chance.")
    else:
        tail = ("The arms differ about as much as images of one arm do: the change is lost in "
                "the service's own variation.")
    return f"{head} {tail}"
