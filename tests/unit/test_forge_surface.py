"""The forge package's public surface, the protocol its forges satisfy, and its layering."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import forge
from forge.github import GitHubForge
from forge.local import LocalForge
from forge.protocol import Forge, PullRequest, Review

FORGE_DIR = Path(forge.__file__).parent


def test_all_is_sorted_and_importable() -> None:
    assert forge.__all__ == sorted(forge.__all__, key=lambda n: (not n.isupper(), n))
    for name in forge.__all__:
        assert getattr(forge, name) is not None


def test_both_forges_implement_every_protocol_method_with_its_keywords() -> None:
    members = {
        name: value
        for name, value in inspect.getmembers(Forge)
        if not name.startswith("_") and inspect.isfunction(value)
    }
    assert "merge_pull_request" in members and "upsert_comment" in members
    for implementation in (LocalForge, GitHubForge):
        assert implementation.name in ("local", "github")
        for name, method in members.items():
            mine = getattr(implementation, name)
            assert inspect.iscoroutinefunction(mine), (implementation, name)
            expected = inspect.signature(method).parameters
            actual = inspect.signature(mine).parameters
            for parameter in expected.values():
                assert parameter.name in actual, (implementation.__name__, name, parameter.name)
                assert actual[parameter.name].kind == parameter.kind, (name, parameter.name)


def test_forge_imports_only_the_kernel_and_itself() -> None:
    forbidden = ("writer", "judge", "pipelines", "passport", "policies", "writgate.app")
    for path in FORGE_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"


def test_pr_state_is_contract_2_and_stale_approvals_do_not_count() -> None:
    pr = PullRequest(
        repository="acme/web",
        number=3,
        title="t",
        state="open",
        draft=False,
        author="writgate-bot",
        base="main",
        base_sha="b" * 40,
        head="fix",
        head_sha="new",
        labels=("x",),
        reviews=(
            Review(user="alice", state="approved", commit_sha="old"),
            Review(user="bob", state="approved", commit_sha="new"),
            Review(user="carol", state="approved", commit_sha="new"),
            Review(user="carol", state="changes_requested", commit_sha="new"),
            Review(user="bob", state="commented", commit_sha="new"),
        ),
        checks={"writgate/merge-gate": "success"},
    )
    state = pr.to_pr_state()
    assert set(state) == {
        "number",
        "title",
        "draft",
        "author",
        "base",
        "headSha",
        "labels",
        "reviews",
        "checks",
    }
    assert state["reviews"][0] == {"user": "alice", "state": "approved", "commitSha": "old"}
    assert pr.current_approvers == ("bob",)
    assert pr.to_json()["reviews"][0]["stale"] is True
