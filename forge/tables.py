"""Tables of the forge package: the local forge's state and received GitHub webhook triggers."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from writgate import db

__all__ = [
    "check_annotations",
    "check_runs",
    "comments",
    "commit_statuses",
    "metadata",
    "pull_requests",
    "repositories",
    "reviews",
    "triggers",
]

metadata = db.new_metadata()

repositories = Table(
    "forge_repositories",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("default_branch", String(255), nullable=False),
    Column("required_contexts", JSON, nullable=False),
    Column("next_number", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("org_id", "name"),
)

pull_requests = Table(
    "forge_pull_requests",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("repository_id", String(64), ForeignKey("forge_repositories.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("draft", Boolean, nullable=False),
    Column("author", String(200), nullable=False),
    Column("base_ref", String(255), nullable=False),
    Column("base_sha", String(64), nullable=False),
    Column("head_ref", String(255), nullable=False),
    Column("head_sha", String(64), nullable=False),
    Column("merge_commit_sha", String(64), nullable=True),
    Column("labels", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("merged_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("repository_id", "number"),
    Index("ix_forge_pull_requests_org_id_state", "org_id", "state"),
    Index("ix_forge_pull_requests_repository_id_head_ref", "repository_id", "head_ref"),
)

reviews = Table(
    "forge_reviews",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("pull_request_id", String(64), ForeignKey("forge_pull_requests.id"), nullable=False),
    Column("user", String(200), nullable=False),
    Column("state", String(32), nullable=False),
    Column("commit_sha", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Index("ix_forge_reviews_pull_request_id", "pull_request_id"),
)

commit_statuses = Table(
    "forge_commit_statuses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("repository_id", String(64), ForeignKey("forge_repositories.id"), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("context", String(255), nullable=False),
    Column("state", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("target_url", Text, nullable=True),
    Column("creator", String(200), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_forge_commit_statuses_repository_id_sha", "repository_id", "sha"),
)

check_runs = Table(
    "forge_check_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("repository_id", String(64), ForeignKey("forge_repositories.id"), nullable=False),
    Column("head_sha", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("conclusion", String(32), nullable=True),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Index("ix_forge_check_runs_repository_id_head_sha", "repository_id", "head_sha"),
)

check_annotations = Table(
    "forge_check_annotations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("check_run_id", Integer, ForeignKey("forge_check_runs.id"), nullable=False),
    Column("path", Text, nullable=False),
    Column("start_line", Integer, nullable=False),
    Column("end_line", Integer, nullable=False),
    Column("start_column", Integer, nullable=True),
    Column("end_column", Integer, nullable=True),
    Column("annotation_level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("title", Text, nullable=True),
    Column("raw_details", Text, nullable=True),
    Index("ix_forge_check_annotations_check_run_id", "check_run_id"),
)

comments = Table(
    "forge_comments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org_id", String(64), nullable=False),
    Column("pull_request_id", String(64), ForeignKey("forge_pull_requests.id"), nullable=False),
    Column("author", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_forge_comments_pull_request_id", "pull_request_id"),
)

triggers = Table(
    "forge_triggers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("delivery_id", String(100), nullable=False),
    Column("event", String(64), nullable=False),
    Column("action", String(64), nullable=True),
    Column("repository", String(200), nullable=True),
    Column("number", Integer, nullable=True),
    Column("head_ref", String(255), nullable=True),
    Column("head_sha", String(64), nullable=True),
    Column("base_ref", String(255), nullable=True),
    Column("installation_id", BigInteger, nullable=True),
    Column("sender", String(200), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    # when the pipelines it starts were started (NULL: not yet — a dispatcher picks it up)
    Column("dispatched_at", DateTime(timezone=True), nullable=True),
    # what the dispatch did: [{pipeline, file, runId} | {pipeline, file, reason}]
    Column("dispatch", JSON, nullable=True),
    UniqueConstraint("delivery_id"),
    Index("ix_forge_triggers_org_id_received_at", "org_id", "received_at"),
    Index("ix_forge_triggers_dispatched_at", "dispatched_at"),
)
