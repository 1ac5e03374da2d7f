"""What every view shares: the one rule for changing widgets from background threads.

**The thread rule.** Background work runs on its component's executor; widget values change
only through a :class:`Painter`, which applies a newer state and never puts back an older
one (a finished grid cell never returns to "waiting", whatever order threads arrive in);
listener callbacks never block the client's poller.

**Views never show an older state than the kernel holds.** ipywidgets loads a page's
widgets from a running kernel (Voilà, a reloaded JupyterLab tab) as one snapshot; an update
a background thread sends between that snapshot and the page registering the widget's comm
is dropped by the page, so a view can stay at an older state for good (a grid cell left at
"waiting" under a finished grid). :class:`ViewSync` is an
invisible ``anywidget`` placed inside a view: when the view is rendered it asks Python to
send the current state of every widget in that view again.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import anywidget
import ipywidgets as w

__all__ = ["PAGE_OWNED_KEYS", "Painter", "Ticker", "ViewSync", "close_deep", "close_tree",
           "close_view", "guarded", "resend_keys",
           "weak_callback", "widget_tree"]

_STATIC = Path(__file__).parent / "static"
_log = logging.getLogger(__name__)


def widget_tree(root: w.Widget) -> Iterator[w.Widget]:
    """``root`` and every widget it refers to (children, layouts, styles), each once."""
    seen: set[int] = set()
    stack: list[Any] = [root]
    while stack:
        widget = stack.pop()
        if not isinstance(widget, w.Widget) or id(widget) in seen:
            continue
        seen.add(id(widget))
        yield widget
        for name in widget.keys:
            value = getattr(widget, name, None)
            if isinstance(value, w.Widget):
                stack.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, w.Widget))


def close_tree(widget: Any) -> None:
    """Close ``widget`` and its children, depth first (their comms go away)."""
    children: Sequence[Any] = getattr(widget, "children", ()) or ()
    for child in children:
        close_tree(child)
    widget.close()


def close_deep(widget: Any, keep: Iterable[Any] = ()) -> None:
    """Close ``widget`` and every model it refers to (children, their layouts and styles),
    except the ``keep`` ones (models shared with widgets that stay). Without this a closed
    view leaves its layout and style models alive in the kernel and the page."""
    kept = {id(k) for k in keep}
    for model in list(widget_tree(widget)):
        if id(model) not in kept:
            model.close()


def close_view(view: w.Widget, close_itself: Callable[[], object]) -> None:
    """Close ``view`` (by ``close_itself``, its class's own ``close``) and then every model it
    is made of: children, their layouts and styles. A view closed alone leaves them alive,
    and a live box naming a closed widget breaks ``Widget.get_manager_state()`` (and
    ``ipywidgets.embed``) for every widget of the kernel."""
    parts = [model for model in widget_tree(view) if model is not view]
    close_itself()
    for model in parts:
        model.close()


def guarded(handler: Callable[..., object],
            report: Callable[[BaseException], object]) -> Callable[..., None]:
    """``handler`` wrapped for a widget callback: an exception it raises goes to
    ``report`` (a view's status line), never into ipywidgets' log only. A failing
    ``report`` is logged."""

    def call(*args: Any) -> None:
        try:
            handler(*args)
        except Exception as exc:  # a click never loses its error
            _log.debug("widget callback failed", exc_info=True)
            try:
                report(exc)
            except Exception:
                _log.exception("reporting a widget callback's error failed")

    return call


PAGE_OWNED_KEYS: Final = frozenset({"value", "index"})
"""What a person changes in the page: the value of a control (a typed prompt, a slider, a
choice; ``index`` for a selection). The page has the newer word on it until the change
reaches the kernel (a text box syncs when it loses focus), so a state sent again leaves it
out: otherwise it could undo what was typed since."""


def resend_keys(widget: w.Widget) -> list[str] | None:
    """The state of ``widget`` to send again to a page that has rendered it: all of it
    (``None``), but for a control (a widget with ``disabled``, or a trait tagged
    ``page_owned``) the value the person sets in the page."""
    is_control = widget.has_trait("disabled")
    keys = [k for k in widget.keys
            if not (is_control and k in PAGE_OWNED_KEYS)
            and not widget.trait_metadata(k, "page_owned")]
    return None if len(keys) == len(widget.keys) else keys


class ViewSync(anywidget.AnyWidget):
    """Invisible: once rendered, the view holding it gets its current state sent again
    (but for what the person sets in the page, :data:`PAGE_OWNED_KEYS`)."""

    _esm = (_STATIC / "view_sync.js").read_text(encoding="utf-8")

    def __init__(self, view: w.Widget, **kwargs: Any) -> None:
        # Hidden by its layout too: where its module cannot load (the HTML widget manager
        # of an exported page, offline), the error box put in its place stays hidden.
        kwargs.setdefault("layout", w.Layout(display="none"))
        super().__init__(**kwargs)
        self._view = weakref.ref(view)
        self.on_msg(self._handle_message)

    def _handle_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("event") != "rendered":
            return
        view = self._view()
        if view is None:
            return
        try:
            for widget in widget_tree(view):
                if widget is not self and widget.comm is not None:
                    widget.send_state(key=resend_keys(widget))
        except Exception:  # a view that cannot be refreshed still shows what it had
            _log.exception("could not send a view's state again")

    def __repr__(self) -> str:
        return "ViewSync()"


Version = tuple[int, ...]
"""A state's place in its sequence: compared as tuples (e.g. ``(stage rank, seconds)``)."""


class Painter:
    """The one path by which a view's widgets change, from any thread.

    Each piece of displayed state has a ``key`` (a grid cell, a run row, the status line)
    and a ``version`` that only grows along its life (a stage's rank, then a counter).
    :meth:`paint` applies a change under one lock unless a newer version of that key was
    painted already, so a late "waiting" can never cover a finished cell.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._painted: dict[Hashable, Version] = {}

    def paint(self, key: Hashable, version: Version, apply: Callable[[], object]) -> bool:
        """Run ``apply()`` if ``version`` is not older than the last one painted for ``key``
        (an equal version repaints: the same state with fresher details). Returns whether
        it ran."""
        with self._lock:
            last = self._painted.get(key)
            if last is not None and version < last:
                return False
            self._painted[key] = version
            apply()
            return True

    def version(self, key: Hashable) -> Version | None:
        """The last version painted for ``key`` (``None`` when never painted)."""
        with self._lock:
            return self._painted.get(key)

    def forget(self, key: Hashable) -> None:
        """Start ``key`` afresh (a retried grid cell, a reused row)."""
        with self._lock:
            self._painted.pop(key, None)


class Ticker:
    """Calls ``tick()`` every ``interval`` seconds in a daemon thread while it returns
    ``True`` (a view's clock: elapsed seconds that move on while work is in flight).

    :meth:`start` (from any thread) starts the thread unless it runs; it stops by itself
    when ``tick()`` returns ``False`` or raises, and for good after :meth:`stop`. The
    thread only paints (through the view's :class:`Painter`); it never waits on the
    network.
    """

    def __init__(self, tick: Callable[[], bool], *, interval: float = 1.0,
                 name: str = "nbw-ticker") -> None:
        self._tick = tick
        self.interval = interval
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopped = False
        self._kicked = False

    @property
    def running(self) -> bool:
        """Whether the thread is ticking."""
        with self._lock:
            return self._thread is not None

    def start(self) -> None:
        """Tick from now on (no effect after :meth:`stop`)."""
        with self._lock:
            if self._stopped:
                return
            self._kicked = True
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop ticking for good."""
        with self._lock:
            self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            with self._lock:
                self._kicked = False
            try:
                keep = bool(self._tick())
            except Exception:  # a broken clock stops; the view still shows what it had
                _log.exception("%s: tick failed", self._name)
                keep = False
            if keep:
                continue
            with self._lock:  # a start() during the last tick keeps the clock going
                if not self._kicked or self._stopped:
                    self._thread = None
                    return
        with self._lock:
            self._thread = None


def weak_callback(method: Callable[..., object]) -> Callable[..., None]:
    """A callback calling the bound ``method`` while its object lives (for a long-lived
    source such as a history, which must not keep every view it ever told alive)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        found = ref()
        if found is not None:
            found(*args)

    return call
