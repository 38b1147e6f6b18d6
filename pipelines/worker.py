"""Workers: claim runnable stages, run them, record their outcome; heartbeats keep the leases.

A worker wakes when work may be there: after a local commit that queued a stage, on PostgreSQL's
``NOTIFY writgate_pipelines`` from another process, and by polling as a fallback (also to notice
retry backoffs and expired leases). Stages whose lease holder is a dead process on this host are
reclaimed at once; any other stage of a silent worker when its lease expires.

On SQLite only one ``writgate worker`` may serve a database (:func:`sqlite_worker_lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.engine import URL, make_url

from writgate.errors import InputError, StoreError
from writgate.owners import new_owner_id, owner_is_dead
from writgate.settings import Settings

from .context import StageContext
from .durations import format_duration
from .errors import StageFailure, WorkerConflict
from .records import Claim
from .stages import handler_for
from .store import NOTIFY_CHANNEL, PipelineStore
from .templates import render_value

__all__ = ["Worker", "new_worker_id", "owner_is_dead", "sqlite_worker_lock"]

log = logging.getLogger(__name__)

MAX_OUTPUT_BYTES = 1_000_000


def new_worker_id() -> str:
    """``host:pid:random`` — the lease owner name of a worker."""
    return new_owner_id()


@contextlib.contextmanager
def sqlite_worker_lock(database_url: str | URL) -> Iterator[None]:
    """Hold the one-worker lock of a SQLite database; :class:`WorkerConflict` when it is taken."""
    url = make_url(database_url)
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        yield
        return
    path = Path(database + ".worker.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise WorkerConflict(
                f"another worker ({holder}) already serves {database}; SQLite supports one "
                "worker — use PostgreSQL (WRITGATE_DATABASE_URL=postgresql+asyncpg://…) for more"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class _Running:
    claim: Claim
    scope: anyio.CancelScope
    recording: bool = False  # the outcome is being written: the lease may end any moment
    recorded: bool = False


class Worker:
    """Runs stages: every runnable stage of the database, or only those of one pipeline run."""

    def __init__(
        self,
        *,
        store: PipelineStore,
        settings: Settings | None = None,
        services: Mapping[str, Any] | None = None,
        worker_id: str | None = None,
        concurrency: int = 8,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        org_id: str | None = None,
        run_id: str | None = None,
        listen: bool = True,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.store = store
        self.settings = settings
        self.services: Mapping[str, Any] = services or {}
        self.worker_id = worker_id or new_worker_id()
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.org_id = org_id
        self.run_id = run_id
        self.listen = listen
        self.stages_run = 0
        self._running: dict[tuple[str, str], _Running] = {}
        self._wake = anyio.Event()
        self._check_leases = anyio.Event()
        self._stop = anyio.Event()
        self._run_done = False
        self._stopping = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._last_expiry_check = 0.0

    # -- control ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop: running stages are cancelled and handed back."""
        self._stopping = True
        self._stop.set()
        self._wake.set()

    def _on_notes(self, notes: set[str]) -> None:
        # Only what gives this worker something to do wakes it: a run finishing elsewhere
        # does not (on PostgreSQL every worker hears every note; a needless wake-up costs a
        # claim transaction on the worker and on the server).
        if self.run_id is not None and f"done:{self.run_id}" in notes:
            self._run_done = True
            self._wake.set()
        if any(n.startswith("cancel:") for n in notes):
            self._check_leases.set()
            self._wake.set()
        if "ready" in notes:
            self._wake.set()

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop` (or, with ``run_id``, until that run finished)."""
        self.store.add_listener(self._on_notes)
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                tg.start_soon(self._heartbeats)
                if self.listen and self.store.dialect == "postgresql":
                    tg.start_soon(self._listen)
                try:
                    await self._loop(tg)
                except Exception as exc:  # re-raised below, not wrapped in an ExceptionGroup
                    failure = exc
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._wind_down()
                    tg.cancel_scope.cancel()
        finally:
            self.store.remove_listener(self._on_notes)
        if failure is not None:
            raise failure

    async def _loop(self, tg: anyio.abc.TaskGroup) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if await self._iteration(tg):
                    return
                failures = 0
            except StoreError as exc:
                # The database is away (restart, failover): keep the stages, retry with backoff.
                failures += 1
                delay = min(self.poll_interval * 2**failures, 30.0)
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                with anyio.move_on_after(delay):
                    await self._stop.wait()

    async def _iteration(self, tg: anyio.abc.TaskGroup) -> bool:
        """Claim what can run, then sleep until woken; True when the worker is done."""
        self._wake = anyio.Event()
        if self.run_id is not None and self._run_done and not self._running:
            return True
        claims = []
        free = self.concurrency - len(self._running)
        if free > 0:
            if anyio.current_time() - self._last_expiry_check >= self.poll_interval:
                self._last_expiry_check = anyio.current_time()
                await self.store.expire_leases(
                    owner_is_dead, run_id=self.run_id, org_id=self.org_id
                )
            claims = await self.store.claim(
                self.worker_id,
                limit=free,
                lease_seconds=self.lease_seconds,
                org_id=self.org_id,
                run_id=self.run_id,
            )
            for claim in claims:
                self._launch(tg, claim)
            if len(claims) == free:
                await anyio.lowlevel.checkpoint()
                return False
        if not self._running and not claims and self.run_id is not None:
            status = await self.store.run_status(self.run_id)
            if status not in ("queued", "running"):
                return True
        await self._sleep()
        return False

    def _launch(self, tg: anyio.abc.TaskGroup, claim: Claim) -> None:
        tg.start_soon(self._execute, claim, self._register(claim))

    def _register(self, claim: Claim) -> anyio.CancelScope:
        scope = anyio.CancelScope()
        self._running[claim.key] = _Running(claim=claim, scope=scope)
        return scope

    async def _sleep(self) -> None:
        timeout = self.poll_interval
        if not self._running:
            due = await self.store.next_due(org_id=self.org_id, run_id=self.run_id)
            if due is not None:
                timeout = min(timeout, max((due - datetime.now(UTC)).total_seconds(), 0) + 0.01)
        with anyio.move_on_after(timeout):
            await self._wake.wait()

    async def _wind_down(self) -> None:
        """Cancel what still runs and hand it back so another worker takes it at once."""
        running = list(self._running.values())
        for entry in running:
            entry.scope.cancel()
        with anyio.move_on_after(10):
            while self._running:
                self._wake = anyio.Event()
                await self._wake.wait()
        unrecorded = [entry.claim for entry in running if not entry.recorded]
        if unrecorded:
            try:
                await self.store.release(unrecorded, reason="worker stopped")
            except Exception:
                log.exception("could not hand back %d stage(s)", len(unrecorded))

    async def _heartbeats(self) -> None:
        interval = max(self.lease_seconds / 3, 0.05)
        while True:
            self._check_leases = anyio.Event()
            with anyio.move_on_after(interval):
                await self._check_leases.wait()
            if not self._running:
                continue
            # Only stages held before the renewal can be judged by it: a stage claimed while
            # it ran is not in its answer, and that says nothing about its lease.
            before = dict(self._running)
            try:
                held = await self.store.heartbeat(
                    self.worker_id, lease_seconds=self.lease_seconds, keys=list(before)
                )
            except Exception:
                log.exception("heartbeat failed; retrying")
                continue
            for key, entry in before.items():
                if self._running.get(key) is not entry or entry.recording or entry.recorded:
                    continue
                if key not in held:
                    log.warning("lost the lease of stage %s of %s; cancelling it", key[1], key[0])
                    entry.scope.cancel()

    async def _listen(self) -> None:
        """``LISTEN writgate_pipelines`` on a dedicated connection (PostgreSQL)."""

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            self._on_notes(set(payload.split()))

        while True:
            try:
                async with self.store.engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    await driver.add_listener(NOTIFY_CHANNEL, on_notify)
                    try:
                        while True:  # the polling fallback covers a silently dropped connection
                            await anyio.sleep(30)
                            await conn.exec_driver_sql("SELECT 1")
                    finally:
                        with anyio.CancelScope(shield=True):
                            with contextlib.suppress(Exception):
                                await driver.remove_listener(NOTIFY_CHANNEL, on_notify)
            except Exception:
                log.warning("LISTEN connection lost; polling until it is back", exc_info=True)
                await anyio.sleep(5)

    # -- one stage -------------------------------------------------------------------------------

    def _context(self, claim: Claim) -> StageContext:
        stage = claim.pipeline.stages[claim.stage_id]
        context = self.store.template_context(
            claim.inputs,
            {sid: (u.kind, u.status, u.outputs) for sid, u in claim.upstream.items()},
        )
        params = render_value(stage.with_, context, where=f"stages.{claim.stage_id}.with")
        stage_key = f"pipeline:{claim.pipeline_run_id}:{claim.stage_id}"

        async def progress(message: str, data: Mapping[str, Any]) -> None:
            await self.store.progress(claim, message, data)

        return StageContext(
            pipeline_run_id=claim.pipeline_run_id,
            stage_id=claim.stage_id,
            kind=claim.kind,
            attempt=claim.attempt,
            org_id=claim.org_id,
            idempotency_key=f"{stage_key}:{claim.attempt}",
            stage_key=stage_key,
            params=params,
            inputs=dict(claim.inputs),
            upstream=dict(claim.upstream),
            base_dir=Path(claim.base_dir) if claim.base_dir else None,
            settings=self.settings,
            engine=self.store.engine,
            ledger=self.store.ledger,
            services=self.services,
            progress_sink=progress,
        )

    def _outputs(self, claim: Claim, raw: Any) -> dict[str, Any]:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise StageFailure(
                f"the {claim.kind} stage returned {type(raw).__name__}, not a mapping",
                retryable=False,
            )
        outputs = {str(k): v for k, v in raw.items()}
        try:
            size = len(json.dumps(outputs))
        except (TypeError, ValueError) as exc:
            raise StageFailure(f"outputs are not JSON: {exc}", retryable=False) from exc
        if size > MAX_OUTPUT_BYTES:
            raise StageFailure(
                f"outputs are {size} bytes, more than {MAX_OUTPUT_BYTES}", retryable=False
            )
        declared = claim.pipeline.stages[claim.stage_id].outputs
        if declared:
            context = self.store.template_context(
                claim.inputs,
                {sid: (u.kind, u.status, u.outputs) for sid, u in claim.upstream.items()},
            )
            context["outputs"] = outputs
            outputs.update(
                render_value(declared, context, where=f"stages.{claim.stage_id}.outputs")
            )
        return outputs

    async def _record(self, entry: _Running, outcome: tuple[str, Any]) -> Claim | None:
        """Record the outcome; a stage it freed and started in the same commit, to run next.

        Other stages started in that commit get tasks of their own; the first one is run by
        the caller's task, right after this one (no new task, no trip through the loop).
        """
        claim = entry.claim
        chained: list[Claim] = []
        entry.recording = True
        with anyio.CancelScope(shield=True):
            kind, value = outcome
            if kind == "ok":
                free = 0 if self._stopping else self.concurrency - len(self._running) + 1
                kept, chained = await self.store.complete(
                    claim, value, take_next=free, lease_seconds=self.lease_seconds
                )
                result = "succeeded" if kept else "lost"
            else:
                message, retryable, outputs = value
                result = await self.store.fail(claim, message, retryable=retryable, outputs=outputs)
            entry.recorded = True
            if result == "lost":
                log.warning("stage %s of %s: lease lost, outcome dropped", *claim.key[::-1])
            self.stages_run += 1
            if not chained or self._task_group is None:
                return None
            for next_claim in chained[1:]:
                self._launch(self._task_group, next_claim)
            self._register(chained[0])
            return chained[0]
        return None  # not reached: the shield does not swallow exceptions

    async def _execute(self, claim: Claim, scope: anyio.CancelScope) -> None:
        follow: Claim | None = claim
        while follow is not None:
            follow = await self._execute_one(follow, scope)
            if follow is not None:
                scope = self._running[follow.key].scope

    async def _execute_one(self, claim: Claim, scope: anyio.CancelScope) -> Claim | None:
        """Run one stage and record its outcome; the stage to run next in this task, if any."""
        entry = self._running[claim.key]
        ctx: StageContext | None = None
        chained: Claim | None = None
        stage = claim.pipeline.stages[claim.stage_id]
        try:
            with scope:
                outcome: tuple[str, Any]
                try:
                    ctx = self._context(claim)
                    handler = handler_for(claim.kind)
                    if handler is None:
                        raise StageFailure(
                            f"stage kind {claim.kind!r} is not available in this worker",
                            retryable=False,
                        )
                    with anyio.move_on_after(stage.timeout) as deadline:
                        raw = await handler(ctx)
                    if deadline.cancelled_caught:
                        with anyio.CancelScope(shield=True):
                            await ctx.run_cancel_hooks()
                        assert stage.timeout is not None
                        outcome = (
                            "error",
                            (f"timed out after {format_duration(stage.timeout)}", True, None),
                        )
                    else:
                        outcome = ("ok", self._outputs(claim, raw))
                except StageFailure as exc:
                    outputs = exc.details.get("outputs")
                    outcome = ("error", (exc.message, exc.retryable, outputs))
                except InputError as exc:  # templates, bad `with:`: a retry cannot help
                    outcome = ("error", (str(exc), False, None))
                except Exception as exc:
                    log.warning(
                        "stage %s of %s failed",
                        claim.stage_id,
                        claim.pipeline_run_id,
                        exc_info=True,
                    )
                    outcome = ("error", (f"{type(exc).__name__}: {exc}", True, None))
                try:
                    chained = await self._record(entry, outcome)
                except Exception:
                    # The lease runs out and the stage is claimed again: nothing is lost.
                    log.exception("could not record stage %s of %s", *claim.key[::-1])
            if scope.cancelled_caught and ctx is not None:
                with anyio.CancelScope(shield=True):
                    await ctx.run_cancel_hooks()
        finally:
            if self._running.get(claim.key) is entry:
                self._running.pop(claim.key, None)
            if chained is None:  # a chained stage took this slot: nothing new for the loop
                self._wake.set()
        return chained
