"""Run Python in a child process whose folder sits on a small, real filesystem.

Where mount namespaces are available (root, or unprivileged user namespaces), the child
runs under ``unshare`` with a private tmpfs of ``size_kb`` mounted at its folder: ``fill()``
writes a filler file until the disk is really full (``ENOSPC``), ``free()`` deletes it, and
``read_only()`` remounts the folder read-only. Elsewhere ``fill()`` lowers the child's
``RLIMIT_FSIZE`` to zero (every write to a file fails with ``EFBIG``, as on a full disk) and
``free()`` lifts it; ``read_only()`` takes the folder's write permission away.

The mount lives and dies with the child, so nothing is left mounted whatever happens.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

__all__ = ["mode", "run_on_small_disk"]

_TMPFS_PRELUDE = '''
import os, subprocess
FOLDER = os.environ["SMALLFS_FOLDER"]
_FILLER = os.path.join(FOLDER, ".filler")
def fill():
    fd = os.open(_FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
def free():
    os.unlink(_FILLER)
def read_only():
    subprocess.run(["mount", "-o", "remount,ro", FOLDER], check=True)
'''

_RLIMIT_PRELUDE = '''
import os, resource, signal
FOLDER = os.environ["SMALLFS_FOLDER"]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_SOFT, _HARD = resource.getrlimit(resource.RLIMIT_FSIZE)
def fill():
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, _HARD))
def free():
    resource.setrlimit(resource.RLIMIT_FSIZE, (_SOFT, _HARD))
def read_only():
    os.chmod(FOLDER, 0o555)
'''


@functools.lru_cache(maxsize=1)
def mode() -> tuple[str, ...]:
    """The ``unshare`` command that gives a private mount namespace here, or ``()``."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return ()
    for args in ((unshare, "-m", "--propagation", "private"),
                 (unshare, "-Urm", "--propagation", "private")):
        try:
            done = subprocess.run([*args, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt "
                                   "2>/dev/null || mount -t tmpfs -o size=64k tmpfs /tmp"],
                                  capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return args
    return ()


def run_on_small_disk(code: str, folder: Path, *args: str, size_kb: int = 1024,
                      timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (which may call ``fill()``, ``free()`` and ``read_only()`` and read
    ``FOLDER``) in a child Python whose folder ``folder`` is a small filesystem."""
    folder.mkdir(parents=True, exist_ok=True)
    unshare = mode()
    prelude = _TMPFS_PRELUDE if unshare else _RLIMIT_PRELUDE
    script = prelude + textwrap.dedent(code)
    env = {"SMALLFS_FOLDER": str(folder), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
           "PYTHONPATH": ":".join(p for p in sys.path if p)}
    command = [sys.executable, "-c", script, *args]
    if unshare:
        command = [*unshare, "sh", "-c",
                   f'mount -t tmpfs -o size={int(size_kb)}k tmpfs "$0" && exec "$@"',
                   str(folder), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
