"""A SQLite statement cancelled mid-way leaves nothing running behind it.

A cancelled statement makes SQLAlchemy terminate its connection: a graceful close in a task of
its own and, when the cancellation is delivered again (anyio delivers it until the task
leaves the cancelled scope), a force close meanwhile. Both must end, or every cancelled
statement leaves a task pending for as long as the event loop lives. (SQLite only: this is
writgate's adapter over aiosqlite; PostgreSQL's driver has its own terminate.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from writgate import db

pytestmark = pytest.mark.anyio

# About a second of SQLite work on aiosqlite's thread: the cancellation lands in the middle.
_SLOW = text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
    "SELECT count(*) FROM c"
)


def _tasks() -> set[asyncio.Task[object]]:
    return {task for task in asyncio.all_tasks() if not task.done()}


async def test_a_cancelled_statement_leaves_no_task_behind(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writgate.db'}")
    before = _tasks()  # this test's task and the test runner's
    try:
        async with db.read(engine) as conn:  # a pooled connection, reused below
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        assert _tasks() == before
        with anyio.move_on_after(0.2) as scope:
            async with db.read(engine) as conn:
                await conn.execute(_SLOW)
        assert scope.cancelled_caught
        with anyio.fail_after(30):  # the statement finishes on the thread, then the close
            while True:
                if not _tasks() - before:
                    break
                await anyio.sleep(0.02)
        async with db.read(engine) as conn:  # the pool hands out a working connection
            assert (await conn.execute(text("SELECT 2"))).scalar_one() == 2
    finally:
        with anyio.fail_after(30):
            await engine.dispose()


async def test_a_connection_stopped_before_its_close_still_closes(tmp_path: Path) -> None:
    """aiosqlite's own close() never returns once stop() ran first (the force close)."""
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'writgate.db'}")
    try:
        async with engine.connect() as conn:
            adapted = (await conn.get_raw_connection()).driver_connection
            assert adapted is not None
            adapted.stop()  # what SQLAlchemy's force close does
            with anyio.fail_after(10):
                await db._close_aiosqlite(adapted)
            await conn.invalidate()
    finally:
        with anyio.fail_after(30):
            await engine.dispose()
