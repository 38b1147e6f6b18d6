"""Publishing a run's change: commit on the host with trailers, push a branch, open the PR.

The sandbox only hands over a binary diff; the commit is made here, on the host, in a
throw-away clone that shares the object store of a cached mirror. The agent can therefore not
forge trailers or commit history, and no sandbox ever holds forge credentials.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from forge.protocol import Forge, PullRequest
from writgate.git import mirror, run_git

from .errors import WriterError

__all__ = ["PublishFailed", "PublishResult", "branch_name", "branch_tip", "publish_change"]


class PublishFailed(WriterError):
    """Publishing the change failed."""

    code = "publish_failed"


@dataclass(frozen=True)
class PublishResult:
    """Where the change went."""

    branch: str
    head_sha: str
    pull_request: PullRequest | None


def branch_name(run_id: str, title: str) -> str:
    """``writgate/<short id>-<slug>`` for a run."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "change"
    return f"writgate/{run_id.removeprefix('run_')[-8:]}-{slug}"


async def branch_tip(url: str, branch: str) -> str | None:
    """The commit ``branch`` points at in the repository at ``url``, or ``None`` if it is absent."""
    out = (await run_git(["ls-remote", url, f"refs/heads/{branch}"])).decode()
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if ref == f"refs/heads/{branch}":
            return sha
    return None


async def publish_change(
    *,
    forge: Forge,
    repository: str,
    mirror_root: Path,
    base_sha: str,
    parent_sha: str | None,
    patch: bytes,
    branch: str,
    message: str,
    mode: str,
    base_ref: str,
    title: str,
    body: str | Callable[[str], str],
) -> PublishResult:
    """Commit ``patch`` (relative to ``base_sha``) on top of ``parent_sha`` and publish it.

    ``mode`` is ``branch``, ``draft_pr`` or ``pr``. Publishing again for the same branch adds a
    commit and reuses the open PR, so a retried publish never opens a second PR. ``body`` may
    be a function of the new head SHA (a body whose provenance block signs that SHA).
    """
    url = await forge.clone_url(repository)
    refs = [base_sha] + ([parent_sha] if parent_sha else [])
    cache = await mirror(mirror_root, url, refs=refs)
    workdir = Path(tempfile.mkdtemp(prefix="writgate-publish-"))
    try:
        await run_git(["clone", "--quiet", "--shared", "--no-checkout", str(cache), str(workdir)])
        await run_git(["read-tree", base_sha], cwd=workdir)
        if patch.strip():
            await run_git(
                ["apply", "--cached", "--binary", "--whitespace=nowarn", "-"],
                cwd=workdir,
                input=patch,
            )
        tree = (await run_git(["write-tree"], cwd=workdir)).decode().strip()
        parent = parent_sha or base_sha
        parent_tree = (await run_git(["rev-parse", f"{parent}^{{tree}}"], cwd=workdir)).decode()
        if tree == parent_tree.strip():
            head = parent
        else:
            head = (
                (
                    await run_git(
                        ["commit-tree", tree, "-p", parent, "-F", "-"],
                        cwd=workdir,
                        input=message.encode(),
                    )
                )
                .decode()
                .strip()
            )
        await run_git(["update-ref", f"refs/heads/{branch}", head], cwd=workdir)
        await run_git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], cwd=workdir)
        pushed = await forge.push_branch(repository, workdir, branch)
        pull_request = None
        if mode in ("draft_pr", "pr"):
            if callable(body):
                body = body(pushed or head)
            pull_request = await forge.find_pull_request(repository, head=branch)
            if pull_request is None:
                pull_request = await forge.open_pull_request(
                    repository,
                    head=branch,
                    base=base_ref,
                    title=title,
                    body=body,
                    draft=mode == "draft_pr",
                )
            else:
                pull_request = await forge.update_pull_request(
                    repository, pull_request.number, body=body
                )
        return PublishResult(branch=branch, head_sha=pushed or head, pull_request=pull_request)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
