"""The history store: ``schema`` (SQLite, migrations, the image folder and all SQL),
``records``, ``views`` (read-only queries), ``recorder`` (the client listener),
``downloads`` (its bounded pool), ``unsaved`` (records kept and retried when the database
refuses), ``problems`` (what the user must see), ``resume``, ``recovery`` (damaged
histories), ``failures`` (typed errors), ``clean`` (safe text), ``replay``, ``export``, and
``history``: the :class:`History` façade, the only writer. Votes: ``votes`` (their SQL),
``voting`` (the façade's vote methods), ``rankings`` and ``stats`` (Bradley–Terry, the sign
test)."""

from nanobanana_widgets.store.history import History
from nanobanana_widgets.store.problems import HistoryProblem
from nanobanana_widgets.store.rankings import RANK_BY, Entry, RankingRow, Rankings, rank
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
from nanobanana_widgets.store.stats import Strength, bradley_terry, min_votes_for, sign_test
from nanobanana_widgets.store.unsaved import UnsavedRecord
from nanobanana_widgets.store.views import HistoryView
from nanobanana_widgets.store.votes import VOTE_OUTCOMES, Vote, VoteItem, VoteOutcome
from nanobanana_widgets.store.voting import record_item

__all__ = ["RANK_BY", "RECORD_STATUSES", "VOTE_OUTCOMES", "Entry", "ErrorInfo", "History",
           "HistoryProblem", "HistoryView", "InputImage", "Pick", "RankingRow", "Rankings",
           "Record", "RecordStatus", "ReplayMode", "ResultImage", "Strength", "UnsavedRecord",
           "Vote", "VoteItem", "VoteOutcome", "bradley_terry", "min_votes_for", "rank",
           "record_item", "request_fingerprint", "sign_test"]
