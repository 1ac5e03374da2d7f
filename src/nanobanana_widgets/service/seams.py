"""The two places where result objects reach a higher layer, without importing it.

A :class:`~nanobanana_widgets.service.types.GeneratedImage` downloads, decodes and saves
itself, and results render as HTML in a notebook; that work lives in ``images/`` and
``render/``, which sit above this layer. This module declares what is needed
(:class:`ResultIO`) and the package root installs the implementation when it is imported
(``nanobanana_widgets/__init__.py``), lazily, so the service layer never imports upward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image as PILImage

    from nanobanana_widgets.service.types import GeneratedImage, Result

__all__ = ["ResultIO", "install", "result_io"]


class ResultIO(Protocol):
    """What result objects need from the layers above."""

    def download(self, url: str, **kwargs: Any) -> bytes:
        """A result image's bytes (safe download: size cap, deadline, verified)."""

    def decode(self, data: bytes) -> PILImage.Image:
        """Decoded image bytes (bounded: pixel limit)."""

    def save(self, image: GeneratedImage, data: bytes, path: str | Path) -> Path:
        """Write ``data`` (the image's bytes) to ``path``, a file or a folder."""

    def image_html(self, image: GeneratedImage) -> str:
        """The notebook HTML of one image."""

    def result_html(self, result: Result) -> str:
        """The notebook HTML of a result."""


_installed: ResultIO | None = None


def install(io: ResultIO) -> None:
    """Set the implementation (done once by the package root)."""
    global _installed
    _installed = io


def result_io() -> ResultIO:
    """The installed implementation."""
    if _installed is None:  # pragma: no cover - the package root always installs one
        raise RuntimeError("nanobanana_widgets is not initialised: import nanobanana_widgets")
    return _installed
