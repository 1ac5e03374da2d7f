"""The panel's results: a card per image (newest first) with its buttons, the full-size
viewer, and saving.

Cards hold small JPEG thumbnails only; "Open" shows the full image on demand and "Close"
drops it from the widget state again. Cards arrive from the runs' worker threads; each
set is painted through the panel's :class:`~nanobanana_widgets.widgets._ui.Painter` with
the revision it was made at, so no card is ever lost to a slower thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from nanobanana_widgets.images import extension_for
from nanobanana_widgets.render.links import download_link_html, relative_href
from nanobanana_widgets.render.panel import full_image_html, result_card_html
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.service.text import data_uri
from nanobanana_widgets.service.types import GeneratedImage
from nanobanana_widgets.widgets._static import image_link
from nanobanana_widgets.widgets._ui import Painter, guarded
from nanobanana_widgets.widgets.panel.runs import Level, Thumb

__all__ = ["Gallery"]


class Gallery:
    """Result cards and the viewer of a panel.

    ``on_use(thumb)`` ("Use as input") and ``on_again(image)`` ("Run again") are the
    panel's; ``run_job(fn, *args)`` runs a save in the panel's pool; ``notify(text,
    level)`` reports. ``save_dir`` is where "Save" writes (it may be changed).
    """

    KEY = ("gallery",)

    def __init__(self, painter: Painter, *, save_dir: Path,
                 on_use: Callable[[Thumb], object], on_again: Callable[[GeneratedImage], object],
                 run_job: Callable[..., object], notify: Callable[[str, Level], object]) -> None:
        self._painter = painter
        self.save_dir = save_dir
        self._on_use = on_use
        self._on_again = on_again
        self._run_job = run_job
        self._notify = notify
        self._lock = threading.Lock()
        self._cards: list[w.Widget] = []
        self._revision = 0
        self.viewer = w.VBox(layout=w.Layout(width="100%", display="none"))
        self.box = w.Box(layout=w.Layout(
            display="flex", flex_flow="row wrap", width="100%", align_items="flex-start",
        ))
        self.box.add_class("nbw-results")
        self.box.add_class("nbw-gap-l")

    def _guard(self, handler: Callable[..., object]) -> Callable[..., None]:
        return guarded(handler, lambda exc: self._notify(describe_error(exc), "error"))

    def add(self, thumbs: Sequence[Thumb]) -> None:
        """Put a run's cards in front of the ones shown."""
        cards = [self.card(thumb) for thumb in thumbs]
        with self._lock:
            self._cards[:0] = cards
            self._revision += 1
            revision, shown = self._revision, tuple(self._cards)
        self._painter.paint(self.KEY, (revision,), lambda: setattr(self.box, "children", shown))

    def card(self, thumb: Thumb) -> w.VBox:
        """A result's card: thumbnail, prompt, parameters, and Open (data URLs), Use as
        input, Save and Run again."""
        image = thumb.image
        link = image_link(image) if thumb.jpeg is not None else None
        is_link = link is not None
        caption = w.HTML(result_card_html(image, thumb.jpeg, error=thumb.error,
                                          run_number=thumb.run_number, link=link))
        small = w.Layout(width="auto")
        use = w.Button(description="Use as input", icon="arrow-up", layout=small,
                       tooltip="Add this image to the edit inputs and switch to Edit")
        save = w.Button(description="Save", icon="download", layout=small,
                        tooltip=f"Save the full image with its metadata into {self.save_dir}")
        again = w.Button(description="Run again", icon="refresh", layout=small,
                         tooltip="Send the same request again (billed again)")
        buttons: list[w.Widget] = [use, save, again]
        if not is_link:
            opener = w.Button(description="Open", icon="expand", layout=small,
                              tooltip="Show the full-size image")
            opener.on_click(self._guard(lambda _b: self.open_full(image)))
            buttons.insert(0, opener)
        if thumb.jpeg is None:
            use.disabled = True
        use.on_click(self._guard(lambda _b: self._on_use(thumb)))
        download = w.HTML(layout=w.Layout(display="none"))
        save.on_click(self._guard(lambda _b: self._run_job(self.save, image, download)))
        again.on_click(self._guard(lambda _b: self._on_again(image)))
        bar = w.Box(buttons, layout=w.Layout(display="flex", flex_flow="row wrap",
                                             width="100%"))
        bar.add_class("nbw-gap-s")
        card = w.VBox([caption, bar, download],
                      layout=w.Layout(width="272px", max_width="100%"))
        card.add_class("nbw-result-card")
        return card

    def save(self, image: GeneratedImage, download: w.HTML | None = None) -> None:
        """Save the full image with its metadata into ``save_dir``; ``download`` (the
        card's) then offers it as a browser download."""
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = image.save(self.save_dir)
        self._notify(f"Saved {path}.", "success")
        href = relative_href(path, Path.cwd()) or image_link(image)
        if download is None or href is None:
            return
        markup = download_link_html(href, path.name)

        def apply() -> None:
            download.value = markup
            download.layout.display = None

        self._painter.paint(("download", id(download)), (1,), apply)

    def open_full(self, image: GeneratedImage) -> None:
        """Show the full image on demand; Close drops it from the widget state again."""
        if image.url.startswith("data:image/"):
            src = image.url
        else:  # the bytes are in memory (its thumbnail was made from them)
            data = image.bytes()
            src = data_uri(data, "image/" + extension_for(data).lstrip(".").replace("jpg", "jpeg"))
        close = w.Button(description="Close", icon="times", layout=w.Layout(width="auto"))
        view = w.HTML(full_image_html(src))

        def on_close(_b: Any) -> None:
            self.viewer.children = ()
            self.viewer.layout.display = "none"
            view.close()
            close.close()

        close.on_click(self._guard(on_close))
        self.viewer.children = (close, view)
        self.viewer.layout.display = "flex"
