"""Database wiring: the async engine factory and transaction helpers.

SQLite (the embedded default) runs with WAL, a busy timeout and foreign keys; write transactions
start with ``BEGIN IMMEDIATE`` so two writers queue on the lock instead of failing when one of
them upgrades a read to a write. PostgreSQL runs through asyncpg (the ``postgres`` extra).
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from threading import Thread
from typing import Any

import aiosqlite
from sqlalchemy import MetaData, event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

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
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_EVERY = 200  # commits of one connection between two WAL checkpoints
# How long a close waits for aiosqlite's thread to finish the statement it runs and end.
_THREAD_END_SECONDS = BUSY_TIMEOUT_MS / 1000 + 30


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
    engine = create_async_engine(parsed, **options)
    engine.dialect.do_ping = _asyncpg_ping  # type: ignore[method-assign]
    return engine


def _asyncpg_ping(dbapi_connection: Any) -> bool:
    """Check a pooled connection before use in one round trip, not three.

    SQLAlchemy's asyncpg ping opens a transaction, sends ``;`` with the extended protocol and
    rolls back (so that it works behind pgbouncer in transaction mode). ``SELECT 1`` with the
    simple protocol needs no transaction and no prepared statement: one round trip, where a
    short write transaction has four or five of its own.
    """
    try:
        await_(dbapi_connection._connection.execute("SELECT 1"))
    except Exception as error:
        dbapi_connection._handle_exception(error)
    return True


def _sqlite_engine(url: URL, **options: Any) -> AsyncEngine:
    database = url.database or ""
    if database and database != ":memory:":
        path = Path(database)
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
    options.setdefault("connect_args", {"timeout": 30})
    options.setdefault("module", _ONE_TRIP_DBAPI)
    if database in ("", ":memory:"):
        options.setdefault("poolclass", NullPool)
    engine = create_async_engine(url, **options)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level; BEGIN is emitted by the "begin" hook below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Durable against a crash of the process (the OS holds what was written); a power
        # loss may drop the last commits, never corrupt the database.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # _OneTripConnection checkpoints
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _one_trip(
    conn: sqlite3.Connection, operation: Any, parameters: Any, many: bool
) -> tuple[Any, list[Any] | None, int, int | None]:
    """Execute, fetch every row, close the cursor: one call, on whichever thread runs it."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):  # type: ignore[misc]
    """A statement is one call: no hop at all inside a write transaction, else one hop.

    The stock adapter opens a cursor, executes, fetches and closes it in four round trips to
    aiosqlite's thread. Each is a queue put, a thread wake-up and an event-loop wake-up: on a
    loaded machine, each costs a scheduling delay that dwarfs the statement. Here one function
    does all four and the results (rows, description, rowcount, lastrowid) stay in memory.
    """

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any):
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]  # no aiosqlite cursor: nothing to close
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:  # type: ignore[override]  # sqlite3's may be None
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        connection: Any = self._adapt_connection
        try:
            if operation == "BEGIN IMMEDIATE" and await_(connection._begin_here()):
                return None
            self._keep(await_(connection._call(_one_trip, operation, parameters, False)))
        except Exception as error:
            connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        connection: Any = self._adapt_connection
        try:
            self._keep(await_(connection._call(_one_trip, operation, seq_of_parameters, True)))
        except Exception as error:
            connection._handle_exception(error)

    def _keep(self, found: tuple[Any, list[Any] | None, int, int | None]) -> None:
        self._description, rows, self._rowcount, self._lastrowid = found
        self._rows = collections.deque(rows) if rows is not None else collections.deque()


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):  # type: ignore[misc]
    """Write transactions run on the event loop's thread; everything else on aiosqlite's.

    Once ``BEGIN IMMEDIATE`` holds SQLite's write lock, no statement of the transaction waits
    for a lock (WAL readers never block the writer) and none syncs to disk (``synchronous=
    NORMAL``: the WAL is synced at checkpoints only), so each is microseconds of CPU — less
    than a hop to aiosqlite's thread. ``BEGIN IMMEDIATE`` is tried here without waiting; when
    another process holds the lock it waits on the thread (busy timeout) as before, and the
    transaction then stays on the thread. COMMIT and ROLLBACK run here too: with automatic
    checkpoints off on these connections, a commit only appends the transaction's pages to
    the WAL (no sync) and a rollback drops them or ends a read snapshot; every
    ``CHECKPOINT_EVERY`` commits of a connection run ``PRAGMA wal_checkpoint(PASSIVE)`` (which
    writes and syncs the database file) on the thread. Reads stay on the thread: a big one
    must not stall the event loop.

    The ``sqlite3`` connection is opened with ``check_same_thread=False``; the two threads
    never use it at once: nothing runs here while a call queued on the thread has not finished
    (a cancelled await does not stop that call; ``_sent``/``_done`` tell).
    """

    __slots__ = ("_commits", "_done", "_sent", "_writing")
    _cursor_cls = _OneTripCursor

    def __init__(self, dbapi: Any, connection: Any):
        super().__init__(dbapi, connection)
        self._writing = False
        self._sent = 0  # calls queued on aiosqlite's thread (written on the event loop only)
        self._done = 0  # calls it finished (written on that thread only)
        self._commits = 0

    def _raw(self) -> sqlite3.Connection:
        raw: sqlite3.Connection = self._connection._conn
        return raw

    def _idle(self) -> bool:
        return self._sent == self._done

    async def _call(self, function: Any, *args: Any) -> Any:
        """``function(raw_connection, *args)``: here in a write transaction, else on the thread."""
        raw = self._raw()
        if self._writing and self._idle():
            return function(raw, *args)
        self._sent += 1
        token = self._sent

        def run() -> Any:
            try:
                return function(raw, *args)
            finally:
                self._done = token

        async with self._execute_mutex:
            return await self._connection._execute(run)

    async def _begin_here(self) -> bool:
        """``BEGIN IMMEDIATE`` here if the lock is free at once; False to wait on the thread."""
        if not self._idle():
            return False
        raw = self._raw()
        raw.execute("PRAGMA busy_timeout=0")
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            if raw.in_transaction:
                raise
            return False
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._writing = True
        return True

    def commit(self) -> None:
        try:
            if self._idle():  # no sync, no checkpoint: appends to the WAL, ends a snapshot
                self._raw().commit()
            else:
                await_(self._call(_commit))
            self._writing = False
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                await_(self._call(_checkpoint))
        except Exception as error:
            self._handle_exception(error)
        finally:
            self._writing = False

    def rollback(self) -> None:
        if self._connection._connection is None:
            return
        try:
            if self._idle():  # no I/O: ends a read snapshot or drops uncommitted WAL pages
                self._raw().rollback()
            else:
                await_(self._call(_rollback))
        except Exception as error:
            self._handle_exception(error)
        finally:
            self._writing = False

    def close(self) -> None:
        self._writing = False
        try:
            await_(_close_aiosqlite(self._connection))
        except Exception as error:
            self._handle_exception(error)

    async def _terminate_graceful_close(self) -> None:
        # SQLAlchemy's terminate(): this graceful close runs shielded in a task of its own and,
        # when the awaiting task is cancelled again, the force close (aiosqlite's stop()) runs
        # meanwhile.
        await _close_aiosqlite(self._connection)


async def _close_aiosqlite(connection: Any) -> None:
    """Close an aiosqlite connection and wait until its thread has ended.

    Not aiosqlite's ``close()``: it queues the close of the sqlite3 connection, then a stop of
    the thread, and awaits both; when the connection was stopped in between (SQLAlchemy's force
    close of a cancelled graceful close), that second stop is queued behind the first one,
    which ends the thread, so the await never returns and its task stays pending for as long as
    the event loop lives (one per cancelled statement). Here a single stop closes the sqlite3
    connection (after the calls queued before it) and ends the thread; when someone else
    stopped it already, this waits for the thread to end.
    """
    if connection._running:
        stopped = connection.stop()
        if stopped is not None:
            await stopped  # resolved by the thread just before it ends
            return
    thread = connection._thread
    deadline = time.monotonic() + _THREAD_END_SECONDS
    while True:  # the statement it runs ends within the busy timeout
        if not thread.is_alive() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.005)


def _commit(raw: sqlite3.Connection) -> None:
    raw.commit()


def _rollback(raw: sqlite3.Connection) -> None:
    raw.rollback()


def _checkpoint(raw: sqlite3.Connection) -> None:
    raw.execute("PRAGMA wal_checkpoint(PASSIVE)").close()


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):  # type: ignore[misc]
    """SQLAlchemy's aiosqlite DBAPI shim, with :class:`_OneTripConnection`."""

    def connect(self, *arg: Any, **kw: Any) -> Any:
        creator_fn = kw.pop("async_creator_fn", None)
        if creator_fn:
            connection = creator_fn(*arg, **kw)
        else:
            kw["check_same_thread"] = False  # see _OneTripConnection
            connection = self.aiosqlite.connect(*arg, **kw)
            thread = connection if isinstance(connection, Thread) else connection._thread
            thread.daemon = True
        return _OneTripConnection(self, await_(connection))


_ONE_TRIP_DBAPI = _OneTripDBAPI(aiosqlite, sqlite3)


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
