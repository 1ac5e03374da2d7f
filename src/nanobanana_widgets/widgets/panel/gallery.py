"""The panel's results: a card per image (newest first) with its buttons, the full-size
viewer, and saving.

Cards hold small JPEG thumbnails only; "Open" shows the full image on demand and "Close"
drops it from the widget state again. Cards arrive from the runs' worker threads; each
set is painted through the panel's :class:`~nanobanana_widgets.widgets._ui.Painter` with
the revision it was made at, so no card is ever lost to a slower thread.

**A long session stays light.** Only the newest :data:`LIVE_CARDS` cards are live; an
older card's widgets are closed when it drops out, and the downloaded bytes its image kept
in memory are let go (its result stays in ``panel.results`` and downloads them again if
asked; the history keeps its own copy, and its strip pages back through every record).

"Use as input" continues from a result (it replaces the edit inputs); the "+" beside it
adds the result to them instead. "Save" writes an image once and afterwards says where it
is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w
from ipywidgets.widgets.widget_string import HTMLStyle

from nanobanana_widgets.images import extension_for
from nanobanana_widgets.render.links import download_link_html, relative_href
from nanobanana_widgets.render.panel import full_image_html, result_card_html
from nanobanana_widgets.service.errors import describe_error
from nanobanana_widgets.service.text import data_uri
from nanobanana_widgets.service.types import GeneratedImage
from nanobanana_widgets.widgets._static import image_link
from nanobanana_widgets.widgets._ui import Painter, close_deep, guarded
from nanobanana_widgets.widgets.panel.runs import Level, Thumb

__all__ = ["LIVE_CARDS", "Gallery"]

LIVE_CARDS = 12
"""Result cards kept live (the newest); older ones are closed."""


def _release_bytes(image: GeneratedImage) -> None:
    """Let go of the full image's bytes that ``image.bytes()`` kept in memory (a dropped
    card's; the next ``bytes()`` downloads them again). ``GeneratedImage`` keeps them in
    its private ``_cache``; this is the one place that reaches into it."""
    cache = getattr(image, "_cache", None)
    if isinstance(cache, dict):
        cache.pop("data", None)


class Gallery:
    """Result cards and the viewer of a panel.

    ``on_use(thumb, add)`` ("Use as input": ``add=False`` replaces the inputs, the "+"
    beside it adds) and ``on_again(image)`` ("Run again") are the panel's; ``run_job(fn,
    *args)`` runs a save in the panel's pool; ``notify(text, level)`` reports.
    ``save_dir`` is where "Save" writes (it may be changed). ``live`` cards stay live.
    """

    KEY = ("gallery",)

    def __init__(self, painter: Painter, *, save_dir: Path,
                 on_use: Callable[[Thumb, bool], object],
                 on_again: Callable[[GeneratedImage], object],
                 run_job: Callable[..., object], notify: Callable[[str, Level], object],
                 live: int = LIVE_CARDS) -> None:
        self._painter = painter
        self.save_dir = save_dir
        self._on_use = on_use
        self._on_again = on_again
        self._run_job = run_job
        self._notify = notify
        self.live = live
        self._lock = threading.Lock()
        self._cards: list[w.Widget] = []
        self._revision = 0
        self._saved: dict[tuple[str, int, str], Path] = {}
        self._save_buttons: dict[tuple[str, int, str], tuple[w.Widget, w.Button]] = {}
        self._dropped = 0
        self._downloads: dict[int, w.HTML] = {}  # id(card) → its download link, once saved
        self._images: dict[int, GeneratedImage] = {}
        # Shared by every card: one layout/style model each, not one per widget (a long
        # session keeps few live models).
        self._caption_layout = w.Layout()
        self._html_style = HTMLStyle()
        self._button_layout = w.Layout(width="auto")
        self._button_style = w.ButtonStyle()
        self._bar_layout = w.Layout(display="flex", flex_flow="row wrap", width="100%")
        self._card_layout = w.Layout(width="308px", max_width="100%")
        self._shared = (self._caption_layout, self._html_style, self._button_layout,
                        self._button_style, self._bar_layout, self._card_layout)
        self.viewer = w.VBox(layout=w.Layout(width="100%", display="none"))
        self.box = w.Box(layout=w.Layout(
            display="flex", flex_flow="row wrap", width="100%", align_items="flex-start",
        ))
        self.box.add_class("nbw-results")
        self.box.add_class("nbw-gap-l")

    def _guard(self, handler: Callable[..., object]) -> Callable[..., None]:
        return guarded(handler, lambda exc: self._notify(describe_error(exc), "error"))

    @property
    def cards(self) -> list[w.Widget]:
        """The live cards, newest first."""
        with self._lock:
            return list(self._cards)

    @property
    def dropped(self) -> int:
        """How many older cards were closed to keep the panel light."""
        return self._dropped

    def add(self, thumbs: Sequence[Thumb]) -> None:
        """Put a run's cards in front of the ones shown; close the ones past ``live``."""
        made = [(thumb, *self._card(thumb)) for thumb in thumbs]
        with self._lock:
            self._cards[:0] = [card for _thumb, card, _save in made]
            for thumb, card, _save in made:
                self._images[id(card)] = thumb.image
            for thumb, card, save in made:
                self._save_buttons[self._key(thumb.image)] = (card, save)
            old = self._cards[self.live:]
            del self._cards[self.live:]
            self._dropped += len(old)
            gone = {id(card) for card in old}
            released = [self._images.pop(key) for key in gone if key in self._images]
            for key in gone:
                self._downloads.pop(key, None)
            self._save_buttons = {key: pair for key, pair in self._save_buttons.items()
                                  if id(pair[0]) not in gone}
            self._revision += 1
            revision, shown = self._revision, tuple(self._cards)
        self._painter.paint(self.KEY, (revision,), lambda: setattr(self.box, "children", shown))
        for card in old:
            close_deep(card, keep=self._shared)
        for image in released:
            _release_bytes(image)

    @staticmethod
    def _key(image: GeneratedImage) -> tuple[str, int, str]:
        return (image.task_id, image.index, image.url[:200])

    def card(self, thumb: Thumb) -> w.VBox:
        """A result's card: thumbnail, prompt, parameters (ids folded), and Open (data
        URLs), Use as input, +, Save and Run again."""
        return self._card(thumb)[0]

    def _card(self, thumb: Thumb) -> tuple[w.VBox, w.Button]:
        image = thumb.image
        link = image_link(image) if thumb.jpeg is not None else None
        is_link = link is not None
        caption = w.HTML(result_card_html(image, thumb.jpeg, error=thumb.error,
                                          run_number=thumb.run_number, trace_id=thumb.trace_id,
                                          link=link),
                         layout=self._caption_layout, style=self._html_style)
        small, style = self._button_layout, self._button_style
        use = w.Button(description="Use as input", icon="arrow-up", layout=small, style=style,
                       tooltip="Continue from this image: it replaces the edit inputs "
                               "(and the panel switches to Edit images)")
        use.add_class("nbw-use")
        add = w.Button(description="", icon="plus", layout=small, style=style,
                       tooltip="Add this image to the edit inputs (keep the ones there)")
        add.add_class("nbw-add-input")
        save = w.Button(description="Save", icon="download", layout=small, style=style,
                        tooltip=f"Save the full image with its metadata into {self.save_dir}")
        again = w.Button(description="Run again", icon="refresh", layout=small, style=style,
                         tooltip="Send the same request again (billed again)")
        buttons: list[w.Widget] = [use, add, save, again]
        if not is_link:
            opener = w.Button(description="Open", icon="expand", layout=small, style=style,
                              tooltip="Show the full-size image")
            opener.on_click(self._guard(lambda _b: self.open_full(image)))
            buttons.insert(0, opener)
        if thumb.jpeg is None:
            use.disabled = add.disabled = True
        use.on_click(self._guard(lambda _b: self._on_use(thumb, False)))
        add.on_click(self._guard(lambda _b: self._on_use(thumb, True)))
        save.on_click(self._guard(lambda _b: self._run_job(self._save_on_card, image, card)))
        again.on_click(self._guard(lambda _b: self._on_again(image)))
        bar = w.Box(buttons, layout=self._bar_layout)
        bar.add_class("nbw-gap-s")
        bar.add_class("nbw-card-buttons")
        card = w.VBox([caption, bar], layout=self._card_layout)
        card.add_class("nbw-result-card")
        return card, save

    def _save_on_card(self, image: GeneratedImage, card: w.VBox) -> Path:
        """Save from a card's button, then offer the file as a download on the card (the
        link's widget is made then: a long session's cards, mostly never saved, carry no
        widget for it)."""
        with self._lock:
            download = self._downloads.get(id(card))
            made = download is None
            if download is None:
                download = self._downloads[id(card)] = w.HTML(style=self._html_style)
        if made:
            self._painter.paint(("download-slot", id(card)), (1,),
                                lambda: setattr(card, "children", (*card.children, download)))
        return self.save(image, download)

    def save(self, image: GeneratedImage, download: w.HTML | None = None) -> Path:
        """Save the full image with its metadata into ``save_dir`` (once: saving it again
        says where it already is); returns the file's path. ``download`` (the card's)
        then offers the file as a browser download."""
        key = self._key(image)
        with self._lock:
            done = self._saved.get(key)
        if done is not None and done.is_file():
            self._notify(f"Already saved: {done}", "info")
            self._offer_download(image, done, download)
            return done
        self.save_dir.mkdir(parents=True, exist_ok=True)
        path = image.save(self.save_dir)
        with self._lock:
            self._saved[key] = path
            pair = self._save_buttons.get(key)
        self._notify(f"Saved {path}", "success")
        if pair is not None:
            button = pair[1]

            def apply() -> None:
                button.description = "Saved"
                button.icon = "check"
                button.tooltip = f"Saved as {path} (click to see where again)"

            self._painter.paint(("saved", *key), (1,), apply)
        self._offer_download(image, path, download)
        return path

    def _offer_download(self, image: GeneratedImage, path: Path,
                        download: w.HTML | None) -> None:
        """Show the saved file as a browser download link on its card."""
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
