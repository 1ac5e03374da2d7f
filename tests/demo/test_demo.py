"""``make demo`` leaves nothing running, however it ends.

The demo runs as ``make demo`` runs it (``python -m nanobanana_widgets.demo``), with its real
emulator and a stand-in for JupyterLab: a ``jupyterlab`` package put first on
``PYTHONPATH`` whose ``__main__`` only listens on the port it is given, so the demo's own
command line is what starts it. The demo is started in its own session, as a terminal starts
a job; the test then ends it the ways a person does (Ctrl+C and closing the terminal reach
the job's process group, ``kill`` reaches the demo's PID, ``kill -9`` leaves no chance to
clean up) and asserts that every process of its tree is gone, by PID, within a deadline.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PROC = Path("/proc")
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not (PROC / "self" / "stat").is_file(),
    reason="reads the process tree from /proc; the kill -9 case relies on Linux's PDEATHSIG",
)

FAKE_LAB = '''\
"""A stand-in for ``python -m jupyterlab``: listen on ``--port=N``, wait to be stopped."""
import socket
import sys
import time

port = next(int(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--port="))
server = socket.create_server(("127.0.0.1", port))
print("fake JupyterLab listening on", port, flush=True)
while True:
    time.sleep(60)
'''

STARTED_LINE = "Press Ctrl+C to stop"


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, parent pid)`` of a process, or ``None`` if there is none."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended: it only waits for its parent to reap it)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def command_line(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if alive(child):
                found.append(child)
                todo.append(child)
    return found


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str]
    stderr: Path
    tree: dict[int, str]
    """The demo's descendants once it has started: pid -> command line."""

    def output(self) -> str:
        lines = []
        while not self.lines.empty():
            lines.append(self.lines.get_nowait())
        return "".join(lines) + self.stderr.read_text(errors="replace")


@pytest.fixture
def start_demo(tmp_path: Path) -> Iterator[Callable[[], Demo]]:
    """Start ``python -m nanobanana_widgets.demo`` with the fake JupyterLab, once started."""
    fake = tmp_path / "fake"
    (fake / "jupyterlab").mkdir(parents=True)
    (fake / "jupyterlab" / "__init__.py").write_text("")
    (fake / "jupyterlab" / "__main__.py").write_text(FAKE_LAB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACEDATACLOUD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(fake), env.get("PYTHONPATH")]))
    demos: list[Demo] = []

    def start() -> Demo:
        stderr = tmp_path / "demo.stderr"
        with stderr.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "nanobanana_widgets.demo", "--root", str(tmp_path),
                 "--latency", "0"],
                stdout=subprocess.PIPE, stderr=err, env=env, text=True,
                start_new_session=True,  # its own session and group, like a terminal's job
            )
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        demo = Demo(proc, lines, stderr, {})
        demos.append(demo)
        seen: list[str] = []
        while not any(STARTED_LINE in line for line in seen):
            try:
                seen.append(lines.get(timeout=60))
            except queue.Empty:
                pytest.fail(f"the demo did not start:\n{''.join(seen)}{demo.output()}")
        for line in seen:
            lines.put(line)
        demo.tree.update((pid, command_line(pid)) for pid in descendants(proc.pid))
        return demo

    yield start
    for demo in demos:  # a failed test must not leave its tree running either
        for pid in [demo.proc.pid, *demo.tree, *descendants(demo.proc.pid)]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        demo.proc.wait()


@pytest.mark.parametrize(
    ("how", "signum", "exit_code"),
    [
        ("Ctrl+C (SIGINT to the job's process group)", signal.SIGINT, 0),
        ("closing the terminal (SIGHUP to the job's process group)", signal.SIGHUP,
         128 + signal.SIGHUP),
        ("kill PID (SIGTERM to the demo)", signal.SIGTERM, 128 + signal.SIGTERM),
        ("kill -9 PID (no clean-up: the children notice)", signal.SIGKILL, -signal.SIGKILL),
    ],
    ids=["sigint", "sighup", "sigterm", "sigkill"],
)
def test_no_process_of_the_demo_survives(
    start_demo: Callable[[], Demo], wait_until: Callable[..., None],
    how: str, signum: int, exit_code: int,
) -> None:
    demo = start_demo()
    commands = demo.tree
    assert any("nanobanana_widgets.emulator" in c for c in commands.values()), commands
    assert any("-m jupyterlab --no-browser" in c for c in commands.values()), commands

    if signum in (signal.SIGINT, signal.SIGHUP):
        os.killpg(demo.proc.pid, signum)  # what the terminal does: the whole foreground job
    else:
        os.kill(demo.proc.pid, signum)

    try:
        code = demo.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the demo did not end after {how}:\n{demo.output()}")
    for pid, command in commands.items():
        wait_until(lambda pid=pid: not alive(pid), f"{command!r} ({pid}) to end after {how}",
                   timeout=15)
    assert code == exit_code, demo.output()
    if signum != signal.SIGKILL:
        assert "Stopping" in demo.output()
