"""Workers: leases and fencing (SQLite and PostgreSQL), two worker processes sharing PostgreSQL,
a frozen worker's stage taken over when its lease expires, one worker only on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from pipelines import Pipeline, python
from pipelines.service import PipelineService
from writgate.app.database import Database

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
CLI = "import sys; from writgate.app.cli import main; sys.exit(main())"
EFFECT = "tests.integration._pipeline_stages:effect"


@pytest.fixture
async def service(database: Database) -> AsyncIterator[PipelineService]:
    yield PipelineService(engine=database.engine, ledger=database.ledger)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 60) -> None:
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - polling the database with a deadline
            await anyio.sleep(0.05)


def _chain(name: str, work: Path, stages: int, pause: float) -> Pipeline:
    pipeline = Pipeline(name=name)
    previous: list[str] = []
    for index in range(stages):
        stage_id = f"s{index + 1}"
        pipeline.add(
            stage_id, python(EFFECT, args={"dir": str(work), "pause": pause}, needs=previous)
        )
        previous = [stage_id]
    return pipeline


def _workdir(path: Path) -> Path:
    (path / "markers").mkdir(parents=True)
    return path


async def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced(
    service: PipelineService, tmp_path: Path
) -> None:
    work = _workdir(tmp_path / "w")
    run = await service.start("default", _chain("fence", work, 2, 0.01))
    store = service.store
    # a worker on another machine claims s1, then goes silent
    (stale,) = await store.claim("elsewhere:4242:aaaaaa", limit=1, lease_seconds=0.3)
    assert stale.stage_id == "s1" and stale.claims == 1
    # nobody else can claim it while the lease holds
    assert await store.claim("here:1:bbbbbb", limit=1, lease_seconds=5) == []
    with anyio.fail_after(30):
        finished = await service.execute("default", run.id, poll_interval=0.05, lease_seconds=5)
    assert finished.status == "succeeded"
    s1 = finished.stage("s1")
    assert s1.claims == 2 and s1.attempt == 1  # taken over: same attempt, same idempotency key
    events = await service.events("default", run.id)
    reclaimed = [e for e in events if e.type == "stage.reclaimed"]
    assert [(e.data["stage"], e.data["previousWorker"]) for e in reclaimed] == [
        ("s1", "elsewhere:4242:aaaaaa")
    ]
    # the silent worker wakes up and reports: its outcome is refused
    assert await store.succeed(stale, {"late": True}) is False
    assert await store.fail(stale, "late", retryable=True) == "lost"
    # nor does its progress reach the ledger (it would come after pipeline.finished)
    await store.progress(stale, "still working", {"late": True})
    assert (await service.get("default", run.id)).stage("s1").outputs != {"late": True}
    assert [e.type for e in await service.events("default", run.id)] == [e.type for e in events]


def _env(database_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    env.update(WRITGATE_HOME=str(home), WRITGATE_DATABASE_URL=database_url, PYTHONPATH=str(REPO))
    return env


async def _start_worker(env: dict[str, str], *flags: str) -> Process:
    process = await anyio.open_process(
        [sys.executable, "-c", CLI, "worker", "--poll", "200ms", *flags], env=env
    )
    assert process.stderr is not None
    with anyio.fail_after(30):
        line = (await process.stderr.receive()).decode()
    assert "started" in line, line
    return process


async def _stop(process: Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await process.wait()
    await process.aclose()
    assert process.returncode is not None
    return process.returncode


@pytest.mark.slow
async def test_two_postgres_workers_split_the_stages(pg_database_url: str, tmp_path: Path) -> None:
    from writgate.app.database import open_database
    from writgate.settings import Settings

    database = await open_database(Settings(home=tmp_path / "home", database_url=pg_database_url))
    service = PipelineService(engine=database.engine, ledger=database.ledger)
    env = _env(pg_database_url, tmp_path / "home")
    try:
        workers = [await _start_worker(env, "--concurrency", "2") for _ in range(2)]
        try:
            runs = []  # started once both workers wait: they wake on NOTIFY
            for number in range(8):
                work = _workdir(tmp_path / f"run{number}")
                runs.append(await service.start("default", _chain("many", work, 4, 0.1)))

            async def all_finished() -> bool:
                return all([(await service.get("default", r.id)).finished for r in runs])

            await _eventually(all_finished)
        finally:
            codes = [await _stop(w) for w in workers]
        assert codes == [0, 0]
        by_worker: Counter[str] = Counter()
        for run in runs:
            final = await service.get("default", run.id)
            assert final.status == "succeeded"
            assert all(s.claims == 1 for s in final.stages)  # no stage ran twice
            for event in await service.events("default", run.id):
                if event.type == "stage.started":
                    by_worker[str(event.data["worker"]).split(":")[1]] += 1
        assert sum(by_worker.values()) == 32
        assert len(by_worker) == 2, by_worker  # both workers took part…
        assert min(by_worker.values()) >= 6, by_worker  # …each a fair share
    finally:
        await database.dispose()


@pytest.mark.slow
async def test_a_frozen_workers_stage_is_taken_over(pg_database_url: str, tmp_path: Path) -> None:
    from writgate.app.database import open_database
    from writgate.settings import Settings

    database = await open_database(Settings(home=tmp_path / "home", database_url=pg_database_url))
    service = PipelineService(engine=database.engine, ledger=database.ledger)
    env = _env(pg_database_url, tmp_path / "home")
    work = _workdir(tmp_path / "w")
    try:
        run = await service.start("default", _chain("frozen", work, 1, 2.0))
        first = await _start_worker(env, "--lease", "1s")

        async def held_by_first() -> bool:
            stage = (await service.get("default", run.id)).stage("s1")
            return stage.status == "running" and f":{first.pid}:" in (stage.lease_owner or "")

        await _eventually(held_by_first)
        first.send_signal(signal.SIGSTOP)  # alive but silent: no heartbeats
        second = await _start_worker(env, "--lease", "5s")
        try:

            async def finished() -> bool:
                return (await service.get("default", run.id)).finished

            await _eventually(finished)
        finally:
            first.send_signal(signal.SIGCONT)
            codes = [await _stop(second), await _stop(first)]
        assert codes == [0, 0]
        final = await service.get("default", run.id)
        assert final.status == "succeeded"
        s1 = final.stage("s1")
        assert s1.claims == 2 and s1.outputs is not None
        assert s1.outputs["pid"] == second.pid  # the second worker's result stands
        events = await service.events("default", run.id)
        assert [e.data["previousWorker"] for e in events if e.type == "stage.reclaimed"] == [
            next(e.data["worker"] for e in events if e.type == "stage.started")
        ]
        assert sum(1 for e in events if e.type == "stage.succeeded") == 1
        # the effect happened once, though the frozen worker finished its run of the stage too
        assert len((work / "effects.log").read_text().splitlines()) == 1
    finally:
        await database.dispose()


def test_sqlite_supports_one_worker(tmp_path: Path) -> None:
    env = _env(f"sqlite+aiosqlite:///{tmp_path / 'writgate.db'}", tmp_path / "home")
    first = subprocess.Popen(
        [sys.executable, "-c", CLI, "worker"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert first.stderr is not None
        assert "started" in first.stderr.readline()
        second = subprocess.run(
            [sys.executable, "-c", CLI, "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert "SQLite supports one worker" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1  # one readable line, no traceback
    finally:
        first.send_signal(signal.SIGTERM)
        code = first.wait(timeout=30)
        assert first.stderr is not None
        first.stderr.close()
    assert code == 0


async def test_a_lease_the_worker_lost_track_of_is_not_renewed(
    service: PipelineService, tmp_path: Path
) -> None:
    """Heartbeats renew only the stages the worker runs: a stage its id holds but that no task
    runs (its process restarted with the same id, a task died) expires and is run again."""
    work = _workdir(tmp_path / "w")
    run = await service.start("default", _chain("orphan", work, 2, 0.01))
    (orphan,) = await service.store.claim("here:1:same", limit=1, lease_seconds=0.6)
    with anyio.fail_after(30):
        await service.worker(
            worker_id="here:1:same", run_id=run.id, poll_interval=0.05, lease_seconds=0.6
        ).run()
    final = await service.get("default", run.id)
    assert final.status == "succeeded"
    assert final.stage(orphan.stage_id).claims == 2
