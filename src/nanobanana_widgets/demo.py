"""``make demo``: start the emulator and JupyterLab with the quickstart open.

With ``ACEDATACLOUD_API_TOKEN`` set, the notebooks use the real service and no emulator is
started. However the demo ends, it stops everything it started: Ctrl+C (SIGINT), closing
the terminal (SIGHUP), ``kill`` (SIGTERM), or JupyterLab exiting. Each child runs in its own
process group, so a terminal's signals reach the demo alone and the demo stops the children
in order; and each child watches the demo, so even a ``kill -9`` of the demo leaves nothing
behind (the emulator polls for its parent; JupyterLab gets SIGTERM from the kernel on Linux).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

EMULATOR_MARKER = "NANOBANANA_OFFLINE_DEMO"
"""Set (to ``1``) in the notebooks' environment when they talk to the demo's emulator."""

QUICKSTART = "notebooks/01_quickstart.ipynb"

STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that end the demo: Ctrl+C, ``kill``, and the terminal closing."""

_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
_STOP_TIMEOUT: Final = 10.0

Process = subprocess.Popen[str]


class Stopped(BaseException):
    """Raised in the demo's main thread by the first stop signal (like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_signals() -> Iterator[Callable[[], None]]:
    """Turn the first stop signal into :class:`Stopped`; yields ``cleaning_up()``.

    Once ``cleaning_up()`` is called (and after the first signal), further signals are
    ignored, so a second Ctrl+C or a SIGHUP following a SIGTERM cannot cut the clean-up
    short. The previous handlers are restored on exit.
    """
    raised = False

    def cleaning_up() -> None:
        nonlocal raised
        raised = True

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Stopped(signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield cleaning_up
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when the demo dies.

    ``None`` elsewhere: there, the signal handlers are what stops the child.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the demo died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn_emulator(latency: str) -> Process:
    """The emulator in its own process group, told to stop if the demo disappears."""
    return subprocess.Popen(
        [sys.executable, "-m", "nanobanana_widgets.emulator", "--port", "0",
         "--latency", latency, "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _emulator_url(proc: Process) -> str:
    """The base URL the emulator announces on its first line."""
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if "http://" not in line:
        raise SystemExit(f"The emulator did not start (it said: {line!r}).")
    return line[line.index("http://") :].split()[0]


def _lab_command(port: int, token: str, root: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def _spawn_lab(cmd: list[str], env: dict[str, str], log: IO[str]) -> Process:
    """JupyterLab in its own process group, sent SIGTERM if the demo dies (Linux)."""
    return subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_die_with_parent(),
    )


def _wait_for_port(lab: Process, port: int, log_path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lab.poll() is not None:
            raise SystemExit(f"JupyterLab exited early:\n{log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.3)


def _stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the child's process group, SIGKILL it after a grace period, reap the child."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        proc.wait()
        return
    try:
        proc.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _say(text: str) -> None:
    """Print, unless the terminal is gone (after SIGHUP, writing to it fails)."""
    with contextlib.suppress(OSError, ValueError):
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl+C, SIGTERM, SIGHUP or JupyterLab's exit; stop what it started.

    Returns 0 after Ctrl+C, ``128 + signal`` after SIGTERM or SIGHUP (as if killed by it),
    and JupyterLab's exit code when it ends by itself.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="JupyterLab port (default: free)")
    parser.add_argument("--latency", default="2,4", help="emulator latency in seconds")
    parser.add_argument("--root", default=".", help="folder holding notebooks/")
    args = parser.parse_args(argv)

    root = Path(args.root).resolve()
    env = dict(os.environ)
    started: list[Process] = []
    log: IO[str] | None = None
    with _stop_signals() as cleaning_up:
        try:
            if env.get("ACEDATACLOUD_API_TOKEN"):
                backend = ("the real Nano Banana service "
                           "(ACEDATACLOUD_API_TOKEN is set; calls are billed)")
            else:
                started.append(_spawn_emulator(args.latency))
                base_url = _emulator_url(started[-1])
                env["ACEDATACLOUD_API_BASE_URL"] = base_url
                env[EMULATOR_MARKER] = "1"
                backend = (f"the offline emulator at {base_url} "
                           "(images are placeholders, nothing is billed)")

            port = args.port or _free_port()
            token = secrets.token_hex(16)
            log_path = root / ".nanobanana" / "jupyterlab.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = log_path.open("w")
            lab = _spawn_lab(_lab_command(port, token, root), env, log)
            started.append(lab)
            _wait_for_port(lab, port, log_path)
            url = f"http://127.0.0.1:{port}/lab/tree/{QUICKSTART}?token={token}"
            print(f"Backend: {backend}")
            print(f"Open the quickstart: {url}")
            print(f"JupyterLab's log: {log_path}")
            print("Press Ctrl+C to stop JupyterLab and the emulator.", flush=True)
            while lab.poll() is None:
                time.sleep(0.5)
            return lab.returncode or 0
        except Stopped as stopped:
            _say("\nStopping…")
            return 0 if stopped.signum == signal.SIGINT else 128 + stopped.signum
        finally:
            cleaning_up()
            for proc in reversed(started):  # JupyterLab first: its kernels may use the emulator
                _stop(proc)
            if log is not None:
                log.close()


if __name__ == "__main__":
    raise SystemExit(main())
