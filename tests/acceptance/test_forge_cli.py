"""``writgate forge …`` as a subprocess, the way a person uses the local forge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git

WRITGATE = str(Path(sys.executable).parent / "writgate")
GATE = "writgate/merge-gate"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WRITGATE_")}
    environment["WRITGATE_HOME"] = str(tmp_path / "home")
    return environment


def writgate(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [WRITGATE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == expect, (args, result.stdout, result.stderr)
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def commit_all(work: Path, message: str) -> str:
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    return git(work, "rev-parse", "HEAD").strip()


def test_forge_commands_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "app.py").write_text("print('hello')\n")
    created = writgate(env, "forge", "create-repo", "acme/web", "--from", str(source), "--json")
    clone_url = as_json(created)["cloneUrl"]
    assert Path(clone_url) == tmp_path / "home" / "forge" / "acme" / "web.git"
    repos = as_json(writgate(env, "forge", "repos", "--json"))
    assert [r["name"] for r in repos["items"]] == ["acme/web"]

    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", clone_url, str(work))
    git(work, "checkout", "-qb", "writgate/fix")
    (work / "app.py").write_text("print('hello, world')\n")
    first = commit_all(work, "Greet the world")
    git(work, "push", "-q", "origin", "writgate/fix")

    writgate(
        env,
        "forge",
        "open",
        "--repo",
        "acme/web",
        "--head",
        "writgate/fix",
        "--title",
        "Greet the world",
        "--draft",
    )
    prs = as_json(writgate(env, "forge", "prs", "--json"))
    assert len(prs["items"]) == 1
    pr = prs["items"][0]
    assert {k: pr[k] for k in ("repository", "number", "title", "state", "draft", "headSha")} == {
        "repository": "acme/web",
        "number": 1,
        "title": "Greet the world",
        "state": "open",
        "draft": True,
        "headSha": first,
    }
    text = writgate(env, "forge", "prs").stdout
    assert "acme/web#1  open draft" in text

    approved = writgate(env, "forge", "approve", "1", "--repo", "acme/web", "--as", "alice")
    assert "alice approved" in approved.stdout
    writgate(env, "forge", "request-changes", "1", "--repo", "acme/web", "--as", "bob")
    labelled = writgate(
        env,
        "forge",
        "label",
        "1",
        "--repo",
        "acme/web",
        "--add",
        "ready",
        "--add",
        "ci",
        "--remove",
        "ci",
    )
    assert "labels: ready" in labelled.stdout

    (work / "app.py").write_text("print('hello, world!')\n")
    second = commit_all(work, "Exclaim")
    git(work, "push", "-q", "origin", "writgate/fix")
    shown = as_json(writgate(env, "forge", "show", "1", "--repo", "acme/web", "--json"))
    assert shown["headSha"] == second
    assert [(r["user"], r["stale"]) for r in shown["reviews"]] == [("alice", True), ("bob", True)]
    assert shown["statuses"] == [] and shown["checkRuns"] == []
    assert shown["files"][0]["filename"] == "app.py"

    refused = writgate(env, "forge", "merge", "1", "--repo", "acme/web", expect=1)
    assert "is a draft" in refused.stderr
    assert f"required context '{GATE}' is missing" in refused.stderr
    assert "Traceback" not in refused.stderr

    writgate(
        env,
        "forge",
        "status",
        second,
        "--repo",
        "acme/web",
        "--context",
        GATE,
        "--state",
        "failure",
        "--description",
        "blocked by policy",
    )
    shown_text = writgate(env, "forge", "show", "1", "--repo", "acme/web").stdout
    assert f"status:  {GATE} failure" in shown_text
    assert "(stale)" in shown_text
    refused = writgate(env, "forge", "merge", "1", "--repo", "acme/web", expect=1)
    assert f"required context '{GATE}' is failure" in refused.stderr

    writgate(
        env,
        "forge",
        "status",
        second,
        "--repo",
        "acme/web",
        "--context",
        GATE,
        "--state",
        "success",
        "--description",
        "allowed",
    )
    still_draft = writgate(env, "forge", "merge", "1", "--repo", "acme/web", expect=1)
    assert "is a draft" in still_draft.stderr
    assert GATE not in still_draft.stderr
    writgate(env, "forge", "ready", "1", "--repo", "acme/web")
    merged = writgate(env, "forge", "merge", "1", "--repo", "acme/web")
    assert f"merged into main at {second}" in merged.stdout
    assert git(Path(clone_url), "rev-parse", "main").strip() == second


def test_merge_allowed_after_gate_and_bad_input(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "README.md").write_text("# r\n")
    clone_url = as_json(
        writgate(env, "forge", "create-repo", "acme/api", "--from", str(source), "--json")
    )["cloneUrl"]
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", clone_url, str(work))
    git(work, "checkout", "-qb", "feature")
    (work / "f.txt").write_text("f\n")
    head = commit_all(work, "f")
    git(work, "push", "-q", "origin", "feature")
    writgate(env, "forge", "open", "--repo", "acme/api", "--head", "feature", "--title", "F")
    writgate(
        env,
        "forge",
        "status",
        head[:8],
        "--repo",
        "acme/api",
        "--context",
        GATE,
        "--state",
        "success",
    )
    merged = writgate(env, "forge", "merge", "1", "--repo", "acme/api", "--as", "carol")
    assert f"merged into main at {head}" in merged.stdout
    assert git(Path(clone_url), "rev-parse", "main").strip() == head
    assert (
        as_json(writgate(env, "forge", "prs", "--repo", "acme/api", "--json"))["items"][0]["state"]
        == "merged"
    )

    git(work, "checkout", "-qb", "abandoned")
    (work / "g.txt").write_text("g\n")
    commit_all(work, "g")
    git(work, "push", "-q", "origin", "abandoned")
    writgate(env, "forge", "open", "--repo", "acme/api", "--head", "abandoned", "--title", "G")
    closed = writgate(env, "forge", "close", "2", "--repo", "acme/api")
    assert "acme/api#2 closed" in closed.stdout
    refused = writgate(env, "forge", "merge", "2", "--repo", "acme/api", expect=1)
    assert "pull request #2 is closed" in refused.stderr
    triggers = as_json(writgate(env, "forge", "triggers", "--json"))
    assert triggers == {"items": [], "nextCursor": None}

    missing = writgate(env, "forge", "show", "9", "--repo", "acme/api", expect=2)
    assert "pull request #9 does not exist in acme/api" in missing.stderr
    bad = writgate(env, "forge", "prs", "--repo", "nope", expect=2)
    assert "repository: 'nope' is not a repository name" in bad.stderr
    usage = writgate(env, "forge", "approve", "1", "--repo", "acme/api", expect=2)
    assert "--as" in usage.stderr
    writgate(env, "forge", "protect", "acme/api", "--require", "ci/tests", "--require", GATE)
    repos = as_json(writgate(env, "forge", "repos", "--json"))["items"]
    assert repos[0]["requiredContexts"] == ["ci/tests", GATE]
