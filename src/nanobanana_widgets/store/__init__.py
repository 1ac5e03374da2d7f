"""The history store: ``schema`` (SQLite, migrations, the image folder and all SQL),
``records``, ``views`` (read-only queries), ``recorder`` (the client listener and its
download pool), ``replay``, ``export``, and ``history``: the :class:`History` façade, the
only writer."""

from nanobanana_widgets.store.history import History
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
from nanobanana_widgets.store.views import HistoryView

__all__ = ["RECORD_STATUSES", "ErrorInfo", "History", "HistoryView", "InputImage", "Pick", "Record",
           "RecordStatus", "ReplayMode", "ResultImage", "request_fingerprint"]
