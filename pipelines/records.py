"""What the store returns: pipeline runs, stage runs and claims (plain frozen records)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .context import UpstreamStage
from .spec import Pipeline

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "TERMINAL_STAGE_STATUSES",
    "Claim",
    "PipelineRun",
    "StageRun",
    "iso",
    "utc",
]

TERMINAL_STAGE_STATUSES = frozenset({"succeeded", "failed", "skipped", "cancelled"})
ACTIVE_RUN_STATUSES = frozenset({"queued", "running"})


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite hands back naive ones)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iso(value: datetime | None) -> str | None:
    """``2026-11-28T20:00:00.123Z`` or ``None``."""
    value = utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True)
class StageRun:
    """The state of one stage of one pipeline run."""

    pipeline_run_id: str
    stage_id: str
    kind: str
    status: str
    attempt: int
    claims: int
    outputs: Mapping[str, Any] | None
    error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    not_before: datetime | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        """Whether the stage reached a final status."""
        return self.status in TERMINAL_STAGE_STATUSES

    def to_json(self) -> dict[str, Any]:
        """The JSON shape used by the HTTP API and ``--json``."""
        return {
            "stage": self.stage_id,
            "kind": self.kind,
            "status": self.status,
            "attempt": self.attempt,
            "claims": self.claims,
            "outputs": dict(self.outputs) if self.outputs is not None else None,
            "error": self.error,
            "leaseOwner": self.lease_owner,
            "leaseExpiresAt": iso(self.lease_expires_at),
            "notBefore": iso(self.not_before),
            "queuedAt": iso(self.queued_at),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
        }


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run with its stages, in spec order."""

    id: str
    org_id: str
    name: str
    status: str
    pipeline: Pipeline
    inputs: Mapping[str, Any]
    source: str | None
    base_dir: str | None
    concurrency_group: str | None
    cancel_requested: bool
    cancel_reason: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stages: tuple[StageRun, ...] = ()
    trigger_id: str | None = None
    # set (never stored) when a start returned the run its Idempotency-Key already started
    replayed: bool = False

    @property
    def finished(self) -> bool:
        """Whether the run reached a final status."""
        return self.status not in ACTIVE_RUN_STATUSES

    def stage(self, stage_id: str) -> StageRun:
        """The stage run ``stage_id`` (``KeyError`` when there is none)."""
        for stage in self.stages:
            if stage.stage_id == stage_id:
                return stage
        raise KeyError(stage_id)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape used by the HTTP API and ``--json``."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "inputs": dict(self.inputs),
            "source": self.source,
            "triggerId": self.trigger_id,
            "concurrencyGroup": self.concurrency_group,
            "cancelRequested": self.cancel_requested,
            "cancelReason": self.cancel_reason,
            "error": self.error,
            "createdAt": iso(self.created_at),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "stages": [stage.to_json() for stage in self.stages],
        }


@dataclass(frozen=True)
class Claim:
    """A stage a worker has claimed: what it needs to run it, and the lease that fences it."""

    pipeline_run_id: str
    org_id: str
    stage_id: str
    kind: str
    attempt: int
    claims: int
    worker_id: str
    pipeline: Pipeline
    inputs: Mapping[str, Any]
    base_dir: str | None
    cancel_requested: bool
    reclaimed: bool
    upstream: Mapping[str, UpstreamStage] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """``(pipeline run id, stage id)``."""
        return self.pipeline_run_id, self.stage_id
