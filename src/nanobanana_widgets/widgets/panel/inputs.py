"""The panel's edit inputs: checked, thumbnailed images with their cards and uploads.

Every source (a path, bytes, a PIL image, a result, an uploaded file, ...) is decoded into
a small JPEG thumbnail when it is added, so an unusable one is named at once and left out.
The file contents of an upload leave the widget state at once (the notebook stays small);
they are read in the panel's background pool. Changes come from clicks and from that pool;
each is painted through the panel's :class:`~nanobanana_widgets.widgets._ui.Painter` with
the revision it was made at, so the cards never go back to an older set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w

from nanobanana_widgets.images import load_image, thumbnail
from nanobanana_widgets.render.panel import input_card_html, inputs_hint_html, size_note
from nanobanana_widgets.service.errors import ImageInputError, describe_error
from nanobanana_widgets.service.models import MAX_IMAGES
from nanobanana_widgets.service.types import GeneratedImage, Result
from nanobanana_widgets.widgets._ui import Painter, close_deep, guarded
from nanobanana_widgets.widgets.panel.runs import Level, Thumb

__all__ = ["INPUT_THUMB_SIDE", "SEND_MAX_SIDE", "EditInput", "InputMethods", "Inputs", "label_for",
           "sent_size"]

INPUT_THUMB_SIDE = 112
"""Longest side, in pixels, of the input thumbnails kept in widget state."""
SEND_MAX_SIDE = 4096
"""Longest side of an input image as sent: larger local images are scaled down to it
(``images.to_image_url``'s default); URLs and results are sent as they are."""


@dataclass(frozen=True)
class EditInput:
    """One edit input: a label for people, the source for the client, a small thumbnail,
    and its size in pixels as it is and as it will be sent (``None`` when unknown)."""

    label: str
    source: Any
    jpeg: bytes
    original: tuple[int, int] | None = None
    sent: tuple[int, int] | None = None

    @property
    def shrunk(self) -> bool:
        """Whether the image is scaled down when sent."""
        return self.original is not None and self.sent is not None and self.sent != self.original


def _passed_through(source: Any) -> bool:
    """Sources sent as they are (a URL): results and http(s) URLs."""
    if isinstance(source, (GeneratedImage, Result)):
        return True
    return isinstance(source, str) and source.lower().startswith(("http://", "https://"))


def sent_size(source: Any, size: tuple[int, int], max_side: int = SEND_MAX_SIDE
              ) -> tuple[int, int]:
    """The size ``source`` (``size`` pixels, upright) has when sent: scaled down so its
    longest side is at most ``max_side`` (rounded as the encoder does), unless it is sent
    as a URL."""
    width, height = size
    longest = max(width, height)
    if _passed_through(source) or longest <= max_side:
        return size
    scale = max_side / longest
    if width >= height:
        return max_side, max(1, round(height * scale))
    return max(1, round(width * scale)), max_side


def label_for(source: Any, index: int) -> str:
    """A short name for an input source (file name, URL tail, result id, ...)."""
    if isinstance(source, (str, Path)):
        text = str(source)
        if text.startswith("data:"):
            return f"image {index + 1}"
        if text.lower().startswith(("http://", "https://")):
            return text.rsplit("/", 1)[-1][:60] or text[:60]
        return Path(text).name or text
    if isinstance(source, GeneratedImage):
        return f"result {source.task_id[:8]}" + (f" #{source.index + 1}" if source.index else "")
    if isinstance(source, Result):
        return f"result {source.task_id[:8]}"
    if isinstance(source, dict) and isinstance(source.get("name"), str):
        return str(source["name"])
    if hasattr(source, "mode") and hasattr(source, "size"):
        return f"PIL image {index + 1}"
    return f"{type(source).__name__} {index + 1}"


def _get(entry: Any, key: str) -> Any:
    if isinstance(entry, dict):
        return entry.get(key)
    return getattr(entry, key, None)


class Inputs:
    """The input images of a panel and the widgets that show and change them.

    ``notify(text, level)`` reports; ``run_job(fn, *args)`` runs work in the panel's pool;
    ``editing()`` tells whether the panel is in Edit mode (for the hint).
    """

    KEY = ("inputs",)
    HINT_KEY = ("inputs-hint",)

    def __init__(self, painter: Painter, *, notify: Callable[[str, Level], object],
                 run_job: Callable[..., object], editing: Callable[[], bool],
                 on_change: Callable[[], object] | None = None) -> None:
        self._painter = painter
        self._notify = notify
        self._run_job = run_job
        self._editing = editing
        self._on_change = on_change
        self._lock = threading.RLock()
        self._items: list[EditInput] = []
        self._revision = 0
        self._generation = 0

        self.upload = w.FileUpload(
            accept="image/*", multiple=True, description="Add images",
            tooltip="Choose one or more input images for edit mode",
            layout=w.Layout(width="auto"),
        )
        # The upload button's own label counts the files of its last pick, which the panel
        # takes into its inputs at once (so it would say "(0)"); panel.css shows the
        # number of input images instead, chosen by a class (see _paint_hint).
        self.upload.add_class("nbw-upload")
        self.clear_button = w.Button(
            description="Clear", icon="trash", tooltip="Remove every input image",
            layout=w.Layout(width="auto"),
        )
        self.hint = w.HTML(layout=w.Layout(width="auto"))
        self.box = w.Box(layout=w.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.box.add_class("nbw-gap")
        bar = w.HBox([self.upload, self.clear_button, self.hint],
                     layout=w.Layout(flex_flow="row wrap", align_items="center", width="100%"))
        bar.add_class("nbw-gap")
        self.area = w.VBox([bar, self.box], layout=w.Layout(width="100%"))
        self.area.add_class("nbw-inputs")
        self.clear_button.on_click(self._guard(lambda _b: self.clear()))
        self.upload.observe(self._guard(self._on_upload), names="value")

    def _guard(self, handler: Callable[..., object]) -> Callable[..., None]:
        return guarded(handler, lambda exc: self._notify(describe_error(exc), "error"))

    # --- reading and changing ------------------------------------------------------------

    @property
    def items(self) -> list[EditInput]:
        """The inputs, in order."""
        with self._lock:
            return list(self._items)

    @property
    def sources(self) -> list[Any]:
        """The inputs' sources, as given."""
        with self._lock:
            return [item.source for item in self._items]

    def replace(self, sources: Sequence[Any]) -> None:
        """Check and use ``sources`` instead of the inputs there are."""
        items = self.make_all(list(enumerate(sources)))
        self._change(lambda current: items)

    def add(self, sources: Sequence[Any]) -> list[EditInput]:
        """Check ``sources`` and add the usable ones after the inputs there are."""
        with self._lock:
            start = len(self._items)
        items = self.make_all([(start + i, s) for i, s in enumerate(sources)])
        self.extend(items)
        return items

    def extend(self, items: Sequence[EditInput]) -> None:
        """Add inputs already checked."""
        self._change(lambda current: [*current, *items])

    def take(self, item: EditInput, *, add: bool) -> str:
        """Continue from ``item``: it replaces the inputs (``add``: it goes after them).
        Returns the words that say which happened."""
        before: list[str] = []

        def edit(current: list[EditInput]) -> list[EditInput]:
            before[:] = [i.label for i in current]
            return [*current, item] if add else [item]

        self._change(edit)
        if add:
            n = len(before) + 1
            return (f"Added {item.label} to the inputs (input image {n} of {n}); "
                    "switched to Edit images.")
        if not before:
            return f"Continuing from {item.label}: it is the input image; switched to Edit images."
        names = ", ".join(before)
        return (f"Continuing from {item.label}: it replaces the {len(before)} earlier "
                f"input image{'s' if len(before) != 1 else ''} ({names}); switched to Edit "
                "images. The + beside “Use as input” adds instead of replacing.")

    def clear(self) -> None:
        """Remove every input."""
        self._change(lambda current: [])

    def remove(self, index: int) -> None:
        """Remove the input at ``index``."""
        def without(current: list[EditInput]) -> list[EditInput]:
            del current[index]
            return current

        self._change(without)

    def start_load(self) -> int:
        """Begin replacing the inputs with a record's (a newer load wins); returns its
        generation for :meth:`finish_load`."""
        with self._lock:
            self._generation += 1
            return self._generation

    def finish_load(self, generation: int, items: Sequence[EditInput]) -> None:
        """Use ``items`` unless another load began after ``generation``."""
        with self._lock:
            if generation != self._generation:
                return  # another record was loaded meanwhile
        self._change(lambda current: list(items) if generation == self._generation
                     else current)

    def make_all(self, sources: Iterable[tuple[int, Any]]) -> list[EditInput]:
        """Check and thumbnail each ``(index, source)``; report the unusable ones by name."""
        items: list[EditInput] = []
        for index, source in sources:
            item = self.make(label_for(source, index), source)
            if item is not None:
                items.append(item)
        return items

    def make(self, label: str, source: Any) -> EditInput | None:
        """One checked, thumbnailed input (with its size as it is and as sent), or ``None``
        (reported) when it is unusable."""
        try:
            if isinstance(source, Result):
                source = source.image
            image = load_image(source, name=label)
            jpeg = thumbnail(image, max_side=INPUT_THUMB_SIDE)
        except Exception as exc:
            problem = describe_error(exc)
            if not isinstance(exc, ImageInputError) or label not in problem:
                problem = f"Input image {label} cannot be used: {problem}"
            self._notify(problem, "error")
            return None
        original = (int(image.width), int(image.height))
        return EditInput(label=label, source=source, jpeg=jpeg, original=original,
                         sent=sent_size(source, original))

    def make_labelled(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """Check ``(label, source)`` pairs and add the usable ones (a background job)."""
        self.extend([item for label, source in pairs
                     if (item := self.make(label, source)) is not None])

    # --- uploads -----------------------------------------------------------------------

    def _on_upload(self, change: Any) -> None:
        value = change["new"] if isinstance(change, dict) else change.new
        if not value:
            return
        files: list[tuple[str, bytes]] = []
        for i, entry in enumerate(value):
            name = str(_get(entry, "name") or f"upload {i + 1}")
            content = _get(entry, "content")
            files.append((name, bytes(content) if content is not None else b""))
        # Drop the file contents from the widget state at once: the notebook stays small.
        self.upload.value = ()
        self._run_job(self.ingest, files)

    def ingest(self, files: Sequence[tuple[str, bytes]]) -> None:
        """Check and add files given as ``(name, bytes)`` (uploads, dropped or pasted
        images), then say what was added; a background job."""
        items = self.add([{"name": name, "content": data} for name, data in files])
        self.say_added(items)

    def refused(self, name: str, size: int, how: str) -> None:
        """Say why a dropped or pasted file was not taken (``name`` empty: none was an
        image)."""
        if not name:
            self._notify(f"Nothing {how} was an image: drop or paste image files (PNG, JPEG, "
                         "WebP, ...).", "warning")
            return
        self._notify(f"{name} ({size / 1e6:.0f} MB) is too big to be {how} here; add it "
                     "with “Add images” or set panel.inputs to its path.", "error")

    def say_added(self, items: Sequence[EditInput]) -> None:
        """Tell what was added (and which images are scaled down when sent)."""
        if not items:
            return
        names = ", ".join(item.label for item in items)
        text = f"Added {len(items)} input image{'s' if len(items) != 1 else ''}: {names}."
        shrunk = [item for item in items if item.shrunk]
        for item in shrunk:
            assert item.original is not None and item.sent is not None
            text += (f" {item.label} is {size_note(item.original, item.sent)} "
                     "(the service's limit).")
        self._notify(text, "warning" if shrunk else "info")

    # --- painting ----------------------------------------------------------------------

    def _change(self, edit: Callable[[list[EditInput]], list[EditInput]]) -> None:
        with self._lock:
            self._items = edit(list(self._items))
            self._revision += 1
            revision, items = self._revision, list(self._items)
        cards = tuple(self._card(item) for item in items)
        replaced: list[w.Widget] = []

        def apply() -> None:
            replaced.extend(self.box.children)
            self.box.children = cards

        if not self._painter.paint(self.KEY, (revision,), apply):
            replaced.extend(cards)  # a newer set was shown meanwhile: these never were
        for card in replaced:
            close_deep(card)
        self.paint_hint()
        if self._on_change is not None:
            self._on_change()

    def paint_hint(self) -> None:
        """Show how many inputs there are (the hint, and the upload button's label)."""
        with self._lock:
            self._revision += 1
            revision, n = self._revision, len(self._items)
        markup = inputs_hint_html(n, editing=self._editing())
        wanted = f"nbw-upload-n{n}" if n <= MAX_IMAGES else "nbw-upload-many"

        def apply() -> None:
            for name in list(self.upload._dom_classes):
                if name.startswith("nbw-upload-") and name != wanted:
                    self.upload.remove_class(name)
            if wanted not in self.upload._dom_classes:
                self.upload.add_class(wanted)
            self.hint.value = markup

        self._painter.paint(self.HINT_KEY, (revision,), apply)

    def _card(self, item: EditInput) -> w.Widget:
        thumb = w.HTML(input_card_html(item.label, item.jpeg, side=INPUT_THUMB_SIDE,
                                       original=item.original, sent=item.sent))
        remove = w.Button(description="Remove", icon="times", tooltip=f"Remove {item.label}",
                          layout=w.Layout(width="auto"))

        def on_remove(_b: Any) -> None:
            self._change(lambda current: [i for i in current if i is not item])

        remove.on_click(self._guard(on_remove))
        card = w.VBox([thumb, remove], layout=w.Layout(width=f"{INPUT_THUMB_SIDE + 16}px",
                                                       align_items="center"))
        card.add_class("nbw-input-card")
        if item.shrunk:
            card.add_class("nbw-input-shrunk")
        return card

    def dim(self, dimmed: bool) -> None:
        """Dim the inputs (they are used in Edit mode only) and update the hint."""
        if dimmed:
            self.area.add_class("nbw-dimmed")
        else:
            self.area.remove_class("nbw-dimmed")
        self.paint_hint()

class InputMethods:
    """The panel's public methods on its edit inputs (a part of
    :class:`~nanobanana_widgets.widgets.panel.panel.PromptPanel`): setting, adding and
    removing them, and continuing from a result."""

    _inputs: Inputs
    action: Any

    def notify(self, text: str, level: Level = "info", cause: str | None = None) -> None:
        """Show a message in the status area (the panel's)."""
        raise NotImplementedError

    @property
    def inputs(self) -> list[Any]:
        """The edit inputs, as given (paths, PIL images, results, uploaded files as dicts).

        Setting it replaces them; every item is checked (decoded into a thumbnail) and an
        unusable one is left out with a message in the status area naming it.
        """
        return self._inputs.sources

    @inputs.setter
    def inputs(self, sources: Any) -> None:
        if sources is None:
            sources = []
        elif not isinstance(sources, (list, tuple)):
            sources = [sources]
        self._inputs.replace(list(sources))

    def add_inputs(self, *sources: Any) -> None:
        """Add input images (as for :attr:`inputs`) after the ones already there."""
        self._inputs.add(sources)

    def clear_inputs(self) -> None:
        """Remove every input image."""
        self._inputs.clear()

    def remove_input(self, index: int) -> None:
        """Remove the input at ``index``."""
        self._inputs.remove(index)

    def use_as_input(self, image: GeneratedImage | Result, *, add: bool = False) -> None:
        """Continue from a result (or one of its images): it replaces the edit inputs
        (``add=True`` adds it after them instead) and the panel switches to Edit."""
        if isinstance(image, Result):
            image = image.image
        label = label_for(image, 0)
        item = self._inputs.make(label, image)
        if item is None:
            return  # named in the status area
        self._continue_from(item, add=add)

    def _use_thumb(self, thumb: Thumb, add: bool) -> None:
        image = thumb.image
        label = label_for(image, 0)
        if thumb.jpeg is None:
            raise ImageInputError(label, "it could not be downloaded")
        small = thumbnail(thumb.jpeg, max_side=INPUT_THUMB_SIDE)
        self._continue_from(EditInput(label=label, source=image, jpeg=small), add=add)

    def _continue_from(self, item: EditInput, *, add: bool) -> None:
        """Put ``item`` into the inputs (replacing them unless ``add``), switch to Edit and
        say which happened."""
        self.notify(self._inputs.take(item, add=add), "info")
        self.action = "edit"
