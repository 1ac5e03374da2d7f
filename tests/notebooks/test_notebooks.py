"""The tutorial notebooks: committed clean, and every one runs top to bottom offline.

Each notebook runs with ``nbclient`` in its own ``python3`` kernel, launched by this
virtual environment's Python (a kernelspec in a temporary JUPYTER_PATH pins it), in a
temporary copy of ``notebooks/`` as working directory (histories and saved images stay
there), with no ``ACEDATACLOUD_API_TOKEN`` and no base URL: ``nb.connect()`` starts the
in-process emulator, as on Binder. The notebooks run in parallel (five kernels).

Time budget: each notebook must finish within ``BUDGET_SECONDS`` (60 s, kernel start
included); one that is still running then is stopped and fails. They take about 5–25 s
each on a laptop, mostly the emulator's realistic 1–3 s per image.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nanobanana_widgets.emulator import Emulator

from ._notebook_runner import NotebookRun, run_all

pytestmark = pytest.mark.notebooks

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
EXPECTED = ["01_quickstart", "02_editing", "03_compare_and_grids", "04_history", "05_batch",
            "06_tournaments"]
BUDGET_SECONDS = 60.0
CONNECT_CELL = "import nanobanana_widgets as nb\n\nnb.connect()"


def read(name: str) -> Any:
    return nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)


def code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def text_of(output: Any) -> str:
    if output.output_type == "stream":
        return str(output.text)
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return str(output.get("data", {}).get("text/plain", ""))


# --- the committed files -------------------------------------------------------------------


def test_the_tutorials_are_all_there() -> None:
    assert NAMES == EXPECTED


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name: str) -> None:
    nb = read(name)
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert cell.outputs == [], f"{name}: a cell has saved outputs:\n{cell.source}"
        assert cell.execution_count is None, f"{name}: a cell has an execution count"
    assert "widgets" not in nb.metadata, f"{name}: saved widget state in the metadata"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_begins_with_one_short_connect_cell(name: str) -> None:
    nb = read(name)
    title, first = nb.cells[0], nb.cells[1]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert first.cell_type == "code" and first.source == CONNECT_CELL


# --- running them ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NotebookRun]:
    scratch = tmp_path_factory.mktemp("notebooks")
    return run_all(Path(sys.executable), NOTEBOOKS, scratch, budget=BUDGET_SECONDS)


@pytest.mark.parametrize("name", NAMES)
def test_runs_offline_top_to_bottom(name: str, executed: dict[str, NotebookRun]) -> None:
    run = executed[name]
    assert run.error is None, f"{name} failed after {run.seconds:.1f} s:\n{run.error}"
    nb = nbformat.read(run.executed, as_version=4)
    cells = code_cells(nb)
    first = " ".join(text_of(o) for o in cells[0].outputs)
    assert "Offline" in first and "Images are placeholders" in first, first
    for cell in cells:
        assert cell.execution_count is not None, f"{name}: a cell did not run:\n{cell.source}"
        for output in cell.outputs:
            assert output.output_type != "error", text_of(output)
            if output.output_type == "stream":
                assert output.name == "stdout", f"{name} wrote to stderr:\n{output.text}"


def test_histories_stay_in_the_working_copy(executed: dict[str, NotebookRun]) -> None:
    run = executed["04_history"]
    workdir = run.executed.parent.parent / "work" / run.name
    assert (workdir / ".nanobanana" / "history.sqlite").is_file()


def test_quickstart_runs_against_the_emulator_of_make_demo(
    emulator: Emulator, tmp_path: Path
) -> None:
    """``make demo`` starts the emulator in its own process and tells the kernels where."""
    runs = run_all(Path(sys.executable), [NOTEBOOKS_DIR / "01_quickstart.ipynb"], tmp_path,
                   budget=BUDGET_SECONDS,
                   extra_env={"ACEDATACLOUD_API_BASE_URL": emulator.base_url,
                              "NANOBANANA_OFFLINE_DEMO": "1"})
    run = runs["01_quickstart"]
    assert run.error is None, f"failed after {run.seconds:.1f} s:\n{run.error}"
    nb = nbformat.read(run.executed, as_version=4)
    first = " ".join(text_of(o) for o in code_cells(nb)[0].outputs)
    assert f"emulator at {emulator.base_url}" in first and "Images are placeholders" in first
    assert emulator.submissions >= 3


def test_the_budget_grid_still_asks_for_confirmation_after_run_all(
    executed: dict[str, NotebookRun],
) -> None:
    """Run All leaves tutorial 05's over-budget grid waiting for its button, as its text
    says: no later cell cancels it before the reader sees the confirmation."""
    nb = nbformat.read(executed["05_batch"].executed, as_version=4)
    cells = code_cells(nb)
    assert not any("big.cancel()" in cell.source for cell in cells)
    (state,) = [cell for cell in cells if cell.source.startswith("big.state")]
    shown = " ".join(text_of(o) for o in state.outputs)
    assert "'awaiting confirmation'" in shown and "0 of 18 cells done" in shown
