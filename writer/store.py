"""Persistence of runs: idempotent create, lifecycle transitions with their ledger events, queries.

Every state change and the event that reports it are written in one transaction. Idempotency is
enforced by the database (the primary key of ``writer_idempotency_keys``), so it holds across
server processes: concurrent identical creates wait on the key row and then replay the winner.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from sqlalchemy import and_, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from writgate import db
from writgate.errors import InputError
from writgate.ids import new_id
from writgate.ledger import Event, Ledger

from .catalog import default_driver
from .errors import IdempotencyKeyReused, RunNotFound
from .intent import classify_intent
from .lifecycle import TERMINAL, Lifecycle, check_transition, lifecycle_fields
from .models import CreateRunRequest, Run
from .tables import idempotency_keys, run_labels, runs

__all__ = ["RunFilters", "RunRecord", "RunStore", "fingerprint", "label_value"]


def fingerprint(body: Mapping[str, Any]) -> str:
    """SHA-256 of the RFC 8785 canonical JSON of a request body."""
    return hashlib.sha256(rfc8785.dumps(dict(body))).hexdigest()


def label_value(value: Any) -> str:
    """How a metadata value is stored for filtering (strings as they are, others as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class RunRecord:
    """A run as stored."""

    id: str
    org_id: str
    repository: str
    title: str
    lifecycle: Lifecycle
    request: dict[str, Any]
    intent: dict[str, Any]
    usage: dict[str, Any]
    result: dict[str, Any]
    turns: list[dict[str, Any]]
    failure: dict[str, Any] | None
    parent_run_id: str | None
    chain: list[str]
    sandbox_id: str | None
    session_expires_at: datetime | None
    owner: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> RunRecord:
        """Build from a ``writer_runs`` row."""
        return cls(
            id=row.id,
            org_id=row.org_id,
            repository=row.repository,
            title=row.title,
            lifecycle=Lifecycle(row.lifecycle),
            request=row.request,
            intent=row.intent,
            usage=row.usage,
            result=row.result,
            turns=list(row.turns),
            failure=row.failure,
            parent_run_id=row.parent_run_id,
            chain=list(row.chain),
            sandbox_id=row.sandbox_id,
            session_expires_at=_utc(row.session_expires_at),
            owner=row.owner,
            created_at=_utc(row.created_at) or _now(),
            updated_at=_utc(row.updated_at) or _now(),
            started_at=_utc(row.started_at),
            finished_at=_utc(row.finished_at),
        )

    @property
    def spec(self) -> CreateRunRequest:
        """The create request this run was made from."""
        return CreateRunRequest.model_validate(self.request)

    @property
    def awaiting(self) -> bool:
        """Whether the run waits, warm, for a follow-up."""
        return self.lifecycle is Lifecycle.AWAITING_FOLLOW_UP

    @property
    def terminal(self) -> bool:
        """Whether the run has ended."""
        return self.lifecycle in TERMINAL

    def summary(self) -> dict[str, Any]:
        """The run fields that every run event and webhook payload carries."""
        return {
            "runId": self.id,
            "repository": self.repository,
            "title": self.title,
            "tags": self.request.get("tags", []),
            "metadata": self.request.get("metadata", {}),
            "intent": self.intent.get("label"),
            "parentRunId": self.parent_run_id,
            **lifecycle_fields(self.lifecycle),
            "failure": self.failure,
        }

    def to_model(self, *, created: bool | None = None) -> Run:
        """The full API representation."""
        request = self.request
        return Run.model_validate(
            {
                "id": self.id,
                "created": created,
                **lifecycle_fields(self.lifecycle),
                "failure": self.failure,
                "session": {
                    "keepWarmSeconds": request["session"]["keepWarmSeconds"],
                    "sandboxId": self.sandbox_id,
                    "expiresAt": self.session_expires_at,
                },
                "updatedAt": self.updated_at,
                "repository": self.repository,
                "title": self.title,
                "tags": request["tags"],
                "metadata": request["metadata"],
                "prompt": request["prompt"],
                "modelId": request.get("modelId"),
                # No agent in the request: the catalog's default driver for the model ran it.
                "agent": request["agent"] or {"driver": default_driver(request.get("modelId"))},
                "billing": request["billing"],
                "publish": request["publish"],
                "validationMode": request["validationMode"],
                "safety": request["safety"],
                "baseRef": request.get("baseRef"),
                "intent": self.intent,
                "usage": self.usage,
                "turns": self.turns,
                "result": self.result,
                "parentRunId": self.parent_run_id,
                "chain": self.chain,
                "createdAt": self.created_at,
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
            }
        )


@dataclass
class RunFilters:
    """Filters of ``GET /runs``."""

    tags: Sequence[str] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    lifecycle: Sequence[str] = ()
    repository: str | None = None
    intent: str | None = None
    parent_run_id: str | None = None


def _encode_cursor(run_id: str) -> str:
    return base64.urlsafe_b64encode(run_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError("cursor is not valid", field="cursor", code="invalid_cursor") from exc
    if not value.startswith("run_"):
        raise InputError("cursor is not valid", field="cursor", code="invalid_cursor")
    return value


class RunStore:
    """Runs in the database, with their events in the ledger."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: Ledger,
        idempotency_ttl: timedelta = timedelta(hours=24),
    ):
        self.engine = engine
        self.ledger = ledger
        self.idempotency_ttl = idempotency_ttl

    # -- create -----------------------------------------------------------------------------

    async def create(
        self,
        org_id: str,
        request: CreateRunRequest,
        *,
        idempotency_key: str | None = None,
        parent: RunRecord | None = None,
        extra_result: Mapping[str, Any] | None = None,
    ) -> tuple[RunRecord, bool]:
        """Store a new queued run, or return the run an idempotency key already made.

        Returns ``(run, created)``. The same key with another body raises
        :class:`IdempotencyKeyReused`.
        """
        body = request.canonical()
        print_ = fingerprint(body)
        async with self.ledger.transaction() as conn:
            if idempotency_key is not None:
                existing = await self._claim_key(conn, org_id, idempotency_key, print_)
                if existing is not None:
                    return existing, False
            record = await self._insert(conn, org_id, request, body, parent, extra_result)
            if idempotency_key is not None:
                await conn.execute(
                    update(idempotency_keys)
                    .where(
                        idempotency_keys.c.org_id == org_id,
                        idempotency_keys.c.key == idempotency_key,
                    )
                    .values(run_id=record.id)
                )
        return record, True

    async def _claim_key(
        self, conn: AsyncConnection, org_id: str, key: str, print_: str
    ) -> RunRecord | None:
        now = _now()
        await conn.execute(
            idempotency_keys.delete().where(
                idempotency_keys.c.org_id == org_id,
                idempotency_keys.c.key == key,
                idempotency_keys.c.expires_at < now,
            )
        )
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        inserted = await conn.execute(
            dialect.insert(idempotency_keys)
            .values(
                org_id=org_id,
                key=key,
                fingerprint=print_,
                run_id="",
                created_at=now,
                expires_at=now + self.idempotency_ttl,
            )
            .on_conflict_do_nothing(index_elements=["org_id", "key"])
            .returning(idempotency_keys.c.key)
        )
        if inserted.first() is not None:
            return None
        row = (
            await conn.execute(
                select(idempotency_keys).where(
                    idempotency_keys.c.org_id == org_id, idempotency_keys.c.key == key
                )
            )
        ).one()
        if row.fingerprint != print_:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body",
                field="Idempotency-Key",
            )
        return await self._get(conn, org_id, row.run_id)

    async def _insert(
        self,
        conn: AsyncConnection,
        org_id: str,
        request: CreateRunRequest,
        body: dict[str, Any],
        parent: RunRecord | None,
        extra_result: Mapping[str, Any] | None,
    ) -> RunRecord:
        now = _now()
        run_id = new_id("run")
        title = request.title or ""
        intent = classify_intent(title, request.prompt).model_dump(mode="json")
        chain = [*parent.chain, parent.id] if parent else []
        values: dict[str, Any] = {
            "id": run_id,
            "org_id": org_id,
            "repository": request.repository,
            "title": title,
            "lifecycle": Lifecycle.QUEUED.value,
            "intent_label": intent["label"],
            "request": body,
            "intent": intent,
            "usage": {
                "turns": 0,
                "credits": 0.0,
                "inputTokens": 0,
                "outputTokens": 0,
                "reported": True,
            },
            "result": dict(extra_result or {}),
            "turns": [],
            "failure": None,
            "parent_run_id": parent.id if parent else None,
            "chain": chain,
            "sandbox_id": None,
            "session_expires_at": None,
            "owner": None,
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "finished_at": None,
        }
        await conn.execute(runs.insert().values(**values))
        labels = [
            {
                "run_id": run_id,
                "org_id": org_id,
                "kind": "tag",
                "key": tag,
                "value": "",
                "position": i,
            }
            for i, tag in enumerate(request.tags)
        ] + [
            {
                "run_id": run_id,
                "org_id": org_id,
                "kind": "meta",
                "key": key,
                "value": label_value(value)[:1024],
                "position": i,
            }
            for i, (key, value) in enumerate(request.metadata.items())
        ]
        if labels:
            await conn.execute(run_labels.insert(), labels)
        record = RunRecord(
            **{k: v for k, v in values.items() if k not in ("intent_label", "lifecycle")},
            lifecycle=Lifecycle.QUEUED,
        )
        await self.ledger.append(
            conn, org_id=org_id, subject_id=run_id, type="run.queued", data=record.summary()
        )
        return record

    # -- read -------------------------------------------------------------------------------

    async def _get(
        self, conn: AsyncConnection, org_id: str, run_id: str, *, lock: bool = False
    ) -> RunRecord:
        query = select(runs).where(runs.c.id == run_id, runs.c.org_id == org_id)
        if lock:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise RunNotFound(f"run {run_id} was not found", run_id=run_id)
        return RunRecord.from_row(row)

    async def get(self, org_id: str, run_id: str) -> RunRecord:
        """The run ``run_id`` of ``org_id`` (``RunNotFound`` otherwise)."""
        async with db.read(self.engine) as conn:
            return await self._get(conn, org_id, run_id)

    async def list_runs(
        self, org_id: str, filters: RunFilters, *, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[RunRecord], str | None]:
        """A page of runs, newest first, and the cursor of the next page."""
        conditions = [runs.c.org_id == org_id]
        for tag in filters.tags:
            conditions.append(
                exists().where(
                    run_labels.c.run_id == runs.c.id,
                    run_labels.c.kind == "tag",
                    run_labels.c.key == tag,
                )
            )
        for key, value in filters.metadata.items():
            conditions.append(
                exists().where(
                    run_labels.c.run_id == runs.c.id,
                    run_labels.c.kind == "meta",
                    run_labels.c.key == key,
                    run_labels.c.value == value,
                )
            )
        if filters.lifecycle:
            conditions.append(runs.c.lifecycle.in_(list(filters.lifecycle)))
        if filters.repository:
            conditions.append(runs.c.repository == filters.repository)
        if filters.intent:
            conditions.append(runs.c.intent_label == filters.intent)
        if filters.parent_run_id:
            conditions.append(runs.c.parent_run_id == filters.parent_run_id)
        if cursor:
            conditions.append(runs.c.id < _decode_cursor(cursor))
        query = select(runs).where(and_(*conditions)).order_by(runs.c.id.desc()).limit(limit + 1)
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        records = [RunRecord.from_row(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(records[-1].id) if len(rows) > limit and records else None
        return records, next_cursor

    async def ids_in(self, org_id: str, lifecycles: Sequence[Lifecycle]) -> list[str]:
        """Ids of the runs in any of ``lifecycles`` (of every org when ``org_id`` is ``*``)."""
        query = select(runs.c.id).where(runs.c.lifecycle.in_([s.value for s in lifecycles]))
        if org_id != "*":
            query = query.where(runs.c.org_id == org_id)
        async with db.read(self.engine) as conn:
            return [row.id for row in (await conn.execute(query.order_by(runs.c.id))).all()]

    async def org_of(self, run_id: str) -> str:
        """The org a run belongs to (for internal workers only)."""
        async with db.read(self.engine) as conn:
            value = (
                await conn.execute(select(runs.c.org_id).where(runs.c.id == run_id))
            ).scalar_one_or_none()
        if value is None:
            raise RunNotFound(f"run {run_id} was not found")
        return str(value)

    # -- change -----------------------------------------------------------------------------

    async def transition(
        self,
        org_id: str,
        run_id: str,
        target: Lifecycle,
        *,
        expect: Sequence[Lifecycle] | None = None,
        event_data: Mapping[str, Any] | None = None,
        **changes: Any,
    ) -> RunRecord:
        """Move the run to ``target`` (checked against the table) and record ``run.<target>``.

        ``expect`` narrows the states the run may be in; ``changes`` are column updates made in
        the same transaction.
        """
        async with self.ledger.transaction() as conn:
            record = await self._get(conn, org_id, run_id, lock=True)
            if expect is not None and record.lifecycle not in expect:
                from .errors import IllegalTransition

                raise IllegalTransition(
                    f"run {run_id} is {record.lifecycle.value}, not "
                    + " or ".join(s.value for s in expect),
                    current=record.lifecycle.value,
                )
            check_transition(record.lifecycle, target)
            now = _now()
            values: dict[str, Any] = {"lifecycle": target.value, "updated_at": now, **changes}
            if target is Lifecycle.RUNNING and record.started_at is None:
                values.setdefault("started_at", now)
            if target in TERMINAL:
                values.setdefault("finished_at", now)
                values.setdefault("session_expires_at", None)
            await conn.execute(
                update(runs).where(runs.c.id == run_id, runs.c.org_id == org_id).values(**values)
            )
            record = await self._get(conn, org_id, run_id)
            await self.ledger.append(
                conn,
                org_id=org_id,
                subject_id=run_id,
                type=f"run.{target.value}",
                data={**record.summary(), **(event_data or {})},
            )
        return record

    async def update(
        self,
        org_id: str,
        run_id: str,
        *,
        event: tuple[str, Mapping[str, Any]] | None = None,
        **changes: Any,
    ) -> RunRecord:
        """Update columns of a run (not its lifecycle) and optionally record one event."""
        async with self.ledger.transaction() as conn:
            await conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.org_id == org_id)
                .values(updated_at=_now(), **changes)
            )
            record = await self._get(conn, org_id, run_id)
            if event is not None:
                await self.ledger.append(
                    conn, org_id=org_id, subject_id=run_id, type=event[0], data=event[1]
                )
        return record

    async def record(self, org_id: str, run_id: str, type: str, data: Mapping[str, Any]) -> Event:
        """Append one event to the run's ledger."""
        async with self.ledger.transaction() as conn:
            return await self.ledger.append(
                conn, org_id=org_id, subject_id=run_id, type=type, data=data
            )
