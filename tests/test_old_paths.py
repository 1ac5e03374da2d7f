"""Module paths of version 0.1 still import, and give the very same objects as the layers."""

from __future__ import annotations

import importlib

import pytest

import nanobanana_widgets as nb
from nanobanana_widgets._aliases import OLD_PATHS

EXPECTED = {
    "errors": ["PossiblyBilledError", "NanoBananaError", "error_from_response"],
    "models": ["MODELS", "validate_request"],
    "results": ["Result", "GeneratedImage", "infer_status", "image_entries"],
    "display": ["show", "image_html"],
    "helpers": ["generate", "default_client", "use_emulator", "connect", "HISTORY_ENV"],
    "history": ["History", "HistoryView", "Record", "default_history", "set_default_history",
                "ReplayMode", "request_fingerprint", "ErrorInfo", "THUMB_SIDE", "PAGE_SIZE"],
    "history_store": ["HistoryStore"],
    "panel": ["PromptPanel"],
    "panel_run": ["PanelRun", "describe_error"],
    "history_strip": ["HistoryStrip"],
    "keys": ["SubmitKeys"],
    "compare": ["Comparison", "compare", "word_diff"],
    "grid": ["Grid", "grid", "open_grid", "Cell"],
    "view_sync": ["ViewSync"],
}


def test_every_old_path_is_checked() -> None:
    assert set(EXPECTED) == set(OLD_PATHS)


@pytest.mark.parametrize("old", sorted(EXPECTED))
def test_old_module_path_gives_the_same_objects(old: str) -> None:
    module = importlib.import_module(f"nanobanana_widgets.{old}")
    for name in EXPECTED[old]:
        value = getattr(module, name)
        homes = [importlib.import_module(f"nanobanana_widgets.{t}") for t in OLD_PATHS[old]]
        assert any(getattr(h, name, None) is value for h in homes), name
    assert set(EXPECTED[old]) <= set(dir(module))
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_from_import_of_old_paths() -> None:
    from nanobanana_widgets.errors import PossiblyBilledError
    from nanobanana_widgets.history import History

    assert PossiblyBilledError is nb.PossiblyBilledError
    assert History is nb.History


@pytest.mark.parametrize("name", nb.__all__)
def test_every_public_name_imports(name: str) -> None:
    assert getattr(nb, name) is not None
