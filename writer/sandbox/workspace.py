"""Workspaces from a cached mirror: a cold start costs a checkout, not a clone.

Each repository URL has one bare mirror (:func:`writgate.git.mirror`, locked against concurrent
fetches). A workspace is ``git clone --shared`` of the mirror — its own ``.git`` with its own index
and refs, borrowing the mirror's objects through ``objects/info/alternates`` — so the sandbox never
writes into the mirror. The alternates path is relative (``../../../mirror.git/objects``): on the
host ``<sandbox>/mirror.git`` is a symlink to the mirror, inside the sandbox the mirror is bound
read-only at :data:`MIRROR` — one path that works on both sides. While
a workspace lives, a ref ``refs/writgate/sandboxes/<id>`` in the mirror keeps its base commit
reachable, so no ``gc`` of the mirror can drop objects a workspace borrows.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from writgate.git import GitError, mirror, run_git, run_git_sync

from .errors import SandboxSetupError

__all__ = ["DIFF_SCRIPT", "MIRROR", "Checkout", "check_out", "fetch_ref", "release"]

MIRROR = "/mirror.git"
"""Where the mirror is bound (read-only) inside the sandbox; the workspace's ``origin``."""

# Runs inside a sandbox with the base commit as $1: stage everything into a throw-away index (the
# workspace's own index is untouched) and print the binary diff against the base.
DIFF_SCRIPT = """set -e
index=$(mktemp)
trap 'rm -f "$index"' EXIT
if [ -f .git/index ]; then cp .git/index "$index"; else rm -f "$index"; fi
export GIT_INDEX_FILE="$index"
git add -A
git diff --cached --binary --full-index --find-renames --no-color --no-ext-diff --no-textconv \\
    "$1" --
"""
_KEEP_REF = "refs/writgate/sandboxes/"
_COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass(frozen=True)
class Checkout:
    """A workspace checked out from a mirror."""

    mirror: Path
    workspace: Path
    base: str
    """The commit id the workspace was checked out at."""
    branch: str | None
    """The local branch checked out, when ``ref`` named a branch of the repository."""


async def fetch_ref(mirrors: Path, url: str, ref: str) -> tuple[Path, str, str | None]:
    """Bring the mirror of ``url`` up to date; (mirror path, commit id, branch name or None)."""
    if ref.startswith("-") or not ref.strip():
        raise SandboxSetupError(f"invalid ref {ref!r}", ref=ref)
    try:
        mirror_path = await mirror(mirrors, url, refs=[] if _is_branch_like(ref) else [ref])
    except GitError as exc:
        raise SandboxSetupError(f"cannot fetch the repository: {exc}", ref=ref) from exc
    base, branch = await _resolve(mirror_path, ref)
    return mirror_path, base, branch


async def _resolve(mirror_path: Path, ref: str) -> tuple[str, str | None]:
    """(commit id, branch name or None) of ``ref`` in the mirror."""
    for candidate, branch in ((f"refs/heads/{ref}", ref), (ref, None)):
        out = await run_git(
            ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}"],
            cwd=mirror_path,
            check=False,
        )
        sha = out.decode().strip()
        if _COMMIT.match(sha):
            return sha, branch
    raise SandboxSetupError(f"ref {ref!r} is not a branch or commit of the repository", ref=ref)


async def check_out(
    *, mirrors: Path, url: str, ref: str, workspace: Path, sandbox_id: str
) -> Checkout:
    """Fetch ``url`` into its mirror and check ``ref`` out into the new directory ``workspace``.

    ``workspace`` must be ``<sandbox directory>/workspace``; the mirror link is created next to it.
    """
    mirror_path, base, branch = await fetch_ref(mirrors, url, ref)
    try:
        await run_git(["update-ref", f"{_KEEP_REF}{sandbox_id}", base], cwd=mirror_path)
        await run_git(
            [
                "clone",
                "--quiet",
                "--shared",
                "--no-checkout",
                "-c",
                "user.name=writgate sandbox",
                "-c",
                "user.email=sandbox@writgate.invalid",
                "-c",
                "gc.auto=0",
                "--",
                str(mirror_path),
                str(workspace),
            ]
        )
        link = workspace.parent / "mirror.git"
        link.symlink_to(mirror_path, target_is_directory=True)
        (workspace / ".git" / "objects" / "info" / "alternates").write_text(
            "../../../mirror.git/objects\n"
        )
        await run_git(["remote", "set-url", "origin", MIRROR], cwd=workspace)
        if branch is not None:
            await run_git(["checkout", "--quiet", "-B", branch, base], cwd=workspace)
        else:
            await run_git(["checkout", "--quiet", "--detach", base], cwd=workspace)
    except GitError as exc:
        raise SandboxSetupError(f"cannot prepare the workspace: {exc}", ref=ref) from exc
    return Checkout(mirror=mirror_path, workspace=workspace, base=base, branch=branch)


def _is_branch_like(ref: str) -> bool:
    """A commit id must be fetched explicitly (it may be on no branch); a branch comes along."""
    return not _COMMIT.match(ref) and not ref.startswith("refs/")


async def release(mirror_path: Path, sandbox_id: str) -> None:
    """Drop the mirror ref that kept the workspace's base commit alive (best effort).

    git runs in a worker thread, not as an asyncio subprocess: this is part of a sandbox's
    teardown, which runs in a task of its own and may still run when the event loop closes.
    Closing the loop cancels every task; an asyncio subprocess caught while its pipes were being
    connected then never finishes (Python 3.11 waits for pipes that were never connected) and
    the close of the loop hangs for ever. A thread just ends with git.
    """
    args = ["update-ref", "-d", f"{_KEEP_REF}{sandbox_id}"]
    await asyncio.to_thread(run_git_sync, args, cwd=mirror_path, check=False)
