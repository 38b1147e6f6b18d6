"""Git operations on the local forge's bare repositories (all through ``writgate.git.run_git``)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import anyio

from writgate.git import GitError, run_git

from .errors import ForgeInputError, MergeRefused
from .protocol import Commit, PullRequestFile

__all__ = [
    "MergeOutcome",
    "branch_tips",
    "changed_files",
    "commits_between",
    "import_directory",
    "init_bare",
    "is_ancestor",
    "merge",
    "merge_base",
    "push",
    "resolve_commit",
    "validate_branch",
]

_STATUS = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "changed",
}


async def validate_branch(branch: str, *, field: str = "branch") -> str:
    """``branch`` if it is a valid branch name, else :class:`ForgeInputError` naming ``field``."""
    if not branch or branch.startswith("-") or branch.startswith("refs/"):
        raise ForgeInputError(f"{branch!r} is not a valid branch name", field=field)
    try:
        await run_git(["check-ref-format", f"refs/heads/{branch}"])
    except GitError as exc:
        raise ForgeInputError(f"{branch!r} is not a valid branch name", field=field) from exc
    return branch


async def init_bare(path: Path, default_branch: str) -> None:
    """Create an empty bare repository at ``path`` whose HEAD names ``default_branch``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        await run_git(["init", "--quiet", "--bare", "--initial-branch", default_branch, str(tmp)])
        # Rename into place so a concurrent creator never sees a half-made repository.
        os.rename(tmp, path)
    except OSError:
        await run_git(["-C", str(path), "rev-parse", "--git-dir"])  # someone else made it
        _remove_tree(tmp)


def _remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if child.is_dir() and not child.is_symlink():
            child.rmdir()
        else:
            child.unlink()
    path.rmdir()


async def import_directory(path: Path, source: Path, branch: str, message: str) -> str:
    """Commit ``source``'s files (``.gitignore`` respected) as the first commit of ``branch``."""
    if not await anyio.Path(source).is_dir():
        raise ForgeInputError(f"{source} is not a directory", field="from_dir")
    # git resolves a relative GIT_WORK_TREE against its cwd, which is ``source`` itself.
    source = Path(await anyio.Path(source).absolute())
    with tempfile.TemporaryDirectory(prefix="writgate-import-") as scratch:
        env = {
            "GIT_DIR": str(path),
            "GIT_WORK_TREE": str(source),
            "GIT_INDEX_FILE": str(Path(scratch) / "index"),
        }
        await run_git(["-c", "core.bare=false", "add", "--all", "."], cwd=source, env=env)
        tree = (await run_git(["write-tree"], cwd=source, env=env)).decode().strip()
    sha = (await run_git(["commit-tree", tree, "-m", message], cwd=path)).decode().strip()
    await run_git(["update-ref", f"refs/heads/{branch}", sha, ""], cwd=path)
    return sha


async def branch_tips(path: Path) -> dict[str, str]:
    """Every branch of the repository at ``path`` with its commit."""
    out = await run_git(
        ["for-each-ref", "--format=%(objectname) %(refname:strip=2)", "refs/heads"], cwd=path
    )
    tips: dict[str, str] = {}
    for line in out.decode().splitlines():
        sha, _, name = line.partition(" ")
        tips[name] = sha
    return tips


async def resolve_commit(path: Path, revision: str) -> str | None:
    """The full sha of ``revision`` as a commit, or None when it names no commit."""
    if revision.startswith("-"):
        return None
    out = await run_git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"],
        cwd=path,
        check=False,
    )
    sha = out.decode().strip()
    return sha or None


async def is_ancestor(path: Path, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is reachable from ``descendant``."""
    # The merge base of an ancestor and its descendant is the ancestor itself (and only then).
    return await merge_base(path, ancestor, descendant) == ancestor


async def merge_base(path: Path, left: str, right: str) -> str | None:
    """The best common ancestor of two commits, or None when they share no history."""
    out = await run_git(["merge-base", left, right], cwd=path, check=False)
    return out.decode().strip() or None


async def changed_files(path: Path, base: str, head: str) -> list[PullRequestFile]:
    """Files changed from ``base`` to ``head``, with GitHub's status names."""
    statuses = (
        await run_git(["diff", "-z", "--name-status", "-M", "-C", base, head, "--"], cwd=path)
    ).decode("utf-8", "replace")
    numstats = (
        await run_git(["diff", "-z", "--numstat", "-M", "-C", base, head, "--"], cwd=path)
    ).decode("utf-8", "replace")
    counts: dict[str, tuple[int, int, bool]] = {}
    tokens = numstats.split("\0")
    i = 0
    while i < len(tokens) and tokens[i]:
        added, deleted, name = tokens[i].split("\t", 2)
        if not name:  # a rename or copy: the old and new paths follow
            name = tokens[i + 2]
            i += 3
        else:
            i += 1
        binary = added == "-"
        counts[name] = (0 if binary else int(added), 0 if binary else int(deleted), binary)
    files: list[PullRequestFile] = []
    tokens = statuses.split("\0")
    i = 0
    while i < len(tokens) and tokens[i]:
        letter = tokens[i][0]
        previous = None
        if letter in "RC":
            previous, name = tokens[i + 1], tokens[i + 2]
            i += 3
        else:
            name = tokens[i + 1]
            i += 2
        additions, deletions, binary = counts.get(name, (0, 0, False))
        files.append(
            PullRequestFile(
                filename=name,
                status=_STATUS.get(letter, "changed"),  # type: ignore[arg-type]
                additions=additions,
                deletions=deletions,
                previous_filename=previous,
                binary=binary,
            )
        )
    return files


async def commits_between(path: Path, base: str, head: str) -> list[Commit]:
    """Commits reachable from ``head`` but not ``base``, oldest first."""
    out = await run_git(
        ["log", "--reverse", "--format=%H%x00%P%x00%an%x00%B%x1e", f"{base}..{head}", "--"],
        cwd=path,
    )
    commits = []
    for record in out.decode("utf-8", "replace").split("\x1e"):
        record = record.lstrip("\n")
        if not record:
            continue
        sha, parents, author, message = record.split("\0", 3)
        commits.append(
            Commit(
                sha=sha,
                parents=tuple(parents.split()),
                author=author,
                message=message.rstrip("\n"),
            )
        )
    return commits


async def push(workdir: Path, destination: Path, branch: str, *, force: bool) -> str:
    """Push ``workdir``'s HEAD to ``branch`` of the bare repository; returns the pushed sha."""
    sha = await resolve_commit(workdir, "HEAD")
    if sha is None:
        raise ForgeInputError(f"{workdir} has no commit to push", field="workdir")
    refspec = f"{'+' if force else ''}{sha}:refs/heads/{branch}"
    try:
        await run_git(["push", "--quiet", "--no-verify", str(destination), refspec], cwd=workdir)
    except GitError as exc:
        if (
            "non-fast-forward" in exc.message
            or "rejected" in exc.message
            or "fetch first" in exc.message
        ):
            raise MergeRefused(
                f"push to {branch!r} rejected: it is not a fast-forward (use force)",
                code="push_rejected",
            ) from exc
        raise
    return sha


@dataclass(frozen=True)
class MergeOutcome:
    """What a merge did: the new tip of the base branch and how it got there."""

    sha: str
    method: str  # "fast-forward" | "merge" | "already-merged"
    base_before: str


async def merge(path: Path, *, base: str, head_sha: str, message: str, author: str) -> MergeOutcome:
    """Merge ``head_sha`` into branch ``base`` of the bare repository.

    A fast-forward when possible, else a merge commit built with ``git merge-tree`` (no worktree).
    The branch is moved with a compare-and-swap, so a concurrent push is never lost.
    """
    base_sha = await resolve_commit(path, f"refs/heads/{base}")
    if base_sha is None:
        raise MergeRefused(
            f"base branch {base!r} does not exist", reasons=[f"base branch {base!r} does not exist"]
        )
    if await is_ancestor(path, head_sha, base_sha):
        return MergeOutcome(sha=base_sha, method="already-merged", base_before=base_sha)
    if await is_ancestor(path, base_sha, head_sha):
        new_sha, method = head_sha, "fast-forward"
    else:
        out = (
            await run_git(
                ["merge-tree", "--write-tree", "--name-only", "--no-messages", base_sha, head_sha],
                cwd=path,
                check=False,
            )
        ).decode("utf-8", "replace")
        lines = [line for line in out.splitlines() if line]
        if not lines:
            raise MergeRefused(
                "the branches cannot be merged (git merge-tree failed)",
                reasons=["the branches cannot be merged"],
            )
        if len(lines) > 1:
            conflicted = sorted(set(lines[1:]))
            reason = "merge conflict in " + ", ".join(conflicted)
            raise MergeRefused(reason, reasons=[reason], conflicts=conflicted)
        env = {"GIT_AUTHOR_NAME": author, "GIT_COMMITTER_NAME": author}
        new_sha = (
            (
                await run_git(
                    ["commit-tree", lines[0], "-p", base_sha, "-p", head_sha, "-m", message],
                    cwd=path,
                    env=env,
                )
            )
            .decode()
            .strip()
        )
        method = "merge"
    try:
        await run_git(["update-ref", f"refs/heads/{base}", new_sha, base_sha], cwd=path)
    except GitError as exc:
        reason = f"base branch {base!r} moved during the merge; try again"
        raise MergeRefused(reason, reasons=[reason]) from exc
    return MergeOutcome(sha=new_sha, method=method, base_before=base_sha)
