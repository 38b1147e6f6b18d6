"""HTTP routes of the judge: review runs (``/api/v1/review-runs``) and the merge gate
(``/api/v1/merge-gate``).

Review runs and gate evaluations over a pull request work on repositories of the forge the
server is configured with (the local forge by default): the API never reads arbitrary paths of
the server's disk. Errors are problem+json, mapped by the application.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from writgate.errors import InputError
from writgate.web import request_org, service

from .export import to_rdjson, to_sarif
from .gate import MergeGate
from .pull_requests import checkout_pull_request, judge_pull_request
from .review import review_change
from .store import DecisionStore, ReviewStore

__all__ = ["gate_router", "review_router"]

review_router = APIRouter(prefix="/api/v1/review-runs", tags=["judge"])
gate_router = APIRouter(prefix="/api/v1/merge-gate", tags=["judge"])

Org = Annotated[str, Depends(request_org)]
Reviews = Annotated[ReviewStore, Depends(service("judge.reviews"))]
Gate = Annotated[MergeGate, Depends(service("judge.gate"))]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid API key (problem+json)."},
    404: {"description": "No such review run, decision, repository or pull request."},
    422: {"description": "Invalid request; `field` names the offending field (problem+json)."},
}


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FindingOut(_Out):
    """A finding (contract 3)."""

    reviewer: str
    rule: str
    severity: Literal["error", "warning", "info"]
    path: str | None
    startLine: int | None
    endLine: int | None
    message: str
    suggestion: str | None
    fingerprint: str


class RevisionOut(_Out):
    """A revision of the change."""

    ref: str | None
    sha: str


class ReviewerOutcomeOut(_Out):
    """How one reviewer went."""

    name: str
    status: Literal["succeeded", "failed", "skipped"]
    findings: int
    durationSeconds: float
    error: str | None


class ReviewRunOut(_Out):
    """A stored review run (``findings`` only when one run is read)."""

    id: str
    repository: str | None
    pullRequest: int | None
    base: RevisionOut
    head: RevisionOut
    status: Literal["succeeded", "failed"]
    reviewers: list[ReviewerOutcomeOut]
    counts: dict[str, dict[str, int]]
    totals: dict[str, int]
    createdAt: str
    findings: list[FindingOut] | None = None


class ReviewRunList(_Out):
    """A page of review runs, newest first."""

    items: list[ReviewRunOut]
    nextCursor: str | None


class RuleOut(_Out):
    """One rule's result."""

    name: str
    kind: str | None
    state: str | None
    reasons: list[str]
    message: str | None


class DecisionOut(_Out):
    """A stored merge-gate decision."""

    id: str
    decision: Literal["allow", "block", "pending"]
    status: Literal["current", "superseded", "stale"]
    rules: list[RuleOut]
    reasons: list[str]
    policyName: str
    policyDigest: str
    passportId: str
    passport: str | None
    repository: str | None
    pullRequest: int | None
    headSha: str | None
    publication: dict[str, Any] | None
    createdAt: str | None
    updatedAt: str | None
    reviewRun: str | None = Field(
        default=None, description="the review run made for this decision, when the gate made one"
    )


class DecisionList(_Out):
    """Decisions, newest first."""

    items: list[DecisionOut]


class RefreshOut(_Out):
    """The new decision, or null when the PR has a new head (its decisions went stale)."""

    decision: DecisionOut | None


_EXPORTS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    200: {
        "description": "The review run (JSON), or its findings as reviewdog rdjson "
        "(``format=rdjson``) or SARIF 2.1.0 (``format=sarif``, application/sarif+json).",
        "content": {"application/sarif+json": {}},
    },
}


class CreateReviewRun(_Body):
    """A review run over a forge repository: a pull request, or a base and a head revision."""

    repository: str = Field(description="OWNER/NAME on the server's forge")
    pull_request: int | None = Field(default=None, ge=1, description="review this PR's change")
    base: str | None = Field(default=None, description="base revision (without pullRequest)")
    head: str | None = Field(default=None, description="head revision (without pullRequest)")
    reviewers: list[str] | None = Field(
        default=None, description="reviewer names (default: the repository's, else every built-in)"
    )
    config: dict[str, dict[str, Any]] | None = Field(
        default=None, description="options per reviewer name"
    )


class Evaluate(_Body):
    """A merge-gate evaluation.

    Give ``passport`` (a statement or a DSSE envelope) with an optional ``prState`` or
    ``repository`` + ``pullRequest``; or only ``repository`` + ``pullRequest`` to review the PR,
    build its passport and decide in one call.
    """

    policy: str = Field(description="the policy document (YAML)")
    passport: dict[str, Any] | None = None
    pr_state: dict[str, Any] | None = Field(default=None, description="PR state (contract 2)")
    repository: str | None = None
    pull_request: int | None = Field(default=None, ge=1)
    reviewers: list[str] | None = None
    config: dict[str, dict[str, Any]] | None = None
    publish: bool = Field(default=False, description="post the status checks on the forge")


class Refresh(_Body):
    """Re-evaluate a pull request's current decision (approvals or checks changed)."""

    repository: str
    pull_request: int = Field(ge=1)
    publish: bool = True


@review_router.post(
    "",
    status_code=201,
    responses=_ERRORS,
    summary="Create a review run",
    operation_id="createReviewRun",
)
async def create_review_run(body: CreateReviewRun, org: Org, gate: Gate, reviews: Reviews) -> Any:
    """Review a pull request (or base..head) of a forge repository and store the findings."""
    home = gate.home
    forge = gate.forge_for(org)
    if body.pull_request is not None:
        if body.base or body.head:
            raise InputError("give either pullRequest or base and head", field="base")
        pr, path, base = await checkout_pull_request(
            forge, body.repository, body.pull_request, home=home
        )
        head, base_ref, head_ref = pr.head_sha, pr.base, pr.head
    else:
        if not body.base or not body.head:
            raise InputError("base and head are required without pullRequest", field="base")
        from writgate.git import mirror

        path = await mirror(
            home / "judge" / "mirrors", await forge.clone_url(body.repository),
            refs=[body.base, body.head],
        )  # fmt: skip
        base, head, base_ref, head_ref = body.base, body.head, None, None
    result = await review_change(
        path,
        base,
        head,
        reviewers=body.reviewers,
        config=body.config,
        allow_programs=gate.allow_program_reviewers,
    )
    run = await reviews.save(
        org,
        result,
        repository=body.repository,
        pr_number=body.pull_request,
        base_ref=base_ref,
        head_ref=head_ref,
    )
    return run.to_json()


@review_router.get("", responses=_ERRORS, summary="List review runs", operation_id="listReviewRuns")
async def list_review_runs(
    org: Org,
    reviews: Reviews,
    repository: str | None = None,
    head_sha: Annotated[str | None, Query(alias="headSha")] = None,
    pull_request: Annotated[int | None, Query(alias="pullRequest")] = None,
    before: Annotated[str | None, Query(description="a review run id (next page)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Review runs, newest first (without findings)."""
    runs = await reviews.list(
        org,
        repository=repository,
        head_sha=head_sha,
        pr_number=pull_request,
        before=before,
        limit=limit,
    )
    return {
        "items": [run.to_json(with_findings=False) for run in runs],
        "nextCursor": runs[-1].id if len(runs) == limit else None,
    }


@review_router.get(
    "/{run_id}", responses=_ERRORS, summary="Get a review run", operation_id="getReviewRun"
)
async def get_review_run(
    run_id: str,
    org: Org,
    reviews: Reviews,
    format: Literal["json", "rdjson", "sarif"] = "json",
) -> Any:
    """A review run with its findings; ``format=rdjson|sarif`` exports the findings."""
    run = await reviews.get(org, run_id)
    if format == "rdjson":
        return JSONResponse(to_rdjson(run.findings))
    if format == "sarif":
        return JSONResponse(
            to_sarif(
                run.findings,
                reviewers=[r["name"] for r in run.reviewers],
                base=run.base_sha,
                head=run.head_sha,
            ),
            media_type="application/sarif+json",
        )
    return run.to_json()


def _passport(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from passport import InvalidPassportError, load_passport

    try:
        loaded = load_passport(json.dumps(document).encode())
    except InvalidPassportError as exc:  # e.g. an envelope whose payload is not JSON
        exc.field = exc.field or "/passport"
        raise
    return loaded.statement, loaded.envelope


@gate_router.post(
    "/evaluate",
    responses=_ERRORS,
    summary="Evaluate the merge gate",
    operation_id="evaluateMergeGate",
)
async def evaluate(body: Evaluate, org: Org, gate: Gate) -> Any:
    """Decide a passport (and PR state) with a policy; store and optionally publish it."""
    from policies import PolicyError, parse_policy

    try:
        policy = parse_policy(body.policy, source="request.policy")
    except PolicyError as exc:  # a problem of the whole document is about the request field
        exc.field = exc.field or "/policy"
        raise
    if body.passport is None:
        if body.repository is None or body.pull_request is None:
            raise InputError(
                "give a passport, or a repository and a pullRequest to judge", field="passport"
            )
        verdict = await judge_pull_request(
            gate,
            org,
            repository=body.repository,
            number=body.pull_request,
            policy=policy,
            home=gate.home,
            reviewers=body.reviewers,
            config=body.config,
            publish=body.publish,
        )
        return verdict.to_json()["decision"] | {"reviewRun": verdict.review_run.id}
    statement, envelope = _passport(body.passport)
    pr: Any = body.pr_state
    if pr is None and body.repository is not None and body.pull_request is not None:
        pr = await gate.forge_for(org).get_pull_request(body.repository, body.pull_request)
    decision = await gate.evaluate(
        org,
        policy=policy,
        statement=statement,
        pr=pr,
        repository=body.repository,
        publish=body.publish,
        envelope=envelope,
    )
    return decision.to_json()


@gate_router.post(
    "/refresh",
    responses=_ERRORS,
    summary="Re-evaluate a pull request",
    operation_id="refreshMergeGate",
)
async def refresh(body: Refresh, org: Org, gate: Gate) -> Any:
    """Re-evaluate after approvals or checks changed; a new head makes the decision stale."""
    decision = await gate.refresh(
        org, repository=body.repository, number=body.pull_request, publish=body.publish
    )
    return {"decision": decision.to_json() if decision else None}


@gate_router.get(
    "/decisions",
    responses=_ERRORS,
    summary="List merge-gate decisions",
    operation_id="listMergeGateDecisions",
)
async def list_decisions(
    org: Org,
    gate: Gate,
    repository: str | None = None,
    pull_request: Annotated[int | None, Query(alias="pullRequest")] = None,
    status: Literal["current", "superseded", "stale"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Decisions, newest first."""
    store: DecisionStore = gate.decisions
    found = await store.list(
        org, repository=repository, pr_number=pull_request, status=status, limit=limit
    )
    return {"items": [d.to_json() for d in found]}


@gate_router.get(
    "/decisions/{decision_id}",
    responses=_ERRORS,
    summary="Get a decision",
    operation_id="getMergeGateDecision",
)
async def get_decision(decision_id: str, org: Org, gate: Gate) -> Any:
    """One decision with every rule's state and reasons."""
    return (await gate.get(org, decision_id)).to_json()
