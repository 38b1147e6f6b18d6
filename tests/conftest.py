"""Fixtures for real components: SQLite and PostgreSQL databases, git repositories."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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


@pytest.fixture
def pg_database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"writgate_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@{postgres_server}:5432/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'writgate.db'}"
    return str(request.getfixturevalue("pg_database_url"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """A migrated database (SQLite and PostgreSQL) with its ledger."""
    database = await open_database(settings)
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
