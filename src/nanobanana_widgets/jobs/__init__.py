"""Batch jobs without widgets: rows checked before anything is sent, submits paced at the
service's limit (AIMD), every row's state in the history, resumable after a crash, and the
result exported as a dataset.

``rows`` (reading and checking), ``aimd`` (the pacing), ``runner`` (the threads),
``summary`` (a snapshot), ``export`` (ImageFolder and Parquet) and ``job``: the
:class:`BatchJob` façade. ``nb.batch`` and ``nb.Job`` (``widgets.batch``) add the progress view
and the package's default client and history.
"""

from nanobanana_widgets.jobs.aimd import AimdSettings, Pacer
from nanobanana_widgets.jobs.job import BatchJob, Outcome
from nanobanana_widgets.jobs.rows import InvalidRowError, RowSpec
from nanobanana_widgets.jobs.summary import JobSummary, RowError

__all__ = ["AimdSettings", "BatchJob", "InvalidRowError", "JobSummary", "Outcome", "Pacer",
           "RowError", "RowSpec"]
