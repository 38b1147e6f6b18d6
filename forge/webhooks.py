"""GitHub webhook deliveries turned into stored pipeline triggers.

A delivery is accepted only when ``X-Hub-Signature-256`` is the HMAC-SHA256 of the raw body under
the shared secret (compared in constant time). Each ``X-GitHub-Delivery`` id is stored once: a
replayed delivery is *rejected* as a duplicate (:class:`DuplicateDelivery`) and never makes a
second record. The events that become triggers are ``pull_request`` (opened, synchronize,
reopened), ``check_suite`` (requested, rerequested) and ``merge_group`` (checks_requested); other
events and actions are acknowledged and ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from writgate import db
from writgate.ids import is_id, new_id

from ._local_base import translate_store_errors
from .errors import ForgeConflict, ForgeInputError, ForgeNotFound, WebhookRejected
from .tables import triggers

__all__ = [
    "TRIGGERING",
    "DuplicateDelivery",
    "Trigger",
    "TriggerStore",
    "WebhookSettings",
    "sign",
    "trigger_fields",
    "verify_signature",
]

# event -> actions that start a pipeline
TRIGGERING: Mapping[str, frozenset[str]] = {
    "pull_request": frozenset({"opened", "synchronize", "reopened"}),
    "check_suite": frozenset({"requested", "rerequested"}),
    "merge_group": frozenset({"checks_requested"}),
}


class WebhookSettings:
    """The webhook receiver's secret (``WRITGATE_GITHUB_WEBHOOK_SECRET``); None disables it."""

    def __init__(self, secret: str | None):
        self.secret = secret or None

    def __repr__(self) -> str:
        return f"WebhookSettings(secret={'set' if self.secret else 'unset'})"


class DuplicateDelivery(ForgeConflict):
    """This webhook delivery was already received."""

    code = "duplicate_delivery"


def sign(secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``: ``sha256=<hex>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> None:
    """Raise :class:`WebhookRejected` unless ``header`` signs ``body`` (constant-time compare)."""
    if not header:
        raise WebhookRejected("the X-Hub-Signature-256 header is missing", code="signature_missing")
    expected = sign(secret, body)
    if not hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace")):
        raise WebhookRejected(
            "the X-Hub-Signature-256 signature does not match", code="bad_signature"
        )


@dataclass(frozen=True)
class Trigger:
    """A stored webhook delivery that should start a pipeline."""

    id: str
    delivery_id: str
    event: str
    action: str | None
    repository: str | None
    number: int | None
    head_ref: str | None
    head_sha: str | None
    base_ref: str | None
    installation_id: int | None
    sender: str | None
    received_at: datetime
    payload: Mapping[str, Any]
    dispatched_at: datetime | None = None
    dispatch: tuple[Mapping[str, Any], ...] = ()
    org_id: str = ""

    def to_json(self, *, with_payload: bool = False) -> dict[str, Any]:
        """The API shape (``pipelineRuns`` and ``skippedPipelines`` once dispatched)."""
        data: dict[str, Any] = {
            "id": self.id,
            "deliveryId": self.delivery_id,
            "event": self.event,
            "action": self.action,
            "repository": self.repository,
            "number": self.number,
            "headRef": self.head_ref,
            "headSha": self.head_sha,
            "baseRef": self.base_ref,
            "installationId": self.installation_id,
            "sender": self.sender,
            "receivedAt": _iso(self.received_at),
            "dispatchedAt": _iso(self.dispatched_at),
            "pipelineRuns": [dict(item) for item in self.dispatch if item.get("runId")],
            "skippedPipelines": [dict(item) for item in self.dispatch if not item.get("runId")],
        }
        if with_payload:
            data["payload"] = dict(self.payload)
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _utc(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def trigger_fields(event: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Repository, PR number, head and base of a delivery (the parts a pipeline needs)."""
    fields: dict[str, Any] = {
        "action": payload.get("action") if isinstance(payload.get("action"), str) else None,
        "repository": _get(payload, "repository", "full_name"),
        "installation_id": _get(payload, "installation", "id"),
        "sender": _get(payload, "sender", "login"),
        "number": None,
        "head_ref": None,
        "head_sha": None,
        "base_ref": None,
    }
    if event == "pull_request":
        pr = payload.get("pull_request")
        fields.update(
            number=_get(pr, "number")
            if isinstance(_get(pr, "number"), int)
            else payload.get("number"),
            head_ref=_get(pr, "head", "ref"),
            head_sha=_get(pr, "head", "sha"),
            base_ref=_get(pr, "base", "ref"),
        )
    elif event == "check_suite":
        suite = payload.get("check_suite")
        pulls = _get(suite, "pull_requests") or []
        first = pulls[0] if pulls and isinstance(pulls[0], Mapping) else {}
        fields.update(
            number=first.get("number"),
            head_ref=_get(suite, "head_branch"),
            head_sha=_get(suite, "head_sha"),
            base_ref=_get(first, "base", "ref"),
        )
    elif event == "merge_group":
        group = payload.get("merge_group")
        base = _get(group, "base_ref")
        fields.update(
            head_ref=_get(group, "head_ref"),
            head_sha=_get(group, "head_sha"),
            base_ref=base.removeprefix("refs/heads/") if isinstance(base, str) else None,
        )
    for key in ("repository", "sender", "head_ref", "head_sha", "base_ref"):
        if not isinstance(fields[key], str):
            fields[key] = None
    for key, largest in (("number", 2**31 - 1), ("installation_id", 2**63 - 1)):
        # What the columns hold (GitHub's ids are positive); anything else is not an id.
        value = fields[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= largest:
            fields[key] = None
    return fields


def _trigger(row: Any) -> Trigger:
    received = _utc(row.received_at)
    assert received is not None
    return Trigger(
        id=row.id,
        delivery_id=row.delivery_id,
        event=row.event,
        action=row.action,
        repository=row.repository,
        number=row.number,
        head_ref=row.head_ref,
        head_sha=row.head_sha,
        base_ref=row.base_ref,
        installation_id=row.installation_id,
        sender=row.sender,
        received_at=received,
        payload=row.payload,
        dispatched_at=_utc(row.dispatched_at),
        dispatch=tuple(row.dispatch or ()),
        org_id=row.org_id,
    )


@translate_store_errors
class TriggerStore:
    """Stores triggers, one per delivery id, and lists them per org, newest first."""

    def __init__(self, *, engine: AsyncEngine):
        self.engine = engine
        self._listeners: list[Callable[[Trigger], None]] = []

    def add_listener(self, listener: Callable[[Trigger], None]) -> None:
        """Call ``listener(trigger)`` after each new trigger is committed (in this process)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Trigger], None]) -> None:
        """Undo :meth:`add_listener`."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def record(
        self, org_id: str, *, delivery_id: str, event: str, payload: Mapping[str, Any]
    ) -> Trigger:
        """Store the trigger of one delivery; :class:`DuplicateDelivery` when already stored."""
        if not delivery_id or len(delivery_id) > 100:
            raise ForgeInputError(
                "X-GitHub-Delivery must be 1 to 100 characters", field="X-GitHub-Delivery"
            )
        values = {
            "id": new_id("trg"),
            "org_id": org_id,
            "delivery_id": delivery_id,
            "event": event,
            "payload": dict(payload),
            "received_at": datetime.now(UTC),
            **trigger_fields(event, payload),
        }
        try:
            async with db.write(self.engine) as conn:
                await conn.execute(triggers.insert().values(**values))
        except IntegrityError as exc:
            raise DuplicateDelivery(
                f"delivery {delivery_id!r} was already received", delivery_id=delivery_id
            ) from exc
        trigger = await self.get(org_id, values["id"])
        for listener in list(self._listeners):
            listener(trigger)
        return trigger

    async def undispatched(self, *, limit: int = 50) -> list[Trigger]:
        """Triggers of every org whose pipelines were not started yet, oldest first."""
        query = (
            select(triggers)
            .where(triggers.c.dispatched_at.is_(None))
            .order_by(triggers.c.received_at, triggers.c.id)
            .limit(limit)
        )
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        return [_trigger(row) for row in rows]

    async def mark_dispatched(
        self, org_id: str, trigger_id: str, outcomes: Sequence[Mapping[str, Any]]
    ) -> Trigger:
        """Record that ``trigger_id``'s pipelines were started (or skipped) as ``outcomes``."""
        async with db.write(self.engine) as conn:
            await conn.execute(
                triggers.update()
                .where(triggers.c.id == trigger_id, triggers.c.org_id == org_id)
                .values(dispatched_at=datetime.now(UTC), dispatch=[dict(o) for o in outcomes])
            )
        return await self.get(org_id, trigger_id)

    async def get(self, org_id: str, trigger_id: str) -> Trigger:
        """One trigger of ``org_id``."""
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(triggers).where(triggers.c.id == trigger_id, triggers.c.org_id == org_id)
                )
            ).first()
        if row is None:
            raise ForgeNotFound(f"trigger {trigger_id!r} does not exist", field="id")
        return _trigger(row)

    async def list(
        self,
        org_id: str,
        *,
        event: str | None = None,
        repository: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Trigger], str | None]:
        """Triggers newest first, and the cursor of the next page (None at the end)."""
        if cursor is not None and not is_id(cursor, "trg"):
            raise ForgeInputError("not a cursor returned by this list", field="cursor")
        limit = max(1, min(limit, 200))
        query = select(triggers).where(triggers.c.org_id == org_id)
        if event:
            query = query.where(triggers.c.event == event)
        if repository:
            query = query.where(triggers.c.repository == repository)
        if cursor:
            query = query.where(triggers.c.id < cursor)
        query = query.order_by(triggers.c.id.desc()).limit(limit + 1)
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        found = [_trigger(row) for row in rows[:limit]]
        return found, (found[-1].id if len(rows) > limit else None)
