"""Ledger append hooks run inside the appender's transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from writgate import db
from writgate.app.database import Database
from writgate.ledger import Event

pytestmark = pytest.mark.anyio

_meta = MetaData()
_seen = Table(
    "hook_seen",
    _meta,
    Column("subject_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("type", String(64)),
)


async def _rows(database: Database) -> list[tuple[str, int, str]]:
    async with db.read(database.engine) as conn:
        rows = (await conn.execute(select(_seen).order_by(_seen.c.seq))).all()
    return [(r.subject_id, r.seq, r.type) for r in rows]


@pytest.fixture
async def seen_table(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.run_sync(_meta.create_all)


@pytest.mark.usefixtures("seen_table")
async def test_hook_writes_commit_and_roll_back_with_the_event(database: Database) -> None:
    ledger = database.ledger
    calls: list[tuple[str, Event]] = []

    async def record(conn: AsyncConnection, org_id: str, event: Event) -> None:
        calls.append((org_id, event))
        await conn.execute(
            _seen.insert().values(subject_id=event.subject_id, seq=event.seq, type=event.type)
        )

    ledger.add_append_hook(record)
    ledger.add_append_hook(record)  # idempotent: still one call per append
    async with ledger.transaction() as conn:
        await ledger.append(conn, org_id="o", subject_id="s", type="a", data={"x": 1})
    with pytest.raises(RuntimeError):
        async with ledger.transaction() as conn:
            await ledger.append(conn, org_id="o", subject_id="s", type="lost")
            raise RuntimeError("the caller fails after appending")
    assert await _rows(database) == [("s", 1, "a")]
    assert [(org, e.type, e.seq, dict(e.data)) for org, e in calls] == [
        ("o", "a", 1, {"x": 1}),
        ("o", "lost", 2, {}),
    ]
    assert [e.type for e in await ledger.read("s", org_id="o")] == ["a"]


@pytest.mark.usefixtures("seen_table")
async def test_a_failing_hook_rolls_back_the_whole_transaction(database: Database) -> None:
    ledger = database.ledger

    async def refuse(conn: AsyncConnection, org_id: str, event: Event) -> None:
        if event.type == "bad":
            raise ValueError("hook refused")

    ledger.add_append_hook(refuse)
    with pytest.raises(ValueError, match="hook refused"):
        async with ledger.transaction() as conn:
            await conn.execute(_seen.insert().values(subject_id="state", seq=1, type="change"))
            await ledger.append(conn, org_id="o", subject_id="s", type="bad")
    assert await _rows(database) == []  # the caller's own state change is gone too
    assert await ledger.read("s", org_id="o") == []
    async with ledger.transaction() as conn:
        event = await ledger.append(conn, org_id="o", subject_id="s", type="good")
    assert event.seq == 1  # the failed append left no gap
