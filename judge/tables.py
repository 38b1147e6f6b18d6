"""Tables of the judge package: review runs with their findings, and merge-gate decisions."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from writgate import db

__all__ = ["findings", "gate_decisions", "metadata", "review_runs"]

metadata = db.new_metadata()

review_runs = Table(
    "judge_review_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("repository", String(200), nullable=True),
    Column("pr_number", Integer, nullable=True),
    Column("base_sha", String(64), nullable=False),
    Column("head_sha", String(64), nullable=False),
    Column("base_ref", String(255), nullable=True),
    Column("head_ref", String(255), nullable=True),
    Column("status", String(16), nullable=False),
    Column("reviewers", JSON, nullable=False),
    Column("counts", JSON, nullable=False),
    Column("totals", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_judge_review_runs_org_id_created_at", "org_id", "created_at"),
    Index("ix_judge_review_runs_org_id_repository_head_sha", "org_id", "repository", "head_sha"),
)

findings = Table(
    "judge_findings",
    metadata,
    Column(
        "review_run_id",
        String(64),
        ForeignKey("judge_review_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("reviewer", String(100), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("path", Text, nullable=True),
    Column("start_line", Integer, nullable=True),
    Column("end_line", Integer, nullable=True),
    Column("message", Text, nullable=False),
    Column("suggestion", Text, nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Index("ix_judge_findings_org_id_fingerprint", "org_id", "fingerprint"),
)

gate_decisions = Table(
    "judge_gate_decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("repository", String(200), nullable=True),
    Column("pr_number", Integer, nullable=True),
    Column("head_sha", String(64), nullable=True),
    Column("passport_id", String(80), nullable=False),
    Column("passport_ref", String(64), nullable=True),
    Column("policy_name", String(200), nullable=False),
    Column("policy_digest", String(80), nullable=False),
    Column("policy", JSON, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("rules", JSON, nullable=False),
    Column("pr_state", JSON, nullable=True),
    Column("publication", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index(
        "ix_judge_gate_decisions_org_id_repository_pr_number", "org_id", "repository", "pr_number"
    ),
    Index("ix_judge_gate_decisions_org_id_repository_head_sha", "org_id", "repository", "head_sha"),
    Index("ix_judge_gate_decisions_org_id_created_at", "org_id", "created_at"),
)
