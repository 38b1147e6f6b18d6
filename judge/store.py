"""Stores of the judge: review runs with their findings, and merge-gate decisions.

A review run and its findings are written in one transaction with a ``review.completed`` event.
A gate decision is written with a ``gate.decided`` event; in the same transaction every earlier
current decision of the same pull request (or, without a PR, of the same head) becomes ``stale``
when it was made for another head and ``superseded`` when it was made for the same head.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from writgate import db
from writgate.errors import InputError, NotFoundError, StoreError
from writgate.ids import new_id
from writgate.ledger import Ledger

from .findings import SEVERITIES, Finding
from .review import ReviewResult
from .tables import findings as findings_table
from .tables import gate_decisions, review_runs

__all__ = [
    "DECISION_STATUSES",
    "DecisionStore",
    "GateDecision",
    "ReviewRun",
    "ReviewRunNotFound",
    "ReviewStore",
]

DECISION_STATUSES = ("current", "superseded", "stale")
_MAX_LIMIT = 500


class ReviewRunNotFound(NotFoundError):
    """The review run does not exist."""

    code = "review_run_not_found"


class DecisionNotFound(NotFoundError):
    """The gate decision does not exist."""

    code = "gate_decision_not_found"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _limit(limit: int) -> int:
    if not 1 <= limit <= _MAX_LIMIT:
        raise InputError(f"must be between 1 and {_MAX_LIMIT}", field="limit")
    return limit


@dataclass(frozen=True)
class ReviewRun:
    """A stored review run."""

    id: str
    repository: str | None
    pr_number: int | None
    base_sha: str
    head_sha: str
    base_ref: str | None
    head_ref: str | None
    status: str
    reviewers: list[dict[str, Any]]
    counts: dict[str, dict[str, int]]
    totals: dict[str, int]
    created_at: datetime
    findings: list[Finding] = field(default_factory=list)

    def to_json(self, *, with_findings: bool = True) -> dict[str, Any]:
        """The API shape."""
        data: dict[str, Any] = {
            "id": self.id,
            "repository": self.repository,
            "pullRequest": self.pr_number,
            "base": {"ref": self.base_ref, "sha": self.base_sha},
            "head": {"ref": self.head_ref, "sha": self.head_sha},
            "status": self.status,
            "reviewers": self.reviewers,
            "counts": self.counts,
            "totals": self.totals,
            "createdAt": _iso(self.created_at),
        }
        if with_findings:
            data["findings"] = [f.to_json() for f in self.findings]
        return data

    def to_passport_reviews(self) -> list[dict[str, Any]]:
        """The ``reviews[]`` of the Change Passport (contract 1)."""
        return [
            {
                "reviewer": name,
                "counts": counts,
                "findings": [f.to_json() for f in self.findings if f.reviewer == name],
            }
            for name, counts in self.counts.items()
        ]


def _translate(action: str, exc: SQLAlchemyError) -> StoreError:
    original = getattr(exc, "orig", None) or exc
    return StoreError(f"{action} failed: {type(original).__name__}")


class ReviewStore:
    """Review runs and their findings."""

    def __init__(self, *, engine: AsyncEngine, ledger: Ledger | None = None):
        self.engine = engine
        self.ledger = ledger or Ledger(engine=engine)

    async def save(
        self,
        org_id: str,
        result: ReviewResult,
        *,
        repository: str | None = None,
        pr_number: int | None = None,
        base_ref: str | None = None,
        head_ref: str | None = None,
    ) -> ReviewRun:
        """Store ``result`` as a new review run."""
        run_id = new_id("rvw")
        now = datetime.now(UTC)
        change = result.change
        base_ref = base_ref if base_ref is not None else (change.base_ref if change else None)
        head_ref = head_ref if head_ref is not None else (change.head_ref if change else None)
        status = "failed" if result.failed else "succeeded"
        reviewers = [o.to_json() for o in result.reviewers]
        counts = result.counts
        try:
            async with self.ledger.transaction() as conn:
                await conn.execute(
                    review_runs.insert().values(
                        id=run_id,
                        org_id=org_id,
                        repository=repository,
                        pr_number=pr_number,
                        base_sha=result.base,
                        head_sha=result.head,
                        base_ref=base_ref,
                        head_ref=head_ref,
                        status=status,
                        reviewers=reviewers,
                        counts=counts,
                        totals=result.totals,
                        created_at=now,
                    )
                )
                if result.findings:
                    await conn.execute(
                        findings_table.insert(),
                        [
                            {
                                "review_run_id": run_id,
                                "seq": seq,
                                "org_id": org_id,
                                "reviewer": f.reviewer,
                                "rule": f.rule,
                                "severity": f.severity,
                                "path": f.path,
                                "start_line": f.start_line,
                                "end_line": f.end_line,
                                "message": f.message,
                                "suggestion": f.suggestion,
                                "fingerprint": f.fingerprint,
                            }
                            for seq, f in enumerate(result.findings, 1)
                        ],
                    )
                await self.ledger.append(
                    conn,
                    org_id=org_id,
                    subject_id=run_id,
                    type="review.completed",
                    data={
                        "status": status,
                        "repository": repository,
                        "pullRequest": pr_number,
                        "headSha": result.head,
                        "counts": {s: sum(c[s] for c in counts.values()) for s in SEVERITIES},
                        "failedReviewers": [o.name for o in result.failed],
                    },
                )
        except SQLAlchemyError as exc:
            raise _translate("saving the review run", exc) from exc
        return ReviewRun(
            id=run_id,
            repository=repository,
            pr_number=pr_number,
            base_sha=result.base,
            head_sha=result.head,
            base_ref=base_ref,
            head_ref=head_ref,
            status=status,
            reviewers=reviewers,
            counts=counts,
            totals=dict(result.totals),
            created_at=now,
            findings=list(result.findings),
        )

    async def get(self, org_id: str, run_id: str) -> ReviewRun:
        """The review run ``run_id`` with its findings (another org's run is not found)."""
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(review_runs).where(
                        review_runs.c.id == run_id, review_runs.c.org_id == org_id
                    )
                )
            ).first()
            if row is None:
                raise ReviewRunNotFound(f"review run {run_id!r} does not exist", field="id")
            rows = (
                await conn.execute(
                    select(findings_table)
                    .where(
                        findings_table.c.review_run_id == run_id,
                        findings_table.c.org_id == org_id,
                    )
                    .order_by(findings_table.c.seq)
                )
            ).all()
        return _review_run(row, [_finding(r) for r in rows])

    async def list(
        self,
        org_id: str,
        *,
        repository: str | None = None,
        head_sha: str | None = None,
        pr_number: int | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[ReviewRun]:
        """Review runs, newest first, without findings; ``before`` is a run id (pagination)."""
        query = select(review_runs).where(review_runs.c.org_id == org_id)
        if repository is not None:
            query = query.where(review_runs.c.repository == repository)
        if head_sha is not None:
            query = query.where(review_runs.c.head_sha == head_sha)
        if pr_number is not None:
            query = query.where(review_runs.c.pr_number == pr_number)
        if before is not None:
            query = query.where(review_runs.c.id < before)
        query = query.order_by(review_runs.c.id.desc()).limit(_limit(limit))
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [_review_run(row, []) for row in rows]


def _review_run(row: Any, found: builtins.list[Finding]) -> ReviewRun:
    return ReviewRun(
        id=row.id,
        repository=row.repository,
        pr_number=row.pr_number,
        base_sha=row.base_sha,
        head_sha=row.head_sha,
        base_ref=row.base_ref,
        head_ref=row.head_ref,
        status=row.status,
        reviewers=row.reviewers,
        counts=row.counts,
        totals=row.totals,
        created_at=_utc(row.created_at),
        findings=found,
    )


def _finding(row: Any) -> Finding:
    return Finding(
        reviewer=row.reviewer,
        rule=row.rule,
        severity=row.severity,
        path=row.path,
        start_line=row.start_line,
        end_line=row.end_line,
        message=row.message,
        suggestion=row.suggestion,
        fingerprint=row.fingerprint,
    )


@dataclass(frozen=True)
class GateDecision:
    """A stored merge-gate decision."""

    id: str
    decision: str  # "allow" | "block" | "pending"
    status: str  # "current" | "superseded" | "stale"
    rules: builtins.list[dict[str, Any]]
    policy_name: str
    policy_digest: str
    passport_id: str
    head_sha: str | None
    repository: str | None = None
    pr_number: int | None = None
    passport_ref: str | None = None
    policy: Mapping[str, Any] = field(default_factory=dict, repr=False)
    pr_state: Mapping[str, Any] | None = field(default=None, repr=False)
    publication: Mapping[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def reasons(self) -> builtins.list[str]:
        """The reasons of the rules that made the decision, most important first."""
        if self.decision == "block":
            deciding = [
                r
                for r in self.rules
                if r.get("state") in ("unsatisfied", "error")
                and r.get("kind") in ("block", "require")
            ]
        elif self.decision == "pending":
            deciding = [
                r for r in self.rules if r.get("state") == "pending" and r.get("kind") != "warn"
            ]
        else:
            deciding = [r for r in self.rules if r.get("state") == "satisfied"]
        found: builtins.list[str] = []
        for rule in deciding:
            if rule.get("kind") == "block" and rule.get("message"):
                found.append(str(rule["message"]))
            found.extend(str(reason) for reason in rule.get("reasons") or [])
            if not rule.get("reasons") and not rule.get("message"):
                found.append(f"rule {rule.get('name')} is {rule.get('state')}")
        return found

    def to_json(self) -> dict[str, Any]:
        """The API shape; ``rules`` carry name, kind, state, reasons and message."""
        return {
            "id": self.id,
            "decision": self.decision,
            "status": self.status,
            "rules": [
                {
                    "name": r.get("name"),
                    "kind": r.get("kind"),
                    "state": r.get("state"),
                    "reasons": list(r.get("reasons") or []),
                    "message": r.get("message"),
                }
                for r in self.rules
            ],
            "reasons": self.reasons,
            "policyName": self.policy_name,
            "policyDigest": self.policy_digest,
            "passportId": self.passport_id,
            "passport": self.passport_ref,
            "repository": self.repository,
            "pullRequest": self.pr_number,
            "headSha": self.head_sha,
            "publication": dict(self.publication) if self.publication else None,
            "createdAt": _iso(self.created_at),
            "updatedAt": _iso(self.updated_at),
        }


def _decision(row: Any) -> GateDecision:
    return GateDecision(
        id=row.id,
        decision=row.decision,
        status=row.status,
        rules=row.rules,
        policy_name=row.policy_name,
        policy_digest=row.policy_digest,
        passport_id=row.passport_id,
        head_sha=row.head_sha,
        repository=row.repository,
        pr_number=row.pr_number,
        passport_ref=row.passport_ref,
        policy=row.policy,
        pr_state=row.pr_state,
        publication=row.publication,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


class DecisionStore:
    """Merge-gate decisions."""

    def __init__(self, *, engine: AsyncEngine, ledger: Ledger | None = None):
        self.engine = engine
        self.ledger = ledger or Ledger(engine=engine)

    async def record(
        self,
        org_id: str,
        *,
        decision: str,
        rules: Sequence[Mapping[str, Any]],
        policy_name: str,
        policy_digest: str,
        policy: Mapping[str, Any],
        passport_id: str,
        head_sha: str | None,
        repository: str | None = None,
        pr_number: int | None = None,
        passport_ref: str | None = None,
        pr_state: Mapping[str, Any] | None = None,
    ) -> GateDecision:
        """Store a new current decision; earlier ones of the PR become stale or superseded."""
        decision_id = new_id("gd")
        now = datetime.now(UTC)
        try:
            async with self.ledger.transaction() as conn:
                outdated = await self._retire(
                    conn, org_id, repository=repository, pr_number=pr_number, head_sha=head_sha,
                    now=now,
                )  # fmt: skip
                await conn.execute(
                    gate_decisions.insert().values(
                        id=decision_id,
                        org_id=org_id,
                        repository=repository,
                        pr_number=pr_number,
                        head_sha=head_sha,
                        passport_id=passport_id,
                        passport_ref=passport_ref,
                        policy_name=policy_name,
                        policy_digest=policy_digest,
                        policy=dict(policy),
                        decision=decision,
                        status="current",
                        rules=[dict(r) for r in rules],
                        pr_state=dict(pr_state) if pr_state is not None else None,
                        publication=None,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await self.ledger.append(
                    conn,
                    org_id=org_id,
                    subject_id=decision_id,
                    type="gate.decided",
                    data={
                        "decision": decision,
                        "repository": repository,
                        "pullRequest": pr_number,
                        "headSha": head_sha,
                        "passportId": passport_id,
                        "policyDigest": policy_digest,
                        "replaces": outdated,
                    },
                )
        except SQLAlchemyError as exc:
            raise _translate("saving the gate decision", exc) from exc
        return await self.get(org_id, decision_id)

    async def _retire(
        self,
        conn: AsyncConnection,
        org_id: str,
        *,
        repository: str | None,
        pr_number: int | None,
        head_sha: str | None,
        now: datetime,
    ) -> builtins.list[dict[str, str]]:
        if repository is None or (pr_number is None and head_sha is None):
            return []
        if conn.dialect.name == "postgresql":
            # Serialize deciders of one PR so that exactly one decision stays current.
            key = f"{org_id}\x00{repository}\x00{pr_number if pr_number is not None else head_sha}"
            lock = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock})
        scope = [
            gate_decisions.c.org_id == org_id,
            gate_decisions.c.repository == repository,
            gate_decisions.c.status == "current",
        ]
        if pr_number is not None:
            scope.append(gate_decisions.c.pr_number == pr_number)
        else:
            scope.append(gate_decisions.c.pr_number.is_(None))
            scope.append(gate_decisions.c.head_sha == head_sha)
        rows = (
            await conn.execute(select(gate_decisions.c.id, gate_decisions.c.head_sha).where(*scope))
        ).all()
        retired = []
        for row in rows:
            status = "superseded" if row.head_sha == head_sha else "stale"
            await conn.execute(
                update(gate_decisions)
                .where(gate_decisions.c.id == row.id)
                .values(status=status, updated_at=now)
            )
            retired.append({"id": row.id, "status": status})
        return retired

    async def mark_stale(
        self, org_id: str, *, repository: str, pr_number: int, head_sha: str
    ) -> builtins.list[str]:
        """Mark the current decisions of the PR made for another head than ``head_sha`` stale."""
        now = datetime.now(UTC)
        try:
            async with self.ledger.transaction() as conn:
                rows = (
                    await conn.execute(
                        select(gate_decisions.c.id).where(
                            gate_decisions.c.org_id == org_id,
                            gate_decisions.c.repository == repository,
                            gate_decisions.c.pr_number == pr_number,
                            gate_decisions.c.status == "current",
                            gate_decisions.c.head_sha != head_sha,
                        )
                    )
                ).all()
                ids = [row.id for row in rows]
                if ids:
                    await conn.execute(
                        update(gate_decisions)
                        .where(gate_decisions.c.id.in_(ids))
                        .values(status="stale", updated_at=now)
                    )
                for decision_id in ids:
                    await self.ledger.append(
                        conn,
                        org_id=org_id,
                        subject_id=decision_id,
                        type="gate.stale",
                        data={"newHeadSha": head_sha},
                    )
        except SQLAlchemyError as exc:
            raise _translate("marking decisions stale", exc) from exc
        return ids

    async def set_publication(
        self, org_id: str, decision_id: str, publication: Mapping[str, Any]
    ) -> GateDecision:
        """Remember where the decision was published (status, check run, comment ids)."""
        try:
            async with db.write(self.engine) as conn:
                result = await conn.execute(
                    update(gate_decisions)
                    .where(gate_decisions.c.id == decision_id, gate_decisions.c.org_id == org_id)
                    .values(publication=dict(publication), updated_at=datetime.now(UTC))
                )
        except SQLAlchemyError as exc:
            raise _translate("saving the publication", exc) from exc
        if result.rowcount == 0:
            raise DecisionNotFound(f"gate decision {decision_id!r} does not exist", field="id")
        return await self.get(org_id, decision_id)

    async def get(self, org_id: str, decision_id: str) -> GateDecision:
        """The decision ``decision_id`` (another org's decision is not found)."""
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(gate_decisions).where(
                        gate_decisions.c.id == decision_id, gate_decisions.c.org_id == org_id
                    )
                )
            ).first()
        if row is None:
            raise DecisionNotFound(f"gate decision {decision_id!r} does not exist", field="id")
        return _decision(row)

    async def current(
        self,
        org_id: str,
        *,
        repository: str,
        pr_number: int | None = None,
        head_sha: str | None = None,
    ) -> GateDecision | None:
        """The current decision of a PR (or of a head), if any."""
        conditions = [
            gate_decisions.c.org_id == org_id,
            gate_decisions.c.repository == repository,
            gate_decisions.c.status == "current",
        ]
        if pr_number is not None:
            conditions.append(gate_decisions.c.pr_number == pr_number)
        if head_sha is not None:
            conditions.append(gate_decisions.c.head_sha == head_sha)
        query = (
            select(gate_decisions)
            .where(and_(*conditions))
            .order_by(gate_decisions.c.id.desc())
            .limit(1)
        )
        async with db.read(self.engine) as conn:
            row = (await conn.execute(query)).first()
        return _decision(row) if row else None

    async def list(
        self,
        org_id: str,
        *,
        repository: str | None = None,
        pr_number: int | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> builtins.list[GateDecision]:
        """Decisions, newest first."""
        query = select(gate_decisions).where(gate_decisions.c.org_id == org_id)
        if repository is not None:
            query = query.where(gate_decisions.c.repository == repository)
        if pr_number is not None:
            query = query.where(gate_decisions.c.pr_number == pr_number)
        if status is not None:
            if status not in DECISION_STATUSES:
                raise InputError(f"must be one of {', '.join(DECISION_STATUSES)}", field="status")
            query = query.where(gate_decisions.c.status == status)
        query = query.order_by(gate_decisions.c.id.desc()).limit(_limit(limit))
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [_decision(row) for row in rows]
