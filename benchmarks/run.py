"""Run every ``benchmarks/bench_*.py`` and print one table of figures.

Each benchmark module has ``run() -> list[dict]``; each dict is one figure: ``figure``, ``unit``,
``samples`` (several runs), ``target`` (text from DESIGN.md §14, or None) and ``peer`` (``{"name",
"samples"}`` measured in the same run, or None). The table goes to stdout and, as Markdown and
JSON, to ``benchmarks/results/``. A benchmark that fails is reported as such; nothing here fails
the command because a target was missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE))
    spec.loader.exec_module(module)
    return module


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _row(figure: dict[str, Any]) -> dict[str, Any]:
    samples = [float(s) for s in figure.get("samples") or []]
    peer = figure.get("peer") or None
    row: dict[str, Any] = {
        "figure": figure["figure"],
        "unit": figure.get("unit", ""),
        "median": statistics.median(samples) if samples else None,
        "min": min(samples) if samples else None,
        "max": max(samples) if samples else None,
        "runs": len(samples),
        "target": figure.get("target"),
        "peer": None,
    }
    if peer and peer.get("samples"):
        row["peer"] = {
            "name": peer["name"],
            "median": statistics.median([float(s) for s in peer["samples"]]),
        }
    if figure.get("note"):
        row["note"] = figure["note"]
    return row


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | unit | median | min-max | runs | target | peer (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.get("error"):
            lines.append(f"| {row['figure']} | | failed: {row['error']} | | | | |")
            continue
        span = f"{_fmt(row['min'])}-{_fmt(row['max'])}" if row["median"] is not None else ""
        peer = f"{row['peer']['name']}: {_fmt(row['peer']['median'])}" if row["peer"] else ""
        median = _fmt(row["median"]) if row["median"] is not None else ""
        lines.append(
            f"| {row['figure']} | {row['unit']} | {median} | {span} | {row['runs']} "
            f"| {row['target'] or ''} | {peer} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="benchmark names (e.g. passport) to run")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            figures = _load(path).run()
            rows.extend(_row(figure) for figure in figures)
        except Exception as exc:  # a broken benchmark is reported, the others still run
            traceback.print_exc()
            rows.append({"figure": name, "error": f"{type(exc).__name__}: {exc}"})
        print(f"  {name}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    table = _markdown(rows)
    print(table)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(table + "\n")
    (results / "latest.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
