"""Crash recovery: the process running a 6-stage pipeline (a real writer stage among them) is
SIGKILLed at a random point it is sure to reach; ``writgate resume``, ``writgate worker`` or an
in-process worker completes the run. Every side effect happened exactly once, the writer opened
exactly one pull request, and the run's ledger is whole.

Each trial picks a kill point (see ``_crash_pipeline``): the process blocks there and is killed,
so every trial interrupts the run. Set ``WRITGATE_CRASH_SEED`` to replay a failed sequence.

The `writgate` processes are forked from a server that imported the application once
(``_crash_pipeline.fork_server``): a fresh interpreter spends seconds importing it on a loaded
machine, which made this test's earlier version slow enough to run into the per-test timeout in
full-suite runs. Leases keep their default length: a dead worker is recognised by its pid at once,
a short lease only lets a loaded machine take stages away from a live one.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from sqlalchemy import select

from forge.local import LocalForge
from pipelines import parse_pipeline
from pipelines.service import PipelineService
from writer.lifecycle import Lifecycle
from writer.tables import runs as writer_runs
from writgate.app.database import Database
from writgate.app.services import Services, make_services
from writgate.settings import Settings

from ._crash_pipeline import (
    KILL,
    PIPELINE,
    REACHED,
    STAGES,
    WRITER,
    kill_points,
    prepare,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
TRIALS = 15  # per database: 30 in all
# PostgreSQL serves several workers: its trials run two at a time, each lane in an org of its
# own. SQLite serves one worker: its trials run one after the other.
LANES = {"sqlite": 1, "postgresql": 2}
FORK_SERVER = "from tests.integration._crash_pipeline import fork_server; fork_server()"
# Generous deadlines: they only bound a hang; a loaded machine must not fail a trial.
DEADLINE = 120
REPOSITORY = "crash/app"
RECOVERIES = ("in-process", "resume", "in-process", "worker", "in-process")


@dataclass(frozen=True)
class Trial:
    number: int
    stage: str
    phase: str
    killed: str  # "run" (`writgate run FILE`) or "worker" (a worker for a run the test started)
    recovery: str  # "in-process", "resume" (`writgate resume`) or "worker" (`writgate worker`)

    def __str__(self) -> str:
        return (
            f"trial {self.number}: kill `{self.killed}` at {self.stage}/{self.phase}, "
            f"recover with {self.recovery}"
        )


@dataclass
class Lane:
    """Trials one after the other in an org of their own; lanes run side by side."""

    org: str
    forge: LocalForge
    pull_requests: set[int] = field(default_factory=set)  # of the trials so far
    writer_runs: set[str] = field(default_factory=set)


@pytest.fixture
async def wired(settings: Settings, database: Database) -> AsyncIterator[Services]:
    services = make_services(settings, database.engine, database.ledger)
    try:
        yield services
    finally:
        await services.executor.aclose()


def _plan(rng: random.Random) -> list[Trial]:
    """Random kill points, the writer's critical ones always among them."""
    critical = [(WRITER, "publish"), (WRITER, "effect"), (WRITER, "commit")]
    others = [point for point in kill_points() if point not in critical]
    points = critical + rng.sample(others, TRIALS - len(critical))
    rng.shuffle(points)
    return [
        Trial(
            number=number,
            stage=stage,
            phase=phase,
            killed="run" if number % 4 == 0 else "worker",
            recovery=RECOVERIES[number % len(RECOVERIES)],
        )
        for number, (stage, phase) in enumerate(points)
    ]


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    env.update(
        WRITGATE_HOME=str(settings.home),
        WRITGATE_DATABASE_URL=settings.database_url,
        PYTHONPATH=str(REPO),
    )
    return env


async def _eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = DEADLINE
) -> None:
    try:
        with anyio.fail_after(timeout):
            while not await check():  # noqa: ASYNC110 - polling with a deadline
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


@dataclass
class ForkServer:
    """Starts `writgate` processes (see ``_crash_pipeline.fork_server``) and reports their ends."""

    process: Process
    ready: anyio.Event = field(default_factory=anyio.Event)
    started: list[int] = field(default_factory=list)
    ended: dict[int, int] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)
    starting: anyio.Lock = field(default_factory=anyio.Lock)

    async def read(self) -> None:
        assert self.process.stdout is not None
        stream = BufferedByteReceiveStream(self.process.stdout)
        while True:
            try:
                kind, *rest = (await stream.receive_until(b"\n", 4096)).decode().split()
            except (anyio.EndOfStream, anyio.IncompleteRead):
                return
            if kind == "ready":
                self.ready.set()
            elif kind == "started":
                self.started.append(int(rest[0]))
            else:
                self.ended[int(rest[0])] = int(rest[1])
            self.changed.set()
            self.changed = anyio.Event()

    async def start(
        self, argv: list[str], org: str, work: Path, name: str, kill_dir: Path | None
    ) -> int:
        """Fork `writgate ARGV…` (or ``lean-worker RUN_ID``); output in ``work/name.out|err``."""
        assert self.process.stdin is not None
        command = {
            "argv": argv,
            "env": {"WRITGATE_ORG": org},
            "cwd": str(work),
            "out": str(work / f"{name}.out"),
            "err": str(work / f"{name}.err"),
            "kill_dir": str(kill_dir) if kill_dir else None,
        }
        async with self.starting:
            count = len(self.started)
            await self.process.stdin.send(json.dumps(command).encode() + b"\n")
            with anyio.fail_after(DEADLINE):
                while len(self.started) == count:
                    await self.changed.wait()
            return self.started[count]

    async def wait(self, pid: int) -> int:
        """The exit status of ``pid`` once the server reaped it (``-9`` after SIGKILL)."""
        with anyio.fail_after(DEADLINE):
            while pid not in self.ended:
                await self.changed.wait()
        return self.ended[pid]


@asynccontextmanager
async def fork_server(env: dict[str, str], work: Path) -> AsyncIterator[ForkServer]:
    with (work / "fork-server.err").open("wb") as err:
        process = await anyio.open_process(
            [sys.executable, "-c", FORK_SERVER], env=env, cwd=work, stderr=err
        )
    server = ForkServer(process)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.read)
            with anyio.fail_after(DEADLINE):
                await server.ready.wait()
            yield server
            assert process.stdin is not None
            await process.stdin.aclose()  # the server kills what is left and ends
            with anyio.fail_after(DEADLINE):
                assert await process.wait() == 0, (work / "fork-server.err").read_text()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None and process.stdin is not None:
                # a trial failed: the server still kills its children (no stray workers) and ends
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await process.stdin.aclose()
                with anyio.move_on_after(10):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


def _output(work: Path, name: str) -> str:
    out = (work / f"{name}.out").read_text()
    err = (work / f"{name}.err").read_text()
    return f"stdout:\n{out[-2000:]}\nstderr:\n{err[-3000:]}"


async def _kill_at_point(
    trial: Trial, lane: Lane, forks: ForkServer, argv: list[str], work: Path
) -> int:
    """Start the process, wait until it blocks at the kill point, SIGKILL it; its pid."""
    pid = await forks.start(argv, lane.org, work, "killed", kill_dir=work)
    reached = work / REACHED

    async def at_point() -> bool:
        if pid in forks.ended:
            raise AssertionError(
                f"the process ended ({forks.ended[pid]}) before the kill point\n"
                + _output(work, "killed")
            )
        return reached.exists()

    await _eventually(at_point, f"{trial.stage}/{trial.phase}")
    os.kill(pid, signal.SIGKILL)
    assert await forks.wait(pid) == -signal.SIGKILL
    (work / KILL).unlink()
    stage, phase, _pid = reached.read_text().split()
    assert (stage, phase) == (trial.stage, trial.phase)
    return pid


async def _recover(
    trial: Trial,
    lane: Lane,
    service: PipelineService,
    forks: ForkServer,
    run_id: str,
    work: Path,
) -> None:
    if trial.recovery == "in-process":
        with anyio.fail_after(DEADLINE):
            await service.execute(lane.org, run_id, poll_interval=0.05)
    elif trial.recovery == "resume":
        pid = await forks.start(["resume", run_id], lane.org, work, "resume", kill_dir=None)
        assert await forks.wait(pid) == 0, _output(work, "resume")
        assert (work / "resume.out").read_text().splitlines()[0] == run_id
    else:  # a `writgate worker` serves the lane's org (and takes nothing from the other lanes)
        argv = ["worker", "--poll", "100ms", "--no-webhooks"]
        pid = await forks.start(argv, lane.org, work, "worker", kill_dir=None)

        async def finished() -> bool:
            if pid in forks.ended:
                raise AssertionError(_output(work, "worker"))
            return (await service.get(lane.org, run_id)).finished

        await _eventually(finished, "`writgate worker` to finish the run")
        os.kill(pid, signal.SIGTERM)
        assert await forks.wait(pid) == 0, _output(work, "worker")
        assert "worker stopped after" in (work / "worker.err").read_text()


def _lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


async def _trial(
    trial: Trial,
    lane: Lane,
    service: PipelineService,
    forks: ForkServer,
    database: Database,
    root: Path,
) -> None:
    work = root / f"trial{trial.number}"
    prepare(work)
    (work / KILL).write_text(f"{trial.stage} {trial.phase}\n")
    inputs = {"dir": str(work), "repository": REPOSITORY}
    if trial.killed == "run":  # `writgate run FILE`: the run id is its first line
        argv = ["run", str(work / "crash.yaml")]
        argv += [arg for key, value in inputs.items() for arg in ("--input", f"{key}={value}")]
        run_id = ""
    else:
        started = await service.start(lane.org, parse_pipeline(PIPELINE), inputs, base_dir=work)
        run_id = started.id
        argv = ["lean-worker", run_id]
    killed_pid = await _kill_at_point(trial, lane, forks, argv, work)
    first_line = (work / "killed.out").read_text().split("\n", 1)[0]
    run_id = run_id or first_line
    assert first_line == run_id

    before = await service.get(lane.org, run_id)
    assert not before.finished
    # the killed stage was running; so may be a parallel one (s3 and s4 both need the writer)
    running = {s.stage_id for s in before.stages if s.status == "running"}
    assert trial.stage in running and len(running) <= 2, running
    await _recover(trial, lane, service, forks, run_id, work)

    # -- the run completed, every stage once -------------------------------------------------------
    run = await service.get(lane.org, run_id)
    assert run.status == "succeeded", (run.error, [s.to_json() for s in run.stages])
    events = await service.events(lane.org, run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    succeeded = Counter(e.data["stage"] for e in events if e.type == "stage.succeeded")
    assert succeeded == dict.fromkeys(STAGES, 1)
    assert [e.type for e in events].count("pipeline.finished") == 1
    reclaimed = [e.data for e in events if e.type == "stage.reclaimed"]
    assert sorted(r["stage"] for r in reclaimed) == sorted(running)
    assert {r["previousWorker"].split(":")[-2] for r in reclaimed} == {str(killed_pid)}
    claims = {s.stage_id: s.claims for s in run.stages}
    assert claims == {s: 2 if s in running else 1 for s in STAGES}
    assert {s.stage_id: s.attempt for s in run.stages} == dict.fromkeys(STAGES, 1)

    # -- side effects: once per stage, under the key of its only attempt ---------------------------
    effects = _lines(work / "effects.log")
    assert Counter(stage for stage, _key, _pid in effects) == {s: 1 for s in STAGES if s != WRITER}
    for stage, key, _pid in effects:
        assert key == f"pipeline:{run_id}:{stage}:1"
    # a finished stage never ran again; the killed one ran again only if it had started
    executions = Counter(stage for stage, _key, _pid in _lines(work / "executions.log"))
    for stage in STAGES:
        if stage == WRITER:
            continue
        if stage == trial.stage:
            assert executions[stage] == (1 if trial.phase == "claimed" else 2), executions
        else:  # a parallel stage cut short may or may not have started its handler
            assert executions[stage] in ((1, 2) if stage in running else (1,)), executions

    # -- the writer: one pull request, whatever the crash interrupted -----------------------------
    # the trials share a repository: what is new since the last trial belongs to this run
    prs = [
        pr
        for pr in (await lane.forge.list_pull_requests(REPOSITORY, state="all", limit=200)).items
        if pr.number not in lane.pull_requests
    ]
    assert len(prs) == 1, [(pr.number, pr.head) for pr in prs]
    pr = prs[0]
    async with database.engine.connect() as conn:
        rows = [
            row
            for row in await conn.execute(
                select(writer_runs)
                .where(writer_runs.c.org_id == lane.org)
                .order_by(writer_runs.c.created_at)
            )
            if row.id not in lane.writer_runs
        ]
    lane.pull_requests.add(pr.number)
    lane.writer_runs.update(row.id for row in rows)
    interrupted = trial.stage == WRITER and trial.phase in ("publish", "effect")
    assert len(rows) == (2 if interrupted else 1), [(r.id, r.lifecycle) for r in rows]
    first, last = rows[0], rows[-1]
    assert last.lifecycle == Lifecycle.SUCCEEDED.value, last.failure
    if interrupted:  # the interrupted run failed; its retry finished the work on its branch
        assert first.lifecycle == Lifecycle.FAILED.value
        assert first.failure["code"] == "sandbox_lost"
        assert last.parent_run_id == first.id
    assert pr.head == last.result["branch"] == (first.result.get("branch") or pr.head)
    assert pr.head_sha == last.result["headSha"]
    write, s3 = run.stage(WRITER).outputs, run.stage("s3").outputs
    assert write is not None and s3 is not None
    assert write["runId"] == last.id
    assert write["pullRequestNumber"] == pr.number
    assert f"pr {pr.number}" in s3["stdout"]  # the writer's outputs reached the next stages
    files = await lane.forge.list_files(REPOSITORY, pr.number)
    assert [f.filename for f in files] == ["CRASH.md"]


async def test_sigkill_at_random_points_then_resume(
    wired: Services, settings: Settings, database: Database, tmp_path: Path
) -> None:
    seed = int(os.environ.get("WRITGATE_CRASH_SEED") or random.randrange(1 << 30))
    service = PipelineService(
        engine=database.engine,
        ledger=database.ledger,
        settings=settings,
        services={"writer": wired.writer, "forge_for": wired.forge_for},
    )
    (tmp_path / "seed").mkdir()
    (tmp_path / "seed" / "README.md").write_text("crash trials\n")
    lanes = []
    for number in range(LANES["sqlite" if settings.is_embedded else "postgresql"]):
        forge = wired.forge_for(f"crash{number}")
        assert isinstance(forge, LocalForge)
        await forge.create_repository(REPOSITORY, from_dir=tmp_path / "seed")
        lanes.append(Lane(org=f"crash{number}", forge=forge))
    trials = _plan(random.Random(seed))

    async def run_lane(lane: Lane, trials: list[Trial]) -> None:
        for trial in trials:
            started = anyio.current_time()
            try:
                await _trial(trial, lane, service, forks, database, tmp_path)
            except BaseException as exc:
                raise AssertionError(f"{trial} failed (WRITGATE_CRASH_SEED={seed})") from exc
            print(f"{trial}: {anyio.current_time() - started:.2f}s")  # shown with -s

    async with fork_server(_env(settings), tmp_path) as forks, anyio.create_task_group() as tg:
        for number, lane in enumerate(lanes):
            tg.start_soon(run_lane, lane, trials[number :: len(lanes)])


def test_every_kill_point_is_in_the_pipeline() -> None:
    pipeline = parse_pipeline(PIPELINE)
    assert list(pipeline.stages) == list(STAGES)
    assert pipeline.stages[WRITER].uses == "writer"
    assert {stage for stage, _phase in kill_points()} == set(STAGES)
