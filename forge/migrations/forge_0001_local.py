"""The local forge (repositories, pull requests, reviews, statuses, check runs, comments) and
received GitHub webhook triggers.

Revision ID: forge_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "forge_0001"
down_revision = None
branch_labels = ("forge",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forge_repositories",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("default_branch", sa.String(255), nullable=False),
        sa.Column("required_contexts", sa.JSON(), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_forge_repositories"),
        sa.UniqueConstraint("org_id", "name", name="uq_forge_repositories_org_id_name"),
    )
    op.create_table(
        "forge_pull_requests",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("repository_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("base_ref", sa.String(255), nullable=False),
        sa.Column("base_sha", sa.String(64), nullable=False),
        sa.Column("head_ref", sa.String(255), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("merge_commit_sha", sa.String(64), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["forge_repositories.id"],
            name="fk_forge_pull_requests_repository_id_forge_repositories",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_forge_pull_requests"),
        sa.UniqueConstraint(
            "repository_id", "number", name="uq_forge_pull_requests_repository_id_number"
        ),
    )
    op.create_index(
        "ix_forge_pull_requests_org_id_state", "forge_pull_requests", ["org_id", "state"]
    )
    op.create_index(
        "ix_forge_pull_requests_repository_id_head_ref",
        "forge_pull_requests",
        ["repository_id", "head_ref"],
    )
    op.create_table(
        "forge_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("pull_request_id", sa.String(64), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("commit_sha", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pull_request_id"],
            ["forge_pull_requests.id"],
            name="fk_forge_reviews_pull_request_id_forge_pull_requests",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_forge_reviews"),
    )
    op.create_index("ix_forge_reviews_pull_request_id", "forge_reviews", ["pull_request_id"])
    op.create_table(
        "forge_commit_statuses",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("repository_id", sa.String(64), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("context", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("target_url", sa.Text(), nullable=True),
        sa.Column("creator", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["forge_repositories.id"],
            name="fk_forge_commit_statuses_repository_id_forge_repositories",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_forge_commit_statuses"),
    )
    op.create_index(
        "ix_forge_commit_statuses_repository_id_sha",
        "forge_commit_statuses",
        ["repository_id", "sha"],
    )
    op.create_table(
        "forge_check_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("repository_id", sa.String(64), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("conclusion", sa.String(32), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["forge_repositories.id"],
            name="fk_forge_check_runs_repository_id_forge_repositories",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_forge_check_runs"),
    )
    op.create_index(
        "ix_forge_check_runs_repository_id_head_sha",
        "forge_check_runs",
        ["repository_id", "head_sha"],
    )
    op.create_table(
        "forge_check_annotations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("check_run_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("start_line", sa.Integer(), nullable=False),
        sa.Column("end_line", sa.Integer(), nullable=False),
        sa.Column("start_column", sa.Integer(), nullable=True),
        sa.Column("end_column", sa.Integer(), nullable=True),
        sa.Column("annotation_level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("raw_details", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["check_run_id"],
            ["forge_check_runs.id"],
            name="fk_forge_check_annotations_check_run_id_forge_check_runs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_forge_check_annotations"),
    )
    op.create_index(
        "ix_forge_check_annotations_check_run_id", "forge_check_annotations", ["check_run_id"]
    )
    op.create_table(
        "forge_comments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("pull_request_id", sa.String(64), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pull_request_id"],
            ["forge_pull_requests.id"],
            name="fk_forge_comments_pull_request_id_forge_pull_requests",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_forge_comments"),
    )
    op.create_index("ix_forge_comments_pull_request_id", "forge_comments", ["pull_request_id"])
    op.create_table(
        "forge_triggers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("delivery_id", sa.String(100), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=True),
        sa.Column("repository", sa.String(200), nullable=True),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("head_ref", sa.String(255), nullable=True),
        sa.Column("head_sha", sa.String(64), nullable=True),
        sa.Column("base_ref", sa.String(255), nullable=True),
        sa.Column("installation_id", sa.BigInteger(), nullable=True),
        sa.Column("sender", sa.String(200), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_forge_triggers"),
        sa.UniqueConstraint("delivery_id", name="uq_forge_triggers_delivery_id"),
    )
    op.create_index(
        "ix_forge_triggers_org_id_received_at", "forge_triggers", ["org_id", "received_at"]
    )
