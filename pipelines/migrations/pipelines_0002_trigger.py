"""Pipeline runs name the forge trigger that started them.

Revision ID: pipelines_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipelines_0002"
down_revision = "pipelines_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_runs", sa.Column("trigger_id", sa.String(64), nullable=True))
