"""The judge's stores on SQLite and PostgreSQL: review runs with findings, gate decisions."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from judge import DecisionStore, ReviewStore, review_change
from judge.store import DecisionNotFound, ReviewRunNotFound
from tests.unit.judge_repos import make_repo
from writgate.app.database import Database
from writgate.errors import InputError

pytestmark = pytest.mark.anyio


async def _result(root: Path):  # type: ignore[no-untyped-def]
    repo, _base, _head = make_repo(
        root, {"app.py": "x = 1\n"}, {"app.py": "x = 1\nprint(x)\nbreakpoint()\n"}
    )
    return await review_change(repo, "main", "head", reviewers=["debug-leftovers", "secrets"])


async def test_review_run_round_trip_with_findings_and_event(
    database: Database, tmp_path: Path
) -> None:
    store = ReviewStore(engine=database.engine, ledger=database.ledger)
    result = await _result(tmp_path)
    saved = await store.save("acme", result, repository="acme/web", pr_number=7)
    assert saved.id.startswith("rvw_")
    loaded = await store.get("acme", saved.id)
    assert loaded.findings == result.findings
    assert [f.rule for f in loaded.findings] == ["breakpoint", "debug-print"]
    assert loaded.counts == {
        "debug-leftovers": {"error": 0, "warning": 1, "info": 1},
        "secrets": {"error": 0, "warning": 0, "info": 0},
    }
    assert loaded.to_json()["head"] == {"ref": "head", "sha": result.head}
    assert loaded.to_json()["base"] == {"ref": "main", "sha": result.base}
    assert loaded.status == "succeeded" and loaded.pr_number == 7
    assert loaded.to_passport_reviews() == result.to_passport_reviews()
    (event,) = await database.ledger.read(saved.id, org_id="acme")
    assert event.type == "review.completed"
    assert event.data["counts"] == {"error": 0, "warning": 1, "info": 1}


async def test_review_runs_are_isolated_per_org_and_listed_newest_first(
    database: Database, tmp_path: Path
) -> None:
    store = ReviewStore(engine=database.engine, ledger=database.ledger)
    result = await _result(tmp_path)
    ids = [(await store.save("acme", result, repository="acme/web")).id for _ in range(3)]
    other = await store.save("other", result, repository="acme/web")
    with pytest.raises(ReviewRunNotFound):
        await store.get("acme", other.id)
    listed = await store.list("acme", repository="acme/web", limit=2)
    assert [r.id for r in listed] == ids[::-1][:2]
    assert listed[0].findings == []  # lists are summaries
    rest = await store.list("acme", before=listed[-1].id)
    assert [r.id for r in rest] == [ids[0]]
    assert await store.list("acme", head_sha="0" * 40) == []
    with pytest.raises(InputError):
        await store.list("acme", limit=0)


def _record_kwargs(head: str, decision: str = "pending") -> dict:  # type: ignore[type-arg]
    return {
        "decision": decision,
        "rules": [{"name": "r", "kind": "require", "state": "pending", "reasons": ["x"]}],
        "policy_name": "p",
        "policy_digest": "sha256:" + "1" * 64,
        "policy": {"policy": "writgate/v1", "name": "p", "rules": []},
        "passport_id": "sha256:" + head[:1] * 64,
        "head_sha": head,
        "repository": "acme/web",
        "pr_number": 3,
    }


async def test_new_head_makes_older_decisions_stale_same_head_supersedes(
    database: Database,
) -> None:
    store = DecisionStore(engine=database.engine, ledger=database.ledger)
    first = await store.record("acme", **_record_kwargs("a" * 40))
    again = await store.record("acme", **_record_kwargs("a" * 40, "allow"))
    assert (await store.get("acme", first.id)).status == "superseded"
    newer = await store.record("acme", **_record_kwargs("b" * 40))
    assert (await store.get("acme", again.id)).status == "stale"
    assert newer.status == "current" and newer.id.startswith("gd_")
    current = await store.current("acme", repository="acme/web", pr_number=3)
    assert current is not None and current.id == newer.id
    assert await store.current("acme", repository="acme/web", head_sha="a" * 40) is None
    events = await database.ledger.read(newer.id, org_id="acme")
    assert events[0].type == "gate.decided"
    assert events[0].data["replaces"] == [{"id": again.id, "status": "stale"}]
    assert [d.id for d in await store.list("acme", status="stale")] == [again.id]


async def test_mark_stale_and_publication(database: Database) -> None:
    store = DecisionStore(engine=database.engine, ledger=database.ledger)
    decision = await store.record("acme", **_record_kwargs("a" * 40))
    assert (
        await store.mark_stale("acme", repository="acme/web", pr_number=3, head_sha="a" * 40) == []
    )
    assert await store.mark_stale(
        "acme", repository="acme/web", pr_number=3, head_sha="c" * 40
    ) == [decision.id]
    assert (await store.get("acme", decision.id)).status == "stale"
    published = await store.set_publication("acme", decision.id, {"checkRunId": 4})
    assert published.publication == {"checkRunId": 4}
    with pytest.raises(DecisionNotFound):
        await store.set_publication("other", decision.id, {})
    with pytest.raises(DecisionNotFound):
        await store.get("other", decision.id)


async def test_concurrent_decisions_of_one_pr_leave_exactly_one_current(
    database: Database,
) -> None:
    store = DecisionStore(engine=database.engine, ledger=database.ledger)

    async def record(i: int) -> None:
        await store.record("acme", **_record_kwargs(f"{i:x}" * 40))

    async with anyio.create_task_group() as group:
        for i in range(8):
            group.start_soon(record, i)
    decisions = await store.list("acme", repository="acme/web", pr_number=3)
    assert len(decisions) == 8
    assert [d.status for d in decisions].count("current") == 1
