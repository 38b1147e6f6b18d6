"""The forge seam: the :class:`Forge` protocol and the records it returns.

A forge hosts git repositories and their pull requests. Two implementations ship: the embedded
``local`` forge (:mod:`forge.local`) and ``github`` (:mod:`forge.github`). The records are plain
frozen dataclasses, the same for every forge; ``to_json()`` gives the camelCase shape of the HTTP
API and the CLI, and :meth:`PullRequest.to_pr_state` the PR state policies read (DESIGN.md §10).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "ANNOTATION_LEVELS",
    "CHECK_CONCLUSIONS",
    "CHECK_STATUSES",
    "FILE_STATUSES",
    "PR_STATES",
    "REVIEW_STATES",
    "STATUS_STATES",
    "Annotation",
    "CheckRun",
    "Comment",
    "Commit",
    "CommitStatus",
    "Forge",
    "PullRequest",
    "PullRequestFile",
    "Review",
    "check_state",
    "hidden_marker",
]

PRState = Literal["open", "closed", "merged"]
FileStatus = Literal["added", "removed", "modified", "renamed", "copied", "changed", "unchanged"]
ReviewState = Literal["approved", "changes_requested", "commented"]
StatusState = Literal["pending", "success", "failure", "error"]
CheckState = Literal["success", "failure", "pending"]

PR_STATES: tuple[str, ...] = ("open", "closed", "merged")
FILE_STATUSES: tuple[str, ...] = (
    "added",
    "removed",
    "modified",
    "renamed",
    "copied",
    "changed",
    "unchanged",
)
REVIEW_STATES: tuple[str, ...] = ("approved", "changes_requested", "commented")
STATUS_STATES: tuple[str, ...] = ("pending", "success", "failure", "error")
CHECK_STATUSES: tuple[str, ...] = ("queued", "in_progress", "completed")
CHECK_CONCLUSIONS: tuple[str, ...] = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)
ANNOTATION_LEVELS: tuple[str, ...] = ("notice", "warning", "failure")

# Conclusions that satisfy a required check (GitHub's branch protection treats them as passing).
_PASSING_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def hidden_marker(marker: str) -> str:
    """The hidden HTML comment that identifies a persistent comment: ``<!-- marker -->``."""
    return f"<!-- {marker} -->"


@dataclass(frozen=True)
class Review:
    """A review of a pull request, made on one head commit."""

    user: str
    state: ReviewState
    commit_sha: str
    body: str = ""
    id: str | int | None = None
    submitted_at: datetime | None = None

    def is_stale(self, head_sha: str) -> bool:
        """Whether the review was made on an older head than ``head_sha``."""
        return self.commit_sha != head_sha

    def to_json(self, head_sha: str | None = None) -> dict[str, Any]:
        """The API shape; ``stale`` is included when the PR's head is given."""
        data: dict[str, Any] = {
            "id": self.id,
            "user": self.user,
            "state": self.state,
            "commitSha": self.commit_sha,
            "body": self.body,
            "submittedAt": _iso(self.submitted_at),
        }
        if head_sha is not None:
            data["stale"] = self.is_stale(head_sha)
        return data


@dataclass(frozen=True)
class CommitStatus:
    """A commit status: one ``context`` reported on one commit."""

    sha: str
    context: str
    state: StatusState
    description: str = ""
    target_url: str | None = None
    id: int | None = None
    created_at: datetime | None = None
    creator: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "id": self.id,
            "sha": self.sha,
            "context": self.context,
            "state": self.state,
            "description": self.description,
            "targetUrl": self.target_url,
            "createdAt": _iso(self.created_at),
            "creator": self.creator,
        }


@dataclass(frozen=True)
class Annotation:
    """A line annotation of a check run (GitHub's check run annotation)."""

    path: str
    start_line: int
    end_line: int
    annotation_level: Literal["notice", "warning", "failure"]
    message: str
    title: str | None = None
    raw_details: str | None = None
    start_column: int | None = None
    end_column: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The API shape (GitHub's field names, which are already snake_case there)."""
        data: dict[str, Any] = {
            "path": self.path,
            "startLine": self.start_line,
            "endLine": self.end_line,
            "annotationLevel": self.annotation_level,
            "message": self.message,
            "title": self.title,
            "rawDetails": self.raw_details,
            "startColumn": self.start_column,
            "endColumn": self.end_column,
        }
        return data


@dataclass(frozen=True)
class CheckRun:
    """A check run on one commit."""

    id: int
    head_sha: str
    name: str
    status: str
    conclusion: str | None = None
    title: str = ""
    summary: str = ""
    annotations_count: int = 0
    url: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    annotations: tuple[Annotation, ...] = ()

    @property
    def check_state(self) -> CheckState:
        """``success`` / ``failure`` / ``pending`` as a required check sees it."""
        if self.status != "completed":
            return "pending"
        return "success" if self.conclusion in _PASSING_CONCLUSIONS else "failure"

    def to_json(self, *, with_annotations: bool = False) -> dict[str, Any]:
        """The API shape."""
        data: dict[str, Any] = {
            "id": self.id,
            "headSha": self.head_sha,
            "name": self.name,
            "status": self.status,
            "conclusion": self.conclusion,
            "title": self.title,
            "summary": self.summary,
            "annotationsCount": self.annotations_count,
            "url": self.url,
            "startedAt": _iso(self.started_at),
            "completedAt": _iso(self.completed_at),
        }
        if with_annotations:
            data["annotations"] = [a.to_json() for a in self.annotations]
        return data


@dataclass(frozen=True)
class Comment:
    """A comment on a pull request's conversation."""

    id: int
    body: str
    author: str
    url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "id": self.id,
            "body": self.body,
            "author": self.author,
            "url": self.url,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class Commit:
    """A commit of a pull request."""

    sha: str
    message: str
    author: str
    parents: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "sha": self.sha,
            "message": self.message,
            "author": self.author,
            "parents": list(self.parents),
        }


@dataclass(frozen=True)
class PullRequestFile:
    """A file changed by a pull request; ``status`` is GitHub's enum."""

    filename: str
    status: FileStatus
    additions: int = 0
    deletions: int = 0
    previous_filename: str | None = None
    binary: bool = False

    @property
    def changes(self) -> int:
        """``additions + deletions``."""
        return self.additions + self.deletions

    def to_json(self) -> dict[str, Any]:
        """The API shape."""
        return {
            "filename": self.filename,
            "status": self.status,
            "additions": self.additions,
            "deletions": self.deletions,
            "changes": self.changes,
            "previousFilename": self.previous_filename,
            "binary": self.binary,
        }


def check_state(status: CommitStatus) -> CheckState:
    """How a commit status reads as a check: ``error`` counts as ``failure``."""
    if status.state == "success":
        return "success"
    if status.state == "pending":
        return "pending"
    return "failure"


@dataclass(frozen=True)
class PullRequest:
    """A pull request as every forge reports it."""

    repository: str
    number: int
    title: str
    state: PRState
    draft: bool
    author: str
    base: str
    base_sha: str
    head: str
    head_sha: str
    body: str = ""
    labels: tuple[str, ...] = ()
    reviews: tuple[Review, ...] = ()
    checks: Mapping[str, CheckState] = field(default_factory=dict)
    url: str | None = None
    id: str | None = None
    merge_commit_sha: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def current_approvers(self) -> tuple[str, ...]:
        """Users whose latest review approves the current head (stale approvals excluded)."""
        latest: dict[str, Review] = {}
        for review in self.reviews:
            if review.state != "commented":
                latest[review.user] = review
        return tuple(
            sorted(
                user
                for user, review in latest.items()
                if review.state == "approved" and not review.is_stale(self.head_sha)
            )
        )

    def to_pr_state(self) -> dict[str, Any]:
        """The PR state of DESIGN.md §10 (contract 2), read by policies and the judge."""
        return {
            "number": self.number,
            "title": self.title,
            "draft": self.draft,
            "author": self.author,
            "base": self.base,
            "headSha": self.head_sha,
            "labels": list(self.labels),
            "reviews": [
                {"user": r.user, "state": r.state, "commitSha": r.commit_sha} for r in self.reviews
            ],
            "checks": dict(self.checks),
        }

    def to_json(self) -> dict[str, Any]:
        """The API/CLI shape."""
        return {
            "id": self.id,
            "repository": self.repository,
            "number": self.number,
            "title": self.title,
            "body": self.body,
            "state": self.state,
            "draft": self.draft,
            "author": self.author,
            "base": self.base,
            "baseSha": self.base_sha,
            "head": self.head,
            "headSha": self.head_sha,
            "labels": list(self.labels),
            "reviews": [r.to_json(self.head_sha) for r in self.reviews],
            "approvedBy": list(self.current_approvers),
            "checks": dict(self.checks),
            "url": self.url,
            "mergeCommitSha": self.merge_commit_sha,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
        }


@runtime_checkable
class Forge(Protocol):
    """Git hosting: branches, pull requests, reviews, statuses, check runs and comments."""

    name: str

    async def clone_url(self, repository: str) -> str:
        """A URL git can clone and fetch from; never contains a credential."""
        ...

    async def push_branch(
        self, repository: str, workdir: Path, branch: str, *, force: bool = False
    ) -> str:
        """Push ``workdir``'s HEAD to ``branch``; returns the pushed commit sha."""
        ...

    async def open_pull_request(
        self, repository: str, *, head: str, base: str, title: str, body: str, draft: bool
    ) -> PullRequest:
        """Open a pull request from ``head`` into ``base``."""
        ...

    async def update_pull_request(
        self,
        repository: str,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        draft: bool | None = None,
        state: Literal["open", "closed"] | None = None,
    ) -> PullRequest:
        """Change a pull request's title, body, draft flag or state (``open``/``closed``)."""
        ...

    async def merge_pull_request(self, repository: str, number: int) -> PullRequest:
        """Merge a pull request; raises :class:`~forge.errors.MergeRefused` with the reason."""
        ...

    async def get_pull_request(self, repository: str, number: int) -> PullRequest:
        """One pull request with its reviews, labels and checks on the head."""
        ...

    async def find_pull_request(self, repository: str, *, head: str) -> PullRequest | None:
        """The open pull request from branch ``head``, if any."""
        ...

    async def list_files(self, repository: str, number: int) -> list[PullRequestFile]:
        """The files a pull request changes."""
        ...

    async def list_commits(self, repository: str, number: int) -> list[Commit]:
        """The commits of a pull request, oldest first."""
        ...

    async def set_commit_status(
        self,
        repository: str,
        sha: str,
        *,
        context: str,
        state: StatusState,
        description: str,
        target_url: str | None = None,
    ) -> CommitStatus:
        """Report ``state`` for ``context`` on commit ``sha``."""
        ...

    async def list_commit_statuses(self, repository: str, sha: str) -> list[CommitStatus]:
        """Every status reported on ``sha``, newest first."""
        ...

    async def create_check_run(
        self,
        repository: str,
        sha: str,
        *,
        name: str,
        status: str,
        conclusion: str | None,
        title: str,
        summary: str,
        annotations: Sequence[Annotation] = (),
    ) -> CheckRun:
        """Create a check run on ``sha``."""
        ...

    async def update_check_run(
        self,
        repository: str,
        check_run_id: int,
        *,
        status: str | None = None,
        conclusion: str | None = None,
        title: str | None = None,
        summary: str | None = None,
        annotations: Sequence[Annotation] = (),
    ) -> CheckRun:
        """Update a check run; ``annotations`` are added to the ones it has."""
        ...

    async def list_check_runs(self, repository: str, sha: str) -> list[CheckRun]:
        """The check runs on ``sha``."""
        ...

    async def upsert_comment(
        self, repository: str, number: int, *, marker: str, body: str
    ) -> Comment:
        """Create, or update in place, the one comment carrying the hidden ``marker``."""
        ...
