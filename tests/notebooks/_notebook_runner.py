"""Execute tutorial notebooks offline, each in its own kernel and working directory.

Used by ``test_notebooks.py`` (with this virtual environment's Python) and by
``test_binder.py`` (with the Python of an environment built from ``binder/`` alone), so it
imports nothing from the test suite or the package: only ``nbformat`` and ``nbclient``,
which JupyterLab brings along.

Run as a script, it executes one notebook and prints one JSON line::

    python _notebook_runner.py NOTEBOOK OUTPUT WORKDIR BUDGET_SECONDS

``OUTPUT`` receives the executed notebook; the JSON line holds ``seconds`` and ``error``
(``None`` when every cell ran). Run from Python, :func:`run_all` executes many notebooks in
parallel subprocesses with a kernelspec pinned to one interpreter and a clean environment
(no token, no base URL, a throwaway IPython and Jupyter runtime directory per kernel).
Kernels talk over Unix sockets, so kernels started together never race for TCP ports.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KERNEL_NAME = "python3"

_SCRUBBED = (
    "ACEDATACLOUD_API_TOKEN",
    "ACEDATACLOUD_API_BASE_URL",
    "NANOBANANA_OFFLINE_DEMO",
    "NANOBANANA_HISTORY",
    "JUPYTER_PATH",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
)


@dataclass(frozen=True)
class NotebookRun:
    """The outcome of executing one notebook."""

    name: str
    executed: Path
    seconds: float
    error: str | None


def _execute(source: Path, output: Path, workdir: Path, budget: float) -> dict[str, object]:
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(source, as_version=4)
    # Unix sockets, not TCP: with TCP, jupyter_client picks five free ports, releases them
    # and the kernel binds them a moment later; a kernel (or an emulator, or any outgoing
    # connection) of a notebook running in parallel can take one in between, and the
    # kernel then dies at start ("Kernel died before replying to kernel_info"). A socket
    # file in a directory of its own cannot be taken. Its path stays short (Unix socket
    # paths are limited to 107 bytes).
    sockets = Path(tempfile.mkdtemp(prefix="nbk-"))
    km = KernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(sockets / "k"))
    client = NotebookClient(
        nb,
        km=km,
        kernel_name=KERNEL_NAME,
        timeout=int(budget),
        startup_timeout=60,
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": str(workdir)}},
    )
    error: str | None = None
    start = time.monotonic()
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as exc:
        error = str(exc)
    except Exception as exc:  # the kernel died or did not start: report, don't hide
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - start
    shutil.rmtree(sockets, ignore_errors=True)
    nbformat.write(nb, output)
    return {"seconds": seconds, "error": error}


def kernel_environment(python: Path, scratch: Path,
                       extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for notebooks run with ``python``: a kernelspec that launches exactly
    that interpreter, its ``bin`` first on PATH, nothing of the caller's token or paths, and
    then ``extra``."""
    kernels = scratch / "jupyter" / "kernels" / KERNEL_NAME
    kernels.mkdir(parents=True, exist_ok=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 ({python})",
        "language": "python",
    }))
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["JUPYTER_PATH"] = str(scratch / "jupyter")
    env["JUPYTER_RUNTIME_DIR"] = str(scratch / "runtime")
    env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", "")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def run_all(
    python: Path,
    notebooks: list[Path],
    scratch: Path,
    *,
    budget: float,
    parallel: int = 5,
    extra_env: dict[str, str] | None = None,
) -> dict[str, NotebookRun]:
    """Execute ``notebooks`` with ``python`` (which needs nbclient and ipykernel).

    Each notebook runs in a fresh copy of its folder under ``scratch`` (so histories and
    saved images stay there), in its own kernel, at most ``parallel`` at a time. A notebook
    still running ``budget`` seconds after its runner started (kernel start included) is
    stopped and reported as over budget. ``extra_env`` is added to the kernels' environment.
    """
    shared_env = kernel_environment(python, scratch, extra_env)

    def one(source: Path) -> NotebookRun:
        name = source.stem
        # An IPython directory per kernel: kernels starting together would otherwise
        # create one profile and write one history database at the same moment.
        env = {**shared_env, "IPYTHONDIR": str(scratch / "ipython" / name)}
        workdir = scratch / "work" / name
        shutil.copytree(source.parent, workdir, ignore=shutil.ignore_patterns(
            ".nanobanana", ".ipynb_checkpoints", "nanobanana-images"))
        output = scratch / "executed" / source.name
        output.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(python), str(Path(__file__).resolve()), str(workdir / source.name),
               str(output), str(workdir), str(budget)]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the kernel exits with its parent
            proc.communicate()
            return NotebookRun(name, output, time.monotonic() - start,
                               f"over its budget of {budget:g} s: stopped")
        lines = stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            return NotebookRun(name, output, time.monotonic() - start,
                               f"the runner failed (exit {proc.returncode}):\n"
                               f"{stdout[-3000:]}\n{stderr[-3000:]}")
        report = json.loads(lines[-1])
        error = report["error"]
        if error is not None and stderr.strip():  # what the kernel said before it failed
            error = f"{error}\n--- the kernel's stderr ---\n{stderr[-3000:]}"
        return NotebookRun(name, output, float(report["seconds"]), error)

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        runs = list(pool.map(one, notebooks))
    return {run.name: run for run in runs}


if __name__ == "__main__":
    src, out, work, budget_s = sys.argv[1:5]
    print(json.dumps(_execute(Path(src), Path(out), Path(work), float(budget_s))))
