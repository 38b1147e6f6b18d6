"""Review runs with their findings, and merge-gate decisions.

Revision ID: judge_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "judge_0001"
down_revision = None
branch_labels = ("judge",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "judge_review_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("repository", sa.String(200), nullable=True),
        sa.Column("pr_number", sa.Integer(), nullable=True),
        sa.Column("base_sha", sa.String(64), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("base_ref", sa.String(255), nullable=True),
        sa.Column("head_ref", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewers", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_judge_review_runs"),
    )
    op.create_index(
        "ix_judge_review_runs_org_id_created_at", "judge_review_runs", ["org_id", "created_at"]
    )
    op.create_index(
        "ix_judge_review_runs_org_id_repository_head_sha",
        "judge_review_runs",
        ["org_id", "repository", "head_sha"],
    )
    op.create_table(
        "judge_findings",
        sa.Column("review_run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("start_line", sa.Integer(), nullable=True),
        sa.Column("end_line", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["review_run_id"],
            ["judge_review_runs.id"],
            name="fk_judge_findings_review_run_id_judge_review_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("review_run_id", "seq", name="pk_judge_findings"),
    )
    op.create_index(
        "ix_judge_findings_org_id_fingerprint", "judge_findings", ["org_id", "fingerprint"]
    )
    op.create_table(
        "judge_gate_decisions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("repository", sa.String(200), nullable=True),
        sa.Column("pr_number", sa.Integer(), nullable=True),
        sa.Column("head_sha", sa.String(64), nullable=True),
        sa.Column("passport_id", sa.String(80), nullable=False),
        sa.Column("passport_ref", sa.String(64), nullable=True),
        sa.Column("policy_name", sa.String(200), nullable=False),
        sa.Column("policy_digest", sa.String(80), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("pr_state", sa.JSON(), nullable=True),
        sa.Column("publication", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_judge_gate_decisions"),
    )
    op.create_index(
        "ix_judge_gate_decisions_org_id_repository_pr_number",
        "judge_gate_decisions",
        ["org_id", "repository", "pr_number"],
    )
    op.create_index(
        "ix_judge_gate_decisions_org_id_repository_head_sha",
        "judge_gate_decisions",
        ["org_id", "repository", "head_sha"],
    )
    op.create_index(
        "ix_judge_gate_decisions_org_id_created_at",
        "judge_gate_decisions",
        ["org_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_table("judge_gate_decisions")
    op.drop_table("judge_findings")
    op.drop_table("judge_review_runs")
