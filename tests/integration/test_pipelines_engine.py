"""Pipeline semantics on SQLite and PostgreSQL: the engine run in-process by a worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

from pipelines import (
    Concurrency,
    Pipeline,
    Retries,
    StageContext,
    StageFailure,
    command,
    python,
    register_stage_kind,
)
from pipelines.records import PipelineRun
from pipelines.service import PipelineService
from writgate.app.database import Database

pytestmark = pytest.mark.anyio
ORG = "acme"
HERE = __name__


@pytest.fixture
async def service(database: Database) -> AsyncIterator[PipelineService]:
    yield PipelineService(engine=database.engine, ledger=database.ledger)


async def _run(service: PipelineService, pipeline: Pipeline, **inputs: Any) -> PipelineRun:
    with anyio.fail_after(30):
        return await service.run(ORG, pipeline, inputs, poll_interval=0.05, lease_seconds=5)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    """Poll ``check`` until it is true, failing after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110 - polling the database with a deadline
            await anyio.sleep(0.02)


async def _stage_is(service: PipelineService, run_id: str, stage: str, status: str) -> bool:
    return (await service.get(ORG, run_id)).stage(stage).status == status


async def _finished(service: PipelineService, run_id: str) -> bool:
    return (await service.get(ORG, run_id)).finished


async def _true(value: bool) -> bool:
    return value


async def _types(service: PipelineService, run: PipelineRun) -> list[tuple[str, str]]:
    return [(e.type, str(e.data.get("stage", ""))) for e in await service.events(ORG, run.id)]


# -- stage functions (importable by dotted path) --------------------------------------------------

_barrier: dict[str, Any] = {}


async def meet(ctx: StageContext, name: str) -> dict[str, Any]:
    """Both parallel stages must be running at once for either to finish."""
    _barrier.setdefault("arrived", set()).add(name)
    both = _barrier.setdefault("both", anyio.Event())
    if len(_barrier["arrived"]) == 2:
        both.set()
    with anyio.fail_after(5):
        await both.wait()
    return {"name": name, "upstream": sorted(ctx.upstream)}


async def echo(**kwargs: Any) -> dict[str, Any]:
    return dict(kwargs)


async def boom(message: str = "boom", retryable: bool = True) -> dict[str, Any]:
    raise StageFailure(message, retryable=retryable)


_flaky_calls: list[str] = []


async def flaky(ctx: StageContext, fail_times: int) -> dict[str, Any]:
    _flaky_calls.append(ctx.idempotency_key)
    if len(_flaky_calls) <= fail_times:
        raise ConnectionError("sandbox host unreachable")
    return {"attempt": ctx.attempt, "key": ctx.idempotency_key}


_cancelled: list[str] = []


async def slow(ctx: StageContext, seconds: float = 30) -> dict[str, Any]:
    async def on_cancel() -> None:
        _cancelled.append(f"{ctx.pipeline_run_id}:{ctx.stage_id}")

    ctx.on_cancel(on_cancel)
    await ctx.progress("sleeping", seconds=seconds)
    await anyio.sleep(seconds)
    return {"slept": seconds}


async def verdict(decision: str) -> dict[str, Any]:
    return {"decision": decision}


# -- tests --------------------------------------------------------------------------------------


async def test_needs_parallelism_and_outputs(service: PipelineService) -> None:
    _barrier.clear()
    pipeline = Pipeline(name="diamond")
    pipeline.add("start", python(f"{HERE}:echo", args={"value": 41}))
    pipeline.add("left", python(f"{HERE}:meet", args={"name": "left"}, needs=["start"]))
    pipeline.add("right", python(f"{HERE}:meet", args={"name": "right"}, needs=["start"]))
    pipeline.add(
        "join",
        python(
            f"{HERE}:echo",
            needs=["left", "right"],
            args={
                "sum": "{{ stages.start.outputs.value + 1 }}",
                "names": "{{ [stages.left.outputs.name, stages.right.outputs.name] }}",
            },
            outputs={"label": "{{ outputs.names | join('+') }}={{ outputs.sum }}"},
        ),
    )
    run = await _run(service, pipeline)
    assert run.status == "succeeded", run.error
    assert run.stage("join").outputs == {
        "sum": 42,
        "names": ["left", "right"],
        "label": "left+right=42",
    }
    assert run.stage("left").outputs == {"name": "left", "upstream": ["start"]}
    assert run.stage("join").outputs is not None
    events = await service.events(ORG, run.id)
    seq = {(e.type, e.data.get("stage")): e.seq for e in events}

    def ready(stage: str) -> int:  # queued for any worker, or started at once by the finisher
        return min(seq.get(("stage.queued", stage), 10**9), seq[("stage.started", stage)])

    # each outcome is committed before anything that needs it is queued or started
    assert seq[("stage.succeeded", "start")] < ready("left")
    assert seq[("stage.succeeded", "start")] < ready("right")
    assert seq[("stage.succeeded", "left")] < ready("join")
    assert seq[("stage.succeeded", "right")] < ready("join")
    assert events[-1].type == "pipeline.finished" and events[-1].data["status"] == "succeeded"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


async def test_if_and_status_functions(service: PipelineService) -> None:
    pipeline = Pipeline(name="conditions")
    pipeline.add("ok", python(f"{HERE}:echo", args={"x": 1}))
    pipeline.add("bad", python(f"{HERE}:boom", needs=["ok"], args={"retryable": False}))
    pipeline.add("after_bad", python(f"{HERE}:echo", needs=["bad"]))
    pipeline.add("on_failure", python(f"{HERE}:echo", needs=["after_bad"], if_="failure()"))
    pipeline.add("on_success", python(f"{HERE}:echo", needs=["ok"], if_="{{ success() }}"))
    pipeline.add(
        "always",
        python(
            f"{HERE}:echo",
            needs=["bad"],
            if_="{{ always() }}",
            args={"status": "{{ stages.bad.status }}"},
        ),
    )
    pipeline.add("on_cancel", python(f"{HERE}:echo", needs=["bad"], if_="cancelled()"))
    pipeline.add(
        "by_output",
        python(f"{HERE}:echo", needs=["ok"], if_="stages.ok.outputs.x == 2"),
    )
    run = await _run(service, pipeline)
    status = {s.stage_id: s.status for s in run.stages}
    assert status == {
        "ok": "succeeded",
        "bad": "failed",
        "after_bad": "skipped",
        "on_failure": "succeeded",
        "on_success": "succeeded",
        "always": "succeeded",
        "on_cancel": "skipped",
        "by_output": "skipped",
    }
    assert run.status == "failed" and run.error == "failed stage(s): bad"
    assert run.stage("always").outputs == {"status": "failed"}
    assert run.stage("bad").attempt == 1  # not retryable: never retried


async def test_timeout_fails_the_stage_and_calls_its_cancel_hook(service: PipelineService) -> None:
    _cancelled.clear()
    pipeline = Pipeline(name="timeouts")
    pipeline.add("slow", python(f"{HERE}:slow", args={"seconds": 30}, timeout="300ms"))
    started = anyio.current_time()
    run = await _run(service, pipeline)
    assert anyio.current_time() - started < 10
    assert run.status == "failed"
    assert run.stage("slow").error == "timed out after 300ms"
    assert _cancelled == [f"{run.id}:slow"]


async def test_retries_with_exponential_backoff(service: PipelineService) -> None:
    _flaky_calls.clear()
    pipeline = Pipeline(name="retries")
    pipeline.add(
        "flaky",
        python(f"{HERE}:flaky", args={"fail_times": 2}, retries=Retries(max=3, backoff=0.2)),
    )
    run = await _run(service, pipeline)
    assert run.status == "succeeded"
    stage = run.stage("flaky")
    assert stage.attempt == 3 and stage.outputs is not None and stage.outputs["attempt"] == 3
    # each attempt has its own idempotency key
    assert _flaky_calls == [f"pipeline:{run.id}:flaky:{n}" for n in (1, 2, 3)]
    events = await service.events(ORG, run.id)
    retrying = [e for e in events if e.type == "stage.retrying"]
    assert [e.data["retryIn"] for e in retrying] == ["200ms", "400ms"]
    assert "ConnectionError: sandbox host unreachable" in retrying[0].data["error"]
    starts = [e.at for e in events if e.type == "stage.started"]
    assert starts[1] - starts[0] >= timedelta(milliseconds=200)
    assert starts[2] - starts[1] >= timedelta(milliseconds=400)


async def test_retries_run_out_and_a_verdict_is_not_a_failure(service: PipelineService) -> None:
    _flaky_calls.clear()
    pipeline = Pipeline(name="out")
    pipeline.add(
        "flaky",
        python(f"{HERE}:flaky", args={"fail_times": 9}, retries=Retries(max=1, backoff=0.05)),
    )
    pipeline.add("gate", python(f"{HERE}:verdict", args={"decision": "block"}, retries=3))
    run = await _run(service, pipeline)
    assert run.stage("flaky").status == "failed" and run.stage("flaky").attempt == 2
    assert len(_flaky_calls) == 2
    # a judge's "block" is an outcome: the stage succeeded once, with the decision as output
    assert run.stage("gate").status == "succeeded" and run.stage("gate").attempt == 1
    assert run.stage("gate").outputs == {"decision": "block"}


async def test_continue_on_error(service: PipelineService) -> None:
    pipeline = Pipeline(name="coe")
    pipeline.add("lint", command(["sh", "-c", "echo nope >&2; exit 3"], continue_on_error=True))
    pipeline.add("next", command(["echo", "{{ stages.lint.outputs.exitCode }}"], needs=["lint"]))
    run = await _run(service, pipeline)
    assert run.status == "succeeded"
    lint = run.stage("lint")
    assert lint.status == "failed" and lint.error == "sh exited with code 3: nope"
    assert lint.outputs == {"exitCode": 3, "stdout": ""}
    assert run.stage("next").outputs == {"exitCode": 0, "stdout": "3\n"}


async def test_template_error_at_run_time_fails_without_retry(service: PipelineService) -> None:
    pipeline = Pipeline(name="tpl")
    pipeline.add("a", python(f"{HERE}:echo", args={"x": 1}))
    pipeline.add(
        "b",
        python(
            f"{HERE}:echo", needs=["a"], retries=3, args={"y": "{{ stages.a.outputs.missing }}"}
        ),
    )
    run = await _run(service, pipeline)
    b = run.stage("b")
    assert b.status == "failed" and b.attempt == 1
    assert "stages.b.with.args.y" in (b.error or "") and "missing" in (b.error or "")


async def test_cancel_in_progress_cancels_the_older_run(service: PipelineService) -> None:
    _cancelled.clear()
    pipeline = Pipeline(
        name="grouped",
        inputs={"repo": {"required": True}},  # type: ignore[dict-item]
        concurrency=Concurrency(group="fix-{{ inputs.repo }}", cancel_in_progress=True),
    )
    pipeline.add("write", python(f"{HERE}:slow", args={"seconds": 60}))
    pipeline.add("cleanup", python(f"{HERE}:echo", needs=["write"], if_="cancelled()"))
    older = await service.start(ORG, pipeline, {"repo": "acme/web"})
    other = await service.start(ORG, pipeline, {"repo": "acme/api"})  # another group
    worker = service.worker(poll_interval=0.05, lease_seconds=5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await eventually(lambda: _stage_is(service, older.id, "write", "running"))
        await eventually(lambda: _stage_is(service, other.id, "write", "running"))
        newer = await service.start(ORG, pipeline, {"repo": "acme/web"})
        await eventually(lambda: _finished(service, older.id))
        await eventually(lambda: _stage_is(service, newer.id, "write", "running"))
        await eventually(lambda: _true(f"{older.id}:write" in _cancelled))
        older_run = await service.get(ORG, older.id)
        assert older_run.status == "cancelled"
        assert older_run.cancel_reason == f"superseded by {newer.id}"
        assert older_run.stage("write").status == "cancelled"
        assert older_run.stage("cleanup").status == "succeeded"  # cancelled() stages still run
        assert (await service.get(ORG, other.id)).status == "running"  # other group untouched
        for run_id in (newer.id, other.id):
            await service.cancel(ORG, run_id, reason="test over")
        worker.stop()
    assert older_run.concurrency_group == "fix-acme/web"


async def test_a_group_without_cancel_queues_the_newer_run(service: PipelineService) -> None:
    pipeline = Pipeline(
        name="serial", concurrency=Concurrency(group="one-at-a-time", cancel_in_progress=False)
    )
    pipeline.add("a", python(f"{HERE}:echo", args={"n": 1}))
    first = await service.start(ORG, pipeline)
    second = await service.start(ORG, pipeline)
    assert second.status == "queued" and second.stage("a").status == "pending"
    worker = service.worker(poll_interval=0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await eventually(lambda: _finished(service, second.id))
        worker.stop()
    first_run, second_run = await service.get(ORG, first.id), await service.get(ORG, second.id)
    assert first_run.status == second_run.status == "succeeded"
    assert first_run.finished_at is not None and second_run.started_at is not None
    assert second_run.started_at >= first_run.finished_at
    types = [t for t, _ in await _types(service, second_run)]
    assert types[:3] == ["pipeline.created", "pipeline.queued", "pipeline.started"]


# -- implicit wiring: judge stages find their upstream writer -------------------------------------


async def _fake_writer(ctx: StageContext) -> dict[str, Any]:
    return {"repository": ctx.params["repository"], "headSha": "abc123", "runId": "run_x"}


async def _fake_judge(ctx: StageContext) -> dict[str, Any]:
    writer = ctx.upstream_of_kind("test-writer")
    assert writer is not None, "no upstream writer"
    return {
        "reviewed": f"{writer.outputs['repository']}@{writer.outputs['headSha']}",
        "from": writer.stage_id,
    }


async def test_judge_stages_take_the_upstream_writer_implicitly(service: PipelineService) -> None:
    register_stage_kind("test-writer", _fake_writer, replace=True)
    register_stage_kind("test-judge", _fake_judge, replace=True)
    pipeline = Pipeline.model_validate(
        {
            "name": "wiring",
            "stages": {
                "write": {"uses": "test-writer", "with": {"repository": "acme/web"}},
                "lint": {"uses": "command", "needs": ["write"], "with": {"argv": ["true"]}},
                "judge": {"uses": "test-judge", "needs": ["lint"]},  # the writer is 2 hops up
            },
        }
    )
    run = await _run(service, pipeline)
    assert run.status == "succeeded", run.error
    assert run.stage("judge").outputs == {"reviewed": "acme/web@abc123", "from": "write"}


async def test_unknown_kind_fails_clearly(service: PipelineService) -> None:
    pipeline = Pipeline.model_validate(
        {"name": "k", "stages": {"w": {"uses": "test-ghost", "with": {}}}}
    )
    register_stage_kind("test-ghost", _fake_writer, replace=True)
    started = await service.start(ORG, pipeline)  # the API process knows the kind…
    from pipelines import stages

    stages._HANDLERS.pop("test-ghost")  # …the worker does not
    with anyio.fail_after(20):
        run = await service.execute(ORG, started.id, poll_interval=0.05)
    assert run.stage("w").error == "stage kind 'test-ghost' is not available in this worker"


async def pause(seconds: float) -> dict[str, Any]:
    await anyio.sleep(seconds)
    return {}


async def test_frequent_heartbeats_never_lose_fresh_stages(service: PipelineService) -> None:
    """A heartbeat's answer only judges stages held before it: chained and newly claimed stages
    are not "lost" (they were, once, and sat out a whole lease before being reclaimed)."""
    pipeline = Pipeline(name="beats")
    for chain in range(4):
        previous: list[str] = []
        for index in range(12):
            stage_id = f"c{chain}s{index}"
            pipeline.add(stage_id, python(f"{HERE}:pause", args={"seconds": 0.03}, needs=previous))
            previous = [stage_id]
    with anyio.fail_after(60):
        run = await service.run(ORG, pipeline, poll_interval=0.05, lease_seconds=0.9)
    assert run.status == "succeeded"
    assert [s.stage_id for s in run.stages if s.claims != 1] == []
    types = {e.type for e in await service.events(ORG, run.id)}
    assert not types & {"stage.reclaimed", "stage.released", "stage.cancelled"}


async def test_a_full_worker_waits_for_a_free_slot(service: PipelineService) -> None:
    """With every slot busy the worker sleeps until one frees (it once spun without yielding)."""
    pipeline = Pipeline(name="narrow")
    for name in ("a", "b", "c"):
        pipeline.add(name, python(f"{HERE}:pause", args={"seconds": 0.05}))
    with anyio.fail_after(30):
        run = await service.run(ORG, pipeline, poll_interval=0.05, concurrency=1)
    assert run.status == "succeeded"
    starts = [
        e.data["stage"] for e in await service.events(ORG, run.id) if e.type == "stage.started"
    ]
    assert sorted(starts) == ["a", "b", "c"]
