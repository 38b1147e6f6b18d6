"""Pipelines: the durable engine's own cost.

- per-stage overhead on the embedded default (SQLite): a 100-stage chain of trivial ``python``
  stages run in-process, wall time divided by the stages. Every stage is two committed
  transitions (claim, then outcome + queueing the next) with their ledger events.
- stage throughput on PostgreSQL with one and with two worker processes (concurrency 4 each):
  20 runs of 5-stage chains (100 stages), from "go" to the last run finished; once with stages
  that wait 20 ms (what real stages do: wait on a sandbox, a forge, a model), once with trivial
  stages (the engine alone; on a 2-core machine shared with PostgreSQL, CPU-bound).

Peers for the per-stage overhead, measured in the same run (``_peers.py``): DBOS Transact and
Prefect, each in its own virtual environment under ``benchmarks/.peers-venv/``, on the same
chain of trivial steps on SQLite, measured the same way.

DESIGN.md §14: overhead ≤ 1.5 ms per stage (DBOS 3.0 ms, Prefect 4.4 ms quoted there); two
workers ≥ 1.7x the throughput of one.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [p for p in (str(REPO), str(HERE)) if p not in sys.path]

import _peers  # noqa: E402

from pipelines import Pipeline, python  # noqa: E402
from pipelines.service import PipelineService  # noqa: E402
from pipelines.stages.python import remember_function  # noqa: E402
from pipelines.tables import pipeline_runs as runs_t  # noqa: E402
from writgate.app.database import open_database  # noqa: E402
from writgate.settings import Settings  # noqa: E402

CHAIN = 100
SQLITE_SAMPLES = 5
# 40 runs: a multiple of the 4 and 8 stage slots of one and two workers (with 20 runs the second
# worker's last wave is half empty, which alone caps the ratio at 5/3)
PG_RUNS, PG_STAGES, PG_SAMPLES = 40, 5, 3
PG_ADMIN = os.environ.get(
    "WRITGATE_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
FUNCTION = "bench_pipelines:trivial"

LEAN_WORKER = """
import sys, anyio
from pipelines.service import PipelineService
from pipelines.stages.python import resolve_function
from writgate.db import create_engine
from writgate.ledger import Ledger

async def main(url, function):
    engine = create_engine(
        url, connect_args={"server_settings": {"application_name": "writgate-bench-worker"}}
    )
    service = PipelineService(engine=engine, ledger=Ledger(engine=engine))
    worker = service.worker(concurrency=4, poll_interval=0.5)
    # warm up outside the measured part: the stage's module, a database connection
    resolve_function(function)
    await service.store.run_status("warm-up")
    print("ready", flush=True)
    await anyio.to_thread.run_sync(sys.stdin.readline)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        worker.stop()

anyio.run(main, sys.argv[1], sys.argv[2])
"""


async def trivial() -> dict[str, Any]:
    """A stage that does nothing: what remains is the engine's cost."""
    return {}


async def waits(seconds: float = 0.02) -> dict[str, Any]:
    """A stage that waits on I/O for ``seconds``."""
    await anyio.sleep(seconds)
    return {}


remember_function(FUNCTION, trivial)


def _chain(length: int, function: str = FUNCTION) -> Pipeline:
    pipeline = Pipeline(name=f"chain-{length}")
    previous: list[str] = []
    for index in range(length):
        stage_id = f"s{index:03d}"
        pipeline.add(stage_id, python(function, needs=previous))
        previous = [stage_id]
    return pipeline


async def _sqlite_overhead(home: Path) -> list[float]:
    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'bench.db'}")
    database = await open_database(settings)
    service = PipelineService(engine=database.engine, ledger=database.ledger)
    pipeline = _chain(CHAIN)
    samples = []
    try:
        await service.run("default", _chain(5))  # warm-up
        for _ in range(SQLITE_SAMPLES):
            start = time.perf_counter()
            run = await service.run("default", pipeline)
            elapsed = time.perf_counter() - start
            assert run.status == "succeeded", run.error
            samples.append(elapsed * 1000 / CHAIN)
    finally:
        await database.dispose()
    return samples


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-qc", sql], check=True, capture_output=True, timeout=60)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def _backend_pids(database: str) -> list[int]:
    """The PostgreSQL server processes serving the workers' connections to ``database``."""
    out = subprocess.run(
        [
            "psql",
            PG_ADMIN,
            "-Atc",
            "SELECT pid FROM pg_stat_activity WHERE datname = "
            f"'{database}' AND application_name = 'writgate-bench-worker'",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [int(line) for line in out.split()]


async def _pg_throughput(
    home: Path, url: str, workers: int, function: str
) -> tuple[float, dict[str, float]]:
    """Stages per second, and CPU ms per stage of the workers, their server processes, all."""
    settings = Settings(home=home, database_url=url)
    database = await open_database(settings)
    service = PipelineService(engine=database.engine, ledger=database.ledger)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")},
        "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]),
    }
    processes = [
        subprocess.Popen(  # noqa: ASYNC220 - started before the measured part
            [sys.executable, "-c", LEAN_WORKER, url, function],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        pipeline = _chain(PG_STAGES, function)
        runs = [(await service.start("default", pipeline)).id for _ in range(PG_RUNS)]
        database_name = make_url(url).database or ""
        backends_before = {pid: _cpu_seconds(pid) for pid in _backend_pids(database_name)}
        workers_before = sum(_cpu_seconds(process.pid) for process in processes)
        machine_before = _machine_busy()
        start = time.perf_counter()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        # one cheap query per 20 ms (not one per run: the poller must not compete for the CPU)
        active = (
            select(func.count())
            .select_from(runs_t)
            .where(runs_t.c.id.in_(runs), runs_t.c.status.in_(("queued", "running")))
        )
        while True:
            await anyio.sleep(0.02)
            async with database.engine.connect() as conn:
                if not (await conn.execute(active)).scalar_one():
                    break
        elapsed = time.perf_counter() - start
        machine_after = _machine_busy()
        workers_cpu = sum(_cpu_seconds(process.pid) for process in processes) - workers_before
        backends_cpu = sum(
            _cpu_seconds(pid) - backends_before.get(pid, 0.0)
            for pid in _backend_pids(database_name)
        )
    finally:
        for process in processes:
            assert process.stdin is not None
            try:
                process.stdin.write("stop\n")
                process.stdin.close()
            except BrokenPipeError:
                pass
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()
        await database.dispose()
    stages = PG_RUNS * PG_STAGES
    cpu = {
        "workers": workers_cpu * 1000 / stages,
        "server": backends_cpu * 1000 / stages,
        "machine busy": (machine_after[0] - machine_before[0])
        / (machine_after[1] - machine_before[1]),
    }
    return stages / elapsed, cpu


async def _pg_samples(
    home: Path, function: str, samples: int
) -> tuple[dict[int, list[float]], dict[int, list[dict[str, float]]]]:
    found: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for index in range(samples):
        for workers in (1, 2):
            name = f"writgate_bench_{uuid.uuid4().hex[:10]}"
            _psql(f'CREATE DATABASE "{name}"')
            try:
                base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
                throughput, used = await _pg_throughput(
                    home / f"pg{index}{workers}", f"{base}/{name}", workers, function
                )
                found[workers].append(throughput)
                cpu[workers].append(used)
            finally:
                _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return found, cpu


async def _pg_figures(home: Path) -> list[dict[str, Any]]:
    try:
        _psql("SELECT 1")
    except (subprocess.SubprocessError, FileNotFoundError):
        return []
    figures: list[dict[str, Any]] = []
    for label, function, samples, target in (
        ("20 ms stages", "bench_pipelines:waits", PG_SAMPLES, ">= 1.7x"),
        ("trivial stages", FUNCTION, 1, None),
    ):
        found, cpu = await _pg_samples(home / label.split()[0], function, samples)
        for workers in (1, 2):
            used = {
                key: statistics.median(sample[key] for sample in cpu[workers])
                for key in cpu[workers][0]
            }
            figures.append(
                {
                    "figure": f"pipelines: PostgreSQL, {workers} worker(s), {label} "
                    f"({PG_RUNS}x{PG_STAGES})",
                    "unit": "stages/s",
                    "samples": found[workers],
                    "target": None,
                    "peer": None,
                    # where the CPU goes: what bounds the scaling on a 2-core machine
                    "note": f"CPU per stage: workers {used['workers']:.2f} ms, their PostgreSQL "
                    f"server processes {used['server']:.2f} ms; machine busy "
                    f"{used['machine busy']:.0%} of its cores (other processes included)",
                }
            )
        figures.append(
            {
                "figure": f"pipelines: PostgreSQL, 2 workers / 1 worker, {label}",
                "unit": "x",
                "samples": [b / a for a, b in zip(found[1], found[2], strict=True)],
                "target": target,
                "peer": None,
            }
        )
    return figures


async def _measure(root: Path) -> list[dict[str, Any]]:
    figures = [
        {
            "figure": f"pipelines: durable overhead per stage, SQLite, {CHAIN}-stage chain",
            "unit": "ms",
            "samples": await _sqlite_overhead(root / "sqlite"),
            "target": "<= 1.5 ms (DBOS 3.0 ms, Prefect 4.4 ms)",
            "peers": _peers.per_stage_overhead(CHAIN, SQLITE_SAMPLES),
        }
    ]
    figures.extend(await _pg_figures(root))
    return figures


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="writgate-bench-pipelines-") as tmp:
        return anyio.run(_measure, Path(tmp))


if __name__ == "__main__":
    for figure in run():
        print(
            f"{figure['figure']}: median {statistics.median(figure['samples']):.2f} "
            f"{figure['unit']} (samples {', '.join(f'{s:.2f}' for s in figure['samples'])})"
            + (f" — {figure['note']}" if figure.get("note") else "")
        )
