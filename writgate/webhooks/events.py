"""Event type patterns of subscriptions, and the payload a delivery carries.

A pattern is ``*`` (every event), ``family.*`` (``run.*``: every run event) or an exact type
(``gate.decided``). The family must be one writgate emits, so a typo is an error, not a silent
subscription to nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from writgate.errors import InputError
from writgate.ledger import Event

__all__ = [
    "EVENT_FAMILIES",
    "MAX_PATTERNS",
    "TEST_EVENT",
    "matches",
    "normalize_patterns",
    "payload_body",
]

# The families of ledger event types (the part before the first dot).
EVENT_FAMILIES: Mapping[str, str] = {
    "run": "coding-agent run lifecycle (queued, starting, running, awaiting_follow_up, "
    "succeeded, failed, cancelled, expired)",
    "turn": "turns of a run (started, finished)",
    "agent": "agent output and usage",
    "sandbox": "sandbox egress and expiry",
    "publish": "branch pushes and pull requests of runs",
    "validation": "validation of a run's change",
    "review": "review runs (completed)",
    "gate": "merge gate decisions (decided, stale)",
    "pipeline": "pipeline runs",
    "stage": "pipeline stages",
    "pr": "pull requests of the local forge",
    "webhook": "webhook endpoints (endpoint_disabled)",
}
TEST_EVENT = "webhook.test"
MAX_PATTERNS = 50
_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.([a-z0-9_]+|\*))+$")


def normalize_patterns(patterns: Iterable[str], *, field: str = "/eventTypes") -> list[str]:
    """Trimmed, de-duplicated, checked patterns in their given order."""
    result: list[str] = []
    for index, raw in enumerate(patterns):
        where = f"{field}/{index}"
        pattern = raw.strip().lower()
        if pattern != "*":
            if not _PATTERN.match(pattern) or "*" in pattern[:-1]:
                raise InputError(
                    f"{raw!r} is not an event type pattern: use '*', 'family.*' or an exact "
                    "type such as 'gate.decided'",
                    field=where,
                )
            family = pattern.split(".", 1)[0]
            if family not in EVENT_FAMILIES:
                raise InputError(
                    f"{raw!r}: unknown event family {family!r} (known: "
                    f"{', '.join(sorted(EVENT_FAMILIES))})",
                    field=where,
                )
        if pattern not in result:
            result.append(pattern)
    if not result:
        raise InputError("subscribe to at least one event type (e.g. 'run.*')", field=field)
    if len(result) > MAX_PATTERNS:
        raise InputError(f"at most {MAX_PATTERNS} event type patterns", field=field)
    return result


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """True when ``event_type`` matches one of ``patterns``."""
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def _iso(value: datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload_body(event_type: str, at: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body ``{type, timestamp, data}`` exactly as it is signed and sent."""
    return json.dumps(
        {"type": event_type, "timestamp": _iso(at), "data": data},
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )


def event_data(event: Event) -> dict[str, Any]:
    """The ``data`` of an event's payload: its subject and sequence number, then its data."""
    return {"subjectId": event.subject_id, "seq": event.seq, **event.data}
