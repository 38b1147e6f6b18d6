"""Building a passport from a repository: resolve the revisions, read the diff, assemble."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from writgate.git import GitError, run_git_sync

from .diff import read_diff_sync
from .errors import RevisionError
from .model import NO_PROVENANCE, build_statement
from .provenance import recover_provenance
from .signing import PublicKey
from .trailers import ASSISTED_TRAILER, RUN_TRAILER, merge_trailers, trailer_values

__all__ = [
    "build_passport",
    "build_passport_sync",
    "commit_messages",
    "recover_pull_request_provenance",
    "resolve_revision",
    "resolve_revisions",
]


def _git(repo: Path, args: Sequence[str], input: bytes | None = None) -> bytes:
    try:
        return run_git_sync(args, cwd=repo, input=input)
    except GitError as exc:
        message = str(exc)
        if "not a git repository" in message.lower():
            raise RevisionError(f"{repo} is not a git repository", field="repo") from exc
        raise RevisionError(message.split(": ", 1)[-1], field="rev") from exc


def _check_repo(repo: Path) -> None:
    if not repo.is_dir():
        raise RevisionError(f"{repo} is not a directory", field="repo")


def _check_rev(rev: str) -> None:
    if not rev or rev.startswith("-") or any(ord(c) < 32 for c in rev):
        raise RevisionError(f"{rev!r} is not a revision", field="rev")


def resolve_revisions(repo: Path | str, revs: Sequence[str]) -> list[tuple[str, str | None]]:
    """The commit id of each revision in ``repo``, and its branch name when it names one."""
    repo = Path(repo)
    _check_repo(repo)
    for rev in revs:
        _check_rev(rev)
    # One process for every revision: "<sha> commit <size>" or "<rev> missing" per line.
    request = "".join(f"{rev}^{{commit}}\n" for rev in revs).encode()
    lines = _git(repo, ["cat-file", "--batch-check"], input=request).decode().splitlines()
    resolved: list[tuple[str, str | None]] = []
    for rev, line in zip(revs, lines, strict=True):
        fields = line.split()
        if len(fields) != 3 or fields[1] != "commit":
            raise RevisionError(f"unknown revision {rev!r} in {repo}", field="rev")
        sha, branch = fields[0], None
        if not re.fullmatch(r"[0-9a-f]{4,64}", rev):  # a commit id names no branch
            full = run_git_sync(
                ["rev-parse", "--symbolic-full-name", rev], cwd=repo, check=False
            ).decode()
            for prefix in ("refs/heads/", "refs/remotes/origin/"):
                if full.startswith(prefix):
                    branch = full.strip()[len(prefix) :]
        resolved.append((sha, branch))
    return resolved


def resolve_revision(repo: Path | str, rev: str) -> tuple[str, str | None]:
    """The commit id of ``rev`` in ``repo``, and its branch name when ``rev`` names one."""
    return resolve_revisions(repo, [rev])[0]


def _repository_name(repo: Path) -> str:
    """``owner/name`` from the ``origin`` remote URL, else the directory name."""
    url = run_git_sync(["config", "--get", "remote.origin.url"], cwd=repo, check=False)
    text = url.decode("utf-8", "replace").strip()
    if text:
        path = urlsplit(text).path if "://" in text else text.rsplit(":", 1)[-1]
        parts = [p for p in path.removesuffix(".git").split("/") if p]
        if len(parts) >= 2:
            return "/".join(parts[-2:])
    top = run_git_sync(["rev-parse", "--show-toplevel"], cwd=repo, check=False).decode().strip()
    return Path(top or repo.resolve()).name.removesuffix(".git")


def commit_messages(repo: Path | str, base: str, head: str) -> list[str]:
    """The messages of the commits in ``base..head``, oldest first."""
    output = _git(Path(repo), ["log", "--reverse", "-z", "--format=%B", f"{base}..{head}", "--"])
    return [m.decode("utf-8", "replace") for m in output.split(b"\0") if m.strip()]


def _writer_from_trailers(trailers: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    # Unsigned trailers are claims, not provenance: they say an agent was involved, nothing more.
    claimed = trailer_values(trailers, RUN_TRAILER) or trailer_values(trailers, ASSISTED_TRAILER)
    return {"kind": "external" if claimed else "human"}


def build_passport_sync(
    repo: Path | str,
    base: str,
    head: str,
    *,
    repository: str | None = None,
    pull_request: Mapping[str, Any] | None = None,
    writer: Mapping[str, Any] | None = None,
    validation: Sequence[Mapping[str, Any]] = (),
    reviews: Sequence[Mapping[str, Any]] = (),
    provenance_verified: bool = False,
    provenance_reason: str = NO_PROVENANCE,
) -> dict[str, Any]:
    """The passport statement of ``base..head`` in the git repository at ``repo``.

    ``writer`` is the verified writer provenance (a writer run or a recovered provenance block);
    without it the writer is ``human``, or ``external`` when commit trailers claim an agent.
    """
    repo = Path(repo)
    (base_sha, base_ref), (head_sha, head_ref) = resolve_revisions(repo, [base, head])
    diff = read_diff_sync(repo, base_sha, head_sha)
    if writer is None:
        writer = _writer_from_trailers(merge_trailers(commit_messages(repo, base_sha, head_sha)))
    return build_statement(
        repository=repository or _repository_name(repo),
        base_sha=base_sha,
        head_sha=head_sha,
        base_ref=base_ref,
        head_ref=head_ref,
        diff=diff,
        pull_request=pull_request,
        writer=writer,
        validation=validation,
        reviews=reviews,
        provenance_verified=provenance_verified,
        provenance_reason=provenance_reason,
    )


async def build_passport(
    repo: Path | str,
    base: str,
    head: str,
    *,
    repository: str | None = None,
    pull_request: Mapping[str, Any] | None = None,
    writer: Mapping[str, Any] | None = None,
    validation: Sequence[Mapping[str, Any]] = (),
    reviews: Sequence[Mapping[str, Any]] = (),
    provenance_verified: bool = False,
    provenance_reason: str = NO_PROVENANCE,
) -> dict[str, Any]:
    """Async :func:`build_passport_sync` (runs in a worker thread)."""

    def build() -> dict[str, Any]:
        return build_passport_sync(
            repo,
            base,
            head,
            repository=repository,
            pull_request=pull_request,
            writer=writer,
            validation=validation,
            reviews=reviews,
            provenance_verified=provenance_verified,
            provenance_reason=provenance_reason,
        )

    return await anyio.to_thread.run_sync(build)


async def recover_pull_request_provenance(
    repo: Path | str,
    base: str,
    head: str,
    pr_body: str | None,
    public_keys: Sequence[PublicKey],
    *,
    run_id: str | None = None,
) -> tuple[dict[str, Any] | None, bool, str]:
    """:func:`passport.recover_provenance` for a PR checked out at ``repo``.

    Reads the trailers of the commits in ``base..head`` and resolves ``head`` to the commit id
    the signed block must name. Returns ``(writer, verified, reason)``.
    """

    def recover() -> tuple[dict[str, Any] | None, bool, str]:
        (base_sha, _), (head_sha, _) = resolve_revisions(repo, [base, head])
        trailers = merge_trailers(commit_messages(repo, base_sha, head_sha))
        return recover_provenance(pr_body, trailers, head_sha, run_id, public_keys)

    return await anyio.to_thread.run_sync(recover)
