"""Run every ``benchmarks/bench_*.py`` and print one table of figures.

Each benchmark module has ``run() -> list[dict]``; each dict is one figure: ``figure``, ``unit``,
``samples`` (several runs), ``target`` (text from DESIGN.md §14, or None), and the peers measured
in the same run: ``peer`` (``{"name", "samples"}``) or ``peers`` (a list of them); a peer that
could not run here has ``"unavailable": reason`` instead of samples. Every benchmark runs in its
own process, so one that crashes or hangs is reported as failed and the others still run.

The table goes to stdout and, as Markdown and JSON, to ``benchmarks/results/`` (``latest.*`` and
a timestamped copy). A target is checked where it is numeric (``<= 1000 ms``, ``>= 1.7x``,
``<= 3x git diff`` against that peer's median, ``1 run``); a missed target is reported, never a
failure: the command exits 0 unless it was called wrongly.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUICK_SAMPLES = 3
DEFAULT_TIMEOUT = 1800.0


def _names() -> list[str]:
    return [path.stem.removeprefix("bench_") for path in sorted(HERE.glob("bench_*.py"))]


def _load(name: str) -> Any:
    path = HERE / f"bench_{name}.py"
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path[:0] = [p for p in (str(HERE), str(REPO)) if p not in sys.path]
    sys.modules[path.stem] = module  # ``bench_x:function`` references resolve to this module
    spec.loader.exec_module(module)
    return module


def _child(name: str, out: Path, quick: bool) -> int:
    """In the benchmark's own process: run it and write its figures (or its error) to ``out``."""
    try:
        module = _load(name)
        if quick:  # fewer repetitions: every ``*SAMPLES`` constant capped
            for attribute, value in vars(module).copy().items():
                if attribute.endswith("SAMPLES") and isinstance(value, int):
                    setattr(module, attribute, min(value, QUICK_SAMPLES))
        result: dict[str, Any] = {"figures": module.run()}
    except Exception as exc:  # reported in the table; the other benchmarks still run
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    out.write_text(json.dumps(result))
    return 0


def _run_one(name: str, quick: bool, timeout: float) -> list[dict[str, Any]]:
    """Run one benchmark in a child process; its figures, or one failed row."""
    with tempfile.TemporaryDirectory(prefix="writgate-bench-run-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", name, str(out)]
        if quick:
            command.append("--quick")
        tail: list[str] = []
        process = subprocess.Popen(
            command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True, cwd=REPO,
            start_new_session=True,  # a hung benchmark is ended with everything it started
        )  # fmt: skip
        pump = threading.Thread(target=_pass_through, args=(process, tail), daemon=True)
        pump.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pump.join(timeout=10)
            return [_failed(name, f"did not finish within {timeout:.0f} s")]
        pump.join(timeout=10)
        try:  # whatever the benchmark left running (a server, a worker) ends with it
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if out.exists():
            result = json.loads(out.read_text())
            if "error" in result:
                return [_failed(name, result["error"])]
            return [_row(name, figure) for figure in result["figures"]]
        last = next((line for line in reversed(tail) if line.strip()), "")
        return [_failed(name, f"exited with {process.returncode}: {last}"[:300])]


def _pass_through(process: subprocess.Popen[str], tail: list[str]) -> None:
    """Copy the child's stderr to ours, keeping its last lines for the report."""
    assert process.stderr is not None
    with process.stderr:
        for line in process.stderr:
            sys.stderr.write(line)
            tail.append(line.rstrip())
            del tail[:-20]


def _failed(name: str, error: str) -> dict[str, Any]:
    return {"benchmark": name, "figure": name, "error": error}


def _peers(figure: dict[str, Any]) -> list[dict[str, Any]]:
    peers = figure.get("peers") or ([figure["peer"]] if figure.get("peer") else [])
    found = []
    for peer in peers:
        samples = [float(s) for s in peer.get("samples") or []]
        entry: dict[str, Any] = {"name": peer["name"]}
        if samples:
            entry.update(
                median=statistics.median(samples), min=min(samples), max=max(samples),
                runs=len(samples),
            )  # fmt: skip
        else:
            entry["unavailable"] = peer.get("unavailable") or "no samples"
        found.append(entry)
    return found


_CLAUSE = re.compile(r"^(?P<op><=|>=|<|>|=|≤|≥)?\s*(?P<number>\d[\d,]*(?:\.\d+)?)\s*(?P<rest>.*)$")
_SCALE = {"ms": 1.0, "s": 1000.0}


def _check(clause: str, median: float, unit: str, peers: list[dict[str, Any]]) -> bool | None:
    """Whether ``median`` meets one target clause; None when the clause is not numeric."""
    match = _CLAUSE.match(clause.strip())
    if match is None:
        return None
    op = {"≤": "<=", "≥": ">="}.get(match["op"] or "=", match["op"] or "=")
    number = float(match["number"].replace(",", ""))
    rest = re.sub(r"\(.*?\)", "", match["rest"]).strip()
    value = median
    if rest.startswith("x") and rest[1:].strip():  # "3x git diff": relative to that peer
        reference = rest[1:].strip().lower()
        measured = [p for p in peers if "median" in p]
        peer = next((p for p in measured if p["name"].lower().startswith(reference)), None)
        if peer is None or not peer["median"]:
            return None
        value = median / peer["median"]
    else:
        word = rest.split()[0] if rest else ""
        if word in _SCALE and unit in _SCALE:
            number *= _SCALE[word] / _SCALE[unit]
        elif word not in ("", "x") and word.rstrip("s") != unit.rstrip("s"):
            return None  # "50 ms" against a figure in another unit: not checked
    return {
        "<=": value <= number,
        ">=": value >= number,
        "<": value < number,
        ">": value > number,
        "=": value == number,
    }[op]


def _met(target: str | None, median: float | None, unit: str, peers: list[dict[str, Any]]) -> Any:
    if not target or median is None:
        return None
    clauses = re.split(r"\band\b", re.sub(r"\(.*?\)", "", target))
    results = [_check(clause, median, unit, peers) for clause in clauses]
    if any(result is False for result in results):
        return False
    if results and all(result is True for result in results):
        return True
    return None


def _row(name: str, figure: dict[str, Any]) -> dict[str, Any]:
    samples = [float(s) for s in figure.get("samples") or []]
    peers = _peers(figure)
    unit = figure.get("unit", "")
    median = statistics.median(samples) if samples else None
    row: dict[str, Any] = {
        "benchmark": name,
        "figure": figure["figure"],
        "unit": unit,
        "median": median,
        "min": min(samples) if samples else None,
        "max": max(samples) if samples else None,
        "runs": len(samples),
        "target": figure.get("target"),
        "met": _met(figure.get("target"), median, unit, peers),
        "peers": peers,
    }
    if figure.get("note"):
        row["note"] = figure["note"]
    return row


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | unit | median | min-max | runs | target | met? | peer (median) |",
        "|---|---|--:|--:|--:|---|---|---|",
    ]
    for row in rows:
        if row.get("error"):
            lines.append(f"| {_cell(row['figure'])} | | | | | | failed | {_cell(row['error'])} |")
            continue
        has = row["median"] is not None
        peers = "; ".join(
            f"{peer['name']}: {_fmt(peer['median'])}"
            if "median" in peer
            else f"{peer['name']}: unavailable: {peer['unavailable']}"
            for peer in row["peers"]
        )
        met = {True: "met", False: "**missed**", None: ""}[row["met"]]
        figure = row["figure"] + (f" ({row['note']})" if row.get("note") else "")
        lines.append(
            f"| {_cell(figure)} | {row['unit']} | {_fmt(row['median']) if has else ''} "
            f"| {_fmt(row['min']) + '-' + _fmt(row['max']) if has else ''} | {row['runs']} "
            f"| {_cell(row['target'] or '')} | {met} | {_cell(peers)} |"
        )
    return "\n".join(lines)


def _git_commit() -> str:
    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return found.stdout.strip() or "unknown"


def _load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default all)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME[,NAME]", help="benchmarks to run"
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"at most {QUICK_SAMPLES} repetitions per figure"
    )
    parser.add_argument("--list", action="store_true", help="print the benchmarks' names")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds one benchmark may take (default {DEFAULT_TIMEOUT:.0f})",
    )
    parser.add_argument("--child", nargs=2, metavar=("NAME", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child[0], Path(args.child[1]), args.quick)
    available = _names()
    if args.list:
        print("\n".join(available))
        return 0
    wanted = [*args.names, *(n for item in args.only for n in item.split(",") if n)]
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        print(
            f"unknown benchmark {', '.join(unknown)} (known: {', '.join(available)})",
            file=sys.stderr,
        )
        return 2

    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": _load_average(),
        "quick": args.quick,
    }
    rows: list[dict[str, Any]] = []
    for name in available:
        if wanted and name not in wanted:
            continue
        started = time.monotonic()
        print(f"running {name} …", file=sys.stderr, flush=True)
        rows.extend(_run_one(name, args.quick, args.timeout))
        print(f"  {name}: {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    meta["load_after"] = _load_average()
    meta["finished"] = datetime.now(UTC).isoformat(timespec="seconds")

    missed = sum(1 for row in rows if row.get("met") is False)
    failed = sum(1 for row in rows if row.get("error"))
    summary = (
        f"{len(rows)} figures, {missed} missed target(s), {failed} failed benchmark(s); "
        f"commit {meta['commit']}, Python {meta['python']}, {meta['cpus']} CPUs, load average "
        f"{meta['load_before']} before and {meta['load_after']} after"
        + (", --quick" if args.quick else "")
    )
    table = _markdown(rows)
    print(table)
    print(summary)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    stamp = meta["started"].replace(":", "").replace("+0000", "Z")
    markdown = f"{table}\n\n{summary}\n"
    document = json.dumps({"meta": meta, "rows": rows}, indent=2, ensure_ascii=False) + "\n"
    for stem in ("latest", f"bench-{stamp}"):
        (results / f"{stem}.md").write_text(markdown)
        (results / f"{stem}.json").write_text(document)
    print(f"written to {results / 'latest.md'} and {results / 'latest.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
