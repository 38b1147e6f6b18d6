"""The append-only event ledger: ``(subject_id, seq, type, at, data)``.

``seq`` is strictly increasing per subject with no gap. It comes from a per-subject counter row
bumped with ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` inside the caller's transaction: on
PostgreSQL the row lock serializes concurrent appenders, on SQLite the write lock does, and a
rolled-back transaction takes its counter bump with it, so no gap can appear.

Events are written in the same transaction as the state change they report: open the transaction
with :meth:`Ledger.transaction`, change state and call :meth:`Ledger.append` on that connection.
Live followers in this process are woken after the commit; followers in other processes notice
new events by polling (``poll_interval``).

Append hooks (:meth:`Ledger.add_append_hook`) run inside the appender's transaction right after
the event row is inserted, so whatever they write (the webhook outbox) commits or rolls back
with the event. A hook that raises fails the ``append`` and rolls back the whole transaction:
the state change, the event and every other hook's writes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Integer, String, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import db

__all__ = ["AppendHook", "Event", "Ledger", "metadata"]

metadata = db.new_metadata()

ledger_heads = Table(
    "ledger_heads",
    metadata,
    Column("subject_id", String(64), primary_key=True),
    Column("last_seq", Integer, nullable=False),
)

ledger_events = Table(
    "ledger_events",
    metadata,
    Column("subject_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("type", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_ledger_events_org_id_at", "org_id", "at"),
)

_PENDING = "writgate_ledger_pending"
_INSERT_EVENT = ledger_events.insert()
_BUMPS: dict[str, Any] = {}


def _bump_statement(dialect_name: str) -> Any:
    """``last_seq += n`` for a subject (its row created at ``n``), returning the new value.

    Built once per dialect: building a statement costs more than running it on SQLite.
    """
    statement = _BUMPS.get(dialect_name)
    if statement is None:
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        insert = dialect.insert(ledger_heads).values(
            subject_id=bindparam("subject"), last_seq=bindparam("n")
        )
        statement = _BUMPS[dialect_name] = insert.on_conflict_do_update(
            index_elements=[ledger_heads.c.subject_id],
            set_={"last_seq": ledger_heads.c.last_seq + insert.excluded.last_seq},
        ).returning(ledger_heads.c.last_seq)
    return statement


@dataclass(frozen=True)
class Event:
    """One ledger entry."""

    subject_id: str
    seq: int
    type: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape used by the HTTP API and the CLI."""
        return {
            "subjectId": self.subject_id,
            "seq": self.seq,
            "type": self.type,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "data": dict(self.data),
        }


AppendHook = Callable[[AsyncConnection, str, Event], Awaitable[None]]
"""``hook(conn, org_id, event)``: runs in the appender's transaction after the event is inserted."""


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Ledger:
    """Appends and reads events; wakes in-process followers after each commit."""

    def __init__(self, *, engine: AsyncEngine, poll_interval: float = 1.0):
        self.engine = engine
        self.poll_interval = poll_interval
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._feeds: dict[tuple[int, str, str], _Feed] = {}
        self._append_hooks: list[AppendHook] = []

    def add_append_hook(self, hook: AppendHook) -> None:
        """Run ``hook(conn, org_id, event)`` after every append, inside the same transaction.

        A hook that raises makes ``append`` raise, which rolls back the caller's transaction.
        Adding the same hook twice has no effect.
        """
        if hook not in self._append_hooks:
            self._append_hooks.append(hook)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; events appended in it are announced after it commits."""
        async with db.write(self.engine) as conn:
            conn.info[_PENDING] = set()
            yield conn
            pending: set[str] = conn.info.pop(_PENDING, set())
        self.notify(*pending)

    async def append(
        self,
        conn: AsyncConnection,
        *,
        org_id: str,
        subject_id: str,
        type: str,
        data: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Event:
        """Append one event in ``conn``'s transaction and return it with its ``seq``."""
        (event,) = await self.append_many(conn, [(org_id, subject_id, type, data)], at=at)
        return event

    async def append_many(
        self,
        conn: AsyncConnection,
        entries: Sequence[tuple[str, str, str, Mapping[str, Any] | None]],
        *,
        at: datetime | None = None,
    ) -> list[Event]:
        """Append ``(org_id, subject_id, type, data)`` entries in order, in ``conn``'s transaction.

        The same as one :meth:`append` per entry (same seqs, same hooks, same order), in two
        statements per subject instead of two per event.
        """
        if not entries:
            return []
        when = at or datetime.now(UTC)
        counts: dict[str, int] = {}
        for _, subject_id, _, _ in entries:
            counts[subject_id] = counts.get(subject_id, 0) + 1
        bump = _bump_statement(conn.dialect.name)
        next_seq: dict[str, int] = {}
        for subject_id, count in counts.items():
            last = (await conn.execute(bump, {"subject": subject_id, "n": count})).scalar_one()
            next_seq[subject_id] = last - count + 1
        events: list[tuple[str, Event]] = []
        rows: list[dict[str, Any]] = []
        for org_id, subject_id, type, data in entries:
            seq = next_seq[subject_id]
            next_seq[subject_id] = seq + 1
            payload = dict(data or {})
            rows.append(
                {
                    "subject_id": subject_id,
                    "seq": seq,
                    "org_id": org_id,
                    "type": type,
                    "at": when,
                    "data": payload,
                }
            )
            event = Event(subject_id=subject_id, seq=seq, type=type, at=when, data=payload)
            events.append((org_id, event))
        await conn.execute(_INSERT_EVENT, rows[0] if len(rows) == 1 else rows)
        pending = conn.info.get(_PENDING)
        if pending is not None:
            pending.update(counts)
        for org_id, event in events:
            for hook in self._append_hooks:
                await hook(conn, org_id, event)
        return [event for _, event in events]

    async def read(
        self, subject_id: str, *, org_id: str, after: int = 0, limit: int = 1000
    ) -> list[Event]:
        """Events of ``subject_id`` with ``seq > after``, oldest first."""
        query = (
            select(ledger_events)
            .where(
                ledger_events.c.subject_id == subject_id,
                ledger_events.c.org_id == org_id,
                ledger_events.c.seq > after,
            )
            .order_by(ledger_events.c.seq)
            .limit(limit)
        )
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [
            Event(
                subject_id=row.subject_id,
                seq=row.seq,
                type=row.type,
                at=_utc(row.at),
                data=row.data,
            )
            for row in rows
        ]

    async def last_seq(self, subject_id: str) -> int:
        """The newest ``seq`` of ``subject_id`` (0 when it has none)."""
        query = select(ledger_heads.c.last_seq).where(ledger_heads.c.subject_id == subject_id)
        async with db.read(self.engine) as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return int(value or 0)

    def notify(self, *subject_ids: str) -> None:
        """Wake the followers of ``subject_ids`` (called after commit; safe from any thread)."""
        for subject_id in subject_ids:
            for loop, flag in list(self._waiters.get(subject_id, ())):
                if loop.is_closed():
                    continue
                loop.call_soon_threadsafe(flag.set)

    async def follow(self, subject_id: str, *, org_id: str, after: int = 0) -> AsyncIterator[Event]:
        """Every event after ``after``, then each new one as it is committed; never ends."""
        async for event in self.subscribe(subject_id, org_id=org_id, after=after, heartbeat=3600):
            if event is not None:
                yield event

    async def subscribe(
        self, subject_id: str, *, org_id: str, after: int = 0, heartbeat: float = 15.0
    ) -> AsyncIterator[Event | None]:
        """Like :meth:`follow`, but yields ``None`` after ``heartbeat`` quiet seconds.

        Subscribers of one subject in one event loop share a feed: each wake-up costs one
        database read however many subscribers there are; a subscriber that is behind the
        feed's buffer catches up from the database first.
        """
        loop = asyncio.get_running_loop()
        key = (id(loop), subject_id, org_id)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed(self, subject_id, org_id, loop)
            feed.last = await self.last_seq(subject_id)
        feed.subscribers += 1
        try:
            position = after
            while True:
                events = feed.after(position)
                if events is None:
                    events = await self.read(subject_id, org_id=org_id, after=position)
                if events:
                    for event in events:
                        position = event.seq
                        yield event
                    continue
                if not await feed.wait(position, heartbeat):
                    yield None
        finally:
            feed.subscribers -= 1
            if feed.subscribers == 0:
                feed.close()
                self._feeds.pop(key, None)


class _Feed:
    """The shared, buffered view of one subject's new events for the subscribers of one loop."""

    def __init__(
        self, ledger: Ledger, subject_id: str, org_id: str, loop: asyncio.AbstractEventLoop
    ):
        self.ledger = ledger
        self.subject_id = subject_id
        self.org_id = org_id
        self.buffer: deque[Event] = deque(maxlen=4096)
        self.last = 0
        self.subscribers = 0
        self.generation = 0
        self.lock = asyncio.Lock()
        self.flag = asyncio.Event()
        self.entry = (loop, self.flag)
        ledger._waiters.setdefault(subject_id, set()).add(self.entry)

    def close(self) -> None:
        waiters = self.ledger._waiters.get(self.subject_id)
        if waiters is not None:
            waiters.discard(self.entry)
            if not waiters:
                self.ledger._waiters.pop(self.subject_id, None)

    def after(self, position: int) -> list[Event] | None:
        """Buffered events after ``position``; ``None`` when the buffer does not reach back."""
        start = self.buffer[0].seq if self.buffer else self.last + 1
        if position + 1 < start or position > self.last:
            return None
        return [event for event in self.buffer if event.seq > position]

    async def refresh(self, seen_generation: int) -> None:
        async with self.lock:
            if self.generation != seen_generation:
                return  # another subscriber fetched while this one waited for the lock
            self.flag.clear()
            events = await self.ledger.read(self.subject_id, org_id=self.org_id, after=self.last)
            if events:
                self.buffer.extend(events)
                self.last = events[-1].seq
            self.generation += 1

    async def wait(self, position: int, timeout: float) -> bool:
        """Wait up to ``timeout`` for the feed to pass ``position``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.last <= position:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            generation = self.generation
            try:
                await asyncio.wait_for(
                    self.flag.wait(), timeout=min(remaining, self.ledger.poll_interval)
                )
            except TimeoutError:
                pass
            await self.refresh(generation)
        return True
