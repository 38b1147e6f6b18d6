"""Pull requests of the local forge: commits, diff, reviews, statuses, check runs and the
approve and merge actions (a merge goes through the merge gate: refused unless it allows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from forge.local import LocalForge
from forge.protocol import CommitStatus
from judge.gate import MergeGate
from writgate.errors import ConflictError, InputError
from writgate.git import GitError, run_git
from writgate.web import app_state

from .pages import HtmlRoute, Viewer, flash_redirect, page, read_form, viewer

__all__ = ["MAX_DIFF_BYTES", "DiffLine", "parse_diff_lines", "router"]

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)

LoggedIn = Annotated[Viewer, Depends(viewer)]
MAX_DIFF_BYTES = 512 * 1024
_PR = "/forge/{owner}/{name}/pulls/{number}"


@dataclass(frozen=True)
class DiffLine:
    """One line of a unified diff and how to show it."""

    kind: str  # file | hunk | add | del | context | meta
    text: str


def parse_diff_lines(text: str) -> list[DiffLine]:
    """Classify the lines of ``git diff`` output for display."""
    lines = []
    for line in text.splitlines():
        if line.startswith("diff --git"):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith(("+++", "---", "index ", "similarity ", "rename ", "new file",
                              "deleted file", "old mode", "new mode", "Binary files")):  # fmt: skip
            kind = "meta"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "context"
        lines.append(DiffLine(kind, line))
    return lines


def _latest_per_context(statuses: list[CommitStatus]) -> list[tuple[CommitStatus, int]]:
    """The newest status of each context (the list is newest first) and how many it replaced."""
    latest: dict[str, CommitStatus] = {}
    counts: dict[str, int] = {}
    for status in statuses:
        latest.setdefault(status.context, status)
        counts[status.context] = counts.get(status.context, 0) + 1
    return [(status, counts[context] - 1) for context, status in sorted(latest.items())]


def _forge(request: Request, org: str) -> LocalForge:
    local: LocalForge = app_state(request).services["forge.local"]
    return local.for_org(org)


def _gate(request: Request) -> MergeGate:
    gate: MergeGate = app_state(request).services["judge.gate"]
    return gate


async def _diff(forge: LocalForge, repository: str, pr: Any) -> tuple[list[DiffLine], bool]:
    path = (await forge.get_repository(repository)).path
    base_ref = f"refs/heads/{pr.base}" if pr.state == "open" else pr.base_sha
    try:
        base = (await run_git(["merge-base", base_ref, pr.head_sha], cwd=path)).decode().strip()
        out = await run_git(
            ["diff", "--no-color", "--no-ext-diff", "-M", base, pr.head_sha, "--"], cwd=path
        )
    except GitError:
        return [
            DiffLine("meta", "The diff is not available (the branches share no history).")
        ], False
    truncated = len(out) > MAX_DIFF_BYTES
    text = out[:MAX_DIFF_BYTES].decode("utf-8", "replace")
    return parse_diff_lines(text), truncated


@router.get(_PR)
async def pull_request_page(
    owner: str, name: str, number: int, request: Request, who: LoggedIn
) -> HTMLResponse:
    """A pull request with everything the gate looks at."""
    repository = f"{owner}/{name}"
    forge = _forge(request, who.org)
    pr = await forge.get_pull_request(repository, number)
    diff, truncated = await _diff(forge, repository, pr)
    # The newest decision for the PR, whatever its status: a stale one says why merging waits.
    latest = await _gate(request).decisions.list(
        who.org, repository=repository, pr_number=number, limit=1
    )
    decision = latest[0] if latest else None
    context: dict[str, Any] = {
        "pr": pr,
        "repository": repository,
        "commits": await forge.list_commits(repository, number),
        "files": await forge.list_files(repository, number),
        "diff": diff,
        "diff_truncated": truncated,
        "statuses": _latest_per_context(await forge.list_commit_statuses(repository, pr.head_sha)),
        "check_runs": await forge.list_check_runs(repository, pr.head_sha),
        "blockers": await forge.merge_blockers(repository, number),
        "decision": decision,
        "decision_current": decision is not None
        and decision.status == "current"
        and decision.head_sha == pr.head_sha,
        "stale_reviews": {r.id for r in pr.reviews if r.commit_sha != pr.head_sha},
    }
    return page(request, "pull_request.html", context)


@router.post(_PR + "/approve")
async def approve(owner: str, name: str, number: int, request: Request, who: LoggedIn) -> Response:
    """Approve the head as the user named in the form."""
    form = await read_form(request, who)
    repository, target = f"{owner}/{name}", f"/forge/{owner}/{name}/pulls/{number}"
    user = form.get("user", "").strip()
    if not user:
        return flash_redirect(request, target, "error", "Name the reviewer who approves.")
    try:
        await _forge(request, who.org).approve(
            repository, number, user=user[:100], body=form.get("body", "")[:10_000]
        )
    except (ConflictError, InputError) as exc:
        return flash_redirect(request, target, "error", exc.message)
    # An approval can change the decision: re-evaluate when the gate has one for this head.
    gate = _gate(request)
    current = await gate.decisions.current(who.org, repository=repository, pr_number=number)
    if current is None:
        return flash_redirect(request, target, "ok", f"Approved by {user}.")
    try:
        decision = await gate.refresh(who.org, repository=repository, number=number)
    except (ConflictError, InputError) as exc:
        return flash_redirect(request, target, "ok", f"Approved ({exc.message}).")
    suffix = f" The merge gate now says {decision.decision}." if decision else ""
    return flash_redirect(request, target, "ok", f"Approved by {user}.{suffix}")


@router.post(_PR + "/merge")
async def merge(owner: str, name: str, number: int, request: Request, who: LoggedIn) -> Response:
    """Merge through the merge gate: refused unless the current decision for the head allows."""
    await read_form(request, who)
    repository, target = f"{owner}/{name}", f"/forge/{owner}/{name}/pulls/{number}"
    try:
        merged = await _gate(request).merge(who.org, repository=repository, number=number)
    except ConflictError as exc:
        return flash_redirect(request, target, "error", f"Merge refused: {exc.message}")
    return flash_redirect(
        request, target, "ok", f"Merged as {str(merged.merge_commit_sha or '')[:12]}."
    )
