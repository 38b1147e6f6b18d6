from __future__ import annotations

import anyio
import pytest

from writgate.app.database import Database, all_metadata, open_database
from writgate.migrate import current_heads, schema_differences
from writgate.settings import Settings

pytestmark = pytest.mark.anyio


async def test_migrations_upgrade_from_empty_and_match_models(database: Database) -> None:
    heads = await current_heads(database.engine)
    assert "writgate_0003" in heads and "writer_0001" in heads
    assert await schema_differences(database.engine, all_metadata()) == []


async def test_upgrade_twice_is_harmless(settings: Settings, database: Database) -> None:
    again = await open_database(settings)
    try:
        assert await current_heads(again.engine) == await current_heads(database.engine)
    finally:
        await again.dispose()


async def test_200_concurrent_appends_are_gapless(database: Database) -> None:
    ledger = database.ledger
    errors: list[BaseException] = []

    async def append(i: int) -> None:
        try:
            async with ledger.transaction() as conn:
                await ledger.append(conn, org_id="o", subject_id="run_x", type="t", data={"i": i})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(append, i)
    assert errors == []
    events = await ledger.read("run_x", org_id="o", after=0, limit=500)
    assert [e.seq for e in events] == list(range(1, 201))
    assert sorted(e.data["i"] for e in events) == list(range(200))
    assert await ledger.last_seq("run_x") == 200


async def test_rolled_back_append_leaves_no_gap(database: Database) -> None:
    ledger = database.ledger
    async with ledger.transaction() as conn:
        await ledger.append(conn, org_id="o", subject_id="s", type="a")
    with pytest.raises(RuntimeError):
        async with ledger.transaction() as conn:
            await ledger.append(conn, org_id="o", subject_id="s", type="lost")
            raise RuntimeError("boom")
    async with ledger.transaction() as conn:
        await ledger.append(conn, org_id="o", subject_id="s", type="b")
    events = await ledger.read("s", org_id="o")
    assert [(e.seq, e.type) for e in events] == [(1, "a"), (2, "b")]


async def test_read_after_and_org_scope(database: Database) -> None:
    ledger = database.ledger
    async with ledger.transaction() as conn:
        for i in range(5):
            await ledger.append(conn, org_id="o", subject_id="s", type=f"e{i}")
    assert [e.seq for e in await ledger.read("s", org_id="o", after=3)] == [4, 5]
    assert await ledger.read("s", org_id="other") == []


async def test_follow_wakes_on_commit(database: Database) -> None:
    ledger = database.ledger
    seen: list[int] = []

    async def follower() -> None:
        async for event in ledger.follow("s", org_id="o"):
            seen.append(event.seq)
            if event.seq == 3:
                return

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follower)
            for _ in range(3):
                async with ledger.transaction() as conn:
                    await ledger.append(conn, org_id="o", subject_id="s", type="x")
                await anyio.sleep(0.01)
    assert seen == [1, 2, 3]
