"""The event ledger.

Revision ID: writgate_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "writgate_0001"
down_revision = None
branch_labels = ("writgate",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_heads",
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name="pk_ledger_heads"),
    )
    op.create_table(
        "ledger_events",
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("subject_id", "seq", name="pk_ledger_events"),
    )
    op.create_index("ix_ledger_events_org_id_at", "ledger_events", ["org_id", "at"])
