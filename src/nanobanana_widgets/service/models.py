"""What the service accepts: models, resolutions, aspect ratios and local validation.

One table shared by the client (which validates before sending), the emulator (which
validates as the service does) and the panel (which offers only valid choices).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from nanobanana_widgets.service.errors import InvalidParameterError

Action = Literal["generate", "edit"]

ACTIONS: Final[tuple[str, ...]] = ("generate", "edit")
ASPECT_RATIOS: Final[tuple[str, ...]] = ("1:1", "3:2", "2:3", "16:9", "9:16", "4:3", "3:4")
RESOLUTIONS: Final[tuple[str, ...]] = ("1K", "2K", "4K")
DEFAULT_MODEL: Final = "nano-banana"
DEFAULT_ASPECT_RATIO: Final = "1:1"
DEFAULT_RESOLUTION: Final = "1K"
MIN_COUNT: Final = 1
MAX_COUNT: Final = 4
MAX_IMAGES: Final = 16
MAX_IMAGE_BYTES: Final = 10 * 1024 * 1024
"""Largest input image the service accepts (10 MB), applied to the encoded data URI."""

_BASE_MODELS: Final[dict[str, tuple[str, ...]]] = {
    "nano-banana": ("1K",),
    "nano-banana-2-lite": ("1K",),
    "nano-banana-2": ("1K", "2K", "4K"),
    "nano-banana-2.1": ("1K", "2K", "4K"),
    "nano-banana-pro": ("1K", "2K", "4K"),
}
_HAS_OFFICIAL: Final[frozenset[str]] = frozenset(
    {"nano-banana", "nano-banana-2-lite", "nano-banana-2", "nano-banana-pro"}
)


def _build_models() -> dict[str, tuple[str, ...]]:
    table: dict[str, tuple[str, ...]] = {}
    for name, resolutions in _BASE_MODELS.items():
        table[name] = resolutions
        if name in _HAS_OFFICIAL:
            table[f"{name}:official"] = resolutions
    return table


MODELS: Final[Mapping[str, tuple[str, ...]]] = _build_models()
"""Every model name the service knows, mapped to the resolutions it supports."""


def resolutions_for(model: str) -> tuple[str, ...]:
    """The resolutions ``model`` supports; raises :class:`InvalidParameterError` if unknown."""
    try:
        return MODELS[model]
    except KeyError:
        raise InvalidParameterError("model", model, tuple(MODELS)) from None


def pixel_size(aspect_ratio: str, resolution: str = DEFAULT_RESOLUTION) -> tuple[int, int]:
    """Width and height in pixels for an aspect ratio at a resolution (long side 1K≈1024)."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise InvalidParameterError("aspect_ratio", aspect_ratio, ASPECT_RATIOS)
    if resolution not in RESOLUTIONS:
        raise InvalidParameterError("resolution", resolution, RESOLUTIONS)
    long_side = 1024 * int(resolution[0])
    w, h = (int(part) for part in aspect_ratio.split(":"))
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


def validate_request(
    *,
    action: str,
    prompt: Any,
    model: Any = DEFAULT_MODEL,
    count: Any = 1,
    aspect_ratio: Any = None,
    resolution: Any = None,
    image_urls: Sequence[Any] | None = None,
    callback_url: Any = None,
    images_field: str = "images",
) -> None:
    """Check one images request the way the service would; raise on the first problem.

    Raises :class:`InvalidParameterError` (a ``ValueError``) naming the field and the
    allowed values. Image contents are not checked here (see :mod:`.images`). The input
    images are named ``images`` (what a Python caller passes); the emulator, which speaks
    the wire format, passes ``images_field="image_urls"``.
    """
    if action not in ACTIONS:
        raise InvalidParameterError("action", action, ACTIONS)
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidParameterError(
            "prompt", prompt, None, hint="a non-empty text describing the image"
        )
    if not isinstance(model, str) or model not in MODELS:
        raise InvalidParameterError("model", model, tuple(MODELS))
    if isinstance(count, bool) or not isinstance(count, int) or not MIN_COUNT <= count <= MAX_COUNT:
        raise InvalidParameterError("count", count, tuple(range(MIN_COUNT, MAX_COUNT + 1)))
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise InvalidParameterError("aspect_ratio", aspect_ratio, ASPECT_RATIOS)
    if resolution is not None:
        allowed = MODELS[model]
        if resolution not in allowed:
            raise InvalidParameterError(
                "resolution",
                resolution,
                allowed,
                hint=f"a resolution that model {model!r} supports ({', '.join(allowed)}); "
                "nano-banana-2, nano-banana-2.1 and nano-banana-pro go up to 4K",
            )
    if action == "edit" and not image_urls:
        raise InvalidParameterError(
            images_field, [] if image_urls is None else image_urls, None,
            hint="at least one input image: an edit changes the images it is given "
            "(paths, URLs, PIL images or earlier results)",
        )
    if image_urls is not None:
        if len(image_urls) > MAX_IMAGES:
            raise InvalidParameterError(
                images_field,
                f"{len(image_urls)} images",
                None,
                hint=f"at most {MAX_IMAGES} images per request",
            )
        for i, url in enumerate(image_urls):
            if not isinstance(url, str) or not url.startswith(
                ("http://", "https://", "data:image/")
            ):
                raise InvalidParameterError(
                    f"{images_field}[{i}]",
                    url if isinstance(url, str) else type(url).__name__,
                    None,
                    hint="an http(s) URL or a data:image/...;base64 URI",
                )
    if callback_url is not None and (
        not isinstance(callback_url, str) or not callback_url.startswith(("http://", "https://"))
    ):
        raise InvalidParameterError("callback_url", callback_url, None, hint="an http(s) URL")
