"""The local forge with real git and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from sqlalchemy import text

from forge import (
    Annotation,
    ForgeConflict,
    ForgeInputError,
    ForgeNotFound,
    LocalForge,
    MergeRefused,
)
from tests.conftest import git
from writgate.app.database import Database
from writgate.errors import StoreError

pytestmark = pytest.mark.anyio

GATE = "writgate/merge-gate"


@pytest.fixture
def forge(database: Database, tmp_path: Path) -> LocalForge:
    return LocalForge(
        engine=database.engine,
        ledger=database.ledger,
        home=tmp_path / "home",
        public_url="http://127.0.0.1:8080/",
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    src = tmp_path / "project"
    (src / "src").mkdir(parents=True)
    (src / "src" / "app.py").write_text("def answer():\n    return 41\n")
    (src / "README.md").write_text("# demo\n")
    (src / "old.txt").write_text("one\ntwo\nthree\nfour\nfive\n")
    (src / "gone.txt").write_text("bye\n")
    (src / ".gitignore").write_text("*.log\n")
    (src / "debug.log").write_text("ignored\n")
    return src


async def clone(forge: LocalForge, repository: str, into: Path) -> Path:
    git(into.parent, "clone", "-q", await forge.clone_url(repository), str(into))
    git(into, "config", "user.name", "Dev")
    git(into, "config", "user.email", "dev@example.com")
    return into


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    return git(work, "rev-parse", "HEAD").strip()


async def test_create_repository_imports_files_and_is_idempotent(
    forge: LocalForge, project: Path, tmp_path: Path
) -> None:
    repo = await forge.create_repository("acme/web", from_dir=project)
    assert repo.path == tmp_path / "home" / "forge" / "acme" / "web.git"
    assert repo.required_contexts == (GATE,)
    again = await forge.create_repository("acme/web", from_dir=project)
    assert again.id == repo.id
    files = git(repo.path, "ls-tree", "-r", "--name-only", "main").split()
    assert sorted(files) == [".gitignore", "README.md", "gone.txt", "old.txt", "src/app.py"]
    assert git(repo.path, "rev-list", "--count", "main").strip() == "1"
    assert [r.name for r in await forge.list_repositories()] == ["acme/web"]
    empty = await forge.create_repository("acme/empty")
    assert git(empty.path, "for-each-ref").strip() == ""


async def test_create_repository_from_a_relative_folder(
    forge: LocalForge, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `writgate forge create-repo acme/web --from project` passes the path as typed.
    monkeypatch.chdir(project.parent)
    repo = await forge.create_repository("acme/web", from_dir=Path(project.name))
    files = git(repo.path, "ls-tree", "-r", "--name-only", "main").split()
    assert "src/app.py" in files and "debug.log" not in files


async def test_bad_names_are_clear_input_errors(forge: LocalForge) -> None:
    for bad in ("noslash", "a/b/c", "../x", "acme/web.git", "-x/y", "a/"):
        with pytest.raises(ForgeInputError) as info:
            await forge.create_repository(bad)
        assert info.value.field == "repository"
    with pytest.raises(ForgeNotFound):
        await forge.get_pull_request("acme/none", 1)
    for org in ("../etc", "Acme", "", "a/b"):
        with pytest.raises(ForgeInputError) as info:
            forge.for_org(org)
        assert info.value.field == "org"


async def test_pull_request_lifecycle_stale_approvals_and_gate(
    forge: LocalForge, project: Path, tmp_path: Path, database: Database
) -> None:
    repo = await forge.create_repository("acme/web", from_dir=project)
    work = await clone(forge, "acme/web", tmp_path / "work")
    git(work, "checkout", "-qb", "fix/answer")
    (work / "src" / "app.py").write_text("def answer():\n    return 42\n")
    (work / "new.txt").write_text("new\n")
    git(work, "mv", "old.txt", "renamed.txt")
    (work / "gone.txt").unlink()
    (work / "logo.bin").write_bytes(b"\x00\x01\x02binary")
    (work / "naïve notes.md").write_text("ünïcödé\n")
    first = commit_all(work, "Fix the answer")
    assert await forge.push_branch("acme/web", work, "fix/answer") == first

    pr = await forge.open_pull_request(
        "acme/web", head="fix/answer", base="main", title="Fix answer", body="b", draft=True
    )
    assert pr.url == "http://127.0.0.1:8080/api/v1/forge/local/repositories/acme/web/pulls/1"
    assert (pr.number, pr.state, pr.draft, pr.author, pr.head_sha) == (
        1,
        "open",
        True,
        "writgate-bot",
        first,
    )
    files = {f.filename: f for f in await forge.list_files("acme/web", 1)}
    assert files["src/app.py"].status == "modified"
    assert (files["src/app.py"].additions, files["src/app.py"].deletions) == (1, 1)
    assert files["new.txt"].status == "added"
    assert files["gone.txt"].status == "removed"
    assert files["renamed.txt"].status == "renamed"
    assert files["renamed.txt"].previous_filename == "old.txt"
    assert files["logo.bin"].binary and files["logo.bin"].changes == 0
    assert files["naïve notes.md"].additions == 1
    assert [c.sha for c in await forge.list_commits("acme/web", 1)] == [first]

    with pytest.raises(ForgeConflict):
        await forge.open_pull_request(
            "acme/web", head="fix/answer", base="main", title="again", body="", draft=False
        )
    assert (await forge.find_pull_request("acme/web", head="fix/answer")).number == 1  # type: ignore[union-attr]
    assert await forge.find_pull_request("acme/web", head="nope") is None

    # Draft, and no gate status: refused with both reasons.
    with pytest.raises(MergeRefused) as refused:
        await forge.merge_pull_request("acme/web", 1)
    assert any("draft" in r for r in refused.value.reasons)
    assert any(GATE in r and "missing" in r for r in refused.value.reasons)
    await forge.update_pull_request("acme/web", 1, draft=False)

    review = await forge.approve("acme/web", 1, user="alice")
    assert review.commit_sha == first
    with pytest.raises(ForgeConflict):
        await forge.approve("acme/web", 1, user="writgate-bot")  # the author
    assert (await forge.get_pull_request("acme/web", 1)).current_approvers == ("alice",)

    # A new push (plain git, not through the forge) moves the head: alice's approval is stale.
    (work / "src" / "app.py").write_text("def answer():\n    return 42  # checked\n")
    second = commit_all(work, "Comment")
    git(work, "push", "-q", "origin", "fix/answer")
    pr = await forge.get_pull_request("acme/web", 1)
    assert pr.head_sha == second
    assert pr.current_approvers == ()
    assert pr.reviews[0].is_stale(pr.head_sha)
    assert pr.to_json()["reviews"][0]["stale"] is True
    await forge.request_changes("acme/web", 1, user="bob", body="tests?")

    await forge.set_commit_status(
        "acme/web", first, context=GATE, state="success", description="old head passed"
    )
    with pytest.raises(MergeRefused) as refused:
        await forge.merge_pull_request("acme/web", 1)
    assert refused.value.reasons == [f"required context {GATE!r} is missing on {second[:12]}"]
    await forge.set_commit_status(
        "acme/web", second, context=GATE, state="pending", description="x" * 300
    )
    statuses = await forge.list_commit_statuses("acme/web", second)
    assert len(statuses[0].description) == 140
    with pytest.raises(MergeRefused, match="is pending"):
        await forge.merge_pull_request("acme/web", 1)
    await forge.set_commit_status(
        "acme/web", second, context=GATE, state="success", description="allowed"
    )
    await forge.label("acme/web", 1, add=["ready", "bug"], remove=["absent"])
    pr = await forge.label("acme/web", 1, add=["ready"], remove=["bug"])
    assert pr.labels == ("ready",)
    state = pr.to_pr_state()
    assert state == {
        "number": 1,
        "title": "Fix answer",
        "draft": False,
        "author": "writgate-bot",
        "base": "main",
        "headSha": second,
        "labels": ["ready"],
        "reviews": [
            {"user": "alice", "state": "approved", "commitSha": first},
            {"user": "bob", "state": "changes_requested", "commitSha": second},
        ],
        "checks": {GATE: "success"},
    }

    merged = await forge.merge_pull_request("acme/web", 1)
    assert merged.state == "merged"
    assert merged.merge_commit_sha == second  # main had not moved: a fast-forward
    assert git(repo.path, "rev-parse", "main").strip() == second
    # Files of a merged pull request are still those it changed.
    assert len(await forge.list_files("acme/web", 1)) == 6
    assert (await forge.merge_pull_request("acme/web", 1)).state == "merged"
    with pytest.raises(ForgeConflict):
        await forge.approve("acme/web", 1, user="carol")

    events = await database.ledger.read(pr.id or "", org_id="default")
    types = [e.type for e in events]
    assert types[0] == "pr.opened"
    for expected in (
        "pr.merge_refused",
        "pr.updated",
        "pr.review",
        "pr.synchronize",
        "status.set",
        "pr.labeled",
        "pr.merged",
    ):
        assert expected in types
    assert types[-1] == "pr.merged"
    sync = next(e for e in events if e.type == "pr.synchronize")
    assert (sync.data["before"], sync.data["after"]) == (first, second)


async def test_merge_commit_when_base_moved_and_conflict_refused(
    forge: LocalForge, project: Path, tmp_path: Path
) -> None:
    repo = await forge.create_repository("acme/web", from_dir=project, required_contexts=[])
    work = await clone(forge, "acme/web", tmp_path / "work")
    git(work, "checkout", "-qb", "feature")
    (work / "feature.txt").write_text("f\n")
    head = commit_all(work, "feature")
    await forge.push_branch("acme/web", work, "feature")
    git(work, "checkout", "-q", "main")
    (work / "README.md").write_text("# demo, moved on\n")
    commit_all(work, "main moves")
    git(work, "push", "-q", "origin", "main")
    await forge.open_pull_request(
        "acme/web", head="feature", base="main", title="Feature", body="", draft=False
    )
    merged = await forge.merge_pull_request("acme/web", 1)
    parents = git(repo.path, "rev-list", "--parents", "-n1", "main").split()
    assert parents[0] == merged.merge_commit_sha
    assert parents[2] == head
    assert "feature.txt" in git(repo.path, "ls-tree", "--name-only", "main")

    # Two branches changing the same line conflict: refused, and main is untouched.
    git(work, "fetch", "-q", "origin")
    git(work, "reset", "-q", "--hard", "origin/main")
    git(work, "checkout", "-qb", "left")
    (work / "README.md").write_text("# left\n")
    commit_all(work, "left")
    await forge.push_branch("acme/web", work, "left")
    git(work, "checkout", "-q", "main")
    (work / "README.md").write_text("# right\n")
    commit_all(work, "right")
    git(work, "push", "-q", "origin", "main")
    before = git(repo.path, "rev-parse", "main").strip()
    await forge.open_pull_request(
        "acme/web", head="left", base="main", title="Left", body="", draft=False
    )
    with pytest.raises(MergeRefused, match=r"merge conflict in README\.md"):
        await forge.merge_pull_request("acme/web", 2)
    assert git(repo.path, "rev-parse", "main").strip() == before
    assert (await forge.get_pull_request("acme/web", 2)).state == "open"


async def test_check_runs_with_many_annotations_and_comments(
    forge: LocalForge, project: Path, tmp_path: Path
) -> None:
    await forge.create_repository("acme/web", from_dir=project)
    work = await clone(forge, "acme/web", tmp_path / "work")
    git(work, "checkout", "-qb", "b")
    (work / "x.txt").write_text("x\n")
    sha = commit_all(work, "x")
    await forge.push_branch("acme/web", work, "b")
    await forge.open_pull_request(
        "acme/web", head="b", base="main", title="X", body="", draft=False
    )
    annotations = [
        Annotation(
            path="x.txt",
            start_line=i + 1,
            end_line=i + 1,
            annotation_level="warning",
            message=f"finding {i}",
        )
        for i in range(120)
    ]
    run = await forge.create_check_run(
        "acme/web",
        sha[:10],
        name=GATE,
        status="in_progress",
        conclusion=None,
        title="t",
        summary="s",
        annotations=annotations[:100],
    )
    assert run.head_sha == sha and run.annotations_count == 100 and run.check_state == "pending"
    run = await forge.update_check_run(
        "acme/web", run.id, conclusion="success", summary="done", annotations=annotations[100:]
    )
    assert (run.status, run.conclusion, run.annotations_count) == ("completed", "success", 120)
    assert [a.message for a in run.annotations] == [a.message for a in annotations]
    listed = await forge.list_check_runs("acme/web", sha)
    assert [(r.id, r.annotations_count) for r in listed] == [(run.id, 120)]
    # A successful check run named like the required context satisfies the gate.
    assert (await forge.merge_blockers("acme/web", 1)) == []

    with pytest.raises(ForgeInputError) as info:
        await forge.create_check_run(
            "acme/web", sha, name="n", status="completed", conclusion=None, title="", summary=""
        )
    assert info.value.field == "conclusion"
    with pytest.raises(ForgeInputError) as info:
        await forge.set_commit_status(
            "acme/web", "0" * 40, context="c", state="success", description=""
        )
    assert info.value.field == "sha"
    bad = Annotation(path="x", start_line=3, end_line=1, annotation_level="warning", message="m")
    with pytest.raises(ForgeInputError, match="start_line"):
        await forge.create_check_run(
            "acme/web",
            sha,
            name="n",
            status="queued",
            conclusion=None,
            title="",
            summary="",
            annotations=[bad],
        )

    first = await forge.upsert_comment("acme/web", 1, marker="writgate:gate", body="v1")
    second = await forge.upsert_comment("acme/web", 1, marker="writgate:gate", body="v2")
    other = await forge.upsert_comment("acme/web", 1, marker="writgate:other", body="o")
    assert first.id == second.id != other.id
    found = await forge.list_comments("acme/web", 1)
    assert [c.body for c in found] == ["<!-- writgate:gate -->\nv2", "<!-- writgate:other -->\no"]


async def test_orgs_are_isolated_and_numbers_are_unique_under_concurrency(
    forge: LocalForge, project: Path, tmp_path: Path
) -> None:
    await forge.create_repository("acme/web", from_dir=project)
    other = forge.for_org("other")
    with pytest.raises(ForgeNotFound):
        await other.get_repository("acme/web")
    assert await other.list_repositories() == []
    theirs = await other.create_repository("acme/web")
    assert theirs.path != (await forge.get_repository("acme/web")).path

    work = await clone(forge, "acme/web", tmp_path / "work")
    for i in range(6):
        git(work, "checkout", "-q", "main")
        git(work, "checkout", "-qb", f"b{i}")
        (work / f"f{i}.txt").write_text(f"{i}\n")
        commit_all(work, f"f{i}")
        await forge.push_branch("acme/web", work, f"b{i}")
    numbers: list[int] = []

    async def open_one(i: int) -> None:
        pr = await forge.open_pull_request(
            "acme/web", head=f"b{i}", base="main", title=f"PR {i}", body="", draft=False
        )
        numbers.append(pr.number)

    async with anyio.create_task_group() as tg:
        for i in range(6):
            tg.start_soon(open_one, i)
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    page = await forge.list_pull_requests("acme/web", limit=4)
    assert len(page.items) == 4 and page.next_cursor is not None
    rest = await forge.list_pull_requests("acme/web", limit=4, cursor=page.next_cursor)
    assert rest.next_cursor is None
    assert sorted(p.number for p in [*page.items, *rest.items]) == [1, 2, 3, 4, 5, 6]
    assert (await other.list_pull_requests()).items == []
    closed = await forge.update_pull_request("acme/web", 3, state="closed")
    assert closed.state == "closed"
    assert [p.number for p in (await forge.list_pull_requests(state="closed")).items] == [3]
    with pytest.raises(ForgeInputError):
        await forge.list_pull_requests(cursor="garbage")


async def test_concurrent_creation_of_one_repository(forge: LocalForge, project: Path) -> None:
    made = []

    async def create() -> None:
        made.append(await forge.create_repository("acme/web", from_dir=project))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(create)
    assert len({repo.id for repo in made}) == 1
    assert git(made[0].path, "rev-list", "--count", "main").strip() == "1"


async def test_database_failures_are_store_errors(
    forge: LocalForge, project: Path, database: Database
) -> None:
    repo = await forge.create_repository("acme/web", from_dir=project)
    sha = git(repo.path, "rev-parse", "main").strip()
    await forge.create_check_run(
        "acme/web", sha, name="c", status="queued", conclusion=None, title="", summary=""
    )
    async with database.engine.begin() as conn:
        await conn.execute(text("DROP TABLE forge_check_annotations"))
    with pytest.raises(StoreError, match="local forge: list_check_runs failed"):
        await forge.list_check_runs("acme/web", sha)
