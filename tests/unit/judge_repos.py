"""Real git repositories with a base and a head commit, for the judge tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from judge import Change, Finding, create_reviewer, load_change
from tests.conftest import git

Files = Mapping[str, str | bytes | None]


def write(repo: Path, files: Files) -> None:
    """Write (or, for ``None``, delete) files in ``repo``'s working tree."""
    for name, content in files.items():
        path = repo / name
        if content is None:
            if path.exists():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def make_repo(
    root: Path, base: Files, head: Files, *, renames: Sequence[tuple[str, str]] = ()
) -> tuple[Path, str, str]:
    """A repository under ``root`` whose ``main`` has ``base`` and whose ``head`` branch changes
    it by ``head`` (after ``renames``, done with ``git mv``). Returns (repo, base sha, head sha)."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    write(repo, {"README.md": "project\n", **base})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base_sha = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-qb", "head")
    for old, new in renames:
        (repo / new).parent.mkdir(parents=True, exist_ok=True)
        git(repo, "mv", old, new)
    write(repo, head)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "head", "--allow-empty")
    head_sha = git(repo, "rev-parse", "HEAD").strip()
    return repo, base_sha, head_sha


def change_of(root: Path, base: Files, head: Files, **kwargs: object) -> Change:
    """The loaded :class:`Change` of a fresh repository."""
    repo, base_sha, head_sha = make_repo(root, base, head, **kwargs)  # type: ignore[arg-type]
    return anyio.run(load_change, repo, base_sha, head_sha)


def review(
    root: Path,
    reviewer: str,
    base: Files,
    head: Files,
    options: Mapping[str, object] | None = None,
    **kwargs: object,
) -> list[Finding]:
    """Run one reviewer over a fresh repository's change."""
    change = change_of(root, base, head, **kwargs)
    instance = create_reviewer(reviewer, options)
    return anyio.run(instance.review, change)


def rules(findings: Sequence[Finding]) -> list[str]:
    """The rules of ``findings``, sorted."""
    return sorted(f.rule for f in findings)
