"""The merge gate end to end on the local forge, with real git, on SQLite and PostgreSQL.

A pull request (pushed and opened the way the writer publishes one) is reviewed, gets a
passport and a decision; the status, the check run and the passport comment are posted.
Approving re-evaluates pending into allow; a new head makes the decision stale and the status
pending; the merge is refused until the gate allows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest
from sqlalchemy import select

import policies
from forge import LocalForge
from forge import MergeRefused as ForgeMergeRefused
from judge import MergeGate, MergeRefused
from judge.publish import Publisher
from judge.pull_requests import judge_pull_request
from tests.conftest import git
from writgate.app.database import Database
from writgate.errors import NotFoundError
from writgate.ledger import ledger_events

pytestmark = pytest.mark.anyio

REPO = "acme/web"
CONTEXT = "writgate/merge-gate"
PUBLIC = "https://gate.example.test"
POLICY = policies.parse_policy(
    dedent(
        """\
        policy: writgate/v1
        name: e2e-guard
        rules:
          - name: no-secrets
            if: {review.findings: {reviewer: secrets, count: "> 0"}}
            block: "A secret was found in the change."
          - name: one-approval
            require: {approvals: {count: 1}}
        """
    )
)
REVIEWERS = ["secrets", "debug-leftovers", "test-tampering", "missing-tests"]
PLANTED = "ghp_" + "Zy9Xw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"


@pytest.fixture
def forge(database: Database, tmp_path: Path) -> LocalForge:
    return LocalForge(engine=database.engine, ledger=database.ledger, home=tmp_path / "home")


@pytest.fixture
def gate(database: Database, forge: LocalForge, tmp_path: Path) -> MergeGate:
    return MergeGate(
        engine=database.engine,
        ledger=database.ledger,
        forge=forge,
        public_url=PUBLIC,
        home=tmp_path / "home",
    )


async def _pull_request(forge: LocalForge, tmp_path: Path, files: dict[str, str]) -> Path:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "src" / "app.py").write_text("def answer():\n    return 41\n")
    (project / "tests" / "test_app.py").write_text(
        "from src.app import answer\n\n\ndef test_answer():\n    assert answer() == 41\n"
    )
    await forge.create_repository(REPO, from_dir=project)
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", await forge.clone_url(REPO), str(work))
    git(work, "checkout", "-qb", "writgate/fix-answer")
    for name, text in files.items():
        (work / name).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "Fix the answer\n\nWritgate-Run: run_test")
    await forge.push_branch(REPO, work, "writgate/fix-answer")
    await forge.open_pull_request(
        REPO, head="writgate/fix-answer", base="main", title="Fix answer", body="", draft=False
    )
    return work


async def _status(forge: LocalForge, sha: str) -> dict[str, str | None]:
    statuses = [s for s in await forge.list_commit_statuses(REPO, sha) if s.context == CONTEXT]
    latest = statuses[0]  # newest first
    return {"state": latest.state, "description": latest.description, "url": latest.target_url}


async def test_pr_review_passport_gate_approve_new_head_and_merge(
    forge: LocalForge, gate: MergeGate, tmp_path: Path, database: Database
) -> None:
    work = await _pull_request(
        forge,
        tmp_path,
        {
            "src/app.py": "def answer():\n    print('debugging')\n    return 42\n",
            "tests/test_app.py": (
                "from src.app import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
            ),
        },
    )
    verdict = await judge_pull_request(
        gate, "default", repository=REPO, number=1, policy=POLICY, home=tmp_path / "home",
        reviewers=REVIEWERS,
    )  # fmt: skip
    first = verdict.decision
    pr = await forge.get_pull_request(REPO, 1)
    assert (first.decision, first.status, first.head_sha) == ("pending", "current", pr.head_sha)
    assert first.reasons and "approval" in first.reasons[0]
    assert verdict.statement["predicate"]["change"]["pullRequest"]["number"] == 1
    assert verdict.statement["predicate"]["reviews"][1]["reviewer"] == "debug-leftovers"
    assert verdict.review_run.counts["debug-leftovers"] == {"error": 0, "warning": 0, "info": 1}

    status = await _status(forge, pr.head_sha)
    assert status["state"] == "pending"
    assert status["url"] == f"{PUBLIC}/gate/decisions/{first.id}"
    assert status["description"] is not None and len(status["description"]) <= 140
    assert status["description"].startswith("Pending: ")
    (run,) = await forge.list_check_runs(REPO, pr.head_sha)
    assert (run.name, run.status, run.conclusion) == (Publisher.check_name, "in_progress", None)
    assert "Merge gate: **pending**" in run.summary and "one-approval" in run.summary
    detailed = await forge.get_check_run(REPO, run.id)
    assert [(a.path, a.start_line, a.annotation_level) for a in detailed.annotations] == [
        ("src/app.py", 2, "notice")
    ]
    (comment,) = await forge.list_comments(REPO, 1)
    assert comment.body.startswith("<!-- writgate-passport -->")
    assert "Merge gate: pending" in comment.body

    with pytest.raises(ForgeMergeRefused, match=CONTEXT):
        await forge.merge_pull_request(REPO, 1)
    with pytest.raises(MergeRefused, match="pending"):
        await gate.merge("default", repository=REPO, number=1)

    # Approving re-evaluates: pending becomes allow, the check run and comment update in place.
    await forge.approve(REPO, 1, user="alice")
    events = await database.ledger.read(pr.id or "", org_id="default")
    review_event = next(e for e in reversed(events) if e.type == "pr.review")
    allowed = await gate.handle_forge_event("default", review_event)
    assert allowed is not None and allowed.decision == "allow"
    assert (await gate.get("default", first.id)).status == "superseded"
    assert (await _status(forge, pr.head_sha))["state"] == "success"
    (run_after,) = await forge.list_check_runs(REPO, pr.head_sha)
    assert (run_after.id, run_after.status, run_after.conclusion) == (
        run.id,
        "completed",
        "success",
    )
    assert run_after.annotations_count == 1
    (comment_after,) = await forge.list_comments(REPO, 1)
    assert comment_after.id == comment.id and "Merge gate: allow" in comment_after.body

    # A new head: the allow decision is stale and the status goes back to pending.
    (work / "src" / "app.py").write_text("def answer():\n    return 42\n")
    git(work, "commit", "-qam", "Drop the print")
    await forge.push_branch(REPO, work, "writgate/fix-answer")
    new_head = (await forge.get_pull_request(REPO, 1)).head_sha
    assert await gate.refresh("default", repository=REPO, number=1) is None
    assert (await gate.get("default", allowed.id)).status == "stale"
    assert (await _status(forge, new_head))["state"] == "pending"
    with pytest.raises(ForgeMergeRefused):
        await forge.merge_pull_request(REPO, 1)
    with pytest.raises(MergeRefused, match="no merge-gate decision for head"):
        await gate.merge("default", repository=REPO, number=1)

    # The new head is judged (the old approval is stale), approved, and merges.
    second = await judge_pull_request(
        gate, "default", repository=REPO, number=1, policy=POLICY, home=tmp_path / "home",
        reviewers=REVIEWERS,
    )  # fmt: skip
    assert second.decision.decision == "pending"
    assert second.review_run.counts["debug-leftovers"]["info"] == 0
    await forge.approve(REPO, 1, user="bob")
    final = await gate.refresh("default", repository=REPO, number=1)
    assert final is not None and final.decision == "allow" and final.head_sha == new_head

    # A merge queue commit reuses the head's decision.
    main_sha = git(work, "rev-parse", "origin/main").strip()
    reused = await gate.merge_group(
        "default", repository=REPO, head_sha=new_head, merge_group_sha=main_sha
    )
    assert reused.id == final.id
    assert (await _status(forge, main_sha))["state"] == "success"
    with pytest.raises(NotFoundError):
        await gate.merge_group(
            "default", repository=REPO, head_sha=pr.head_sha, merge_group_sha=main_sha
        )

    merged = await gate.merge("default", repository=REPO, number=1)
    assert merged.state == "merged"


async def test_secret_blocks_and_never_leaks_into_forge_or_events(
    forge: LocalForge, gate: MergeGate, tmp_path: Path, database: Database
) -> None:
    await _pull_request(
        forge,
        tmp_path,
        {"src/app.py": f"TOKEN = '{PLANTED}'\n\n\ndef answer():\n    return 42\n"},
    )
    verdict = await judge_pull_request(
        gate, "default", repository=REPO, number=1, policy=POLICY, home=tmp_path / "home",
        reviewers=["secrets", "ruff", "missing-tests"],
    )  # fmt: skip
    decision = verdict.decision
    assert decision.decision == "block"
    pr = await forge.get_pull_request(REPO, 1)
    status = await _status(forge, pr.head_sha)
    assert status["state"] == "failure"
    assert status["description"] == "Blocked: A secret was found in the change."
    (run,) = await forge.list_check_runs(REPO, pr.head_sha)
    assert run.conclusion == "failure"
    detailed = await forge.get_check_run(REPO, run.id)
    assert any(a.title == "secrets/github-token" for a in detailed.annotations)

    async with database.engine.connect() as conn:
        events = [row.data for row in (await conn.execute(select(ledger_events))).all()]
    haystacks = {
        "decision": json.dumps(decision.to_json()),
        "statement": json.dumps(verdict.statement),
        "review run": json.dumps(verdict.review_run.to_json()),
        "status": json.dumps(status),
        "check run": detailed.summary + json.dumps([a.to_json() for a in detailed.annotations]),
        "comment": (await forge.list_comments(REPO, 1))[0].body,
        "events": json.dumps(events),
    }
    for where, text in haystacks.items():
        assert PLANTED not in text, f"the planted secret leaked into the {where}"
    assert "github-token" in haystacks["statement"]


async def test_passport_for_another_head_never_allows(
    forge: LocalForge, gate: MergeGate, tmp_path: Path
) -> None:
    await _pull_request(forge, tmp_path, {"src/app.py": "def answer():\n    return 42\n"})
    verdict = await judge_pull_request(
        gate, "default", repository=REPO, number=1, policy=POLICY, home=tmp_path / "home",
        reviewers=["secrets"], publish=False,
    )  # fmt: skip
    pr_state = (await forge.get_pull_request(REPO, 1)).to_pr_state()
    pr_state["headSha"] = "f" * 40
    pr_state["reviews"] = [{"user": "alice", "state": "approved", "commitSha": "f" * 40}]
    decision = await gate.evaluate(
        "default", policy=POLICY, statement=verdict.statement, pr=pr_state
    )
    assert decision.decision == "pending"
    assert decision.rules[0]["name"] == "passport-matches-head"
    assert decision.publication is None


CHECKS_POLICY = policies.parse_policy(
    dedent(
        """\
        policy: writgate/v1
        name: checks-guard
        rules:
          - name: ci-green
            require: {checks.ci/tests: success}
        """
    )
)


async def test_new_check_result_reevaluates_and_every_annotation_is_posted(
    forge: LocalForge, gate: MergeGate, tmp_path: Path, database: Database
) -> None:
    prints = "".join(f"    print({n})\n" for n in range(120))
    await _pull_request(forge, tmp_path, {"src/app.py": f"def answer():\n{prints}    return 42\n"})
    verdict = await judge_pull_request(
        gate, "default", repository=REPO, number=1, policy=CHECKS_POLICY,
        home=tmp_path / "home", reviewers=["debug-leftovers"],
    )  # fmt: skip
    assert verdict.decision.decision == "pending"
    head = verdict.pull_request.head_sha
    (run,) = await forge.list_check_runs(REPO, head)
    assert run.annotations_count == 120
    assert len((await forge.get_check_run(REPO, run.id)).annotations) == 120

    await forge.set_commit_status(
        REPO, head, context="ci/tests", state="success", description="green"
    )
    pr_id = verdict.pull_request.id or ""
    event = next(
        e
        for e in reversed(await database.ledger.read(pr_id, org_id="default"))
        if e.type == "status.set" and e.data["context"] == "ci/tests"
    )
    decided = await gate.handle_forge_event("default", event)
    assert decided is not None and decided.decision == "allow"
    # The gate's own status change is not a reason to re-evaluate (no loop).
    own = next(
        e
        for e in reversed(await database.ledger.read(pr_id, org_id="default"))
        if e.type == "status.set" and e.data["context"] == CONTEXT
    )
    assert await gate.handle_forge_event("default", own) is None
    (run_after,) = await forge.list_check_runs(REPO, head)
    assert run_after.annotations_count == 120  # updated in place, annotations not re-sent
