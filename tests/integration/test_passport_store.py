"""PassportStore on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from passport import (
    InvalidPassportError,
    PassportNotFound,
    PassportStore,
    build_passport,
    generate_signing_key,
    passport_id,
    sign_statement,
)
from passport.tables import metadata
from tests.conftest import git
from writgate.app.database import Database, all_metadata
from writgate.migrate import current_heads, schema_differences

pytestmark = pytest.mark.anyio


async def _statement(git_repo: Path, text: str = "world\n") -> dict[str, Any]:
    (git_repo / "README.md").write_text("hello\n" + text)
    git(git_repo, "commit", "-qam", "change")
    return await build_passport(git_repo, "HEAD~", "HEAD", repository="acme/web")


async def test_migration_is_applied_and_matches_the_table_models(database: Database) -> None:
    assert "passport_0001" in await current_heads(database.engine)
    assert metadata in all_metadata()
    assert await schema_differences(database.engine, all_metadata()) == []


async def test_save_is_idempotent_on_passport_id(database: Database, git_repo: Path) -> None:
    store = PassportStore(engine=database.engine)
    statement = await _statement(git_repo)
    first = await store.save("acme", statement)
    again = await store.save("acme", copy.deepcopy(statement))
    assert first.id == again.id and first.id.startswith("pp_")
    assert first.passport_id == passport_id(statement)
    assert first.head_sha == statement["predicate"]["change"]["head"]["sha"]
    assert first.repository == "acme/web"
    assert first.envelope is None
    assert first.created_at.tzinfo is not None
    fetched = await store.get("acme", first.passport_id)
    assert fetched.statement == statement
    assert (await store.get("acme", first.id)).passport_id == first.passport_id


async def test_concurrent_saves_of_one_statement_make_one_row(
    database: Database, git_repo: Path
) -> None:
    store = PassportStore(engine=database.engine)
    statement = await _statement(git_repo)
    ids: list[str] = []

    async def save() -> None:
        ids.append((await store.save("acme", statement)).id)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(save)
    assert len(set(ids)) == 1
    assert len(await store.list("acme")) == 1


async def test_signed_copy_is_attached_and_must_carry_the_statement(
    database: Database, git_repo: Path
) -> None:
    store = PassportStore(engine=database.engine)
    statement = await _statement(git_repo)
    envelope = sign_statement(statement, generate_signing_key("p256"))
    await store.save("acme", statement)
    signed = await store.save("acme", statement, envelope)
    assert signed.envelope == envelope
    other = await _statement(git_repo, "again\n")
    with pytest.raises(InvalidPassportError, match="not this statement"):
        await store.save("acme", other, envelope)


async def test_orgs_are_isolated(database: Database, git_repo: Path) -> None:
    store = PassportStore(engine=database.engine)
    stored = await store.save("acme", await _statement(git_repo))
    with pytest.raises(PassportNotFound):
        await store.get("globex", stored.id)
    with pytest.raises(PassportNotFound):
        await store.get("globex", stored.passport_id)
    assert await store.list("globex") == []
    other = await store.save("globex", stored.statement)
    assert other.id != stored.id


async def test_list_is_newest_first_with_since_and_limit(
    database: Database, git_repo: Path
) -> None:
    store = PassportStore(engine=database.engine)
    saved = [await store.save("acme", await _statement(git_repo, f"v{i}\n")) for i in range(3)]
    listed = await store.list("acme")
    assert [p.id for p in listed] == [p.id for p in reversed(saved)]
    assert [p.id for p in await store.list("acme", limit=2)] == [saved[2].id, saved[1].id]
    assert len(await store.list("acme", since=saved[1].created_at)) == 2
    future = datetime.now(UTC) + timedelta(minutes=1)
    assert await store.list("acme", since=future) == []
    with pytest.raises(InvalidPassportError, match="limit"):
        await store.list("acme", limit=0)


async def test_malformed_statement_is_refused(database: Database) -> None:
    store = PassportStore(engine=database.engine)
    with pytest.raises(InvalidPassportError, match="predicateType"):
        await store.save("acme", {"_type": "https://in-toto.io/Statement/v1"})
    assert await store.list("acme") == []
