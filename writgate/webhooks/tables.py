"""Tables of the webhooks: endpoints, the delivery outbox and the attempt log.

``webhook_deliveries`` is the durable outbox: one row per (ledger event, matching endpoint),
inserted in the transaction that appends the event. A row is due when ``status = 'pending'``
and ``next_attempt_at <= now``; claiming it moves ``next_attempt_at`` forward by the lease and
stamps ``lease_token``, so a deliverer that dies gives the row back when its lease runs out.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from writgate import db

__all__ = ["metadata", "webhook_attempts", "webhook_deliveries", "webhook_endpoints"]

metadata = db.new_metadata()

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("org_id", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("description", String(500), nullable=False),
    Column("event_types", JSON, nullable=False),
    # AES-GCM ciphertexts of the signing secrets (never the plain secret).
    Column("secret", LargeBinary, nullable=False),
    Column("previous_secret", LargeBinary, nullable=True),
    Column("previous_secret_expires_at", DateTime(timezone=True), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(500), nullable=True),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    Column("consecutive_failures", Integer, nullable=False),
    Column("failing_since", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_webhook_endpoints_org_id_enabled", "org_id", "enabled"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(64), primary_key=True),  # the message id sent as ``webhook-id``
    Column("org_id", String(64), nullable=False),
    Column("endpoint_id", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("subject_id", String(64), nullable=True),
    Column("seq", Integer, nullable=True),
    Column("body", Text, nullable=False),  # the exact JSON bytes (UTF-8) that are signed and sent
    Column("status", String(16), nullable=False),  # pending | succeeded | failed
    Column("attempts", Integer, nullable=False),  # every attempt, numbering the log
    Column("round_attempts", Integer, nullable=False),  # since the last (re)delivery request
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_token", String(64), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_org_id_endpoint_id_id", "org_id", "endpoint_id", "id"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("delivery_id", String(64), nullable=False),
    Column("org_id", String(64), nullable=False),
    Column("endpoint_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("trigger", String(16), nullable=False),  # scheduled | manual | test
    Column("outcome", String(16), nullable=False),  # succeeded | failed
    Column("status_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("response_body", Text, nullable=True),  # truncated
    Index("ix_webhook_attempts_delivery_id_number", "delivery_id", "number"),
    Index("ix_webhook_attempts_org_id_endpoint_id_at", "org_id", "endpoint_id", "at"),
)
