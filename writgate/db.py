"""Database wiring: the async engine factory and transaction helpers.

SQLite (the embedded default) runs with WAL, a busy timeout and foreign keys; write transactions
start with ``BEGIN IMMEDIATE`` so two writers queue on the lock instead of failing when one of
them upgrades a read to a write. PostgreSQL runs through asyncpg (the ``postgres`` extra).
"""

from __future__ import annotations

import asyncio
import importlib.util
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from .errors import ConfigError, MissingExtraError

__all__ = [
    "NAMING_CONVENTION",
    "create_engine",
    "dialect_of",
    "new_metadata",
    "parse_database_url",
    "read",
    "write",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
_READONLY = "writgate_readonly"


def new_metadata() -> MetaData:
    """A ``MetaData`` with the project's constraint naming convention (one per package)."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def parse_database_url(url: str) -> URL:
    """Parse and check a database URL; a bad one raises ``ConfigError`` naming the problem."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"WRITGATE_DATABASE_URL is not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername != "sqlite+aiosqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
        return parsed
    if backend in ("postgresql", "postgres"):
        if importlib.util.find_spec("asyncpg") is None:
            raise MissingExtraError("postgres", "asyncpg")
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        f"unsupported database {backend!r} in WRITGATE_DATABASE_URL: "
        "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
    )


def create_engine(url: str, **options: Any) -> AsyncEngine:
    """An ``AsyncEngine`` for ``url``, configured for writgate's transaction patterns."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **options)
    options.setdefault("pool_pre_ping", True)
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 20)
    return create_async_engine(parsed, **options)


def _sqlite_engine(url: URL, **options: Any) -> AsyncEngine:
    database = url.database or ""
    if database and database != ":memory:":
        path = Path(database)
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
    options.setdefault("connect_args", {"timeout": 30})
    if database in ("", ":memory:"):
        options.setdefault("poolclass", NullPool)
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level; BEGIN is emitted by the "begin" hook below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def dialect_of(engine: AsyncEngine | AsyncConnection) -> str:
    """``sqlite`` or ``postgresql``."""
    return engine.dialect.name


_WRITE_LOCKS: weakref.WeakKeyDictionary[AsyncEngine, dict[int, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _write_lock(engine: AsyncEngine) -> asyncio.Lock:
    locks = _WRITE_LOCKS.setdefault(engine, {})
    loop = id(asyncio.get_running_loop())
    lock = locks.get(loop)
    if lock is None:
        lock = locks[loop] = asyncio.Lock()
    return lock


@asynccontextmanager
async def write(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction, committed on success and rolled back on error.

    On SQLite, writers of one process queue on an asyncio lock before ``BEGIN IMMEDIATE``:
    SQLite's own busy handler waits by sleeping in growing steps, which turns a queue of
    writers into seconds of latency. Other processes still meet the busy timeout.
    """
    if engine.dialect.name == "sqlite":
        async with _write_lock(engine), engine.begin() as conn:
            yield conn
    else:
        async with engine.begin() as conn:
            yield conn


@asynccontextmanager
async def read(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only transaction (a plain ``BEGIN`` on SQLite, so readers never queue)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{_READONLY: True})
        async with conn.begin():
            yield conn
