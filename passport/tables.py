"""Tables of the passport package: stored passports."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Index, String, Table, UniqueConstraint

from writgate import db

__all__ = ["metadata", "passports"]

metadata = db.new_metadata()

passports = Table(
    "passport_passports",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("passport_id", String(80), nullable=False),
    Column("repository", String(200), nullable=False),
    Column("head_sha", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("statement", JSON, nullable=False),
    Column("envelope", JSON(none_as_null=True), nullable=True),  # SQL NULL, not JSON null
    UniqueConstraint("org_id", "passport_id"),
    Index("ix_passport_passports_org_id_created_at", "org_id", "created_at"),
    Index("ix_passport_passports_org_id_repository_head_sha", "org_id", "repository", "head_sha"),
)
