"""benchmarks/run.py: targets read as met/missed, and a broken benchmark is one failed row."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def _runner() -> Any:
    spec = importlib.util.spec_from_file_location("bench_runner", RUNNER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PEERS = [
    {"name": "git diff (pinned options)", "median": 100.0},
    {"name": "git worktree add", "median": 50.0},
    {"name": "Prefect", "unavailable": "install failed"},
]


@pytest.mark.parametrize(
    ("target", "median", "unit", "met"),
    [
        ("<= 1000 ms and <= 3x git diff (with review and gate)", 250.0, "ms", True),
        ("<= 1000 ms and <= 3x git diff (with review and gate)", 350.0, "ms", False),
        ("<= 1000 ms and <= 3x git diff", 1200.0, "ms", False),
        ("<= 1.5 ms (DBOS 3.0 ms, Prefect 4.4 ms)", 1.2, "ms", True),
        ("<= 1.5 ms (DBOS 3.0 ms, Prefect 4.4 ms)", 4.8, "ms", False),
        ("<= 2x git worktree add", 120.0, "ms", False),
        ("<= 2x git worktree add", 90.0, "ms", True),
        (">= 1.7x", 1.5, "x", False),
        (">= 1.7x", 1.8, "x", True),
        ("1 run", 1.0, "runs", True),
        ("1 run", 2.0, "runs", False),
        ("1000", 999.0, "subscribers", False),
        ("<= 1 s", 900.0, "ms", True),
        ("<= 2x Prefect", 1.0, "ms", None),  # the peer did not run: not judged
        ("<= 50 ms", 10.0, "req/s", None),  # another unit: not judged
        ("fast enough", 1.0, "ms", None),
        (None, 1.0, "ms", None),
    ],
)
def test_targets_are_judged_where_numeric(
    target: str | None, median: float, unit: str, met: bool | None
) -> None:
    assert _runner()._met(target, median, unit, PEERS) is met


def test_broken_benchmarks_are_rows_and_the_command_succeeds(tmp_path: Path) -> None:
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    shutil.copy(RUNNER, benchmarks / "run.py")
    (benchmarks / "bench_raises.py").write_text(
        "def run():\n    raise RuntimeError('broken | here\\nsecond line')\n"
    )
    (benchmarks / "bench_exits.py").write_text(
        "import os, sys\ndef run():\n    print('dying now', file=sys.stderr)\n    os._exit(3)\n"
    )
    (benchmarks / "bench_fine.py").write_text(
        "SAMPLES = 9\n"
        "def run():\n"
        "    print('noise on stdout')\n"
        "    return [{'figure': 'fine', 'unit': 'ms', 'samples': list(range(1, SAMPLES + 1)),\n"
        "             'target': '<= 1.5 ms', 'peers': [\n"
        "                 {'name': 'Peer', 'samples': [4.0, 5.0]},\n"
        "                 {'name': 'Other', 'samples': [], 'unavailable': 'no network'}]}]\n"
    )
    result = subprocess.run(
        [sys.executable, str(benchmarks / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "| exits | | | | | | failed | exited with 3: dying now |" in lines
    assert "| raises | | | | | | failed | RuntimeError: broken \\| here |" in lines
    fine = (
        "| fine | ms | 2 | 1-3 | 3 | <= 1.5 ms | **missed** "
        "| Peer: 4.5; Other: unavailable: no network |"
    )
    assert fine in lines
    assert "noise on stdout" not in result.stdout
    document = json.loads((benchmarks / "results" / "latest.json").read_text())
    assert [row["figure"] for row in document["rows"]] == ["exits", "fine", "raises"]
    assert document["meta"]["quick"] is True
    assert (benchmarks / "results" / "latest.md").read_text().startswith("| figure |")

    unknown = subprocess.run(
        [sys.executable, str(benchmarks / "run.py"), "--only", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("unknown benchmark nope")
