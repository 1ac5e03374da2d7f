"""The history store: ``schema`` (SQLite, migrations, the image folder and all SQL),
``records``, ``views`` (read-only queries), ``recorder`` (the client listener),
``downloads`` (its bounded pool), ``unsaved`` (records kept and retried when the database
refuses), ``problems`` (what the user must see), ``resume``, ``recovery`` (damaged
histories), ``failures`` (typed errors), ``clean`` (safe text), ``replay``, ``export``, and
``history``: the :class:`History` façade, the only writer."""

from nanobanana_widgets.store.history import History
from nanobanana_widgets.store.problems import HistoryProblem
from nanobanana_widgets.store.records import (
    RECORD_STATUSES,
    ErrorInfo,
    InputImage,
    Pick,
    Record,
    RecordStatus,
    ResultImage,
    request_fingerprint,
)
from nanobanana_widgets.store.replay import ReplayMode
from nanobanana_widgets.store.unsaved import UnsavedRecord
from nanobanana_widgets.store.views import HistoryView

__all__ = ["RECORD_STATUSES", "ErrorInfo", "History", "HistoryProblem", "HistoryView",
           "InputImage", "Pick", "Record", "RecordStatus", "ReplayMode", "ResultImage",
           "UnsavedRecord", "request_fingerprint"]
