"""What the pipeline commands share: the service, the lease settings and the progress view."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TextIO

import anyio

from pipelines.durations import parse_duration
from pipelines.records import PipelineRun
from pipelines.service import PipelineService
from pipelines.worker import Worker
from writgate.app.database import Database
from writgate.app.services import make_services
from writgate.errors import ConfigError
from writgate.ledger import Event
from writgate.settings import Settings

__all__ = [
    "describe_event",
    "pipeline_service",
    "print_run",
    "run_with_progress",
    "worker_options",
]

STATUS_MARKS = {
    "succeeded": "✓",
    "failed": "✗",
    "skipped": "-",
    "cancelled": "⊘",
    "running": "…",
    "queued": "·",
    "pending": " ",
}


def _duration_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def worker_options() -> dict[str, Any]:
    """Lease and polling settings from ``WRITGATE_PIPELINE_LEASE`` / ``WRITGATE_PIPELINE_POLL``."""
    return {
        "lease_seconds": _duration_env("WRITGATE_PIPELINE_LEASE", 30.0),
        "poll_interval": _duration_env("WRITGATE_PIPELINE_POLL", 1.0),
    }


@asynccontextmanager
async def pipeline_service(
    database: Database, settings: Settings, *, with_services: bool = True
) -> AsyncIterator[PipelineService]:
    """The pipelines service of this process, with the domain services its stages use.

    The writer's executor first settles runs that a dead process left mid-flight, so a writer
    stage that re-attaches to its run after a crash never waits for a run nobody drives.
    """
    services: dict[str, Any] = {}
    wired = make_services(settings, database.engine, database.ledger) if with_services else None
    if wired is not None:
        await wired.executor.recover()
        services.update(writer=wired.writer, forge_for=wired.forge_for)
    try:
        yield PipelineService(
            engine=database.engine, ledger=database.ledger, settings=settings, services=services
        )
    finally:
        if wired is not None:
            await wired.executor.aclose()


def describe_event(event: Event) -> str | None:
    """One line for a pipeline event, or ``None`` for events the progress view leaves out."""
    data: Mapping[str, Any] = event.data
    stage = str(data.get("stage", ""))
    kind = event.type
    if kind == "pipeline.started":
        return "pipeline started"
    if kind == "pipeline.queued":
        return f"waiting: another run of concurrency group {data.get('group')!r} is active"
    if kind == "pipeline.cancelling":
        return f"cancelling: {data.get('reason')}"
    if kind == "pipeline.finished":
        text = f"pipeline {data.get('status')}"
        return text + (f" ({data['error']})" if data.get("error") else "")
    if kind == "stage.started":
        attempt = int(data.get("attempt") or 1)
        return f"{stage:<16} started" + (f" (attempt {attempt})" if attempt > 1 else "")
    if kind == "stage.succeeded":
        return f"{stage:<16} {STATUS_MARKS['succeeded']} succeeded"
    if kind == "stage.failed":
        note = " (continueOnError)" if data.get("continueOnError") else ""
        return f"{stage:<16} {STATUS_MARKS['failed']} failed{note}: {data.get('error')}"
    if kind == "stage.retrying":
        return (
            f"{stage:<16} attempt {data.get('attempt')} failed, "
            f"retry in {data.get('retryIn')}: {data.get('error')}"
        )
    if kind == "stage.skipped":
        return f"{stage:<16} {STATUS_MARKS['skipped']} skipped: {data.get('reason')}"
    if kind == "stage.cancelled":
        return f"{stage:<16} {STATUS_MARKS['cancelled']} cancelled: {data.get('reason')}"
    if kind == "stage.reclaimed":
        return f"{stage:<16} taken over from {data.get('previousWorker')}"
    if kind == "stage.released":
        return f"{stage:<16} handed back ({data.get('reason')})"
    if kind == "stage.progress":
        return f"{stage:<16} {data.get('message')}"
    return None


async def _print_progress(
    service: PipelineService, run: PipelineRun, after: int, out: TextIO, started: datetime
) -> None:
    async for event in service.ledger.follow(run.id, org_id=run.org_id, after=after):
        line = describe_event(event)
        if line is not None:
            elapsed = (event.at - started).total_seconds()
            print(f"[{max(elapsed, 0):6.1f}s] {line}", file=out, flush=True)
        if event.type == "pipeline.finished":
            return


async def run_with_progress(
    service: PipelineService,
    run: PipelineRun,
    *,
    after: int = 0,
    out: TextIO = sys.stdout,
    options: Mapping[str, Any] | None = None,
) -> tuple[PipelineRun, bool]:
    """Run ``run`` in this process, printing its events; ``(run, interrupted)``."""
    worker: Worker = service.worker(run_id=run.id, org_id=run.org_id, **dict(options or {}))
    interrupted = False

    async def watch_signals() -> None:
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                interrupted = True
                worker.stop()
                return

    printed = anyio.Event()

    async def show() -> None:
        try:
            await _print_progress(service, run, after, out, run.created_at)
        finally:
            printed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals)
        tg.start_soon(show)
        await worker.run()
        final = await service.get(run.org_id, run.id)
        if final.finished and not interrupted:
            with anyio.move_on_after(5):  # the view ends after printing pipeline.finished
                await printed.wait()
        tg.cancel_scope.cancel()
    return final, interrupted


def print_run(run: PipelineRun, out: TextIO | None = None) -> None:
    """A readable summary of a run and its stages (on stdout by default)."""
    out = out or sys.stdout  # looked up now: tests and tools may replace sys.stdout
    print(f"{run.id}  {run.name}  {run.status}", file=out)
    if run.trigger_id:
        print(f"  started by forge trigger {run.trigger_id} ({run.source})", file=out)
    if run.error:
        print(f"  error: {run.error}", file=out)
    if run.cancel_reason:
        print(f"  cancelled: {run.cancel_reason}", file=out)
    for stage in run.stages:
        mark = STATUS_MARKS.get(stage.status, "?")
        line = f"  {mark} {stage.stage_id:<16} {stage.kind:<9} {stage.status:<10}"
        if stage.attempt > 1:
            line += f" attempt {stage.attempt}"
        if stage.error and stage.status in ("failed", "queued", "cancelled"):
            line += f"  {stage.error.splitlines()[0][:120]}"
        print(line, file=out)
