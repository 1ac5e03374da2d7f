"""Outputs that outlive the kernel: a view's static rendition beside its live widget,
links to full-size copies that any front end can reach, and Colab's widget manager.

**Static renditions.** A view that holds a :class:`StaticRendition` is displayed as two
outputs: the live widget, and a ``text/html`` copy of the view's current state (made by the
view's ``static_html()`` from the same render functions as the live view) under an IPython
display id. A hidden marker among the view's children hides the copy wherever the live view
is rendered (JupyterLab, Voilà, the HTML widget manager of an exported page). When the
view's state settles (a run, a grid, a pick), :meth:`StaticRendition.update` sends the copy
again through that display id: throttled (at most one send per ``interval``, the last one
always sent), and only to the copy, so the live widget is never re-rendered (no flicker, no
lost slider position). nbconvert, GitHub, nbviewer and a notebook reopened without its
kernel show the copy. A new view adopts all of it with one call in its ``__init__``:
``self.static = StaticRendition(self, self.static_html)``, then ``self.static.update()``
where its state settles.

**Links that last.** Outputs never link to the service's or the emulator's address (a
loopback URL is dead once the process stops, and means the server on Binder). A full-size
image is copied into ``nanobanana-files/`` beside the notebook (the kernel's working
directory; a visible folder, since Jupyter does not serve hidden ones such as
``.nanobanana/``) and linked by its relative path, which JupyterLab resolves to its
``/files/`` route and a browser resolves beside an exported page.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import logging
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
from IPython import get_ipython
from IPython.display import display

from nanobanana_widgets.images.published import publish_copy
from nanobanana_widgets.render.links import lasting_url, relative_href
from nanobanana_widgets.render.static import hide_static_css
from nanobanana_widgets.service.types import GeneratedImage
from nanobanana_widgets.widgets._ui import ViewSync, widget_tree

__all__ = ["LINK_FOLDER", "UPDATE_INTERVAL", "StaticRendition", "enable_colab_widgets",
           "image_link", "link_folder", "publish_display", "record_image_link", "source_link"]

_log = logging.getLogger(__name__)

LINK_FOLDER = "nanobanana-files"
"""The folder, beside the notebook, holding the full-size copies that outputs link to."""

UPDATE_INTERVAL = 1.0
"""Seconds between two sends of one view's static rendition (the last one is always sent)."""

_renditions: weakref.WeakSet[StaticRendition] = weakref.WeakSet()
_hooked: set[int] = set()
_colab_done = False
_colab_lock = threading.Lock()


def publish_display(data: dict[str, Any], *, display_id: str | None = None,
                    update: bool = False) -> None:
    """Send a raw MIME bundle as a display (or, with ``update``, a display update)."""
    display(data, raw=True, display_id=display_id, update=update)  # type: ignore[no-untyped-call]


# --- Colab ----------------------------------------------------------------------------------


def enable_colab_widgets() -> bool:
    """In Google Colab, turn on its custom widget manager (needed for ipywidgets 8 and
    anywidget), once per process; elsewhere do nothing. Returns whether it was turned on
    now."""
    global _colab_done
    if "google.colab" not in sys.modules:
        return False
    with _colab_lock:
        if _colab_done:
            return False
        _colab_done = True
    try:
        output = importlib.import_module("google.colab.output")
        output.enable_custom_widget_manager()
    except Exception:  # an unknown Colab: the views still show their static renditions
        _log.warning("could not enable Colab's custom widget manager", exc_info=True)
        return False
    return True


# --- links ----------------------------------------------------------------------------------


def link_folder() -> Path:
    """Where full-size copies go: ``nanobanana-files/`` in the working directory (the
    notebook's folder in Jupyter)."""
    return Path.cwd() / LINK_FOLDER


def _served(copy: Path) -> str | None:
    return relative_href(copy, Path.cwd())


def _task_key(task_id: str, index: int) -> str:
    """The name part of a task image's copy: one file whoever publishes it (a view from
    the image's bytes, or from the history's copy)."""
    return hashlib.sha256(f"task:{task_id}:{index}".encode()).hexdigest()


_COPIES_REMEMBERED = 4096
_copies: collections.OrderedDict[tuple[str, str, int, str], Path] = collections.OrderedDict()
_copies_lock = threading.Lock()


def _known_copy(key: tuple[str, str, int, str]) -> Path | None:
    with _copies_lock:
        copy = _copies.get(key)
        if copy is not None:
            _copies.move_to_end(key)
    return copy if copy is not None and copy.is_file() else None


def _remember_copy(key: tuple[str, str, int, str], copy: Path) -> None:
    with _copies_lock:
        _copies[key] = copy
        while len(_copies) > _COPIES_REMEMBERED:
            _copies.popitem(last=False)


def image_link(image: GeneratedImage) -> str | None:
    """A link to ``image`` at full size that outlives the kernel: its copy in
    :func:`link_folder` (written now, with its metadata, if need be) by a path relative to
    the notebook; else its URL when that is not a loopback address; else ``None``.

    A copy made once is remembered: linking the image again (every repaint of a saved
    copy) needs neither its bytes nor a download, so a view that let go of an old
    result's bytes does not fetch and keep them again."""
    try:
        key = (str(link_folder()), image.task_id, image.index, image.url[:200])
        copy = _known_copy(key)
        if copy is None:
            stem = f"{image.task_id}-{image.index + 1}" if image.task_id else "image"
            digest = _task_key(image.task_id, image.index) if image.task_id else None
            copy = publish_copy(image.bytes(), link_folder(), stem=stem, digest=digest,
                                metadata=image.metadata())
            _remember_copy(key, copy)
        href = _served(copy)
        if href is not None:
            return href
    except Exception:  # no copy (not downloadable, disk full): the URL, if it lasts
        _log.debug("no local copy of %s", image.url[:80], exc_info=True)
    return lasting_url(image.url)


def record_image_link(image: Any, task_id: str | None) -> str | None:
    """The same for a history record's result image (anything with ``path``, ``local``,
    ``position``, ``sha256`` and ``url``) of the task ``task_id``: its local copy is
    linked into :func:`link_folder`."""
    try:
        if getattr(image, "local", False) and image.path is not None:
            position = int(image.position)
            stem = f"{task_id}-{position + 1}" if task_id else "image"
            key = _task_key(task_id, position) if task_id else getattr(image, "sha256", None)
            copy = publish_copy(image.path, link_folder(), stem=stem, digest=key)
            href = _served(copy)
            if href is not None:
                return href
    except Exception:
        _log.debug("no local copy of a record's image", exc_info=True)
    return lasting_url(getattr(image, "url", None))


def source_link(source: Any, url: str | None = None) -> str | None:
    """A lasting link for any image source a view shows: a generated image or a file is
    copied (see :func:`image_link`); anything else links to ``url`` if it lasts."""
    if isinstance(source, GeneratedImage):
        return image_link(source)
    if isinstance(source, (str, Path)) and not str(source).startswith(
            ("data:", "http://", "https://")):
        try:
            path = Path(source)
            if path.is_file():
                href = _served(publish_copy(path, link_folder(), stem=path.stem))
                if href is not None:
                    return href
        except (OSError, ValueError):
            _log.debug("no copy of %s", source, exc_info=True)
    return lasting_url(url)


# --- static renditions ----------------------------------------------------------------------


class _DelayedSends:
    """The one thread that sends every view's delayed (throttled) update.

    A timer thread per update would build each large rendition (hundreds of KB of markup)
    in a new thread; glibc spreads such threads over many malloc arenas, and a long
    session's kernel memory then grows run after run (figure 15 of the benchmark)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[float, weakref.ref[StaticRendition]]] = {}
        self._thread: threading.Thread | None = None

    def schedule(self, rendition: StaticRendition, when: float) -> None:
        """Call ``rendition._send_later()`` at ``when`` (``time.monotonic()``), once."""
        with self._cond:
            key = id(rendition)
            if key not in self._due or when < self._due[key][0]:
                self._due[key] = (when, weakref.ref(rendition))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="nbw-static-sends",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                while not any(when <= now for when, _ref in self._due.values()):
                    soonest = min((when for when, _ref in self._due.values()), default=None)
                    self._cond.wait(None if soonest is None else soonest - now)
                    now = time.monotonic()
                ready = [key for key, (when, _ref) in self._due.items() if when <= now]
                refs = [self._due.pop(key)[1] for key in ready]
            for ref in refs:
                rendition = ref()
                if rendition is None:
                    continue
                try:
                    rendition._send_later()
                except Exception:
                    _log.exception("sending a static rendition failed")


_SENDER = _DelayedSends()


def _flush_after_cell(*_args: Any) -> None:
    """After each cell: send again every rendition that changed since the last cell ended.

    An update sent from a background thread between two cells carries the previous cell's
    message header, which a notebook runner such as nbclient ignores; this one goes out
    while a cell is still executing."""
    for rendition in list(_renditions):
        rendition._cell_end()


def _hook_cells() -> None:
    shell = get_ipython()
    if shell is None or id(shell) in _hooked:
        return
    try:
        shell.events.register("post_run_cell", _flush_after_cell)
    except Exception:  # a shell without events: updates still go out as they happen
        _log.debug("no post_run_cell event", exc_info=True)
        return
    _hooked.add(id(shell))


class StaticRendition:
    """The static copy of a view's state that its notebook output carries.

    ``StaticRendition(view, render)``: ``view`` is a widget holding a ``ViewSync``;
    ``render()`` returns the view's current state as HTML (see
    :mod:`nanobanana_widgets.render.static`). Displaying ``view`` then shows the live
    widget and this copy; :meth:`update` (from any thread) sends the copy again.
    """

    def __init__(self, view: w.DOMWidget, render: Callable[[], str], *,
                 interval: float = UPDATE_INTERVAL) -> None:
        self.view_id = uuid.uuid4().hex[:12]
        self.display_id = f"nbw-static-{self.view_id}"
        self._view = weakref.ref(view)
        self._render = render
        self._interval = interval
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._shown = False
        self._version = 0
        self._cell_version = 0
        self._last_sent = float("-inf")
        self._last_html: str | None = None
        self._pending = False  # an update is scheduled with _SENDER
        if not any(isinstance(x, ViewSync) for x in widget_tree(view)):
            raise TypeError(f"{type(view).__name__} holds no ViewSync: every view needs one "
                            "(see widgets._ui), and its links resolve through it")
        self.marker = w.HTML(f"<style>{hide_static_css(self.view_id)}</style>",
                             layout=w.Layout(display="none"))
        """Hides the copy wherever the live view is shown (a core widget: it renders
        wherever the view does, even where an anywidget module cannot load)."""
        self.marker.add_class("nbw-static-marker")
        view.add_class("nbw-view")
        view.children = (*view.children, self.marker)
        view.observe(self._keep_marker, names="children")
        view._ipython_display_ = self._ipython_display_
        _renditions.add(self)

    def _keep_marker(self, change: dict[str, Any]) -> None:
        """The view's children were replaced: the marker stays among them."""
        if self.marker not in change["new"]:
            change["owner"].children = (*change["new"], self.marker)

    @property
    def shown(self) -> bool:
        """Whether the view has been displayed (only then are updates sent)."""
        return self._shown

    def html(self) -> str:
        """The rendition as it is now (a failure to render becomes a short notice)."""
        try:
            return self._render()
        except Exception as exc:  # never a traceback in an output
            _log.exception("static rendition failed")
            return (f'<div class="nbw-static nbw-static-{self.view_id}">'
                    f"(No saved copy of this view: {type(exc).__name__}.)</div>")

    def _ipython_display_(self) -> None:
        view = self._view()
        if view is None:
            return
        enable_colab_widgets()
        bundle = dict(view._repr_mimebundle_() or {})
        if getattr(get_ipython(), "kernel", None) is not None:
            bundle["text/plain"] = ""  # the copy below says it; a repr would go stale
        publish_display(bundle)
        with self._send_lock:
            markup = self.html()
            with self._lock:
                self._shown = True
                self._last_html = markup
                self._last_sent = time.monotonic()
                self._cell_version = self._version
            publish_display({"text/html": markup}, display_id=self.display_id)
        _hook_cells()

    def update(self) -> None:
        """The view's state changed: send the rendition again, now or (when one was sent
        less than ``interval`` ago) once that interval is over."""
        with self._lock:
            self._version += 1
            if not self._shown:
                return
            wait = self._last_sent + self._interval - time.monotonic()
            if wait > 0:
                if not self._pending:
                    self._pending = True
                    _SENDER.schedule(self, time.monotonic() + wait)
                return
        self._send()

    def flush(self) -> None:
        """Send a pending update now."""
        with self._lock:
            pending = self._pending
        if pending:
            self._send()

    def _send_later(self) -> None:
        self._send()

    def _send(self, *, again: bool = False) -> None:
        view = self._view()
        if view is None or view.comm is None:  # closed: its copy keeps its last state
            return
        with self._send_lock:
            with self._lock:
                self._pending = False
                self._last_sent = time.monotonic()
            markup = self.html()
            if markup == self._last_html and not again:
                return
            try:
                publish_display({"text/html": markup}, display_id=self.display_id,
                                update=True)
            except Exception:  # no front end to tell (the kernel is shutting down)
                _log.debug("static rendition update failed", exc_info=True)
                return
            self._last_html = markup

    def _cell_end(self) -> None:
        with self._lock:
            if not self._shown or self._version == self._cell_version:
                return
            self._cell_version = self._version
        self._send(again=True)
