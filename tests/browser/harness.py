"""Plumbing for the real-browser tests: Jupyter servers in throwaway homes, and notebook pages.

Nothing here knows about the package under test. The fixtures in ``conftest.py`` put these
pieces together; the test modules use :class:`NotebookPage` and :func:`write_notebook`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# As DEVELOPERS.md says: the background-networking flags keep Chromium from knocking on the
# closed network at every start; --no-sandbox because the tests run as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

Frontend = Literal["lab", "notebook", "voila"]
FRONTENDS: tuple[Frontend, ...] = ("lab", "notebook", "voila")

# Generous: the first JupyterLab start on a busy 2-core machine builds its caches.
SERVER_START_TIMEOUT = 90.0
# How long a notebook may take to open, run and show its widgets.
UI_TIMEOUT_MS = 60_000

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


# --------------------------------------------------------------------------------------------
# Processes


def free_port() -> int:
    """A port that was free on the loopback interface a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name sits in parentheses and may itself hold spaces or parentheses.
    return stat[stat.rfind(")") + 2 :].split()


def descendants(pid: int) -> list[tuple[int, str]]:
    """Every live process below ``pid`` as (pid, start time), children before grandchildren.

    The start time (field 22 of /proc/<pid>/stat) tells a process from a later one that
    happens to get the same pid.
    """
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if fields is None or len(fields) < 20:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found: list[tuple[int, str]] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child[0])
    return found


def _still_running(pid: int, start_time: str) -> bool:
    """True when ``pid`` is the same process as before (same start time) and not a zombie."""
    fields = _stat(pid)
    return fields is not None and len(fields) >= 20 and fields[19] == start_time and (
        fields[0] != "Z"
    )


def isolated_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a server: every Jupyter, IPython and XDG directory under ``home``.

    Variables that would point Jupyter at the developer's own set-up are dropped, and so is
    anything that names the real service.
    """
    drop = ("JUPYTER", "IPYTHON", "XDG_", "ACEDATACLOUD_", "JPY_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    dirs = {
        "HOME": home / "home",
        "JUPYTER_CONFIG_DIR": home / "jupyter" / "config",
        "JUPYTER_DATA_DIR": home / "jupyter" / "data",
        "JUPYTER_RUNTIME_DIR": home / "jupyter" / "runtime",
        "IPYTHONDIR": home / "ipython",
        "XDG_CACHE_HOME": home / "xdg" / "cache",
        "XDG_CONFIG_HOME": home / "xdg" / "config",
        "XDG_DATA_HOME": home / "xdg" / "data",
        "XDG_RUNTIME_DIR": home / "xdg" / "runtime",
        "MPLCONFIGDIR": home / "mpl",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    (home / "xdg" / "runtime").chmod(0o700)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # the debugger's warning on frozen modules
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    if extra:
        env.update(extra)
    return env


def write_lab_settings(config_dir: Path) -> None:
    """User settings that keep JupyterLab and Notebook 7 quiet and deterministic.

    No news or update toasts over the notebook; every cell rendered even when off screen
    (windowing would leave far-down widgets unrendered); widget state saved with the notebook
    so a reloaded page can show the last results without a kernel.
    """
    settings = {
        "@jupyterlab/apputils-extension/notification": {
            "checkForUpdates": False,
            "fetchNews": "false",
        },
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyter-widgets/jupyterlab-manager/plugin": {"saveState": True},
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/themes": {"theme": "JupyterLab Light"},
    }
    for name, values in settings.items():
        package, plugin = name.rsplit("/", 1)
        target = config_dir / "lab" / "user-settings" / package / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=1))


@dataclass
class JupyterServer:
    """One Jupyter front end (JupyterLab, Notebook 7 or Voilà) running in its own process group."""

    kind: Frontend
    root_dir: Path
    home: Path
    log_path: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    port: int = 0
    token: str = ""
    proc: subprocess.Popen[bytes] | None = None
    _known_children: set[tuple[int, str]] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        bin_dir = Path(sys.executable).parent
        common_server = [
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.terminals_enabled=False",
            # The language-server extension is not used here and only costs start-up time.
            "--ServerApp.jpserver_extensions={'jupyter_lsp': False}",
            "--LabApp.expose_app_in_browser=True",
        ]
        if self.kind == "lab":
            return [str(bin_dir / "jupyter-lab"), *common_server]
        if self.kind == "notebook":
            return [str(bin_dir / "jupyter-notebook"), *common_server]
        return [
            str(bin_dir / "voila"),
            "--no-browser",
            "--Voila.ip=127.0.0.1",
            f"--Voila.port={self.port}",
            "--Voila.port_retries=0",
            f"--Voila.root_dir={self.root_dir}",
            # Voilà keeps kernel connection files under /tmp unless told otherwise.
            f"--Voila.connection_dir_root={self.home / 'jupyter' / 'runtime'}",
            "--VoilaConfiguration.show_tracebacks=True",
            str(self.root_dir),
        ]

    def start(self) -> None:
        """Launch the server (without waiting for it); see :meth:`wait_ready`."""
        self.port = free_port()
        self.token = "" if self.kind == "voila" else secrets.token_hex(16)
        env = isolated_environment(self.home, self.env_extra)
        write_lab_settings(Path(env["JUPYTER_CONFIG_DIR"]))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(f"=== starting {self.kind} on port {self.port}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one at the end
        )
        log.close()

    def ready_url(self) -> str:
        if self.kind == "voila":
            return f"{self.base_url}/voila/tree"
        return f"{self.base_url}/api/status"

    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT) -> None:
        """Poll the server's status endpoint until it answers 200; fail with its log if not."""
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"{self.kind} server exited with code {code} before it was ready.\n"
                    f"{self.log_tail()}"
                )
            try:
                with self.request("GET", self.ready_url(), timeout=2.0) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.kind} server on port {self.port} not ready after {timeout:.0f}s "
            f"({last}).\n{self.log_tail()}"
        )

    def request(
        self, method: str, url: str, *, body: Any = None, timeout: float = 10.0
    ) -> Any:
        """An HTTP request to this server with its token (loopback only)."""
        if not url.startswith("http"):
            url = self.base_url + url
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if self.token:
            req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        return urllib.request.urlopen(req, timeout=timeout)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the Jupyter REST API and decode its JSON answer (None for an empty one)."""
        with self.request(method, path, body=body) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def url(self, path: str, **query: str) -> str:
        """A browser URL on this server, with the token when it has one."""
        params = dict(query)
        if self.token:
            params["token"] = self.token
        suffix = "&".join(f"{k}={v}" if v else k for k, v in params.items())
        return f"{self.base_url}{path}" + (f"?{suffix}" if suffix else "")

    def remember_children(self) -> None:
        """Note the kernels this server has started, to stop them by pid at the end."""
        if self.proc is not None:
            self._known_children.update(descendants(self.proc.pid))

    def shutdown_kernels(self) -> None:
        """Stop every kernel of this server (between tests: one kernel per notebook, no more)."""
        if self.kind == "voila" or self.proc is None or self.proc.poll() is not None:
            return
        self.remember_children()
        try:
            for session in self.api("GET", "/api/sessions") or []:
                self.api("DELETE", f"/api/sessions/{session['id']}")
            for kernel in self.api("GET", "/api/kernels") or []:
                self.api("DELETE", f"/api/kernels/{kernel['id']}")
        except OSError:
            pass

    def stop(self) -> None:
        """Stop the server and its kernels: SIGTERM its group, then SIGKILL what is left."""
        if self.proc is None:
            return
        self.remember_children()
        self.shutdown_kernels()
        pgid = self.proc.pid
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        # Kernels run in sessions of their own, so the group signal does not reach them.
        for pid, start_time in sorted(self._known_children):
            if _still_running(pid, start_time):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.proc = None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        text = text if len(text) <= chars else "...\n" + text[-chars:]
        return f"--- {self.kind} log ({self.log_path}) ---\n{text}"


# --------------------------------------------------------------------------------------------
# Notebooks


def write_notebook(path: Path, cells: Iterable[str], *, markdown_first: str | None = None) -> Path:
    """Write a notebook (nbformat 4.5) of code cells without outputs that the servers can open."""

    def cell(kind: str, source: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "cell_type": kind, "id": secrets.token_hex(4), "metadata": {}, "source": source,
        }
        if kind == "code":
            data.update(execution_count=None, outputs=[])
        return data

    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {
                "name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "cells": ([cell("markdown", markdown_first)] if markdown_first else [])
        + [cell("code", source) for source in cells],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1) + "\n")
    return path


def safe_name(text: str) -> str:
    """A file-name-safe version of a test id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:150]
