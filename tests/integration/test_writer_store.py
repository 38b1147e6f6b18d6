from __future__ import annotations

import anyio
import pytest

from writer.errors import IdempotencyKeyReused, IllegalTransition, RunNotFound
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest
from writer.store import RunFilters, RunStore
from writgate.app.database import Database

pytestmark = pytest.mark.anyio


def _request(**changes: object) -> CreateRunRequest:
    body = {
        "repository": "acme/web",
        "prompt": "Fix the flaky login test",
        "tags": ["ci", "owner:platform"],
        "metadata": {"ticket": "PAY-742", "attempt": 2, "urgent": True},
        "agent": {"driver": "command", "argv": ["true"]},
        **changes,
    }
    return CreateRunRequest.model_validate(body)


async def test_200_concurrent_identical_creates_make_one_run(database: Database) -> None:
    store = RunStore(engine=database.engine, ledger=database.ledger)
    results: list[tuple[str, bool]] = []

    async def create() -> None:
        record, created = await store.create("org-a", _request(), idempotency_key="k-1")
        results.append((record.id, created))

    async with anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(create)
    assert len(results) == 200
    assert len({run_id for run_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    records, _ = await store.list_runs("org-a", RunFilters())
    assert len(records) == 1


async def test_same_key_other_body_is_rejected_and_stores_nothing(database: Database) -> None:
    store = RunStore(engine=database.engine, ledger=database.ledger)
    first, created = await store.create("org-a", _request(), idempotency_key="k")
    assert created
    with pytest.raises(IdempotencyKeyReused):
        await store.create("org-a", _request(prompt="something else"), idempotency_key="k")
    records, _ = await store.list_runs("org-a", RunFilters())
    assert [r.id for r in records] == [first.id]
    # the same key in another org is another key
    other, created = await store.create("org-b", _request(), idempotency_key="k")
    assert created and other.id != first.id


async def test_filters_and_cursor_pagination(database: Database) -> None:
    store = RunStore(engine=database.engine, ledger=database.ledger)
    ids = []
    for i in range(7):
        record, _ = await store.create(
            "org-a",
            _request(
                tags=["ci"] if i % 2 else ["docs"],
                metadata={"ticket": f"T-{i % 3}"},
                prompt="Update the README typo" if i == 6 else "Fix the crash",
            ),
        )
        ids.append(record.id)
    page, cursor = await store.list_runs("org-a", RunFilters(), limit=3)
    assert [r.id for r in page] == ids[::-1][:3]
    rest: list[str] = []
    while cursor:
        more, cursor = await store.list_runs("org-a", RunFilters(), cursor=cursor, limit=3)
        rest.extend(r.id for r in more)
    assert [r.id for r in page] + rest == ids[::-1]
    tagged, _ = await store.list_runs("org-a", RunFilters(tags=["ci"]))
    assert {r.id for r in tagged} == {ids[i] for i in (1, 3, 5)}
    meta, _ = await store.list_runs("org-a", RunFilters(metadata={"ticket": "T-0"}))
    assert {r.id for r in meta} == {ids[0], ids[3], ids[6]}
    both, _ = await store.list_runs("org-a", RunFilters(tags=["ci"], metadata={"ticket": "T-0"}))
    assert [r.id for r in both] == [ids[3]]
    docs, _ = await store.list_runs("org-a", RunFilters(intent="docs"))
    assert [r.id for r in docs] == [ids[6]]
    assert (await store.list_runs("org-b", RunFilters()))[0] == []


async def test_transitions_write_events_in_the_same_transaction(database: Database) -> None:
    store = RunStore(engine=database.engine, ledger=database.ledger)
    record, _ = await store.create("org-a", _request())
    await store.transition("org-a", record.id, Lifecycle.STARTING)
    await store.transition("org-a", record.id, Lifecycle.RUNNING)
    with pytest.raises(IllegalTransition):
        await store.transition("org-a", record.id, Lifecycle.QUEUED)
    done = await store.transition(
        "org-a", record.id, Lifecycle.FAILED, failure={"code": "agent_error", "message": "x"}
    )
    assert done.terminal and done.failure == {"code": "agent_error", "message": "x"}
    events = await database.ledger.read(record.id, org_id="org-a")
    assert [e.type for e in events] == ["run.queued", "run.starting", "run.running", "run.failed"]
    assert events[-1].data["nextActions"] == ["retry", "fallback"]
    assert events[-1].data["tags"] == ["ci", "owner:platform"]
    with pytest.raises(RunNotFound):
        await store.get("org-b", record.id)
