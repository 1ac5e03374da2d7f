"""``make demo``: start the emulator and JupyterLab with the quickstart open.

With ``ACEDATACLOUD_API_TOKEN`` set, the notebooks use the real service and no emulator is
started. Ctrl+C stops everything this command started.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

EMULATOR_MARKER = "NANOBANANA_OFFLINE_DEMO"
"""Set (to ``1``) in the notebooks' environment when they talk to the demo's emulator."""

QUICKSTART = "notebooks/01_quickstart.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_emulator(latency: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nanobanana_widgets.emulator", "--port", "0", "--latency", latency],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if "http://" not in line:
        proc.terminate()
        raise SystemExit(f"The emulator did not start (it said: {line!r}).")
    return proc, line[line.index("http://") :].split()[0]


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl+C."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="JupyterLab port (default: free)")
    parser.add_argument("--latency", default="2,4", help="emulator latency in seconds")
    parser.add_argument("--root", default=".", help="folder holding notebooks/")
    args = parser.parse_args(argv)

    root = Path(args.root).resolve()
    env = dict(os.environ)
    emulator: subprocess.Popen[str] | None = None
    if env.get("ACEDATACLOUD_API_TOKEN"):
        backend = "the real Nano Banana service (ACEDATACLOUD_API_TOKEN is set; calls are billed)"
    else:
        emulator, base_url = _start_emulator(args.latency)
        env["ACEDATACLOUD_API_BASE_URL"] = base_url
        env[EMULATOR_MARKER] = "1"
        backend = f"the offline emulator at {base_url} (images are placeholders, nothing is billed)"

    port = args.port or _free_port()
    token = secrets.token_hex(16)
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
    log_path = root / ".nanobanana" / "jupyterlab.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("w")
    lab = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/lab/tree/{QUICKSTART}?token={token}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if lab.poll() is not None:
                raise SystemExit(f"JupyterLab exited early:\n{log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.3)
        print(f"Backend: {backend}")
        print(f"Open the quickstart: {url}")
        print(f"JupyterLab's log: {log_path}")
        print("Press Ctrl+C to stop JupyterLab and the emulator.", flush=True)
        while lab.poll() is None:
            time.sleep(0.5)
        return lab.returncode or 0
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        _stop(lab)
        _stop(emulator)
        log.close()


if __name__ == "__main__":
    raise SystemExit(main())
