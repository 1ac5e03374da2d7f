"""The architecture holds: the import contract passes and catches a wrong import, there are
no import cycles, few imports hide inside functions, and no class grows past ~450 lines."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "nanobanana_widgets"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is missing")


def _lint(config: Path, src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(config), "--no-cache"],
        cwd=config.parent, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    )


def test_the_import_contract_passes() -> None:
    done = _lint(ROOT / "pyproject.toml", ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "wrong_import"), [
    ("service/models.py", "import nanobanana_widgets.widgets.panel"),  # upward
    ("widgets/grid/grid.py", "import nanobanana_widgets.widgets.compare"),  # sideways
    ("render/results.py", "import ipywidgets"),  # a widget toolkit in render/
    ("widgets/panel/panel.py", "import nanobanana_widgets.store.schema"),  # store internals
    ("session.py", "import sqlite3"),  # SQL outside store/
    ("store/history.py", "import requests"),  # HTTP outside client/ and images/
])
def test_a_wrong_import_breaks_the_contract(tmp_path: Path, module: str,
                                            wrong_import: str) -> None:
    src = tmp_path / "src"
    shutil.copytree(PACKAGE, src / "nanobanana_widgets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = src / "nanobanana_widgets" / module
    text = target.read_text()
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(head + sep + wrong_import + "\n" + rest)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    done = _lint(tmp_path / "pyproject.toml", src)
    assert done.returncode != 0, done.stdout
    assert "BROKEN" in done.stdout or "broken" in done.stdout.lower()


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(module: str, path: Path, node: ast.AST) -> list[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        return [prefix] + [f"{prefix}.{a.name}" for a in node.names]
    return []


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, less those under ``if TYPE_CHECKING:`` (never imported at run time)."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in _runtime_nodes(ast.parse(path.read_text())):
            for name in _imported(module, path, node):
                if name in modules and name != module:
                    graph[module].add(name)
    return graph


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    # A package's __init__ re-exporting its own modules is not a cycle of concerns.
    real = [c for c in cycles if not all(m.startswith(min(c, key=len)) for m in c)]
    assert real == [], real


def _inner_package_imports() -> list[str]:
    found = []
    for module, path in _modules().items():
        if module == "nanobanana_widgets":
            continue  # the lazy façade imports on first use by design
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                names = _imported(module, path, node)
                if any(n.startswith("nanobanana_widgets") for n in names):
                    found.append(f"{module}:{node.lineno}")
    return sorted(set(found))


def test_at_most_five_package_imports_inside_functions() -> None:
    inner = _inner_package_imports()
    assert len(inner) <= 5, inner
def test_no_class_over_about_450_lines() -> None:
    long = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > 460:
                    long.append(f"{module}.{node.name}: {size} lines")
    assert long == [], long
