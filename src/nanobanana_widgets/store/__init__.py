"""The history store: SQLite schema and all SQL, records, query views, the recorder, replay,
export, and the :class:`History` façade (the only writer)."""

from nanobanana_widgets.store.history import (
    RECORD_STATUSES,
    ErrorInfo,
    History,
    HistoryView,
    InputImage,
    Pick,
    Record,
    RecordStatus,
    ReplayMode,
    ResultImage,
    request_fingerprint,
)

__all__ = ["RECORD_STATUSES", "ErrorInfo", "History", "HistoryView", "InputImage", "Pick", "Record",
           "RecordStatus", "ReplayMode", "ResultImage", "request_fingerprint"]
