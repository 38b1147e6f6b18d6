"""The pipelines tables: one row per pipeline run, one per stage of a run."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from writgate import db

__all__ = ["metadata", "pipeline_runs", "pipeline_stage_runs"]

metadata = db.new_metadata()

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("name", String(100), nullable=False),
    # queued (waiting for its concurrency group) | running | succeeded | failed | cancelled
    Column("status", String(16), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("source", String(1000), nullable=True),
    Column("base_dir", String(1000), nullable=True),
    Column("concurrency_group", String(500), nullable=True),
    Column("cancel_requested", Boolean, nullable=False),
    Column("cancel_reason", String(500), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # the forge trigger (trg_…) that started the run, if one did
    Column("trigger_id", String(64), nullable=True),
    # the Idempotency-Key that started the run (POST /api/v1/pipelines) and the SHA-256 of the
    # canonical request body it came with; unique per org (NULLs never collide)
    Column("idempotency_key", String(255), nullable=True),
    Column("request_fingerprint", String(64), nullable=True),
    Index("ix_pipeline_runs_org_id_created_at", "org_id", "created_at"),
    Index("ix_pipeline_runs_concurrency_group_status", "concurrency_group", "status"),
    Index("ix_pipeline_runs_status", "status"),
    Index("ix_pipeline_runs_org_id_idempotency_key", "org_id", "idempotency_key", unique=True),
)

pipeline_stage_runs = Table(
    "pipeline_stage_runs",
    metadata,
    Column(
        "pipeline_run_id",
        String(64),
        ForeignKey("pipeline_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("stage_id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    # pending | queued | running | succeeded | failed | skipped | cancelled
    Column("status", String(16), nullable=False),
    # the attempt a queued/running stage runs as (1 = first try); a crash keeps it
    Column("attempt", Integer, nullable=False),
    # how many times a worker claimed the stage (a crash and reclaim adds one)
    Column("claims", Integer, nullable=False),
    Column("outputs", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("not_before", DateTime(timezone=True), nullable=True),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("queued_at", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_pipeline_stage_runs_status_not_before", "status", "not_before"),
    Index("ix_pipeline_stage_runs_status_lease_expires_at", "status", "lease_expires_at"),
)
