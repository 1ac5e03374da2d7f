"""Binder: an environment built from ``binder/`` alone runs every tutorial notebook.

Binder (repo2docker) starts from an image that already holds JupyterLab, the notebook
server and ipykernel. For a ``requirements.txt`` it then runs
``pip install -r binder/requirements.txt``, and it runs ``binder/postBuild`` last, from
the repository root. This test does the same, once per session:

1. copies the repository as it would be pushed (files git tracks or would track; no
   ``.venv``, caches or histories),
2. makes a fresh virtual environment with ``python -m venv``,
3. installs ``jupyterlab notebook ipykernel`` into it, standing in for Binder's base image
   (``nbclient``, which runs the notebooks, comes with them),
4. installs ``binder/requirements.txt`` and runs ``binder/postBuild`` in the copy,
5. executes every notebook in the copy with that environment's kernel, offline, within the
   same per-notebook budget as ``test_notebooks.py``.

pip reaches the package index and reuses its cache. About 30–60 s for the environment
and 30–50 s for the notebooks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from ._notebook_runner import NotebookRun, run_all
from .test_notebooks import BUDGET_SECONDS, NAMES

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = ["jupyterlab", "notebook", "ipykernel"]
"""What Binder's image already has; installed here as its stand-in."""
PIP_TIMEOUT = 900


@dataclass(frozen=True)
class BinderEnv:
    repo: Path
    python: Path
    runs: dict[str, NotebookRun]


def _clean_copy(target: Path) -> Path:
    """The repository as pushed: tracked files plus untracked ones git does not ignore
    (without git: everything but the virtual environment, caches and histories)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
             "--exclude-standard"], capture_output=True, check=True,
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
            ".git", ".venv", "*cache*", ".nanobanana", "test-artifacts", "*.egg-info",
            "build", "dist"))
        return target
    for rel in filter(None, listed):
        source = ROOT / rel
        if source.is_file():  # deleted but still tracked files are skipped
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / rel)
    return target


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=PIP_TIMEOUT)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")


@pytest.fixture(scope="session")
def binder_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BinderEnv]:
    scratch = tmp_path_factory.mktemp("binder")
    repo = _clean_copy(scratch / "repo")
    venv = scratch / "venv"
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=scratch, env=env)
    python = venv / "bin" / "python"
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    _run([str(python), "-m", "pip", "install", "--quiet", *BASE_IMAGE], cwd=scratch, env=env)
    _run([str(python), "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt"],
         cwd=repo, env=env)
    _run([str(repo / "binder" / "postBuild")], cwd=repo, env=env)
    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    runs = run_all(python, notebooks, scratch / "run", budget=BUDGET_SECONDS)
    yield BinderEnv(repo=repo, python=python, runs=runs)


# --- the files Binder reads --------------------------------------------------------------


def test_binder_files_are_what_binder_reads() -> None:
    binder = ROOT / "binder"
    assert (binder / "requirements.txt").is_file()
    post_build = binder / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    script = post_build.read_text()
    assert script.startswith("#!")
    assert "pip install ." in script
    for build_step in ("labextension", "jlpm", "npm ", "jupyter lab build"):
        assert build_step not in script, f"postBuild must not build front ends ({build_step})"
    # repo2docker reads binder/ instead of the root when it exists: keep it alone there.
    assert {p.name for p in binder.iterdir()} <= {"requirements.txt", "postBuild",
                                                  "runtime.txt", "environment.yml"}


# --- the environment built from them ------------------------------------------------------


def test_the_package_is_installed_not_borrowed_from_the_source_tree(
    binder_env: BinderEnv, tmp_path: Path
) -> None:
    code = ("import json, nanobanana_widgets as nb, ipywidgets, pandas; "
            "print(json.dumps([nb.__file__, ipywidgets.__version__]))")
    out = subprocess.run([str(binder_env.python), "-c", code], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    location, widgets_version = json.loads(out)
    assert "site-packages" in location and str(binder_env.repo) not in location
    assert int(widgets_version.split(".")[0]) >= 8


def test_widget_front_ends_come_prebuilt(binder_env: BinderEnv) -> None:
    jupyter = binder_env.python.parent / "jupyter"
    proc = subprocess.run([str(jupyter), "labextension", "list"], capture_output=True,
                          text=True, check=True)
    listing = proc.stdout + proc.stderr
    for extension in ("@jupyter-widgets/jupyterlab-manager", "anywidget"):
        line = next((ln for ln in listing.splitlines() if extension in ln), "")
        assert "enabled" in line and "OK" in line, listing


@pytest.mark.parametrize("name", NAMES)
def test_every_notebook_runs_in_the_binder_environment(
    binder_env: BinderEnv, name: str
) -> None:
    run = binder_env.runs[name]
    assert run.error is None, f"{name} failed after {run.seconds:.1f} s:\n{run.error}"
    nb = nbformat.read(run.executed, as_version=4)
    first = nb.cells[1].outputs[0]["data"]["text/plain"]
    assert "Images are placeholders" in first
