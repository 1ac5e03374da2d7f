"""Module paths of version 0.1 (``nanobanana_widgets.errors``, ``.history``, ``.panel``, ...)
keep working after the move into layers: each old path is a thin module that looks its
names up in the modules that hold them now. Nothing imports a new module until an old path
is imported."""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

__all__ = ["OLD_PATHS", "install"]

OLD_PATHS: dict[str, tuple[str, ...]] = {
    "errors": ("service.errors",),
    "models": ("service.models",),
    "results": ("service.types", "service.status"),
    "display": ("render.results",),
    "helpers": ("functions", "session"),
    "history": ("store.history", "store", "store.recorder", "store.views", "session"),
    "history_store": ("store.schema",),
    "panel": ("widgets.panel.panel", "widgets.panel.inputs"),
    "panel_run": ("widgets.panel.run", "widgets.panel.runs", "service.errors"),
    "history_strip": ("widgets.panel.strip",),
    "keys": ("widgets.panel.keys",),
    "compare": ("widgets.compare.comparison", "widgets.compare.sides"),
    "grid": ("widgets.grid.grid", "widgets.grid.view", "widgets.grid.plan",
             "widgets.grid.runner"),
    "view_sync": ("widgets._ui",),
}
"""Old module name → the modules (relative to the package) its names now live in."""

_PACKAGE = __name__.rpartition(".")[0]


def _alias_module(name: str, targets: Sequence[str]) -> types.ModuleType:
    module = types.ModuleType(name, f"Old path of {', '.join(targets)} (still works).")

    def __getattr__(attr: str) -> Any:
        for target in targets:
            found = importlib.import_module(f"{_PACKAGE}.{target}")
            if hasattr(found, attr):
                return getattr(found, attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    def __dir__() -> list[str]:
        names: set[str] = set()
        for target in targets:
            names.update(dir(importlib.import_module(f"{_PACKAGE}.{target}")))
        return sorted(names)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
    return module


class _Finder:
    """A meta path finder and loader for the old paths (duck-typed: importing
    ``importlib.abc`` would cost more than the rest of the package's import)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        package, _, leaf = fullname.rpartition(".")
        if package != _PACKAGE or leaf not in OLD_PATHS:
            return None
        return importlib.machinery.ModuleSpec(fullname, cast("Loader", self))

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        leaf = spec.name.rpartition(".")[2]
        return _alias_module(spec.name, OLD_PATHS[leaf])

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install() -> None:
    """Let the old module paths be imported (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
