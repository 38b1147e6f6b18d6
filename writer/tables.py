"""Tables of the writer package."""

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
)

from writgate.db import new_metadata

__all__ = ["idempotency_keys", "metadata", "run_labels", "runs"]

metadata = new_metadata()

runs = Table(
    "writer_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("repository", String(512), nullable=False),
    Column("title", String(200), nullable=False),
    Column("lifecycle", String(32), nullable=False),
    Column("intent_label", String(32), nullable=False),
    Column("request", JSON, nullable=False),
    Column("intent", JSON, nullable=False),
    Column("usage", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Column("turns", JSON, nullable=False),
    Column("failure", JSON, nullable=True),
    Column("parent_run_id", String(64), nullable=True),
    Column("chain", JSON, nullable=False),
    Column("sandbox_id", String(128), nullable=True),
    Column("session_expires_at", DateTime(timezone=True), nullable=True),
    Column("owner", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_writer_runs_org_id_id", "org_id", "id"),
    Index("ix_writer_runs_org_id_lifecycle", "org_id", "lifecycle"),
    Index("ix_writer_runs_org_id_repository", "org_id", "repository"),
    Index("ix_writer_runs_org_id_parent_run_id", "org_id", "parent_run_id"),
)

# Tags (kind "tag", value "") and metadata entries (kind "meta") for filtering.
run_labels = Table(
    "writer_run_labels",
    metadata,
    Column(
        "run_id", String(64), ForeignKey("writer_runs.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("kind", String(8), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", String(1024), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Index("ix_writer_run_labels_org_id_kind_key", "org_id", "kind", "key"),
)

idempotency_keys = Table(
    "writer_idempotency_keys",
    metadata,
    Column("org_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
