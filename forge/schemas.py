"""Response models of the forge's HTTP routes: the OpenAPI description of what they return.

The routes build their answers with the records' ``to_json()``; these models describe (and check)
those camelCase shapes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

__all__ = [
    "AnnotationOut",
    "CheckRunList",
    "CheckRunOut",
    "CommentList",
    "CommentOut",
    "CommitList",
    "CommitOut",
    "CommitStatusList",
    "CommitStatusOut",
    "EventList",
    "FileList",
    "FileOut",
    "PullRequestDetail",
    "PullRequestEventOut",
    "PullRequestList",
    "PullRequestOut",
    "RepositoryList",
    "RepositoryOut",
    "ReviewOut",
    "SkippedPipelineOut",
    "TriggerDetail",
    "TriggerList",
    "TriggerOut",
    "TriggeredRunOut",
    "WebhookAccepted",
]


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class RepositoryOut(_Out):
    """A repository of the local forge."""

    id: str
    name: str = Field(description="OWNER/NAME")
    default_branch: str
    required_contexts: list[str] = Field(
        description="Contexts that must be success on the head before a merge."
    )
    clone_url: str = Field(description="What git clones, fetches and pushes (a path).")
    created_at: str | None


class ReviewOut(_Out):
    """A review, made on one head commit."""

    id: int | str | None
    user: str
    state: Literal["approved", "changes_requested", "commented"]
    commit_sha: str
    body: str
    submitted_at: str | None
    stale: bool | None = Field(default=None, description="Made on an older head than the PR's.")


class PullRequestOut(_Out):
    """A pull request."""

    id: str | None
    repository: str
    number: int
    title: str
    body: str
    state: Literal["open", "closed", "merged"]
    draft: bool
    author: str
    base: str
    base_sha: str
    head: str
    head_sha: str
    labels: list[str]
    reviews: list[ReviewOut]
    approved_by: list[str] = Field(description="Users whose latest review approves the head.")
    checks: dict[str, Literal["success", "failure", "pending"]]
    url: str | None
    merge_commit_sha: str | None
    created_at: str | None
    updated_at: str | None


class PullRequestDetail(PullRequestOut):
    """A pull request with why it cannot merge and its PR state for policies."""

    merge_blockers: list[str] = Field(description="Empty when the pull request may merge.")
    pr_state: dict[str, Any] = Field(description="The PR state policies read (DESIGN.md §10).")


class FileOut(_Out):
    """A file a pull request changes (GitHub's status names)."""

    filename: str
    status: Literal["added", "removed", "modified", "renamed", "copied", "changed", "unchanged"]
    additions: int
    deletions: int
    changes: int
    previous_filename: str | None
    binary: bool


class CommitOut(_Out):
    """A commit of a pull request."""

    sha: str
    message: str
    author: str
    parents: list[str]


class CommitStatusOut(_Out):
    """A commit status."""

    id: int | None
    sha: str
    context: str
    state: Literal["pending", "success", "failure", "error"]
    description: str
    target_url: str | None
    created_at: str | None
    creator: str | None


class AnnotationOut(_Out):
    """A check run annotation."""

    path: str
    start_line: int
    end_line: int
    annotation_level: Literal["notice", "warning", "failure"]
    message: str
    title: str | None
    raw_details: str | None
    start_column: int | None
    end_column: int | None


class CheckRunOut(_Out):
    """A check run."""

    id: int
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    title: str
    summary: str
    annotations_count: int
    url: str | None
    started_at: str | None
    completed_at: str | None
    annotations: list[AnnotationOut] | None = None


class CommentOut(_Out):
    """A pull request comment."""

    id: int
    body: str
    author: str
    url: str | None
    created_at: str | None
    updated_at: str | None


class PullRequestEventOut(_Out):
    """A ledger event of a pull request."""

    subject_id: str
    seq: int
    type: str
    at: str
    data: dict[str, Any]


class TriggeredRunOut(_Out):
    """A pipeline run a trigger started."""

    pipeline: str = Field(description="The pipeline's name.")
    file: str = Field(description="Its file, relative to the pipeline directory.")
    run_id: str = Field(description="The pipeline run id (prun_…).")


class SkippedPipelineOut(_Out):
    """A pipeline a trigger did not start."""

    pipeline: str | None = Field(description="The pipeline's name (null: the file is invalid).")
    file: str = Field(description="Its file, relative to the pipeline directory.")
    reason: str = Field(description="Why it was not started.")


class TriggerOut(_Out):
    """A stored GitHub webhook delivery that starts a pipeline."""

    id: str
    delivery_id: str
    event: str
    action: str | None
    repository: str | None
    number: int | None
    head_ref: str | None
    head_sha: str | None
    base_ref: str | None
    installation_id: int | None
    sender: str | None
    received_at: str
    dispatched_at: str | None = Field(
        default=None,
        description="When the pipelines configured for it (`on:`) were started; null: not yet.",
    )
    pipeline_runs: list[TriggeredRunOut] = Field(
        default_factory=list, description="The pipeline runs it started."
    )
    skipped_pipelines: list[SkippedPipelineOut] = Field(
        default_factory=list,
        description="Pipelines configured for its event that it did not start, and why.",
    )


class TriggerDetail(TriggerOut):
    """A trigger with the delivery's payload."""

    payload: dict[str, Any]


class WebhookAccepted(_Out):
    """The answer to a webhook delivery."""

    ignored: bool
    trigger: TriggerOut | None = None
    event: str | None = None
    action: str | None = None


def _list(item: type[BaseModel], doc: str) -> type[BaseModel]:
    model = create_model(
        f"Forge{item.__name__.removesuffix('Out')}List",
        __base__=_Out,
        items=(list[item], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, Field(default=None, description="Pass as ?cursor= for more.")),
    )
    model.__doc__ = doc
    return model


RepositoryList = _list(RepositoryOut, "Repositories.")
PullRequestList = _list(PullRequestOut, "A page of pull requests, newest first.")
FileList = _list(FileOut, "Files a pull request changes.")
CommitList = _list(CommitOut, "Commits of a pull request, oldest first.")
CommitStatusList = _list(CommitStatusOut, "Commit statuses, newest first.")
CheckRunList = _list(CheckRunOut, "Check runs, newest first.")
CommentList = _list(CommentOut, "Comments, oldest first.")
EventList = _list(PullRequestEventOut, "Ledger events, oldest first.")
TriggerList = _list(TriggerOut, "A page of triggers, newest first.")
