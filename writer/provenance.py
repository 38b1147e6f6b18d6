"""A run's provenance as the Change Passport's ``writer`` section (CONTRACTS 1)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from .executor import driver_of
from .store import RunRecord

__all__ = ["writer_provenance"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def writer_provenance(record: RunRecord) -> dict[str, Any]:
    """The ``predicate.writer`` of a passport for the change ``record`` made."""
    spec = record.spec
    driver, _ = driver_of(spec)
    return {
        "kind": "agent",
        "runId": record.id,
        "chain": list(record.chain),
        "agent": driver,
        "model": spec.model_id,
        "promptSha256": hashlib.sha256(spec.prompt.encode()).hexdigest(),
        "title": record.title,
        "tags": list(spec.tags),
        "metadata": dict(spec.metadata),
        "intent": dict(record.intent),
        "usage": {
            k: record.usage.get(k, 0) for k in ("turns", "credits", "inputTokens", "outputTokens")
        },
        "sandbox": {"provider": "local", "network": spec.safety.network.mode},
        "startedAt": _iso(record.started_at),
        "finishedAt": _iso(record.finished_at),
    }
