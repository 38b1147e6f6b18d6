"""Stored Change Passports.

Revision ID: passport_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "passport_0001"
down_revision = None
branch_labels = ("passport",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "passport_passports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_id", sa.String(64), nullable=False),
        sa.Column("passport_id", sa.String(80), nullable=False),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("statement", sa.JSON(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_passport_passports"),
        sa.UniqueConstraint(
            "org_id", "passport_id", name="uq_passport_passports_org_id_passport_id"
        ),
    )
    op.create_index(
        "ix_passport_passports_org_id_created_at", "passport_passports", ["org_id", "created_at"]
    )
    op.create_index(
        "ix_passport_passports_org_id_repository_head_sha",
        "passport_passports",
        ["org_id", "repository", "head_sha"],
    )


def downgrade() -> None:
    op.drop_table("passport_passports")
