"""Fixtures for real components: SQLite and PostgreSQL databases, git repositories."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import queue
import shutil
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import anyio
import pytest

from writgate.app.database import Database, open_database
from writgate.settings import Settings

PG_HOST = os.environ.get("WRITGATE_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:5432/postgres"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _pg_admin(sql: str) -> None:
    subprocess.run(
        ["psql", PG_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _pg_available() -> bool:
    try:
        _pg_admin("SELECT 1")
    except (subprocess.SubprocessError, FileNotFoundError):
        return False
    return True


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The PostgreSQL server: a failure in CI when it is down, a skip on a developer machine."""
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_HOST}:5432 (scripts/test starts it)")
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:5432")
    return PG_HOST


async def _migrate(url: str, home: Path) -> None:
    database = await open_database(Settings(home=home, database_url=url))
    await database.dispose()


class _Dropper:
    """Drops the test databases in a background thread: a DROP takes seconds under load, and no
    test waits for the previous test's database to go. The session waits for all at its end."""

    def __init__(self) -> None:
        self.names: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="pg-dropper", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (name := self.names.get()) is not None:
            try:
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except subprocess.SubprocessError:
                pass  # left for the next session's sweep of writgate_test_* databases

    def close(self) -> None:
        self.names.put(None)
        self.thread.join(timeout=300)


@pytest.fixture(scope="session")
def pg_template(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database with every migration applied, the template of each test database
    (cloning it takes a fraction of the time the migrations take)."""
    name = f"writgate_template_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@{postgres_server}:5432/{name}"
    anyio.run(_migrate, url, tmp_path_factory.mktemp("pg-template-home"))
    try:
        yield name
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _pg_dropper(pg_template: str) -> Iterator[_Dropper]:
    dropper = _Dropper()
    try:
        yield dropper
    finally:
        dropper.close()


@pytest.fixture
def pg_database_url(postgres_server: str, pg_template: str, _pg_dropper: _Dropper) -> Iterator[str]:
    """A fresh PostgreSQL database for one test (every migration applied), dropped afterwards."""
    name = f"writgate_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield f"postgresql+asyncpg://postgres@{postgres_server}:5432/{name}"
    finally:
        _pg_dropper.names.put(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file with every migration applied, copied for each test."""
    directory = tmp_path_factory.mktemp("sqlite-template")
    path = directory / "writgate.db"
    anyio.run(_migrate, f"sqlite+aiosqlite:///{path}", directory / "home")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each kind, every migration applied: a SQLite file, then a PostgreSQL
    database (both copied from a template migrated once per session)."""
    if request.param == "sqlite":
        path = tmp_path / "writgate.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A migrated database (SQLite and PostgreSQL) with its ledger."""
    database = await open_database(settings, migrate_schema=False)  # a migrated copy
    try:
        yield database
    finally:
        await database.dispose()


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    """Run git in ``cwd`` with a fixed identity and return its stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=env, input=input, capture_output=True, check=True
    )
    return result.stdout.decode()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """An empty git repository with one initial commit on ``main``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    return repo


# -- a hung test must not take the rest of the session with it -------------------------------

_HANG_DUMPS = "WRITGATE_TEST_HANG_DUMPS"


def pytest_configure(config: pytest.Config) -> None:
    # One file per session: pytest-xdist's workers inherit the name from their controller.
    default = Path(os.environ.get("TMPDIR", "/tmp")) / f"writgate-hangs-{os.getpid()}.txt"
    os.environ.setdefault(_HANG_DUMPS, str(default))


def _hang_dumps() -> Path:
    return Path(os.environ[_HANG_DUMPS])


def _timeout_of(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Shortly before pytest-timeout fails a hung test, dump every thread's stack (the main
    thread's too, which pytest-timeout leaves out) for the summary at the end of the session."""
    timeout = _timeout_of(item)
    with _hang_dumps().open("a") as dumps:
        tasks_dump: threading.Timer | None = None
        if timeout > 20:
            dumps.write(f"\n== {item.nodeid} still running after {timeout - 10:.0f} s\n")
            dumps.flush()
            faulthandler.dump_traceback_later(timeout - 10, file=dumps)
            tasks_dump = threading.Timer(timeout - 10, _dump_tasks, args=(dumps,))
            tasks_dump.daemon = True
            tasks_dump.start()
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
            if tasks_dump is not None:
                tasks_dump.cancel()


def _dump_tasks(dumps: IO[str]) -> None:
    """The stack of every asyncio task of anyio's test runner. When the event loop hangs (in
    ``asyncio.Runner.close``, which waits for every cancelled task to end), the threads' stacks
    only show the loop waiting in ``select``; the task that does not end is in this list."""
    from anyio import pytest_plugin

    lines = ["asyncio tasks of the test runner's event loop:"]
    try:
        runner = pytest_plugin._current_runner
        loop = runner.get_loop() if runner is not None else None
        tasks = list(asyncio.all_tasks(loop)) if loop is not None else []
    except RuntimeError as exc:  # closed, or the set changed while it was read: say so
        tasks, lines = [], [*lines, f"  (not available: {exc})"]
    for task in tasks:
        lines.append(f"  {task!r}")
        lines.extend(
            f'    File "{frame.f_code.co_filename}", line {frame.f_lineno}, in '
            f"{frame.f_code.co_name}"
            for frame in task.get_stack()
        )
    dumps.write("\n".join(lines) + "\n")
    dumps.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield
    _forget_a_broken_anyio_runner()  # before the rerun of a test that hung


def _forget_a_broken_anyio_runner() -> None:
    """When a timeout interrupted the close of anyio's test runner, the plugin keeps the closed
    runner and every later async test fails with "Runner is closed": forget it."""
    from anyio import pytest_plugin

    if pytest_plugin._runner_leases == 0 and pytest_plugin._current_runner is not None:
        stack = pytest_plugin._runner_stack
        pytest_plugin._runner_stack = pytest_plugin._current_runner = None
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the stacks of the tests that hung (empty when none did)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller prints them for every worker
    try:
        text = _hang_dumps().read_text()
        _hang_dumps().unlink()
    except FileNotFoundError:
        return
    hung = [part for part in text.split("\n== ") if "Thread 0x" in part]
    if hung:
        terminalreporter.section("stacks of hung tests")
        for part in hung:
            terminalreporter.write_line("== " + part.strip())
