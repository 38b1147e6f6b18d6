"""The durable state of pipeline runs and every transition of their stages.

Each transition is one transaction that changes the rows, appends its ledger events (subject =
the pipeline run id) and, when it frees dependent stages, queues them — so a stage's outcome is
committed before anything that needs it can start. A transition that changes a run locks the
run's row first (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serializes writers),
which keeps the scheduling of one run consistent when several workers finish stages at once.

Workers claim stages with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL) and hold them with a lease that
heartbeats renew; a stage whose lease expired is claimed again by anyone. Completions are fenced
by ``(lease_owner, claims)``: a worker that lost its lease cannot overwrite the new owner's work.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
from sqlalchemy import Text, and_, bindparam, func, or_, select, tuple_, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from writgate import db
from writgate.errors import StoreError, WritgateError
from writgate.ids import new_id
from writgate.ledger import Ledger

from .context import UpstreamStage
from .durations import format_duration
from .errors import IdempotencyKeyReused, PipelineRunNotFound, TemplateError
from .inputs import resolve_inputs
from .records import (
    ACTIVE_RUN_STATUSES,
    TERMINAL_STAGE_STATUSES,
    Claim,
    PipelineRun,
    StageRun,
    utc,
)
from .spec import Pipeline
from .tables import pipeline_runs as runs_t
from .tables import pipeline_stage_runs as stages_t
from .templates import allowed_env, evaluate_condition, render_value

__all__ = ["NOTIFY_CHANNEL", "PipelineStore"]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "writgate_pipelines"
_NOTES = "writgate_pipeline_notes"
_EVENTS = "writgate_pipeline_events"
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@dataclass
class _RunState:
    """The locked row of a run, as the scheduler needs it."""

    id: str
    org_id: str
    status: str
    pipeline: Pipeline
    inputs: dict[str, Any]
    concurrency_group: str | None
    cancel_requested: bool
    base_dir: str | None = None
    # the stage states read with the run (consumed by the next _advance)
    states: dict[str, _StageState] | None = None


@dataclass
class _Takeover:
    """A worker's offer to start, in the same transaction, stages that become ready."""

    worker_id: str
    lease_seconds: float
    limit: int
    claimed: list[Claim] = field(default_factory=list)


@dataclass
class _StageState:
    status: str
    kind: str
    attempt: int
    # the outputs (a mapping), or their JSON text as read: decoded on first use
    raw_outputs: Any = None

    @property
    def outputs(self) -> dict[str, Any] | None:
        if isinstance(self.raw_outputs, str):
            self.raw_outputs = json.loads(self.raw_outputs)
        value: dict[str, Any] | None = self.raw_outputs
        return value

    @outputs.setter
    def outputs(self, value: dict[str, Any] | None) -> None:
        self.raw_outputs = value


class PipelineStore:
    """Pipeline runs and stage runs in the database; every change is a ledger event too."""

    def __init__(self, *, engine: AsyncEngine, ledger: Ledger, spec_cache_size: int = 512):
        self.engine = engine
        self.ledger = ledger
        self.dialect = db.dialect_of(engine)
        self._specs: dict[str, Pipeline] = {}
        self._spec_cache_size = spec_cache_size
        self._listeners: list[Callable[[set[str]], None]] = []
        self._statements: dict[Any, Any] = {}
        # (run, stage) -> (outputs JSON text, flat outputs) of finished stages: _final_outputs
        self._decoded: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        # id(pipeline) -> (pipeline, ancestors by stage, dependents by stage)
        self._graphs: dict[int, tuple[Pipeline, dict[str, list[str]], dict[str, list[str]]]] = {}

    # -- plumbing --------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[set[str]], None]) -> None:
        """Call ``listener(notes)`` after each commit that queued, cancelled or finished work.

        Notes are ``"ready"``, ``"cancel:<run id>"`` and ``"done:<run id>"``. On PostgreSQL
        the same notes go to ``NOTIFY writgate_pipelines`` for workers in other processes.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[set[str]], None]) -> None:
        """Undo :meth:`add_listener`."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        notes: set[str] = set()
        events: list[tuple[str, str, str, dict[str, Any]]] = []
        async with self.ledger.transaction() as conn:
            conn.info[_NOTES] = notes
            conn.info[_EVENTS] = events
            yield conn
            # the transaction's events, in order: two statements per run, not two per event
            await self.ledger.append_many(conn, events)
            if notes and self.dialect == "postgresql":
                await conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, " ".join(sorted(notes)))))
        if notes:
            for listener in list(self._listeners):
                listener(notes)

    async def _retrying(self, operation: Callable[[], Any]) -> Any:
        """Run ``operation`` (a whole transaction), again on a deadlock/serialization failure."""
        for attempt in range(8):
            try:
                return await operation()
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None)
                if state in _RETRY_SQLSTATES and attempt < 7:
                    await anyio.sleep(0.01 * 2**attempt)
                    continue
                raise StoreError(f"pipeline store failed: {type(exc.orig).__name__}") from exc
            except WritgateError:
                raise
            except (SQLAlchemyError, OSError) as exc:
                raise StoreError(f"pipeline store failed: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    @staticmethod
    def _note(conn: AsyncConnection, note: str) -> None:
        conn.info[_NOTES].add(note)

    def _ancestors(self, pipeline: Pipeline, stage_id: str) -> list[str]:
        """``pipeline.ancestors(stage_id)``, computed once per pipeline object and stage."""
        entry = self._graphs.get(id(pipeline))
        if entry is None or entry[0] is not pipeline:
            if len(self._graphs) >= self._spec_cache_size:
                self._graphs.pop(next(iter(self._graphs)))
            entry = self._graphs[id(pipeline)] = (pipeline, {}, {})
        found = entry[1].get(stage_id)
        if found is None:
            found = entry[1][stage_id] = pipeline.ancestors(stage_id)
        return found

    def _dependents(self, pipeline: Pipeline, stage_id: str) -> list[str]:
        """``pipeline.dependents(stage_id)``, computed once per pipeline object and stage."""
        self._ancestors(pipeline, stage_id)
        entry = self._graphs[id(pipeline)]
        found = entry[2].get(stage_id)
        if found is None:
            found = entry[2][stage_id] = pipeline.dependents(stage_id)
        return found

    def _pipeline(self, run_id: str, spec: Any) -> Pipeline:
        cached = self._specs.get(run_id)
        if cached is None:
            cached = Pipeline.model_validate(spec)
            if len(self._specs) >= self._spec_cache_size:
                self._specs.pop(next(iter(self._specs)))
            self._specs[run_id] = cached
        return cached

    async def _event(
        self,
        conn: AsyncConnection,
        run: _RunState | str,
        org_id: str | None,
        type: str,
        **data: Any,
    ) -> None:
        """Record an event of the run; it is appended to the ledger when the transaction ends."""
        run_id = run if isinstance(run, str) else run.id
        org = org_id if org_id is not None else (run.org_id if isinstance(run, _RunState) else "")
        conn.info[_EVENTS].append((org, run_id, type, _json_safe(data)))

    async def _lock_run(
        self,
        conn: AsyncConnection,
        run_id: str,
        org_id: str | None = None,
        *,
        with_states: bool = False,
    ) -> _RunState:
        # On PostgreSQL the states are read by a later statement, whose snapshot is taken after
        # the lock is granted: rows joined to a FOR UPDATE row are not re-read after waiting.
        states_here = with_states and self.dialect != "postgresql"
        query = self._lock_statement(states_here, org_id is not None)
        rows = (await conn.execute(query, {"run_id": run_id, "org_id": org_id})).all()
        if not rows:
            raise PipelineRunNotFound(f"no pipeline run {run_id!r}")
        row = rows[0]
        states = (
            {
                r.stage_id: _StageState(
                    status=r.stage_status, kind=r.kind, attempt=r.attempt, raw_outputs=r.outputs
                )
                for r in rows
            }
            if states_here
            else None
        )
        pipeline = self._specs.get(run_id)
        if pipeline is None:
            spec = (
                await conn.execute(select(runs_t.c.spec).where(runs_t.c.id == run_id))
            ).scalar_one()
            pipeline = self._pipeline(run_id, spec)
        return _RunState(
            id=row.id,
            org_id=row.org_id,
            status=row.status,
            pipeline=pipeline,
            inputs=dict(json.loads(row.inputs) if isinstance(row.inputs, str) else row.inputs),
            concurrency_group=row.concurrency_group,
            cancel_requested=bool(row.cancel_requested),
            base_dir=row.base_dir,
            states=states,
        )

    def _lock_statement(self, states_here: bool, by_org: bool) -> Any:
        """The run's row (locked on PostgreSQL), with its stages' states when ``states_here``.

        Built once per variant (building a statement costs more than running it on SQLite);
        JSON columns come back as text on SQLite (asyncpg decodes them itself), decoded once
        (``inputs``) or when used (``outputs``) — both are mappings, never JSON strings.
        """
        key = ("lock", states_here, by_org)
        query = self._statements.get(key)
        if query is not None:
            return query
        columns: list[Any] = [
            runs_t.c.id,
            runs_t.c.org_id,
            runs_t.c.status,
            type_coerce(runs_t.c.inputs, Text).label("inputs"),
            runs_t.c.concurrency_group,
            runs_t.c.cancel_requested,
            runs_t.c.base_dir,
        ]
        if states_here:  # SQLite: one round trip for the run and its stages
            columns += [
                stages_t.c.stage_id,
                stages_t.c.status.label("stage_status"),
                stages_t.c.kind,
                stages_t.c.attempt,
                type_coerce(stages_t.c.outputs, Text).label("outputs"),
            ]
            query = select(*columns).select_from(
                runs_t.join(stages_t, stages_t.c.pipeline_run_id == runs_t.c.id)
            )
        else:
            query = select(*columns)
        query = query.where(runs_t.c.id == bindparam("run_id"))
        if by_org:
            query = query.where(runs_t.c.org_id == bindparam("org_id"))
        if self.dialect == "postgresql":
            query = query.with_for_update(of=runs_t)
        self._statements[key] = query
        return query

    # -- creating runs ---------------------------------------------------------------------------

    async def create_run(
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
        """Check ``pipeline`` and ``inputs``, record a new run and queue its first stages.

        With a concurrency group the run waits (``queued``) while another run of the group is
        active; with ``cancelInProgress`` the active runs of the group are cancelled first.
        A given ``run_id`` that exists already is a ``StoreError`` and changes nothing (the
        trigger dispatcher derives it from the trigger, so a second dispatch cannot add a run).

        With an ``idempotency_key`` the run of ``org_id`` that key already started is returned
        instead (``replayed`` set) when ``fingerprint`` (of the request) matches, and
        :class:`IdempotencyKeyReused` is raised when it does not. The unique index on
        ``(org_id, idempotency_key)`` decides, so concurrent starts with one key make one run.
        """
        pipeline.check()
        values = _json_safe(resolve_inputs(pipeline, inputs))
        group: str | None = None
        if pipeline.concurrency is not None:
            group = str(
                render_value(
                    pipeline.concurrency.group,
                    {"inputs": values, "env": allowed_env()},
                    where="concurrency.group",
                )
            )[:500]
        run_id = run_id or new_id("prun")
        spec = pipeline.to_dict()
        self._specs[run_id] = pipeline

        async def create() -> str | None:
            now = _now()
            async with self._transaction() as conn:
                if group is not None and self.dialect == "postgresql":
                    key = zlib.crc32(f"{org_id}\0{group}".encode()) - 2**31
                    await conn.execute(select(func.pg_advisory_xact_lock(key)))
                insert: Any = runs_t.insert()
                if idempotency_key is not None:
                    # a concurrent start with the key waits here for the first one to commit
                    insert = (
                        (pg_insert if self.dialect == "postgresql" else sqlite_insert)(runs_t)
                        .on_conflict_do_nothing(index_elements=["org_id", "idempotency_key"])
                        .returning(runs_t.c.id)
                    )
                result = await conn.execute(
                    insert.values(
                        id=run_id,
                        org_id=org_id,
                        name=pipeline.name,
                        status="queued",
                        spec=spec,
                        inputs=values,
                        source=source,
                        base_dir=str(base_dir) if base_dir is not None else None,
                        concurrency_group=group,
                        cancel_requested=False,
                        created_at=now,
                        trigger_id=trigger_id,
                        idempotency_key=idempotency_key,
                        request_fingerprint=fingerprint,
                    )
                )
                if idempotency_key is not None and result.first() is None:
                    return await self._replay(conn, org_id, idempotency_key, fingerprint)
                await conn.execute(
                    stages_t.insert(),
                    [
                        {
                            "pipeline_run_id": run_id,
                            "stage_id": stage_id,
                            "org_id": org_id,
                            "kind": stage.uses,
                            "status": "pending",
                            "attempt": 0,
                            "claims": 0,
                        }
                        for stage_id, stage in pipeline.stages.items()
                    ],
                )
                await self._event(
                    conn,
                    run_id,
                    org_id,
                    "pipeline.created",
                    name=pipeline.name,
                    inputs=values,
                    source=source,
                    stages=list(pipeline.stages),
                    concurrencyGroup=group,
                )
                if group is None:
                    await self._start(conn, await self._lock_run(conn, run_id), now)
                    return None
                active = (
                    (
                        await conn.execute(
                            select(runs_t.c.id)
                            .where(
                                runs_t.c.org_id == org_id,
                                runs_t.c.concurrency_group == group,
                                runs_t.c.status.in_(ACTIVE_RUN_STATUSES),
                                runs_t.c.id != run_id,
                            )
                            .order_by(runs_t.c.created_at)
                        )
                    )
                    .scalars()
                    .all()
                )
                assert pipeline.concurrency is not None
                if active and pipeline.concurrency.cancel_in_progress:
                    for older in active:
                        state = await self._lock_run(conn, older)
                        await self._cancel(conn, state, f"superseded by {run_id}", now)
                if not await self._promote(conn, org_id, group, now):
                    await self._event(conn, run_id, org_id, "pipeline.queued", group=group)
                return None

        existing: str | None = await self._retrying(create)
        if existing is not None:
            self._specs.pop(run_id, None)
            return replace(await self.get_run(org_id, existing), replayed=True)
        return await self.get_run(org_id, run_id)

    @staticmethod
    async def _replay(conn: AsyncConnection, org_id: str, key: str, fingerprint: str | None) -> str:
        """The id of the run ``key`` started in ``org_id``, when its request was the same."""
        row = (
            await conn.execute(
                select(runs_t.c.id, runs_t.c.request_fingerprint).where(
                    runs_t.c.org_id == org_id, runs_t.c.idempotency_key == key
                )
            )
        ).one()
        if row.request_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body",
                field="Idempotency-Key",
            )
        return str(row.id)

    async def _start(self, conn: AsyncConnection, run: _RunState, now: datetime) -> None:
        await conn.execute(
            update(runs_t).where(runs_t.c.id == run.id).values(status="running", started_at=now)
        )
        run.status = "running"
        await self._event(conn, run, None, "pipeline.started")
        await self._advance(conn, run, now)

    async def _promote(self, conn: AsyncConnection, org_id: str, group: str, now: datetime) -> bool:
        """Start the oldest queued run of ``group`` when none of it is running."""
        running = (
            await conn.execute(
                select(runs_t.c.id).where(
                    runs_t.c.org_id == org_id,
                    runs_t.c.concurrency_group == group,
                    runs_t.c.status == "running",
                )
            )
        ).first()
        if running is not None:
            return False
        oldest = (
            await conn.execute(
                select(runs_t.c.id)
                .where(
                    runs_t.c.org_id == org_id,
                    runs_t.c.concurrency_group == group,
                    runs_t.c.status == "queued",
                )
                .order_by(runs_t.c.created_at)
                .limit(1)
            )
        ).scalar_one_or_none()
        if oldest is None:
            return False
        await self._start(conn, await self._lock_run(conn, oldest), now)
        return True

    # -- scheduling --------------------------------------------------------------------------------

    async def _stage_states(self, conn: AsyncConnection, run_id: str) -> dict[str, _StageState]:
        query = self._statements.get("states")
        if query is None:
            query = self._statements["states"] = select(
                stages_t.c.stage_id,
                stages_t.c.status,
                stages_t.c.kind,
                stages_t.c.attempt,
                type_coerce(stages_t.c.outputs, Text).label("outputs"),
            ).where(stages_t.c.pipeline_run_id == bindparam("run_id"))
        rows = await conn.execute(query, {"run_id": run_id})
        return {
            row.stage_id: _StageState(
                status=row.status, kind=row.kind, attempt=row.attempt, raw_outputs=row.outputs
            )
            for row in rows
        }

    @staticmethod
    def template_context(
        run_inputs: Mapping[str, Any],
        stages: Mapping[str, tuple[str, str, Mapping[str, Any] | None]],
    ) -> dict[str, Any]:
        """The variables templates see: ``inputs``, ``stages`` (kind, status, outputs), ``env``."""
        return {
            "inputs": dict(run_inputs),
            "stages": {
                sid: {"kind": kind, "status": status, "outputs": dict(outputs or {})}
                for sid, (kind, status, outputs) in stages.items()
            },
            "env": allowed_env(),
        }

    def _decide(
        self, run: _RunState, stage_id: str, states: Mapping[str, _StageState]
    ) -> tuple[bool, str]:
        """Whether ``stage_id`` runs (its ``if:``, default ``success()``) and why it is skipped."""
        pipeline = run.pipeline
        ancestors = self._ancestors(pipeline, stage_id)

        def passed(sid: str) -> bool:
            status = states[sid].status
            return status == "succeeded" or (
                status == "failed" and pipeline.stages[sid].continue_on_error
            )

        def success() -> bool:
            return not run.cancel_requested and all(passed(a) for a in ancestors)

        def failure() -> bool:
            return any(
                states[a].status == "failed" and not pipeline.stages[a].continue_on_error
                for a in ancestors
            )

        functions = {
            "success": success,
            "failure": failure,
            "always": lambda: True,
            "cancelled": lambda: run.cancel_requested,
        }
        condition = pipeline.stages[stage_id].if_
        if condition is None:
            if success():
                return True, ""
            if run.cancel_requested:
                return False, "the pipeline run was cancelled"
            return False, "a stage it needs did not succeed"
        context = self.template_context(
            run.inputs,
            {a: (states[a].kind, states[a].status, states[a].outputs) for a in ancestors},
        )
        if evaluate_condition(condition, context, functions, where=f"stages.{stage_id}.if"):
            return True, ""
        return False, f"its condition is false: {condition}"

    async def _advance(
        self,
        conn: AsyncConnection,
        run: _RunState,
        now: datetime,
        takeover: _Takeover | None = None,
        finished: str | None = None,
    ) -> None:
        """Queue or skip every pending stage whose needs are finished; finish the run when done.

        With ``takeover``, stages that become ready are started for that worker right here (up
        to its limit) instead of being queued: a chain costs one transaction per stage. With
        ``finished`` (the one stage that just reached a final status), only the stages that
        need it are looked at (and, in turn, those of a stage skipped here).
        """
        if run.status != "running":
            return
        states, run.states = run.states, None
        if states is None:
            states = await self._stage_states(conn, run.id)
        pipeline = run.pipeline
        worklist: list[str] = []
        if finished is not None:
            worklist.extend(self._dependents(pipeline, finished))
        changed = True
        while changed or worklist:
            changed = False
            if finished is not None:
                if not worklist:
                    break
                candidates: Iterable[str] = [worklist.pop(0)]
            else:
                candidates = pipeline.stages
            for stage_id in candidates:
                stage = pipeline.stages[stage_id]
                state = states[stage_id]
                if state.status != "pending":
                    continue
                if any(states[n].status not in TERMINAL_STAGE_STATUSES for n in stage.needs):
                    continue
                changed = True
                if finished is not None:
                    worklist.extend(self._dependents(pipeline, stage_id))
                try:
                    runs, reason = self._decide(run, stage_id, states)
                except TemplateError as exc:
                    state.status = "failed"
                    await self._set_stage(
                        conn, run.id, stage_id, status="failed", error=exc.message, finished_at=now
                    )
                    await self._event(
                        conn,
                        run,
                        None,
                        "stage.failed",
                        stage=stage_id,
                        attempt=0,
                        error=exc.message,
                    )
                    continue
                if runs and takeover is not None and len(takeover.claimed) < takeover.limit:
                    state.status, state.attempt = "running", 1
                    await self._set_stage(
                        conn,
                        run.id,
                        stage_id,
                        status="running",
                        attempt=1,
                        claims=1,
                        queued_at=now,
                        started_at=now,
                        heartbeat_at=now,
                        lease_owner=takeover.worker_id,
                        lease_expires_at=now + timedelta(seconds=takeover.lease_seconds),
                    )
                    await self._event(
                        conn,
                        run,
                        None,
                        "stage.started",
                        stage=stage_id,
                        kind=state.kind,
                        attempt=1,
                        worker=takeover.worker_id,
                    )
                    takeover.claimed.append(
                        self._claim_from_states(run, stage_id, states, takeover)
                    )
                elif runs:
                    state.status, state.attempt = "queued", 1
                    await self._set_stage(
                        conn, run.id, stage_id, status="queued", attempt=1, queued_at=now
                    )
                    await self._event(conn, run, None, "stage.queued", stage=stage_id, attempt=1)
                    self._note(conn, "ready")
                else:
                    state.status = "skipped"
                    await self._set_stage(conn, run.id, stage_id, status="skipped", finished_at=now)
                    await self._event(
                        conn, run, None, "stage.skipped", stage=stage_id, reason=reason
                    )
        if all(s.status in TERMINAL_STAGE_STATUSES for s in states.values()):
            await self._finish(conn, run, states, now)

    def _claim_from_states(
        self,
        run: _RunState,
        stage_id: str,
        states: Mapping[str, _StageState],
        takeover: _Takeover,
    ) -> Claim:
        upstream = {
            sid: UpstreamStage(
                stage_id=sid,
                kind=states[sid].kind,
                status=states[sid].status,
                outputs=self._final_outputs(run.id, sid, states[sid]),
            )
            for sid in self._ancestors(run.pipeline, stage_id)
        }
        return Claim(
            pipeline_run_id=run.id,
            org_id=run.org_id,
            stage_id=stage_id,
            kind=states[stage_id].kind,
            attempt=1,
            claims=1,
            worker_id=takeover.worker_id,
            pipeline=run.pipeline,
            inputs=dict(run.inputs),
            base_dir=run.base_dir,
            cancel_requested=run.cancel_requested,
            reclaimed=False,
            upstream=upstream,
        )

    def _final_outputs(self, run_id: str, stage_id: str, state: _StageState) -> dict[str, Any]:
        """A copy of the outputs of a finished stage (an ancestor of a stage being started).

        A finished stage's outputs never change, and every stage of a chain needs those of all
        before it: flat outputs (scalar values: a copy is a deep copy) are decoded once per
        process and text, not once per stage that needs them.
        """
        raw = state.raw_outputs
        if not isinstance(raw, str) or state.status not in TERMINAL_STAGE_STATUSES:
            return dict(state.outputs or {})
        key = (run_id, stage_id)
        hit = self._decoded.get(key)
        if hit is not None and hit[0] == raw:
            return dict(hit[1])
        value = dict(state.outputs or {})
        if all(v is None or isinstance(v, str | int | float | bool) for v in value.values()):
            if len(self._decoded) >= 4096:
                self._decoded.pop(next(iter(self._decoded)))
            self._decoded[key] = (raw, value)
            return dict(value)
        return value

    async def _set_stage(
        self, conn: AsyncConnection, run_id: str, stage_id: str, **values: Any
    ) -> None:
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(w_run=run_id, w_stage=stage_id)
        await conn.execute(self._stage_update(tuple(sorted(values)), held=False), params)

    async def _update_held(self, conn: AsyncConnection, claim: Claim, **values: Any) -> Any:
        """Change the stage of ``claim`` if the claim still holds it (the result's rowcount)."""
        params = {f"v_{k}": v for k, v in values.items()}
        params.update(
            w_run=claim.pipeline_run_id,
            w_stage=claim.stage_id,
            w_owner=claim.worker_id,
            w_claims=claim.claims,
        )
        return await conn.execute(self._stage_update(tuple(sorted(values)), held=True), params)

    def _stage_update(self, keys: tuple[str, ...], held: bool) -> Any:
        """``UPDATE`` of one stage's ``keys``; ``held``: only while the claim holds its lease."""
        statement = self._statements.get(("update", keys, held))
        if statement is None:
            conditions = [
                stages_t.c.pipeline_run_id == bindparam("w_run"),
                stages_t.c.stage_id == bindparam("w_stage"),
            ]
            if held:
                conditions += [
                    stages_t.c.status == "running",
                    stages_t.c.lease_owner == bindparam("w_owner"),
                    stages_t.c.claims == bindparam("w_claims"),
                ]
            statement = (
                update(stages_t).where(*conditions).values({k: bindparam(f"v_{k}") for k in keys})
            )
            self._statements[("update", keys, held)] = statement
        return statement

    async def _finish(
        self,
        conn: AsyncConnection,
        run: _RunState,
        states: Mapping[str, _StageState],
        now: datetime,
    ) -> None:
        failed = [
            sid
            for sid, state in states.items()
            if state.status == "failed" and not run.pipeline.stages[sid].continue_on_error
        ]
        if run.cancel_requested:
            status, error = "cancelled", None
        elif failed:
            status, error = "failed", "failed stage(s): " + ", ".join(failed)
        else:
            status, error = "succeeded", None
        await conn.execute(
            update(runs_t)
            .where(runs_t.c.id == run.id)
            .values(status=status, finished_at=now, error=error)
        )
        run.status = status
        await self._event(
            conn, run, None, "pipeline.finished", status=status, failedStages=failed, error=error
        )
        self._note(conn, f"done:{run.id}")
        if run.concurrency_group is not None:
            await self._promote(conn, run.org_id, run.concurrency_group, now)

    # -- cancelling ----------------------------------------------------------------------------

    async def _cancel(
        self, conn: AsyncConnection, run: _RunState, reason: str, now: datetime
    ) -> None:
        if run.status not in ACTIVE_RUN_STATUSES or run.cancel_requested:
            return
        run.cancel_requested = True
        await conn.execute(
            update(runs_t)
            .where(runs_t.c.id == run.id)
            .values(cancel_requested=True, cancel_reason=reason[:500])
        )
        await self._event(conn, run, None, "pipeline.cancelling", reason=reason)
        if run.status == "queued":
            # Never started: nothing to wind down, every stage is cancelled as it stands.
            await conn.execute(
                update(stages_t)
                .where(stages_t.c.pipeline_run_id == run.id)
                .values(status="cancelled", finished_at=now, error=reason)
            )
            run.status = "running"  # so that _finish records the outcome
            states = await self._stage_states(conn, run.id)
            await self._finish(conn, run, states, now)
            return
        active = (
            (
                await conn.execute(
                    select(stages_t.c.stage_id).where(
                        stages_t.c.pipeline_run_id == run.id,
                        stages_t.c.status.in_(("queued", "running")),
                    )
                )
            )
            .scalars()
            .all()
        )
        for stage_id in active:
            await self._set_stage(
                conn,
                run.id,
                stage_id,
                status="cancelled",
                finished_at=now,
                error=reason,
                lease_owner=None,
                lease_expires_at=None,
            )
            await self._event(conn, run, None, "stage.cancelled", stage=stage_id, reason=reason)
        self._note(conn, f"cancel:{run.id}")
        await self._advance(conn, run, now)

    async def cancel_run(
        self, org_id: str, run_id: str, *, reason: str = "cancelled"
    ) -> PipelineRun:
        """Cancel a run: running stages are cancelled, ``always()``/``cancelled()`` stages run."""

        async def cancel() -> None:
            async with self._transaction() as conn:
                run = await self._lock_run(conn, run_id, org_id)
                await self._cancel(conn, run, reason, _now())

        await self._retrying(cancel)
        return await self.get_run(org_id, run_id)

    # -- claiming and completing stages ------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        *,
        limit: int,
        lease_seconds: float,
        org_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Claim]:
        """Claim up to ``limit`` runnable stages (queued and due, or with an expired lease)."""

        async def claim() -> list[Claim]:
            now = _now()
            query = (
                select(
                    stages_t.c.pipeline_run_id,
                    stages_t.c.stage_id,
                    stages_t.c.org_id,
                    stages_t.c.kind,
                    stages_t.c.status,
                    stages_t.c.attempt,
                    stages_t.c.claims,
                    stages_t.c.lease_owner,
                )
                .join(runs_t, runs_t.c.id == stages_t.c.pipeline_run_id)
                .where(
                    runs_t.c.status == "running",
                    or_(
                        and_(
                            stages_t.c.status == "queued",
                            or_(stages_t.c.not_before.is_(None), stages_t.c.not_before <= now),
                        ),
                        and_(stages_t.c.status == "running", stages_t.c.lease_expires_at < now),
                    ),
                )
                .order_by(stages_t.c.queued_at)
                .limit(limit)
            )
            if org_id is not None:
                query = query.where(stages_t.c.org_id == org_id)
            if run_id is not None:
                query = query.where(stages_t.c.pipeline_run_id == run_id)
            if self.dialect == "postgresql":
                query = query.with_for_update(of=stages_t, skip_locked=True)
            async with self._transaction() as conn:
                rows = (await conn.execute(query)).all()
                if not rows:
                    return []
                lease_until = now + timedelta(seconds=lease_seconds)
                claimed: list[tuple[Any, bool]] = []
                for row in rows:
                    reclaimed = row.status == "running"
                    values: dict[str, Any] = {
                        "status": "running",
                        "lease_owner": worker_id,
                        "lease_expires_at": lease_until,
                        "heartbeat_at": now,
                        "claims": row.claims + 1,
                    }
                    if not reclaimed:
                        values["started_at"] = now
                    await self._set_stage(conn, row.pipeline_run_id, row.stage_id, **values)
                    if reclaimed:
                        await self._event(
                            conn,
                            row.pipeline_run_id,
                            row.org_id,
                            "stage.reclaimed",
                            stage=row.stage_id,
                            attempt=row.attempt,
                            previousWorker=row.lease_owner,
                        )
                    await self._event(
                        conn,
                        row.pipeline_run_id,
                        row.org_id,
                        "stage.started",
                        stage=row.stage_id,
                        kind=row.kind,
                        attempt=row.attempt,
                        worker=worker_id,
                    )
                    claimed.append((row, reclaimed))
                return [
                    await self._claim_record(conn, row, reclaimed, worker_id)
                    for row, reclaimed in claimed
                ]

        result: list[Claim] = await self._retrying(claim)
        return result

    async def _claim_record(
        self, conn: AsyncConnection, row: Row[Any], reclaimed: bool, worker_id: str
    ) -> Claim:
        run = (
            await conn.execute(
                select(runs_t.c.inputs, runs_t.c.base_dir, runs_t.c.cancel_requested).where(
                    runs_t.c.id == row.pipeline_run_id
                )
            )
        ).one()
        pipeline = self._specs.get(row.pipeline_run_id)
        if pipeline is None:
            spec = (
                await conn.execute(select(runs_t.c.spec).where(runs_t.c.id == row.pipeline_run_id))
            ).scalar_one()
            pipeline = self._pipeline(row.pipeline_run_id, spec)
        ancestors = pipeline.ancestors(row.stage_id)
        upstream: dict[str, UpstreamStage] = {}
        if ancestors:
            found = {
                r.stage_id: r
                for r in await conn.execute(
                    select(
                        stages_t.c.stage_id, stages_t.c.kind, stages_t.c.status, stages_t.c.outputs
                    ).where(
                        stages_t.c.pipeline_run_id == row.pipeline_run_id,
                        stages_t.c.stage_id.in_(ancestors),
                    )
                )
            }
            for sid in ancestors:  # nearest first
                r = found[sid]
                upstream[sid] = UpstreamStage(
                    stage_id=sid, kind=r.kind, status=r.status, outputs=dict(r.outputs or {})
                )
        return Claim(
            pipeline_run_id=row.pipeline_run_id,
            org_id=row.org_id,
            stage_id=row.stage_id,
            kind=row.kind,
            attempt=row.attempt,
            claims=row.claims + 1,
            worker_id=worker_id,
            pipeline=pipeline,
            inputs=dict(run.inputs),
            base_dir=run.base_dir,
            cancel_requested=bool(run.cancel_requested),
            reclaimed=reclaimed,
            upstream=upstream,
        )

    async def succeed(self, claim: Claim, outputs: Mapping[str, Any]) -> bool:
        """Record the stage's success and queue what it frees; False when the lease was lost."""
        kept, _ = await self.complete(claim, outputs)
        return kept

    async def complete(
        self,
        claim: Claim,
        outputs: Mapping[str, Any],
        *,
        take_next: int = 0,
        lease_seconds: float = 30.0,
    ) -> tuple[bool, list[Claim]]:
        """Record the stage's success; start up to ``take_next`` freed stages for its worker.

        Returns whether the outcome was kept (False when the lease was lost) and the stages
        started for the worker in the same transaction (the others are queued for anyone).
        """
        values = _json_safe(dict(outputs))

        async def succeed() -> tuple[bool, list[Claim]]:
            now = _now()
            takeover = (
                _Takeover(worker_id=claim.worker_id, lease_seconds=lease_seconds, limit=take_next)
                if take_next > 0
                else None
            )
            async with self._transaction() as conn:
                run = await self._lock_run(conn, claim.pipeline_run_id, with_states=True)
                result = await self._update_held(
                    conn,
                    claim,
                    status="succeeded",
                    outputs=values,
                    error=None,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                if result.rowcount != 1:
                    return False, []
                if run.states is not None:
                    run.states[claim.stage_id].status = "succeeded"
                    run.states[claim.stage_id].outputs = values
                await self._event(
                    conn,
                    run,
                    None,
                    "stage.succeeded",
                    stage=claim.stage_id,
                    attempt=claim.attempt,
                    outputs=values,
                )
                await self._advance(conn, run, now, takeover, finished=claim.stage_id)
                return True, list(takeover.claimed) if takeover else []

        done: tuple[bool, list[Claim]] = await self._retrying(succeed)
        return done

    async def fail(
        self,
        claim: Claim,
        message: str,
        *,
        retryable: bool,
        outputs: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a failed attempt: ``"retrying"``, ``"failed"`` or ``"lost"`` (lease lost)."""
        values = _json_safe(dict(outputs)) if outputs is not None else None
        message = message[:4000]

        async def fail() -> str:
            now = _now()
            async with self._transaction() as conn:
                run = await self._lock_run(conn, claim.pipeline_run_id)
                stage = run.pipeline.stages[claim.stage_id]
                retries = stage.retries
                if (
                    retryable
                    and retries is not None
                    and claim.attempt <= retries.max
                    and not run.cancel_requested
                ):
                    delay = retries.delay(claim.attempt)
                    result = await self._update_held(
                        conn,
                        claim,
                        status="queued",
                        attempt=claim.attempt + 1,
                        error=message,
                        outputs=values,
                        not_before=now + timedelta(seconds=delay),
                        queued_at=now,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                    if result.rowcount != 1:
                        return "lost"
                    await self._event(
                        conn,
                        run,
                        None,
                        "stage.retrying",
                        stage=claim.stage_id,
                        attempt=claim.attempt,
                        error=message,
                        nextAttempt=claim.attempt + 1,
                        retryIn=format_duration(delay),
                    )
                    self._note(conn, "ready")
                    return "retrying"
                result = await self._update_held(
                    conn,
                    claim,
                    status="failed",
                    error=message,
                    outputs=values,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                if result.rowcount != 1:
                    return "lost"
                await self._event(
                    conn,
                    run,
                    None,
                    "stage.failed",
                    stage=claim.stage_id,
                    attempt=claim.attempt,
                    error=message,
                    retryable=retryable,
                    continueOnError=stage.continue_on_error,
                )
                await self._advance(conn, run, now, finished=claim.stage_id)
                return "failed"

        outcome: str = await self._retrying(fail)
        return outcome

    async def release(self, claims: Iterable[Claim], *, reason: str) -> int:
        """Give stages back (a worker stopping): queued again, same attempt, claimable at once."""

        async def release() -> int:
            now = _now()
            count = 0
            async with self._transaction() as conn:
                for claim in claims:
                    result = await self._update_held(
                        conn,
                        claim,
                        status="queued",
                        queued_at=now,
                        not_before=None,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                    if result.rowcount == 1:
                        count += 1
                        await self._event(
                            conn,
                            claim.pipeline_run_id,
                            claim.org_id,
                            "stage.released",
                            stage=claim.stage_id,
                            attempt=claim.attempt,
                            reason=reason,
                        )
                        self._note(conn, "ready")
            return count

        released: int = await self._retrying(release)
        return released

    async def heartbeat(
        self,
        worker_id: str,
        *,
        lease_seconds: float,
        keys: Collection[tuple[str, str]] | None = None,
    ) -> set[tuple[str, str]]:
        """Renew the leases ``worker_id`` holds (only ``keys``, when given); returns those held."""

        async def beat() -> set[tuple[str, str]]:
            now = _now()
            async with self._transaction() as conn:
                statement = update(stages_t).where(
                    stages_t.c.lease_owner == worker_id, stages_t.c.status == "running"
                )
                if keys is not None:
                    # only what the worker really runs: a stage it lost track of must expire
                    statement = statement.where(
                        tuple_(stages_t.c.pipeline_run_id, stages_t.c.stage_id).in_(list(keys))
                    )
                rows = await conn.execute(
                    statement.values(
                        lease_expires_at=now + timedelta(seconds=lease_seconds), heartbeat_at=now
                    ).returning(stages_t.c.pipeline_run_id, stages_t.c.stage_id)
                )
                return {(r.pipeline_run_id, r.stage_id) for r in rows}

        held: set[tuple[str, str]] = await self._retrying(beat)
        return held

    async def progress(self, claim: Claim, message: str, data: Mapping[str, Any]) -> None:
        """Record a ``stage.progress`` event for a claimed stage, while the claim holds it.

        A worker that lost its lease (silent too long, its stage taken over) may still be
        running the stage until it notices: what it reports then is dropped, like its outcome,
        so the ledger never shows a stale attempt's progress, nor anything after
        ``pipeline.finished``.
        """

        async def record() -> None:
            async with self._transaction() as conn:
                held = (
                    await conn.execute(
                        select(stages_t.c.stage_id)
                        .where(
                            stages_t.c.pipeline_run_id == claim.pipeline_run_id,
                            stages_t.c.stage_id == claim.stage_id,
                            stages_t.c.status == "running",
                            stages_t.c.lease_owner == claim.worker_id,
                            stages_t.c.claims == claim.claims,
                        )
                        .with_for_update()  # a takeover waits until this event is in
                    )
                ).first()
                if held is None:
                    return
                await self._event(
                    conn,
                    claim.pipeline_run_id,
                    claim.org_id,
                    "stage.progress",
                    stage=claim.stage_id,
                    attempt=claim.attempt,
                    message=message[:2000],
                    **{k: v for k, v in data.items() if k not in ("stage", "attempt", "message")},
                )

        await self._retrying(record)

    async def expire_leases(
        self,
        owners_dead: Callable[[str], bool],
        *,
        run_id: str | None = None,
        org_id: str | None = None,
    ) -> int:
        """Expire the leases of owners that ``owners_dead`` says are gone (a crashed worker)."""

        async def expire() -> int:
            query = (
                select(stages_t.c.lease_owner)
                .distinct()
                .where(stages_t.c.status == "running", stages_t.c.lease_owner.is_not(None))
            )
            if run_id is not None:
                query = query.where(stages_t.c.pipeline_run_id == run_id)
            if org_id is not None:
                query = query.where(stages_t.c.org_id == org_id)
            async with db.read(self.engine) as conn:
                owners = [o for o in (await conn.execute(query)).scalars() if owners_dead(o)]
            if not owners:
                return 0
            async with self._transaction() as conn:
                statement = (
                    update(stages_t)
                    .where(stages_t.c.status == "running", stages_t.c.lease_owner.in_(owners))
                    .values(lease_expires_at=_now() - timedelta(seconds=1))
                )
                if run_id is not None:
                    statement = statement.where(stages_t.c.pipeline_run_id == run_id)
                if org_id is not None:
                    statement = statement.where(stages_t.c.org_id == org_id)
                result = await conn.execute(statement)
                if result.rowcount:
                    self._note(conn, "ready")
                return int(result.rowcount)

        count: int = await self._retrying(expire)
        return count

    async def next_due(
        self, *, org_id: str | None = None, run_id: str | None = None
    ) -> datetime | None:
        """The earliest moment a stage becomes claimable (a retry's backoff, a lease expiring)."""
        query = select(
            func.min(stages_t.c.not_before).filter(stages_t.c.status == "queued"),
            func.min(stages_t.c.lease_expires_at).filter(stages_t.c.status == "running"),
        )
        if org_id is not None:
            query = query.where(stages_t.c.org_id == org_id)
        if run_id is not None:
            query = query.where(stages_t.c.pipeline_run_id == run_id)
        try:
            async with db.read(self.engine) as conn:
                row = (await conn.execute(query)).one()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"pipeline store failed: {type(exc).__name__}") from exc
        moments = [utc(m) for m in row if m is not None]
        return min((m for m in moments if m is not None), default=None)

    # -- reading -----------------------------------------------------------------------------------

    async def get_run(self, org_id: str, run_id: str) -> PipelineRun:
        """The run ``run_id`` of ``org_id`` with its stages (``PipelineRunNotFound`` otherwise)."""
        try:
            async with db.read(self.engine) as conn:
                row = (
                    await conn.execute(
                        select(runs_t).where(runs_t.c.id == run_id, runs_t.c.org_id == org_id)
                    )
                ).one_or_none()
                if row is None:
                    raise PipelineRunNotFound(f"no pipeline run {run_id!r}")
                stage_rows = (
                    await conn.execute(select(stages_t).where(stages_t.c.pipeline_run_id == run_id))
                ).all()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"pipeline store failed: {type(exc).__name__}") from exc
        pipeline = self._pipeline(run_id, row.spec)
        by_id = {r.stage_id: _stage_record(r) for r in stage_rows}
        return _run_record(row, pipeline, tuple(by_id[s] for s in pipeline.stages if s in by_id))

    async def run_status(self, run_id: str) -> str | None:
        """The status of ``run_id`` (any org), or ``None`` when there is no such run."""
        try:
            async with db.read(self.engine) as conn:
                value = (
                    await conn.execute(select(runs_t.c.status).where(runs_t.c.id == run_id))
                ).scalar_one_or_none()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"pipeline store failed: {type(exc).__name__}") from exc
        return str(value) if value is not None else None

    async def list_runs(
        self,
        org_id: str,
        *,
        status: Collection[str] | None = None,
        name: str | None = None,
        limit: int = 50,
    ) -> list[PipelineRun]:
        """The newest runs of ``org_id`` (without their stages), newest first."""
        query = select(runs_t).where(runs_t.c.org_id == org_id)
        if status:
            query = query.where(runs_t.c.status.in_(list(status)))
        if name:
            query = query.where(runs_t.c.name == name)
        query = query.order_by(runs_t.c.created_at.desc(), runs_t.c.id.desc()).limit(limit)
        try:
            async with db.read(self.engine) as conn:
                rows = (await conn.execute(query)).all()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"pipeline store failed: {type(exc).__name__}") from exc
        return [_run_record(row, self._pipeline(row.id, row.spec), ()) for row in rows]


def _stage_record(row: Row[Any]) -> StageRun:
    return StageRun(
        pipeline_run_id=row.pipeline_run_id,
        stage_id=row.stage_id,
        kind=row.kind,
        status=row.status,
        attempt=row.attempt,
        claims=row.claims,
        outputs=row.outputs,
        error=row.error,
        lease_owner=row.lease_owner,
        lease_expires_at=utc(row.lease_expires_at),
        heartbeat_at=utc(row.heartbeat_at),
        not_before=utc(row.not_before),
        queued_at=utc(row.queued_at),
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
    )


def _run_record(row: Row[Any], pipeline: Pipeline, stages: tuple[StageRun, ...]) -> PipelineRun:
    created = utc(row.created_at)
    assert created is not None
    return PipelineRun(
        id=row.id,
        org_id=row.org_id,
        name=row.name,
        status=row.status,
        pipeline=pipeline,
        inputs=dict(row.inputs),
        source=row.source,
        base_dir=row.base_dir,
        concurrency_group=row.concurrency_group,
        cancel_requested=bool(row.cancel_requested),
        cancel_reason=row.cancel_reason,
        error=row.error,
        created_at=created,
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
        stages=stages,
        trigger_id=row.trigger_id,
    )
