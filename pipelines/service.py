"""The pipelines service: start, read, cancel and run pipeline runs (what the CLI and API use)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine

from writgate.ledger import Event, Ledger
from writgate.settings import Settings

from .errors import WorkerConflict
from .records import PipelineRun
from .spec import Pipeline
from .store import PipelineStore
from .worker import Worker, sqlite_worker_lock

__all__ = ["PipelineService"]

log = logging.getLogger(__name__)


class PipelineService:
    """Pipeline runs of a database: one store, and workers on demand."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: Ledger,
        settings: Settings | None = None,
        services: Mapping[str, Any] | None = None,
    ):
        self.store = PipelineStore(engine=engine, ledger=ledger)
        self.ledger = ledger
        self.settings = settings
        self.services: Mapping[str, Any] = services if services is not None else {}

    async def start(
        self,
        org_id: str,
        pipeline: Pipeline,
        inputs: Mapping[str, Any] | None = None,
        *,
        source: str | None = None,
        base_dir: str | Path | None = None,
        run_id: str | None = None,
        trigger_id: str | None = None,
        idempotency_key: str | None = None,
        fingerprint: str | None = None,
    ) -> PipelineRun:
        """Record a new run (its first stages queued); workers or :meth:`execute` run it.

        With an ``idempotency_key`` that already started a run of ``org_id`` with the same
        ``fingerprint``, that run is returned (``replayed``) instead of a new one.
        """
        return await self.store.create_run(
            org_id,
            pipeline,
            inputs,
            source=source,
            base_dir=base_dir,
            run_id=run_id,
            trigger_id=trigger_id,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )

    async def get(self, org_id: str, run_id: str) -> PipelineRun:
        """A run with its stages."""
        return await self.store.get_run(org_id, run_id)

    async def list_runs(self, org_id: str, **filters: Any) -> list[PipelineRun]:
        """The newest runs (``status``, ``name``, ``limit`` filters)."""
        return await self.store.list_runs(org_id, **filters)

    async def cancel(self, org_id: str, run_id: str, *, reason: str = "cancelled") -> PipelineRun:
        """Cancel a run (its running stages are cancelled; ``always()`` stages still run)."""
        return await self.store.cancel_run(org_id, run_id, reason=reason)

    async def events(self, org_id: str, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's ledger events after ``after``."""
        await self.get(org_id, run_id)
        return await self.ledger.read(run_id, org_id=org_id, after=after)

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Run a worker for every org until cancelled (the server's in-process worker).

        On SQLite it takes the one-worker lock; when a ``writgate worker`` already holds it, the
        server leaves the stages to that worker.
        """
        try:
            with sqlite_worker_lock(self.store.engine.url):
                task_status.started()
                await self.worker(org_id=None).run()
        except WorkerConflict as exc:
            log.warning("not running pipeline stages in the server: %s", exc)
            task_status.started()

    def worker(self, **options: Any) -> Worker:
        """A :class:`Worker` over this service's store (``run_id=`` for one run only)."""
        options.setdefault("settings", self.settings)
        options.setdefault("services", self.services)
        return Worker(store=self.store, **options)

    async def execute(self, org_id: str, run_id: str, **options: Any) -> PipelineRun:
        """Run ``run_id`` in this process until it finished (or the worker was stopped)."""
        run = await self.get(org_id, run_id)
        if not run.finished:
            await self.worker(run_id=run_id, org_id=org_id, **options).run()
        return await self.get(org_id, run_id)

    async def run(
        self,
        org_id: str,
        pipeline: Pipeline,
        inputs: Mapping[str, Any] | None = None,
        *,
        source: str | None = None,
        base_dir: str | Path | None = None,
        **options: Any,
    ) -> PipelineRun:
        """Start ``pipeline`` and run it in this process to the end; returns the finished run."""
        run = await self.start(org_id, pipeline, inputs, source=source, base_dir=base_dir)
        return await self.execute(org_id, run.id, **options)
