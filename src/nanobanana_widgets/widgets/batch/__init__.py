"""Batch jobs in a notebook: ``batch()`` and ``Job`` (the work: :mod:`nanobanana_widgets.jobs`)
and ``BatchView``, the progress view."""

from nanobanana_widgets.widgets.batch.job import Job, batch
from nanobanana_widgets.widgets.batch.view import BatchView

__all__ = ["BatchView", "Job", "batch"]
