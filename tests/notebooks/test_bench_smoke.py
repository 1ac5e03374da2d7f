"""A smoke run of the benchmark with tiny sizes: it must produce every figure.

No timing is asserted (benchmarks are not tests); this only keeps ``make bench`` working.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = list(range(1, 16))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACEDATACLOUD_")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--output", str(out)],
        cwd=tmp_path_factory.mktemp("cwd"), env=env, capture_output=True, text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout, out.read_text(encoding="utf-8")


def rows(markdown: str) -> dict[int, list[str]]:
    """The results table's rows by figure number: [title, ours, target, baseline, verdict]."""
    found = {}
    for line in markdown.splitlines():
        match = re.match(r"^\| (\d+) \| (.*) \|$", line)
        if match:
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", match.group(2))]
            found[int(match.group(1))] = cells
    return found


def test_every_figure_is_measured_with_target_and_baseline(quick_run: tuple[str, str]) -> None:
    stdout, report = quick_run
    for text in (stdout, report):
        table = rows(text)
        assert sorted(table) == FIGURES
        for number, (title, ours, target, baseline, verdict) in table.items():
            assert title, number
            assert ours and ours != "error", (number, ours)
            assert target and target != "—", (number, target)
            assert baseline, (number, baseline)
            assert verdict in ("met", "MISSED"), (number, verdict)
            assert re.search(r"\d", ours), (number, ours)


def test_report_names_machine_date_and_method(quick_run: tuple[str, str]) -> None:
    _stdout, report = quick_run
    assert f"{os.cpu_count()} cores" in report
    assert f"Python {platform.python_version()}" in report
    assert platform.system() in report
    assert re.search(r"Measured \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", report)
    assert "Quick run" in report  # a smoke run never passes for real figures
    for number in FIGURES:
        assert f"**{number}. " in report, f"no method note for figure {number}"


def test_only_and_bad_figure_numbers(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "99",
         "--output", str(tmp_path / "r.md")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "no figure 99" in proc.stderr
    assert not (tmp_path / "r.md").exists()
