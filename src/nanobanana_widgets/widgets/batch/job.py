"""``nb.batch(rows, ...)`` and ``nb.Job``: a batch job with its progress view and the
package's default client and history.

::

    job = nb.batch("products.csv", model="nano-banana", name="products")  # shows progress
    job.wait(); job.summary; job.results[36]; job.to_pandas()
    job.export("products-dataset/")              # then datasets.load_dataset("imagefolder", ...)
    job = nb.Job.open("products")                # after the kernel died: goes on, no resubmits

The work is the widget-free :class:`~nanobanana_widgets.jobs.BatchJob` (see its module for
what is checked first, how submits are paced and how a job resumes); this module adds the
:class:`~nanobanana_widgets.widgets.batch.view.BatchView` (shown when the job is made in a
notebook, and whenever the job is displayed) with a static HTML rendition for saved
notebooks, and the defaults: the session's client and history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython import get_ipython
from IPython.display import display

from nanobanana_widgets.jobs import BatchJob
from nanobanana_widgets.render.batch import job_html
from nanobanana_widgets.service.errors import InvalidParameterError
from nanobanana_widgets.service.models import DEFAULT_MODEL
from nanobanana_widgets.session import choose_history, default_client
from nanobanana_widgets.store import History
from nanobanana_widgets.widgets.batch.view import BatchView

if TYPE_CHECKING:
    from nanobanana_widgets.client import Client

__all__ = ["Job", "batch"]


def _history(history: History | bool | None, client: Client | None) -> History:
    if history is False:
        raise InvalidParameterError(
            "history", history, None,
            hint="a History, or None for the default one: a batch job lives in a history, "
                 "which is what makes it resumable")
    chosen = choose_history(True if history is None else history, client, owner="history")
    assert chosen is not None
    return chosen


def _kernel_shell() -> Any:
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


class Job(BatchJob):
    """A batch job (made by :func:`batch` or :meth:`Job.open`) with its progress view.

    Everything of :class:`~nanobanana_widgets.jobs.BatchJob` (``wait``, ``pause``,
    ``resume``, ``cancel``, ``confirm``, ``results``, ``summary``, ``to_pandas``,
    ``retry_failed``, ``export``), plus ``view`` (the widget) and display in a notebook.
    """

    _view: BatchView | None = None
    _skip_display_in: int | None = None

    @classmethod
    def open(cls, name: str, *, history: History | bool | None = None,  # type: ignore[override]
             client: Client | None = None, concurrency: Any = "auto") -> Job:
        """Re-attach to the recorded job ``name`` (default: in the default history): one
        that was running when its kernel died goes on, rows already submitted are looked up
        and never sent again; a paused, cancelled or unconfirmed one waits for ``resume()``
        or ``confirm()``. Shows its progress in a notebook. ``KeyError`` for an unknown name.
        """
        job = super().open(name, history=_history(history, client), client=client,
                           client_factory=default_client, concurrency=concurrency)
        assert isinstance(job, Job)
        job._show()
        return job

    @property
    def view(self) -> BatchView:
        """The progress view (made on first use, and again after it was closed)."""
        if self._view is None or self._view.comm is None:
            self._view = BatchView(self)
        return self._view

    def _show(self) -> None:
        shell = _kernel_shell()
        if shell is None:
            return
        display(self)  # type: ignore[no-untyped-call]
        self._skip_display_in = shell.execution_count

    def _static_html(self) -> str:
        spec = self.history.jobs.get(self.name) or {}
        return job_html(self.summary, models=sorted({s.model for s in self.specs}),
                        source=str((spec.get("spec") or {}).get("source", "")),
                        max_calls=self.max_calls)

    def _ipython_display_(self) -> None:
        shell = _kernel_shell()
        if shell is not None and self._skip_display_in == shell.execution_count:
            self._skip_display_in = None  # shown already by the call that made it
            return
        # The live view, and beside it its static copy (what a saved notebook, nbconvert or
        # GitHub show), which follows each change of the job's state.
        self.view._ipython_display_()

    def _repr_html_(self) -> str:
        return self._static_html()

    def __repr__(self) -> str:
        return f"<Job {self.summary}>"


def batch(rows: Any, *, model: str = DEFAULT_MODEL, count: int = 1,
          aspect_ratio: str | None = None, resolution: str | None = None, images: Any = None,
          max_calls: int | None = None, concurrency: Any = "auto", name: str | None = None,
          client: Client | None = None, history: History | bool | None = None) -> Job:
    """Run one generation per row, at the service's limit, resumably; returns the
    :class:`Job` at once and shows its progress in a notebook.

    ``rows``: a list of prompts, a list of dicts (``prompt`` and any parameter, ``images``
    included), a pandas DataFrame with a ``prompt`` column and optional parameter columns,
    or the path of a CSV or JSON Lines file; other columns are kept as metadata and go into
    the export. ``model``, ``count``, ``aspect_ratio``, ``resolution`` and ``images`` are the
    defaults of every row. Every row is checked first: a bad one raises
    :class:`~nanobanana_widgets.jobs.InvalidRowError` naming its number and field, and
    nothing is spent. The paid generations are counted before anything is sent; above
    ``max_calls`` (``None``: no cap) nothing is sent until ``job.confirm()`` or the button.
    ``concurrency``: ``"auto"`` paces submits adaptively (AIMD on 429s, which are never
    billed); a number also caps the rows in flight. ``name`` (default: derived from the
    rows) identifies the job in the history: the same rows under the same name re-attach to
    it (``nb.Job.open(name)`` too), and rows already submitted are never sent again.
    ``client`` and ``history`` default to the package's (a job always lives in a history,
    even with ``NANOBANANA_HISTORY=off``: that is what makes it resumable).
    """
    job = Job.create(rows, history=_history(history, client), client=client,
                     client_factory=default_client, model=model, count=count,
                     aspect_ratio=aspect_ratio, resolution=resolution, images=images,
                     max_calls=max_calls, concurrency=concurrency, name=name)
    assert isinstance(job, Job)
    job._show()
    return job
