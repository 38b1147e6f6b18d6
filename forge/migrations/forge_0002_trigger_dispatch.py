"""Triggers record when and how they were dispatched to pipelines.

Triggers stored before this revision are marked dispatched: nothing started pipelines for them
then, and starting them now, perhaps days later, would surprise.

Revision ID: forge_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "forge_0002"
down_revision = "forge_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "forge_triggers", sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("forge_triggers", sa.Column("dispatch", sa.JSON(), nullable=True))
    op.execute("UPDATE forge_triggers SET dispatched_at = received_at")
    op.create_index("ix_forge_triggers_dispatched_at", "forge_triggers", ["dispatched_at"])
