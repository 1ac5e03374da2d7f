"""What an A/B test asks for, checked before anything is sent: two arms, their requests and
what they cost. No widget and no network here.

An arm is a prompt (``"a cat, cinematic"``) or a dict of parameters (``{"model":
"nano-banana-pro"}``) laid over the parameters both arms share (``prompt``, ``model``,
``aspect_ratio``, ``resolution``, ``action``, ``images``). Each arm makes ``samples``
images in requests of up to four (``count``): 4 samples are one request, 6 are two (4 and
2). The test's id is derived from what it asks for, so running the notebook again gives
the same id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nanobanana_widgets.images import to_image_urls
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.service.models import DEFAULT_MODEL, MAX_COUNT, validate_request
from nanobanana_widgets.service.types import ImageRequest

__all__ = ["ARM_KEYS", "DEFAULT_MAX_CALLS", "MAX_SAMPLES", "ABPlan", "Arm", "make_plan"]

ARM_KEYS = ("prompt", "model", "aspect_ratio", "resolution", "action", "images")
"""What an arm (or both, through ``**params``) may set."""
DEFAULT_MAX_CALLS = 16
"""Paid generations an A/B test may make without a confirmation (as a grid)."""
MAX_SAMPLES = 32


@dataclass(frozen=True)
class Arm:
    """One arm: its label, the request its images come from, and the images per request."""

    label: str
    request: ImageRequest
    counts: tuple[int, ...]

    @property
    def shown_params(self) -> tuple[tuple[str, str], ...]:
        """The parameters worth showing beside the prompt."""
        r = self.request
        out = [("model", r.model)]
        if r.action != "generate":
            out.insert(0, ("action", r.action))
        if r.aspect_ratio:
            out.append(("aspect ratio", r.aspect_ratio))
        if r.resolution:
            out.append(("resolution", r.resolution))
        if r.image_urls:
            out.append(("inputs", str(len(r.image_urls))))
        return tuple(out)


@dataclass(frozen=True)
class ABPlan:
    """Two arms and the samples each makes."""

    test_id: str
    arms: tuple[Arm, Arm]
    samples: int

    @property
    def requests(self) -> int:
        """Requests per arm."""
        return len(self.arms[0].counts)

    @property
    def paid(self) -> int:
        """Paid generations: images requested by both arms."""
        return 2 * self.samples


def _spec(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"prompt": value}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(ARM_KEYS))
        if unknown:
            raise InvalidParameterError(name, dict(value), None,
                                        hint=f"a prompt, or a dict of {', '.join(ARM_KEYS)} "
                                             f"(not {', '.join(map(str, unknown))})")
        return dict(value)
    raise InvalidParameterError(name, value, None,
                                hint=f"a prompt (str) or a dict of {', '.join(ARM_KEYS)}")


def _counts(samples: int) -> tuple[int, ...]:
    full, rest = divmod(samples, MAX_COUNT)
    return (MAX_COUNT,) * full + ((rest,) if rest else ())


def make_plan(a: Any, b: Any, *, samples: int = 4, labels: tuple[str, str] = ("A", "B"),
              **params: Any) -> ABPlan:
    """Check an A/B test; raises :class:`InvalidParameterError` before anything is sent."""
    unknown = sorted(set(params) - set(ARM_KEYS))
    if unknown:
        raise TypeError(f"ab_test() got unexpected keyword(s) {', '.join(unknown)}; both arms "
                        f"may share {', '.join(ARM_KEYS)} (and client=, history=, max_calls=, "
                        "confirm=, blind=, labels=).")
    if isinstance(samples, bool) or not isinstance(samples, int) or \
            not 1 <= samples <= MAX_SAMPLES:
        raise InvalidParameterError("samples", samples, None,
                                    hint=f"images per arm, 1 to {MAX_SAMPLES} (2 or more show "
                                         "how much the service varies by itself)")
    if len(labels) != 2 or labels[0] == labels[1]:
        raise InvalidParameterError("labels", labels, None, hint="two different labels")
    counts = _counts(samples)
    arms = []
    for name, label, value in (("a", labels[0], a), ("b", labels[1], b)):
        merged = {**params, **_spec(name, value)}
        if not isinstance(merged.get("prompt"), str) or not merged["prompt"].strip():
            raise InvalidParameterError(
                name, value, None, hint="a prompt, or a dict with one; or prompt=... for both "
                                        "arms (e.g. ab_test({'model': ...}, {'model': ...}, "
                                        "prompt='a cat'))")
        images = merged.get("images")
        urls = tuple(to_image_urls(images)) if images is not None else ()
        action = merged.get("action") or ("edit" if urls else "generate")
        model = merged.get("model") or DEFAULT_MODEL
        validate_request(action=action, prompt=merged.get("prompt"), model=model,
                         count=counts[0], aspect_ratio=merged.get("aspect_ratio"),
                         resolution=merged.get("resolution"), image_urls=urls)
        request = ImageRequest(action=action, prompt=str(merged["prompt"]), model=model,
                               count=1, aspect_ratio=merged.get("aspect_ratio"),
                               resolution=merged.get("resolution"), image_urls=urls)
        arms.append(Arm(label=str(label), request=request, counts=counts))
    if arms[0].request == arms[1].request:
        raise InvalidParameterError("b", b, None,
                                    hint="an arm that differs from a (its prompt or a "
                                         "parameter): the same request twice tests nothing")
    payload = [[arm.label, arm.request.to_payload()] for arm in arms] + [samples]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode())
    return ABPlan(test_id="ab-" + digest.hexdigest()[:12], arms=(arms[0], arms[1]),
                  samples=samples)
