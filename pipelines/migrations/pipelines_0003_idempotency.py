"""Pipeline runs remember the Idempotency-Key that started them, unique per org.

Revision ID: pipelines_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipelines_0003"
down_revision = "pipelines_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_runs", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.add_column("pipeline_runs", sa.Column("request_fingerprint", sa.String(64), nullable=True))
    # runs started without a key have NULL there, and NULLs never collide in a unique index
    op.create_index(
        "ix_pipeline_runs_org_id_idempotency_key",
        "pipeline_runs",
        ["org_id", "idempotency_key"],
        unique=True,
    )
