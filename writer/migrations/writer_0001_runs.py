"""Coding-agent runs, their labels and idempotency keys.

Revision ID: writer_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "writer_0001"
down_revision = None
branch_labels = ("writer",)
depends_on = None


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "writer_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("repository", sa.String(512), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("lifecycle", sa.String(32), nullable=False),
        sa.Column("intent_label", sa.String(32), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("intent", sa.JSON(), nullable=False),
        sa.Column("usage", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("turns", sa.JSON(), nullable=False),
        sa.Column("failure", sa.JSON(), nullable=True),
        sa.Column("parent_run_id", sa.String(64), nullable=True),
        sa.Column("chain", sa.JSON(), nullable=False),
        sa.Column("sandbox_id", sa.String(128), nullable=True),
        sa.Column("session_expires_at", tz, nullable=True),
        sa.Column("owner", sa.String(128), nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.Column("started_at", tz, nullable=True),
        sa.Column("finished_at", tz, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_writer_runs"),
    )
    op.create_index("ix_writer_runs_org_id_id", "writer_runs", ["org_id", "id"])
    op.create_index("ix_writer_runs_org_id_lifecycle", "writer_runs", ["org_id", "lifecycle"])
    op.create_index("ix_writer_runs_org_id_repository", "writer_runs", ["org_id", "repository"])
    op.create_index(
        "ix_writer_runs_org_id_parent_run_id", "writer_runs", ["org_id", "parent_run_id"]
    )
    op.create_table(
        "writer_run_labels",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["writer_runs.id"],
            name="fk_writer_run_labels_run_id_writer_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "kind", "key", name="pk_writer_run_labels"),
    )
    op.create_index(
        "ix_writer_run_labels_org_id_kind_key", "writer_run_labels", ["org_id", "kind", "key"]
    )
    op.create_table(
        "writer_idempotency_keys",
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("expires_at", tz, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "key", name="pk_writer_idempotency_keys"),
    )
