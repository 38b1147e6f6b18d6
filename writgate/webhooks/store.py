"""Webhook endpoints, the durable outbox and the delivery log, on SQLite and PostgreSQL.

:meth:`WebhookStore.on_append` is a ledger append hook: it runs in the transaction of every
ledger event and inserts one outbox row per enabled endpoint of the event's org whose patterns
match, so an event and its deliveries commit (or vanish) together. Deliverers claim due rows
with :meth:`WebhookStore.claim` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) under a lease and
report each attempt with :meth:`WebhookStore.finish_attempt`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from writgate import db
from writgate.errors import ConflictError, InputError, NotFoundError
from writgate.ids import new_id
from writgate.ledger import Event, Ledger

from .events import TEST_EVENT, event_data, matches, normalize_patterns, payload_body
from .signing import SecretBox, generate_secret, secret_bytes
from .tables import webhook_attempts, webhook_deliveries, webhook_endpoints

__all__ = [
    "Attempt",
    "AttemptResult",
    "Claim",
    "Delivery",
    "Endpoint",
    "WebhookStore",
]

MAX_DESCRIPTION = 500
# How long a process trusts its view of an org's subscriptions (saves a query per event);
# changing a subscription waits this long before it returns, so that every process sees it.
DEFAULT_SUBSCRIPTION_CACHE_SECONDS = 1.0
_ERROR_CHARS = 500
DISABLED_EVENT = "webhook.endpoint_disabled"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Endpoint:
    """A subscription: where to deliver which events (never its secret)."""

    id: str
    org_id: str
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> Endpoint:
        """The endpoint of a ``webhook_endpoints`` row."""
        now = _now()
        previous_until = _utc(row.previous_secret_expires_at)
        return cls(
            id=row.id,
            org_id=row.org_id,
            url=row.url,
            description=row.description,
            event_types=list(row.event_types),
            enabled=bool(row.enabled),
            disabled_reason=row.disabled_reason,
            disabled_at=_utc(row.disabled_at),
            consecutive_failures=row.consecutive_failures,
            failing_since=_utc(row.failing_since),
            previous_secret_expires_at=previous_until
            if previous_until is not None and previous_until > now
            else None,
            created_at=_utc(row.created_at) or now,
            updated_at=_utc(row.updated_at) or now,
        )


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt of a delivery."""

    number: int
    at: datetime
    trigger: str
    outcome: str
    status_code: int | None
    error: str | None
    latency_ms: float
    response_body: str | None


@dataclass(frozen=True)
class Delivery:
    """One message to one endpoint, with its state and (on request) its attempts."""

    id: str
    org_id: str
    endpoint_id: str
    event_type: str
    subject_id: str | None
    seq: int | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    body: str
    attempt_log: tuple[Attempt, ...] = ()

    @classmethod
    def from_row(cls, row: Row[Any], attempt_log: Sequence[Attempt] = ()) -> Delivery:
        """The delivery of a ``webhook_deliveries`` row."""
        return cls(
            id=row.id,
            org_id=row.org_id,
            endpoint_id=row.endpoint_id,
            event_type=row.event_type,
            subject_id=row.subject_id,
            seq=row.seq,
            status=row.status,
            attempts=row.attempts,
            next_attempt_at=_utc(row.next_attempt_at) if row.status == "pending" else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            created_at=_utc(row.created_at) or _now(),
            finished_at=_utc(row.finished_at),
            body=row.body,
            attempt_log=tuple(attempt_log),
        )


@dataclass(frozen=True)
class Claim:
    """A delivery claimed by one deliverer until its lease runs out."""

    id: str
    org_id: str
    endpoint_id: str
    body: str
    token: str
    attempts: int
    round_attempts: int
    trigger: str


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt found out."""

    ok: bool
    status_code: int | None
    error: str | None
    latency_ms: float
    response_body: str | None
    at: datetime
    disable_reason: str | None = None  # the receiver asked to stop (HTTP 410 Gone)
    retry_after: float | None = None  # seconds the receiver asked to wait (429/503)


@dataclass(frozen=True)
class EndpointTarget:
    """What a deliverer needs to send to an endpoint: its URL and raw signing keys."""

    url: str
    enabled: bool
    keys: tuple[bytes, ...]


class WebhookStore:
    """Endpoints, outbox rows and attempts of every org."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        ledger: Ledger,
        box: SecretBox,
        subscription_cache_seconds: float = DEFAULT_SUBSCRIPTION_CACHE_SECONDS,
    ):
        self.engine = engine
        self.ledger = ledger
        self.box = box
        self.subscription_cache_seconds = subscription_cache_seconds
        self._on_enqueue: list[Callable[[], None]] = []
        # org -> (expires at, [(endpoint id, patterns)]): the hook's view of the subscriptions.
        self._subscriptions: dict[str, tuple[float, list[tuple[str, list[str]]]]] = {}

    def install(self) -> None:
        """Write outbox rows for every event the ledger appends from now on."""
        self.ledger.add_append_hook(self.on_append)

    def on_enqueued(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (no arguments) whenever a delivery is enqueued (a wake-up hint)."""
        self._on_enqueue.append(callback)

    def _kick(self) -> None:
        for callback in self._on_enqueue:
            callback()

    # -- the append hook -------------------------------------------------------------------

    async def on_append(self, conn: AsyncConnection, org_id: str, event: Event) -> None:
        """Insert one outbox row per enabled endpoint of ``org_id`` subscribed to ``event``."""
        subscriptions = await self._subscriptions_of(conn, org_id)
        targets = [id for id, patterns in subscriptions if matches(patterns, event.type)]
        if not targets:
            return
        body = payload_body(event.type, event.at, event_data(event))
        now = _now()
        rows = [
            _delivery_values(
                org_id=org_id,
                endpoint_id=endpoint_id,
                event_type=event.type,
                subject_id=event.subject_id,
                seq=event.seq,
                body=body,
                now=now,
            )
            for endpoint_id in targets
        ]
        # One row is the common case: a plain execute is cheaper than an executemany.
        await conn.execute(webhook_deliveries.insert(), rows[0] if len(rows) == 1 else rows)
        self._kick()

    async def _subscriptions_of(
        self, conn: AsyncConnection, org_id: str
    ) -> list[tuple[str, list[str]]]:
        now = time.monotonic()
        cached = self._subscriptions.get(org_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        rows = (
            await conn.execute(
                select(webhook_endpoints.c.id, webhook_endpoints.c.event_types).where(
                    webhook_endpoints.c.org_id == org_id, webhook_endpoints.c.enabled.is_(True)
                )
            )
        ).all()
        found = [(str(row.id), list(row.event_types)) for row in rows]
        if self.subscription_cache_seconds > 0:
            if len(self._subscriptions) > 10_000:
                self._subscriptions.clear()
            self._subscriptions[org_id] = (now + self.subscription_cache_seconds, found)
        return found

    async def _subscriptions_changed(self, org_id: str) -> None:
        """Forget ``org_id``'s cached subscriptions, then wait until other processes have too.

        Every process caches an org's subscriptions for ``subscription_cache_seconds``; once
        a change to them returns, each process's next event sees the change.
        """
        self._subscriptions.pop(org_id, None)
        if self.subscription_cache_seconds > 0:
            await anyio.sleep(self.subscription_cache_seconds)
        self._subscriptions.pop(org_id, None)

    # -- endpoints -------------------------------------------------------------------------

    async def create(
        self, org_id: str, *, url: str, event_types: Sequence[str], description: str = ""
    ) -> tuple[Endpoint, str]:
        """A new endpoint and its signing secret (the only time the secret is returned)."""
        patterns = normalize_patterns(event_types)
        description = _description(description)
        endpoint_id = new_id("whk")
        secret = generate_secret()
        now = _now()
        async with db.write(self.engine) as conn:
            await conn.execute(
                webhook_endpoints.insert().values(
                    id=endpoint_id,
                    org_id=org_id,
                    url=url,
                    description=description,
                    event_types=patterns,
                    secret=self.box.encrypt(secret, endpoint_id=endpoint_id),
                    previous_secret=None,
                    previous_secret_expires_at=None,
                    enabled=True,
                    disabled_reason=None,
                    disabled_at=None,
                    consecutive_failures=0,
                    failing_since=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        await self._subscriptions_changed(org_id)
        return await self.get(org_id, endpoint_id), secret

    async def get(self, org_id: str, endpoint_id: str) -> Endpoint:
        """The endpoint ``endpoint_id`` of ``org_id`` (``NotFoundError`` otherwise)."""
        async with db.read(self.engine) as conn:
            row = await _endpoint_row(conn, org_id, endpoint_id)
        return Endpoint.from_row(row)

    async def list_endpoints(
        self, org_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> tuple[list[Endpoint], str | None]:
        """Endpoints of ``org_id``, newest first, and the cursor of the next page."""
        query = select(webhook_endpoints).where(webhook_endpoints.c.org_id == org_id)
        if cursor:
            query = query.where(webhook_endpoints.c.id < cursor)
        query = query.order_by(webhook_endpoints.c.id.desc()).limit(limit + 1)
        async with db.read(self.engine) as conn:
            rows = (await conn.execute(query)).all()
        items = [Endpoint.from_row(row) for row in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def update(
        self,
        org_id: str,
        endpoint_id: str,
        *,
        url: str | None = None,
        event_types: Sequence[str] | None = None,
        description: str | None = None,
        enabled: bool | None = None,
    ) -> Endpoint:
        """Change the given fields; enabling an endpoint closes its circuit."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = url
        if event_types is not None:
            values["event_types"] = normalize_patterns(event_types)
        if description is not None:
            values["description"] = _description(description)
        if enabled is True:
            values.update(
                enabled=True,
                disabled_reason=None,
                disabled_at=None,
                consecutive_failures=0,
                failing_since=None,
            )
        elif enabled is False:
            values.update(enabled=False, disabled_reason="disabled by a user", disabled_at=_now())
        async with db.write(self.engine) as conn:
            row = await _endpoint_row(conn, org_id, endpoint_id)
            if enabled is False and not row.enabled:
                values.pop("disabled_reason"), values.pop("disabled_at")  # keep the first reason
            if values:
                values["updated_at"] = _now()
                await conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.id == endpoint_id)
                    .values(**values)
                )
        if {"event_types", "enabled"} & set(values):
            await self._subscriptions_changed(org_id)
        if enabled:
            self._kick()
        return await self.get(org_id, endpoint_id)

    async def delete(self, org_id: str, endpoint_id: str) -> None:
        """Remove the endpoint with its outbox rows and delivery log."""
        async with db.write(self.engine) as conn:
            await _endpoint_row(conn, org_id, endpoint_id)
            for table in (webhook_attempts, webhook_deliveries):
                await conn.execute(
                    delete(table).where(
                        table.c.org_id == org_id, table.c.endpoint_id == endpoint_id
                    )
                )
            await conn.execute(
                delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            )
        await self._subscriptions_changed(org_id)

    async def rotate_secret(
        self, org_id: str, endpoint_id: str, *, grace_seconds: float
    ) -> tuple[Endpoint, str]:
        """A new secret; deliveries are signed with both for ``grace_seconds``."""
        if not 0 <= grace_seconds <= 7 * 24 * 3600:
            raise InputError("must be between 0 and 604800 seconds", field="/graceSeconds")
        secret = generate_secret()
        now = _now()
        async with db.write(self.engine) as conn:
            row = await _endpoint_row(conn, org_id, endpoint_id)
            await conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.id == endpoint_id)
                .values(
                    secret=self.box.encrypt(secret, endpoint_id=endpoint_id),
                    previous_secret=row.secret if grace_seconds > 0 else None,
                    previous_secret_expires_at=now + timedelta(seconds=grace_seconds)
                    if grace_seconds > 0
                    else None,
                    updated_at=now,
                )
            )
        return await self.get(org_id, endpoint_id), secret

    async def target(self, org_id: str, endpoint_id: str) -> EndpointTarget | None:
        """URL and signing keys of an endpoint (``None`` when it was deleted)."""
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(webhook_endpoints).where(
                        webhook_endpoints.c.id == endpoint_id,
                        webhook_endpoints.c.org_id == org_id,
                    )
                )
            ).first()
        if row is None:
            return None
        keys = [secret_bytes(self.box.decrypt(row.secret, endpoint_id=endpoint_id))]
        until = _utc(row.previous_secret_expires_at)
        if row.previous_secret is not None and until is not None and until > _now():
            keys.append(
                secret_bytes(self.box.decrypt(row.previous_secret, endpoint_id=endpoint_id))
            )
        return EndpointTarget(url=row.url, enabled=bool(row.enabled), keys=tuple(keys))

    # -- deliveries ------------------------------------------------------------------------

    async def list_deliveries(
        self,
        org_id: str,
        endpoint_id: str,
        *,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[Delivery], str | None]:
        """Deliveries of an endpoint, newest first, and the cursor of the next page."""
        d = webhook_deliveries
        query = select(d).where(d.c.org_id == org_id, d.c.endpoint_id == endpoint_id)
        if status:
            query = query.where(d.c.status == status)
        if cursor:
            query = query.where(d.c.id < cursor)
        query = query.order_by(d.c.id.desc()).limit(limit + 1)
        async with db.read(self.engine) as conn:
            await _endpoint_row(conn, org_id, endpoint_id)
            rows = (await conn.execute(query)).all()
        items = [Delivery.from_row(row) for row in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def get_delivery(self, org_id: str, delivery_id: str) -> Delivery:
        """A delivery with its attempts, oldest attempt first."""
        async with db.read(self.engine) as conn:
            row = (
                await conn.execute(
                    select(webhook_deliveries).where(
                        webhook_deliveries.c.id == delivery_id,
                        webhook_deliveries.c.org_id == org_id,
                    )
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no webhook delivery {delivery_id!r}", field="deliveryId")
            attempts = (
                await conn.execute(
                    select(webhook_attempts)
                    .where(
                        webhook_attempts.c.delivery_id == delivery_id,
                        webhook_attempts.c.org_id == org_id,
                    )
                    .order_by(webhook_attempts.c.number)
                )
            ).all()
        return Delivery.from_row(
            row,
            [
                Attempt(
                    number=a.number,
                    at=_utc(a.at) or _now(),
                    trigger=a.trigger,
                    outcome=a.outcome,
                    status_code=a.status_code,
                    error=a.error,
                    latency_ms=a.latency_ms,
                    response_body=a.response_body,
                )
                for a in attempts
            ],
        )

    async def redeliver(self, org_id: str, delivery_id: str) -> Delivery:
        """Send a delivery again now, with a fresh retry schedule (same ``webhook-id``)."""
        d = webhook_deliveries
        async with db.write(self.engine) as conn:
            row = (
                await conn.execute(select(d).where(d.c.id == delivery_id, d.c.org_id == org_id))
            ).first()
            if row is None:
                raise NotFoundError(f"no webhook delivery {delivery_id!r}", field="deliveryId")
            if row.event_type == TEST_EVENT:
                raise ConflictError("test deliveries are not redelivered; send a new test")
            endpoint = await _endpoint_row(conn, org_id, row.endpoint_id)
            if not endpoint.enabled:
                raise ConflictError(
                    f"the endpoint {row.endpoint_id} is disabled "
                    f"({endpoint.disabled_reason}); enable it first",
                    code="webhook_endpoint_disabled",
                )
            await conn.execute(
                update(d)
                .where(d.c.id == delivery_id)
                .values(
                    status="pending",
                    round_attempts=0,
                    next_attempt_at=_now(),
                    lease_token=None,
                    finished_at=None,
                )
            )
        self._kick()
        return await self.get_delivery(org_id, delivery_id)

    async def enqueue_test(self, org_id: str, endpoint_id: str, token: str) -> Claim:
        """A ``webhook.test`` delivery, already claimed by the caller (attempted once)."""
        now = _now()
        async with db.write(self.engine) as conn:
            await _endpoint_row(conn, org_id, endpoint_id)
            values = _delivery_values(
                org_id=org_id,
                endpoint_id=endpoint_id,
                event_type=TEST_EVENT,
                subject_id=endpoint_id,
                seq=None,
                body=payload_body(
                    TEST_EVENT,
                    now,
                    {"subjectId": endpoint_id, "seq": 0, "endpointId": endpoint_id},
                ),
                now=now,
            )
            values.update(lease_token=token, next_attempt_at=now + timedelta(hours=1))
            await conn.execute(webhook_deliveries.insert().values(**values))
        return Claim(
            id=values["id"],
            org_id=org_id,
            endpoint_id=endpoint_id,
            body=values["body"],
            token=token,
            attempts=0,
            round_attempts=0,
            trigger="test",
        )

    async def prune(self, *, finished_before: datetime, limit: int = 1000) -> int:
        """Delete up to ``limit`` settled deliveries (and their attempts) finished before then."""
        d = webhook_deliveries
        async with db.write(self.engine) as conn:
            ids = (
                (
                    await conn.execute(
                        select(d.c.id)
                        .where(
                            d.c.status.in_(("succeeded", "failed")),
                            d.c.finished_at < finished_before,
                        )
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            # Rows a process enqueued from its cache for an endpoint deleted meanwhile.
            orphans = (
                (
                    await conn.execute(
                        select(d.c.id)
                        .where(
                            d.c.status == "pending",  # an orphan is never attempted
                            d.c.created_at < finished_before,
                            d.c.endpoint_id.not_in(select(webhook_endpoints.c.id)),
                        )
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            ids = [*ids, *orphans]
            if ids:
                await conn.execute(
                    delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids))
                )
                await conn.execute(delete(d).where(d.c.id.in_(ids)))
        return len(ids)

    async def claim(
        self,
        token: str,
        *,
        limit: int,
        lease_seconds: float,
    ) -> list[Claim]:
        """Due deliveries of enabled endpoints, held by ``token`` for ``lease_seconds``."""
        d, e = webhook_deliveries, webhook_endpoints
        now = _now()
        due = (
            select(d.c.id)
            .where(
                d.c.status == "pending",
                d.c.next_attempt_at <= now,
                d.c.endpoint_id.in_(select(e.c.id).where(e.c.enabled.is_(True))),
            )
            .order_by(d.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claim = (
            update(d)
            .where(d.c.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + timedelta(seconds=lease_seconds), lease_token=token)
            .returning(
                d.c.id, d.c.org_id, d.c.endpoint_id, d.c.body, d.c.attempts, d.c.round_attempts
            )
        )
        async with db.write(self.engine) as conn:
            rows = (await conn.execute(claim)).all()
        return [
            Claim(
                id=row.id,
                org_id=row.org_id,
                endpoint_id=row.endpoint_id,
                body=row.body,
                token=token,
                attempts=row.attempts,
                round_attempts=row.round_attempts,
                trigger="manual" if row.round_attempts == 0 and row.attempts > 0 else "scheduled",
            )
            for row in sorted(rows, key=lambda r: r.id)
        ]

    async def release_abandoned(self, holder_is_dead: Callable[[str], bool]) -> int:
        """Make the leased deliveries of dead deliverers due now; how many were released.

        ``holder_is_dead(lease_token)`` says whether the deliverer that claimed a row is gone
        (a process that was killed): its rows need not wait for their lease to run out. If
        it died mid-attempt the receiver may get that message twice, with one ``webhook-id``.
        """
        d = webhook_deliveries
        now = _now()
        leased = (
            select(d.c.lease_token)
            .distinct()
            .where(
                d.c.status == "pending",
                d.c.lease_token.is_not(None),
                d.c.next_attempt_at > now,
                d.c.event_type != TEST_EVENT,  # a test message is sent once, by its sender
            )
        )
        async with db.read(self.engine) as conn:
            tokens = [t for t in (await conn.execute(leased)).scalars() if holder_is_dead(t)]
        if not tokens:
            return 0
        async with db.write(self.engine) as conn:
            released = await conn.execute(
                update(d)
                .where(
                    d.c.status == "pending",
                    d.c.lease_token.in_(tokens),
                    d.c.event_type != TEST_EVENT,
                )
                .values(lease_token=None, next_attempt_at=now)
            )
        self._kick()
        return int(released.rowcount or 0)

    async def finish_attempt(
        self,
        claim: Claim,
        result: AttemptResult,
        *,
        retry_at: datetime | None,
        failure_threshold: int,
        failing_for: timedelta,
    ) -> bool:
        """Log one attempt and settle the delivery and the endpoint's circuit.

        ``retry_at`` is when to try a failed delivery again (``None``: give up). Returns False
        when the claim's lease was lost to another deliverer (the attempt is logged anyway).
        """
        d, e = webhook_deliveries, webhook_endpoints
        async with self.ledger.transaction() as conn:
            settled: dict[str, Any] = {
                "attempts": d.c.attempts + 1,
                "round_attempts": d.c.round_attempts + 1,
                "last_status_code": result.status_code,
                "last_error": _clip(result.error),
                "lease_token": None,
            }
            if result.ok:
                settled.update(status="succeeded", finished_at=result.at)
            elif retry_at is None or claim.trigger == "test":
                settled.update(status="failed", finished_at=result.at)
            else:
                settled.update(next_attempt_at=retry_at)
            number = (
                await conn.execute(
                    update(d)
                    .where(
                        d.c.id == claim.id, d.c.lease_token == claim.token, d.c.status == "pending"
                    )
                    .values(**settled)
                    .returning(d.c.attempts)
                )
            ).scalar_one_or_none()
            owned = number is not None
            if number is None:
                # Another deliverer holds the row now (or it was redelivered, or deleted): log
                # the attempt, which did happen, without settling the row.
                number = (
                    await conn.execute(
                        update(d)
                        .where(d.c.id == claim.id)
                        .values(attempts=d.c.attempts + 1)
                        .returning(d.c.attempts)
                    )
                ).scalar_one_or_none()
                if number is None:
                    return False  # the endpoint and its deliveries were deleted meanwhile
            await conn.execute(
                webhook_attempts.insert().values(
                    id=new_id("wha"),
                    delivery_id=claim.id,
                    org_id=claim.org_id,
                    endpoint_id=claim.endpoint_id,
                    number=number,
                    at=result.at,
                    trigger=claim.trigger,
                    outcome="succeeded" if result.ok else "failed",
                    status_code=result.status_code,
                    error=_clip(result.error),
                    latency_ms=round(result.latency_ms, 3),
                    response_body=result.response_body,
                )
            )
            if claim.trigger == "test":
                return owned
            if result.ok:
                await conn.execute(
                    update(e)
                    .where(e.c.id == claim.endpoint_id, e.c.consecutive_failures > 0)
                    .values(consecutive_failures=0, failing_since=None)
                )
            else:
                await self._count_failure(
                    conn, claim, result, threshold=failure_threshold, failing_for=failing_for
                )
        return owned

    async def _count_failure(
        self,
        conn: AsyncConnection,
        claim: Claim,
        result: AttemptResult,
        *,
        threshold: int,
        failing_for: timedelta,
    ) -> None:
        e = webhook_endpoints
        row = (
            await conn.execute(
                update(e)
                .where(e.c.id == claim.endpoint_id)
                .values(
                    consecutive_failures=e.c.consecutive_failures + 1,
                    failing_since=func.coalesce(e.c.failing_since, result.at),
                )
                .returning(e.c.enabled, e.c.consecutive_failures, e.c.failing_since, e.c.url)
            )
        ).first()
        if row is None or not row.enabled:
            return
        since = _utc(row.failing_since) or result.at
        reason = result.disable_reason
        if (
            reason is None
            and row.consecutive_failures >= threshold
            and result.at - since >= failing_for
        ):
            last = f"HTTP {result.status_code}" if result.status_code else result.error
            reason = (
                f"{row.consecutive_failures} consecutive failed deliveries since "
                f"{since.isoformat().replace('+00:00', 'Z')} (last: {last})"
            )
        if reason is None:
            return
        reason = _clip(reason) or "failing"
        await conn.execute(
            update(e)
            .where(e.c.id == claim.endpoint_id)
            .values(enabled=False, disabled_reason=reason, disabled_at=result.at)
        )
        self._subscriptions.pop(claim.org_id, None)  # others stop enqueuing within the cache time
        await self.ledger.append(
            conn,
            org_id=claim.org_id,
            subject_id=claim.endpoint_id,
            type=DISABLED_EVENT,
            data={
                "endpointId": claim.endpoint_id,
                "url": row.url,
                "reason": reason,
                "consecutiveFailures": row.consecutive_failures,
            },
        )


async def _endpoint_row(conn: AsyncConnection, org_id: str, endpoint_id: str) -> Row[Any]:
    row = (
        await conn.execute(
            select(webhook_endpoints).where(
                webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.org_id == org_id
            )
        )
    ).first()
    if row is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}", field="endpointId")
    return row


def _delivery_values(
    *,
    org_id: str,
    endpoint_id: str,
    event_type: str,
    subject_id: str | None,
    seq: int | None,
    body: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id("msg"),
        "org_id": org_id,
        "endpoint_id": endpoint_id,
        "event_type": event_type,
        "subject_id": subject_id,
        "seq": seq,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "round_attempts": 0,
        "next_attempt_at": now,
        "lease_token": None,
        "last_status_code": None,
        "last_error": None,
        "created_at": now,
        "finished_at": None,
    }


def _description(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_DESCRIPTION:
        raise InputError(f"at most {MAX_DESCRIPTION} characters", field="/description")
    return value


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.replace("\x00", "\ufffd")  # PostgreSQL text cannot hold NUL
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"
