"""HTTP routes of the forge package.

``router`` (``/api/v1/forge/local``): the local forge for people, dashboards and tests —
repositories, pull requests, files, commits, statuses, check runs, reviews, labels, merge.
``github_router`` (``/api/v1/forge``): the GitHub webhook receiver and the triggers it stored.
Every list answers ``{"items": [...], "nextCursor": ... | null}``; errors are problem+json
(domain errors are mapped by the application; webhook verification failures are answered here).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from writgate.ledger import Ledger
from writgate.text import refuse_nul
from writgate.web import app_state, request_org, service

from .errors import WebhookRejected
from .local import LocalForge
from .protocol import Annotation
from .schemas import (
    CheckRunList,
    CheckRunOut,
    CommentList,
    CommitList,
    CommitStatusList,
    CommitStatusOut,
    EventList,
    FileList,
    PullRequestDetail,
    PullRequestList,
    PullRequestOut,
    RepositoryList,
    RepositoryOut,
    ReviewOut,
    TriggerDetail,
    TriggerList,
    WebhookAccepted,
)
from .webhooks import (
    TRIGGERING,
    DuplicateDelivery,
    TriggerStore,
    WebhookSettings,
    verify_signature,
)

__all__ = ["github_router", "router"]

router = APIRouter(prefix="/api/v1/forge/local", tags=["forge"])
github_router = APIRouter(prefix="/api/v1/forge", tags=["forge"])

Org = Annotated[str, Depends(request_org)]
_PART = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
Owner = Annotated[str, Path(pattern=_PART, description="The repository's owner.")]
Name = Annotated[str, Path(pattern=_PART, description="The repository's name.")]
_Local = Annotated[LocalForge, Depends(service("forge.local"))]
_Triggers = Annotated[TriggerStore, Depends(service("forge.triggers"))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (problem+json)."},
    404: {"description": "No such repository, pull request or check run (problem+json)."},
    409: {"description": "The pull request's state forbids the action (problem+json)."},
    422: {"description": "Invalid request; `field` names the offending field (problem+json)."},
}
_MERGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {
        "description": "Merge refused (code `merge_refused`); `reasons` lists why (problem+json)."
    },
}


def _forge(local: _Local, org: Org) -> LocalForge:
    return local.for_org(org)


Forge = Annotated[LocalForge, Depends(_forge)]


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class CreateRepository(_Body):
    """A new repository (empty; push to its clone URL)."""

    name: str = Field(description="OWNER/NAME")
    default_branch: str = "main"
    required_contexts: list[str] | None = Field(
        default=None,
        description="Contexts that must be success before merging (default: the gate).",
    )


class RequiredContexts(_Body):
    """The contexts that must be ``success`` on a head before it may merge."""

    contexts: list[str]


class ReviewBody(_Body):
    """A review by a user."""

    user: str = Field(min_length=1, max_length=200)
    state: Literal["approved", "changes_requested", "commented"] = "approved"
    body: str = ""


class ApproveBody(_Body):
    """An approval by a user."""

    user: str = Field(min_length=1, max_length=200)
    body: str = ""


class LabelsBody(_Body):
    """Labels to add and to remove."""

    add: list[str] = []
    remove: list[str] = []


class MergeBody(_Body):
    """Who merges."""

    merged_by: str | None = None


class UpdatePullRequest(_Body):
    """Changes to a pull request."""

    title: str | None = None
    body: str | None = None
    draft: bool | None = None
    state: Literal["open", "closed"] | None = None


class StatusBody(_Body):
    """A commit status."""

    context: str
    state: Literal["pending", "success", "failure", "error"]
    description: str = ""
    target_url: str | None = None


class AnnotationBody(_Body):
    """A check run annotation."""

    path: str
    start_line: int
    end_line: int
    annotation_level: Literal["notice", "warning", "failure"]
    message: str
    title: str | None = None
    raw_details: str | None = None
    start_column: int | None = None
    end_column: int | None = None

    def to_annotation(self) -> Annotation:
        return Annotation(**self.model_dump())


class CheckRunBody(_Body):
    """A new check run."""

    name: str
    status: Literal["queued", "in_progress", "completed"] = "queued"
    conclusion: str | None = None
    title: str = ""
    summary: str = ""
    annotations: list[AnnotationBody] = []


class CheckRunUpdate(_Body):
    """Changes to a check run (annotations are added)."""

    status: Literal["queued", "in_progress", "completed"] | None = None
    conclusion: str | None = None
    title: str | None = None
    summary: str | None = None
    annotations: list[AnnotationBody] = []


def _page(items: list[dict[str, Any]], next_cursor: str | None = None) -> dict[str, Any]:
    return {"items": items, "nextCursor": next_cursor}


def _name(owner: Owner, name: Name) -> str:
    return f"{owner}/{name}"


# -- repositories ------------------------------------------------------------------------------


@router.get(
    "/repositories",
    response_model=RepositoryList,
    responses=_ERRORS,
    summary="List repositories",
    operation_id="listForgeRepositories",
)
async def list_repositories(forge: Forge) -> dict[str, Any]:
    return _page([r.to_json() for r in await forge.list_repositories()])


@router.post(
    "/repositories",
    response_model=RepositoryOut,
    status_code=201,
    responses=_ERRORS,
    summary="Create a repository",
    operation_id="createForgeRepository",
)
async def create_repository(body: CreateRepository, forge: Forge) -> dict[str, Any]:
    repo = await forge.create_repository(
        body.name, default_branch=body.default_branch, required_contexts=body.required_contexts
    )
    return repo.to_json()


@router.get(
    "/repositories/{owner}/{name}",
    response_model=RepositoryOut,
    responses=_ERRORS,
    summary="Get a repository",
    operation_id="getForgeRepository",
)
async def get_repository(owner: Owner, name: Name, forge: Forge) -> dict[str, Any]:
    return (await forge.get_repository(_name(owner, name))).to_json()


@router.put(
    "/repositories/{owner}/{name}/required-contexts",
    response_model=RepositoryOut,
    responses=_ERRORS,
    summary="Set the contexts required to merge",
    operation_id="setForgeRequiredContexts",
)
async def set_required_contexts(
    owner: Owner, name: Name, body: RequiredContexts, forge: Forge
) -> dict[str, Any]:
    return (await forge.set_required_contexts(_name(owner, name), body.contexts)).to_json()


# -- pull requests -----------------------------------------------------------------------------


@router.get(
    "/pulls",
    response_model=PullRequestList,
    responses=_ERRORS,
    summary="List pull requests (newest first)",
    operation_id="listForgePullRequests",
)
async def list_pull_requests(
    forge: Forge,
    repository: str | None = None,
    state: Literal["open", "closed", "merged", "all"] = "all",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    page = await forge.list_pull_requests(repository, state=state, limit=limit, cursor=cursor)
    return _page([pr.to_json() for pr in page.items], page.next_cursor)


class OpenPullRequest(_Body):
    """A new pull request from branch ``head`` into ``base``."""

    head: str
    base: str | None = Field(default=None, description="Default: the repository's default branch.")
    title: str
    body: str = ""
    draft: bool = False
    author: str | None = None


@router.post(
    "/repositories/{owner}/{name}/pulls",
    response_model=PullRequestOut,
    status_code=201,
    responses=_ERRORS,
    summary="Open a pull request",
    operation_id="openForgePullRequest",
)
async def open_pull_request(
    owner: Owner, name: Name, body: OpenPullRequest, forge: Forge
) -> dict[str, Any]:
    repository = _name(owner, name)
    base = body.base or (await forge.get_repository(repository)).default_branch
    pr = await forge.open_pull_request(
        repository,
        head=body.head,
        base=base,
        title=body.title,
        body=body.body,
        draft=body.draft,
        author=body.author,
    )
    return pr.to_json()


_PR = "/repositories/{owner}/{name}/pulls/{number}"


@router.get(
    _PR,
    response_model=PullRequestDetail,
    responses=_ERRORS,
    summary="Get a pull request",
    operation_id="getForgePullRequest",
)
async def get_pull_request(owner: Owner, name: Name, number: int, forge: Forge) -> dict[str, Any]:
    repository = _name(owner, name)
    pr = await forge.get_pull_request(repository, number)
    data = pr.to_json()
    data["mergeBlockers"] = await forge.merge_blockers(repository, number)
    data["prState"] = pr.to_pr_state()
    return data


@router.patch(
    _PR,
    response_model=PullRequestOut,
    responses=_ERRORS,
    summary="Update, close or reopen a pull request",
    operation_id="updateForgePullRequest",
)
async def update_pull_request(
    owner: Owner, name: Name, number: int, body: UpdatePullRequest, forge: Forge
) -> dict[str, Any]:
    pr = await forge.update_pull_request(
        _name(owner, name),
        number,
        title=body.title,
        body=body.body,
        draft=body.draft,
        state=body.state,
    )
    return pr.to_json()


@router.get(
    _PR + "/files",
    response_model=FileList,
    responses=_ERRORS,
    summary="Files a pull request changes",
    operation_id="listForgePullRequestFiles",
)
async def list_files(owner: Owner, name: Name, number: int, forge: Forge) -> dict[str, Any]:
    return _page([f.to_json() for f in await forge.list_files(_name(owner, name), number)])


@router.get(
    _PR + "/commits",
    response_model=CommitList,
    responses=_ERRORS,
    summary="Commits of a pull request",
    operation_id="listForgePullRequestCommits",
)
async def list_commits(owner: Owner, name: Name, number: int, forge: Forge) -> dict[str, Any]:
    return _page([c.to_json() for c in await forge.list_commits(_name(owner, name), number)])


@router.get(
    _PR + "/statuses",
    response_model=CommitStatusList,
    responses=_ERRORS,
    summary="Statuses on the pull request's head",
    operation_id="listForgePullRequestStatuses",
)
async def list_pr_statuses(owner: Owner, name: Name, number: int, forge: Forge) -> dict[str, Any]:
    repository = _name(owner, name)
    pr = await forge.get_pull_request(repository, number)
    statuses = await forge.list_commit_statuses(repository, pr.head_sha)
    return _page([s.to_json() for s in statuses])


@router.get(
    _PR + "/check-runs",
    response_model=CheckRunList,
    responses=_ERRORS,
    summary="Check runs on the pull request's head",
    operation_id="listForgePullRequestCheckRuns",
)
async def list_pr_check_runs(owner: Owner, name: Name, number: int, forge: Forge) -> dict[str, Any]:
    repository = _name(owner, name)
    pr = await forge.get_pull_request(repository, number)
    runs = await forge.list_check_runs(repository, pr.head_sha)
    return _page([r.to_json() for r in runs])


@router.get(
    _PR + "/comments",
    response_model=CommentList,
    responses=_ERRORS,
    summary="Comments of a pull request",
    operation_id="listForgePullRequestComments",
)
async def list_comments(owner: Owner, name: Name, number: int, forge: Forge) -> dict[str, Any]:
    return _page([c.to_json() for c in await forge.list_comments(_name(owner, name), number)])


@router.get(
    _PR + "/events",
    response_model=EventList,
    responses=_ERRORS,
    summary="Ledger events of a pull request",
    operation_id="listForgePullRequestEvents",
)
async def list_events(
    request: Request,
    owner: Owner,
    name: Name,
    number: int,
    forge: Forge,
    after: Annotated[int, Query(ge=0, description="Events after this seq.")] = 0,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,12}$", description="nextCursor of a page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    if cursor is not None:
        after = max(after, int(cursor))
    pr = await forge.get_pull_request(_name(owner, name), number)
    ledger: Ledger = app_state(request).ledger
    events = await ledger.read(pr.id or "", org_id=forge.org, after=after, limit=limit + 1)
    more = len(events) > limit
    events = events[:limit]
    return _page([e.to_json() for e in events], str(events[-1].seq) if more else None)


@router.post(
    _PR + "/reviews",
    response_model=ReviewOut,
    status_code=201,
    responses=_ERRORS,
    summary="Review",
    operation_id="reviewForgePullRequest",
)
async def review(
    owner: Owner, name: Name, number: int, body: ReviewBody, forge: Forge
) -> dict[str, Any]:
    made = await forge.review(
        _name(owner, name), number, user=body.user, state=body.state, body=body.body
    )
    return made.to_json()


@router.post(
    _PR + "/approve",
    response_model=ReviewOut,
    status_code=201,
    responses=_ERRORS,
    summary="Approve",
    operation_id="approveForgePullRequest",
)
async def approve(
    owner: Owner, name: Name, number: int, body: ApproveBody, forge: Forge
) -> dict[str, Any]:
    return (
        await forge.approve(_name(owner, name), number, user=body.user, body=body.body)
    ).to_json()


@router.post(
    _PR + "/labels",
    response_model=PullRequestOut,
    responses=_ERRORS,
    summary="Add and remove labels",
    operation_id="labelForgePullRequest",
)
async def label(
    owner: Owner, name: Name, number: int, body: LabelsBody, forge: Forge
) -> dict[str, Any]:
    pr = await forge.label(_name(owner, name), number, add=body.add, remove=body.remove)
    return pr.to_json()


@router.post(
    _PR + "/merge",
    response_model=PullRequestOut,
    responses=_MERGE_ERRORS,
    summary="Merge (guarded by required contexts)",
    operation_id="mergeForgePullRequest",
)
async def merge(
    owner: Owner, name: Name, number: int, forge: Forge, body: MergeBody | None = None
) -> dict[str, Any]:
    merged_by = body.merged_by if body else None
    return (
        await forge.merge_pull_request(_name(owner, name), number, merged_by=merged_by)
    ).to_json()


# -- statuses and check runs -------------------------------------------------------------------

_COMMIT = "/repositories/{owner}/{name}/commits/{sha}"


@router.get(
    _COMMIT + "/statuses",
    response_model=CommitStatusList,
    responses=_ERRORS,
    summary="Statuses of a commit",
    operation_id="listForgeCommitStatuses",
)
async def list_statuses(owner: Owner, name: Name, sha: str, forge: Forge) -> dict[str, Any]:
    return _page([s.to_json() for s in await forge.list_commit_statuses(_name(owner, name), sha)])


@router.post(
    _COMMIT + "/statuses",
    response_model=CommitStatusOut,
    status_code=201,
    responses=_ERRORS,
    summary="Set a status",
    operation_id="setForgeCommitStatus",
)
async def set_status(
    owner: Owner, name: Name, sha: str, body: StatusBody, forge: Forge
) -> dict[str, Any]:
    status = await forge.set_commit_status(
        _name(owner, name),
        sha,
        context=body.context,
        state=body.state,
        description=body.description,
        target_url=body.target_url,
    )
    return status.to_json()


@router.get(
    _COMMIT + "/check-runs",
    response_model=CheckRunList,
    responses=_ERRORS,
    summary="Check runs of a commit",
    operation_id="listForgeCommitCheckRuns",
)
async def list_check_runs(owner: Owner, name: Name, sha: str, forge: Forge) -> dict[str, Any]:
    return _page([r.to_json() for r in await forge.list_check_runs(_name(owner, name), sha)])


@router.post(
    _COMMIT + "/check-runs",
    response_model=CheckRunOut,
    status_code=201,
    responses=_ERRORS,
    summary="Create a check run",
    operation_id="createForgeCheckRun",
)
async def create_check_run(
    owner: Owner, name: Name, sha: str, body: CheckRunBody, forge: Forge
) -> dict[str, Any]:
    run = await forge.create_check_run(
        _name(owner, name),
        sha,
        name=body.name,
        status=body.status,
        conclusion=body.conclusion,
        title=body.title,
        summary=body.summary,
        annotations=[a.to_annotation() for a in body.annotations],
    )
    return run.to_json()


_RUN = "/repositories/{owner}/{name}/check-runs/{check_run_id}"


@router.get(
    _RUN,
    response_model=CheckRunOut,
    responses=_ERRORS,
    summary="A check run with its annotations",
    operation_id="getForgeCheckRun",
)
async def get_check_run(
    owner: Owner, name: Name, check_run_id: int, forge: Forge
) -> dict[str, Any]:
    run = await forge.get_check_run(_name(owner, name), check_run_id)
    return run.to_json(with_annotations=True)


@router.patch(
    _RUN,
    response_model=CheckRunOut,
    responses=_ERRORS,
    summary="Update a check run",
    operation_id="updateForgeCheckRun",
)
async def update_check_run(
    owner: Owner, name: Name, check_run_id: int, body: CheckRunUpdate, forge: Forge
) -> dict[str, Any]:
    run = await forge.update_check_run(
        _name(owner, name),
        check_run_id,
        status=body.status,
        conclusion=body.conclusion,
        title=body.title,
        summary=body.summary,
        annotations=[a.to_annotation() for a in body.annotations],
    )
    return run.to_json()


# -- GitHub webhooks ---------------------------------------------------------------------------


MAX_WEBHOOK_BYTES = 25 * 1024 * 1024
_Webhook = Annotated[WebhookSettings, Depends(service("forge.github.webhook"))]


def _problem(status: int, code: str, title: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://writgate.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


@github_router.post(
    "/github/webhook",
    response_model=WebhookAccepted,
    status_code=202,
    summary="Receive a GitHub webhook delivery",
    responses={
        200: {"description": "Verified, but not an event that triggers a pipeline."},
        202: {"description": "Stored as a trigger."},
        400: {"description": "The body is not JSON or a header is missing (problem+json)."},
        401: {"description": "Missing or wrong X-Hub-Signature-256 (problem+json)."},
        409: {"description": "This X-GitHub-Delivery was already received (problem+json)."},
        413: {"description": "The body is larger than GitHub's 25 MB cap (problem+json)."},
        503: {"description": "WRITGATE_GITHUB_WEBHOOK_SECRET is not set (problem+json)."},
    },
    operation_id="receiveGithubWebhook",
)
async def github_webhook(request: Request, settings: _Webhook, store: _Triggers) -> Any:
    if settings.secret is None:
        return _problem(
            503, "webhook_not_configured", "Set WRITGATE_GITHUB_WEBHOOK_SECRET to receive webhooks."
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_WEBHOOK_BYTES:  # GitHub caps payloads at 25 MB; never buffer more
            return _problem(413, "webhook_too_large", "The webhook body exceeds 25 MB.")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        verify_signature(settings.secret, body, request.headers.get("x-hub-signature-256"))
    except WebhookRejected as exc:
        return _problem(401, exc.code, exc.message)
    event = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "")
    if not event or not delivery:
        return _problem(
            400, "webhook_headers_missing", "X-GitHub-Event and X-GitHub-Delivery are required."
        )
    try:
        payload = json.loads(body, parse_constant=_not_json)
        # A lone surrogate ("\\ud800") parses, but no database can store it as text.
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
        refuse_nul(payload)  # nor can PostgreSQL store a NUL
    except (ValueError, RecursionError):  # also not UTF-8, too deep, integers past 4,300 digits
        return _problem(400, "webhook_body_invalid", "The webhook body is not JSON.")
    if not isinstance(payload, dict):
        return _problem(400, "webhook_body_invalid", "The webhook body is not a JSON object.")
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    if event == "ping":
        return JSONResponse({"ok": True, "event": "ping"}, status_code=200)
    if action not in TRIGGERING.get(event, frozenset()):
        return JSONResponse({"ignored": True, "event": event, "action": action}, status_code=200)
    org = app_state(request).settings.org
    try:
        trigger = await store.record(org, delivery_id=delivery, event=event, payload=payload)
    except DuplicateDelivery as exc:
        return _problem(409, exc.code, exc.message, deliveryId=delivery)
    return JSONResponse({"ignored": False, "trigger": trigger.to_json()}, status_code=202)


@github_router.get(
    "/triggers",
    response_model=TriggerList,
    responses=_ERRORS,
    summary="Stored webhook triggers, newest first",
    operation_id="listForgeTriggers",
)
async def list_triggers(
    org: Org,
    store: _Triggers,
    event: str | None = None,
    repository: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    found, next_cursor = await store.list(
        org, event=event, repository=repository, limit=limit, cursor=cursor
    )
    return _page([t.to_json() for t in found], next_cursor)


@github_router.get(
    "/triggers/{trigger_id}",
    response_model=TriggerDetail,
    responses=_ERRORS,
    summary="One trigger with payload",
    operation_id="getForgeTrigger",
)
async def get_trigger(trigger_id: str, org: Org, store: _Triggers) -> dict[str, Any]:
    return (await store.get(org, trigger_id)).to_json(with_payload=True)
