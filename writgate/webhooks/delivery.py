"""The deliverer: claims due outbox rows, signs and POSTs them, retries with backoff.

One deliverer runs in the server (the embedded default) and one in each ``writgate worker``.
Several deliverers may share a database: each claim takes rows under a lease (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), and an attempt's outcome only settles the
row while the claim still holds it, so a row is never delivered twice at once. A deliverer that
dies gives its rows back when the lease runs out, or at once to a deliverer on the same host,
which sees that the process named in the lease is gone (a restarted server does not make its
receivers wait a lease for what it was sending when it was killed).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from writgate.errors import ConfigError, WritgateError
from writgate.owners import new_owner_id, owner_is_dead

from .destinations import allow_private_from_env, resolve
from .signing import signature_headers
from .store import AttemptResult, Claim, Delivery, WebhookStore

__all__ = [
    "DEFAULT_RETRY_DELAYS",
    "CircuitPolicy",
    "Deliverer",
    "RetrySchedule",
    "parse_duration",
]

log = logging.getLogger("writgate.webhooks")

USER_AGENT = "writgate-webhooks/0.1"
MAX_RETRY_AFTER = 3600.0  # a receiver's Retry-After stretches a retry by at most an hour
# Seconds to wait after the 1st, 2nd, … failed attempt: about 26 hours in all (without jitter).
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (
    5,
    30,
    120,
    600,
    1800,
    3600,
    7200,
    14400,
    28800,
    36000,
)
DEFAULT_RETENTION = timedelta(days=30)  # settled deliveries and their attempts are kept this long
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str, *, name: str) -> float:
    """Seconds of ``"500ms"``, ``"5"``, ``"5s"``, ``"2m"``, ``"1.5h"`` or ``"1d"``."""
    match = _DURATION.match(text)
    if match is None:
        raise ConfigError(f"{name}: {text!r} is not a duration (e.g. 5s, 2m, 1h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between attempts, each stretched by up to ``jitter`` (never shortened)."""

    delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    jitter: float = 0.2

    @property
    def max_attempts(self) -> int:
        """Attempts per (re)delivery: the first one and one per delay."""
        return len(self.delays) + 1

    @property
    def span_seconds(self) -> float:
        """The shortest time from the first to the last attempt."""
        return float(sum(self.delays))

    def delay_after(self, failed_attempts: int) -> float | None:
        """Seconds to wait after ``failed_attempts`` failures in a row; ``None``: give up."""
        if failed_attempts < 1 or failed_attempts > len(self.delays):
            return None
        return self.delays[failed_attempts - 1] * (1.0 + random.uniform(0.0, self.jitter))

    @classmethod
    def parse(cls, text: str, *, name: str = "WRITGATE_WEBHOOKS_RETRY_SCHEDULE") -> RetrySchedule:
        """A schedule from ``"5s,30s,2m,10m,…"``."""
        delays = tuple(parse_duration(part, name=name) for part in text.split(",") if part.strip())
        if not delays:
            raise ConfigError(f"{name}: give at least one delay")
        return cls(delays=delays)


@dataclass(frozen=True)
class CircuitPolicy:
    """Disable an endpoint after ``failure_threshold`` failures in a row over ``failing_for``."""

    failure_threshold: int = 10
    failing_for: timedelta = timedelta(hours=24)


class Deliverer:
    """Delivers the outbox of every org until cancelled."""

    def __init__(
        self,
        *,
        store: WebhookStore,
        schedule: RetrySchedule | None = None,
        circuit: CircuitPolicy | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        lease_seconds: float = 60.0,
        poll_interval: float = 1.0,
        concurrency: int = 8,
        max_response_bytes: int = 64 * 1024,
        logged_response_bytes: int = 2048,
        allow_private: Callable[[], bool] = allow_private_from_env,
        transport: httpx.AsyncBaseTransport | None = None,
        retention: timedelta | None = DEFAULT_RETENTION,
        prune_interval: float = 3600.0,
    ):
        if lease_seconds <= timeout + connect_timeout:
            raise ConfigError("the delivery lease must outlast the request timeout")
        self.store = store
        self.schedule = schedule or RetrySchedule()
        self.circuit = circuit or CircuitPolicy()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.max_response_bytes = max_response_bytes
        self.logged_response_bytes = logged_response_bytes
        self.allow_private = allow_private
        self.transport = transport
        self.retention = retention
        self.prune_interval = prune_interval
        self._next_prune = 0.0
        self.owner = new_owner_id()
        self._next_release = 0.0
        self.attempts_made = 0
        self._in_flight = 0
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._burst_until = 0.0
        store.on_enqueued(self.wake)

    @classmethod
    def from_env(
        cls, store: WebhookStore, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Deliverer:
        """A deliverer configured by ``WRITGATE_WEBHOOKS_*`` variables."""
        env = os.environ if environ is None else environ
        options: dict[str, Any] = {}
        schedule = env.get("WRITGATE_WEBHOOKS_RETRY_SCHEDULE")
        if schedule:
            options["schedule"] = RetrySchedule.parse(schedule)
        for variable, key in (
            ("WRITGATE_WEBHOOKS_TIMEOUT", "timeout"),
            ("WRITGATE_WEBHOOKS_POLL", "poll_interval"),
            ("WRITGATE_WEBHOOKS_LEASE", "lease_seconds"),
        ):
            if env.get(variable):
                options[key] = parse_duration(env[variable], name=variable)
        threshold = env.get("WRITGATE_WEBHOOKS_DISABLE_AFTER_FAILURES")
        failing_for = env.get("WRITGATE_WEBHOOKS_DISABLE_AFTER")
        if threshold or failing_for:
            default = CircuitPolicy()
            try:
                count = int(threshold) if threshold else default.failure_threshold
            except ValueError:
                raise ConfigError(
                    f"WRITGATE_WEBHOOKS_DISABLE_AFTER_FAILURES: {threshold!r} is not a number"
                ) from None
            if count < 1:
                raise ConfigError("WRITGATE_WEBHOOKS_DISABLE_AFTER_FAILURES must be at least 1")
            options["circuit"] = CircuitPolicy(
                failure_threshold=count,
                failing_for=timedelta(
                    seconds=parse_duration(failing_for, name="WRITGATE_WEBHOOKS_DISABLE_AFTER")
                )
                if failing_for
                else default.failing_for,
            )
        retention = env.get("WRITGATE_WEBHOOKS_RETENTION")
        if retention:
            seconds = parse_duration(retention, name="WRITGATE_WEBHOOKS_RETENTION")
            options["retention"] = timedelta(seconds=seconds) if seconds > 0 else None
        options.update(overrides)
        return cls(store=store, **options)

    # -- waking ----------------------------------------------------------------------------

    def wake(self) -> None:
        """A delivery was enqueued: look for due rows soon (safe from any thread)."""
        loop, flag = self._loop, self._wake
        if loop is None or flag is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._on_wake()
        else:
            loop.call_soon_threadsafe(self._on_wake)

    def _on_wake(self) -> None:
        # The hook runs before the enqueuing transaction commits; look a few times shortly after.
        self._burst_until = time.monotonic() + 0.5
        if self._wake is not None:
            self._wake.set()

    async def _sleep(self) -> None:
        assert self._wake is not None
        interval = 0.05 if time.monotonic() < self._burst_until else self.poll_interval
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=interval)
        except TimeoutError:
            pass

    # -- leases ----------------------------------------------------------------------------

    def lease_token(self) -> str:
        """A token for one claim: this process's owner id (when it fits) and a random part."""
        token = f"{self.owner}:{uuid.uuid4().hex[:12]}"
        return token if len(token) <= _TOKEN_CHARS else uuid.uuid4().hex

    async def _release_abandoned(self) -> None:
        """Take back at once the rows that deliverers which died on this host had claimed."""
        if time.monotonic() < self._next_release:
            return
        self._next_release = time.monotonic() + max(self.poll_interval, 1.0)
        try:
            await self.store.release_abandoned(_holder_is_dead)
        except Exception as exc:  # the lease still hands the rows over: never stop for this
            log.warning("releasing dead deliverers' claims failed: %s", _first_line(exc))

    # -- serving ---------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            follow_redirects=False,  # a redirect could lead anywhere, past the address check
            trust_env=False,  # never through a proxy from the environment
            limits=httpx.Limits(max_keepalive_connections=0),  # one TLS name per connection
            transport=self.transport,
        )

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        async with self._client() as client, anyio.create_task_group() as tg:
            task_status.started()
            while True:
                self._wake.clear()  # before looking: a wake-up from now on is not lost
                await self._prune_when_due()
                await self._release_abandoned()
                free = self.concurrency - self._in_flight
                claims: list[Claim] = []
                if free > 0:
                    try:
                        claims = await self.store.claim(
                            self.lease_token(), limit=free, lease_seconds=self.lease_seconds
                        )
                    except Exception as exc:  # a database hiccup must not stop deliveries
                        log.warning("claiming webhook deliveries failed: %s", _first_line(exc))
                for claim in claims:
                    self._in_flight += 1
                    tg.start_soon(self._deliver, client, claim)
                await self._sleep()  # a finished delivery, a new one or the poll interval wakes it

    async def _prune_when_due(self) -> None:
        """Drop settled deliveries older than ``retention`` (in batches, once an interval)."""
        if self.retention is None or time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self.prune_interval
        try:
            pruned = await self.store.prune(finished_before=datetime.now(UTC) - self.retention)
        except Exception as exc:  # retention is housekeeping: never stop deliveries for it
            log.warning("pruning old webhook deliveries failed: %s", _first_line(exc))
            return
        if pruned >= 1000:
            self._next_prune = 0.0  # more to do: continue on the next round

    async def run_once(self) -> int:
        """Claim and deliver one batch of due rows now; the number of attempts made."""
        self._next_release = 0.0
        await self._release_abandoned()
        claims = await self.store.claim(
            self.lease_token(), limit=self.concurrency, lease_seconds=self.lease_seconds
        )
        async with self._client() as client, anyio.create_task_group() as tg:
            for claim in claims:
                self._in_flight += 1
                tg.start_soon(self._deliver, client, claim)
        return len(claims)

    async def send_test(self, org_id: str, endpoint_id: str) -> Delivery:
        """Send one ``webhook.test`` message to the endpoint now (no retries)."""
        claim = await self.store.enqueue_test(org_id, endpoint_id, self.lease_token())
        async with self._client() as client:
            await self._deliver(client, claim, count=False)
        return await self.store.get_delivery(org_id, claim.id)

    async def _deliver(
        self, client: httpx.AsyncClient, claim: Claim, *, count: bool = True
    ) -> None:
        try:
            result = await self.attempt(client, claim)
            if result is None:
                return
            retry_at = None
            if not result.ok and result.disable_reason is None:
                delay = self.schedule.delay_after(claim.round_attempts + 1)
                if delay is not None and result.retry_after is not None:
                    delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER))
                if delay is not None:
                    retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            # The receiver has answered: record it even when shutting down, or it is sent twice.
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await self.store.finish_attempt(
                    claim,
                    result,
                    retry_at=retry_at,
                    failure_threshold=self.circuit.failure_threshold,
                    failing_for=self.circuit.failing_for,
                )
            self.attempts_made += 1
        except Exception as exc:  # the lease hands the row to a later attempt
            log.warning("webhook delivery %s: %s", claim.id, _first_line(exc))
        finally:
            if count:
                self._in_flight -= 1
                if self._wake is not None:
                    self._wake.set()

    async def attempt(self, client: httpx.AsyncClient, claim: Claim) -> AttemptResult | None:
        """POST ``claim`` once; ``None`` when its endpoint is gone or was disabled meanwhile."""
        try:
            target = await self.store.target(claim.org_id, claim.endpoint_id)
        except ConfigError as exc:
            return _failed(str(exc), time.monotonic(), datetime.now(UTC))
        if target is None or (not target.enabled and claim.trigger != "test"):
            return None
        at = datetime.now(UTC)
        started = time.monotonic()
        body = claim.body.encode()
        try:
            destination = await resolve(target.url, allow_private=self.allow_private())
        except WritgateError as exc:
            return _failed(str(exc), started, at)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "accept-encoding": "identity",  # the capped read counts bytes on the wire
            "host": destination.host_header,
            **signature_headers(target.keys, claim.id, int(time.time()), body),
        }
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        try:
            with anyio.fail_after(self.timeout + self.connect_timeout):
                async with client.stream(
                    "POST",
                    destination.connect_url,
                    content=body,
                    headers=headers,
                    extensions=extensions,
                ) as response:
                    received = await _read_capped(response, self.max_response_bytes)
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
        except TimeoutError:
            return _failed(f"timed out after {self.timeout + self.connect_timeout:g}s", started, at)
        except httpx.TimeoutException as exc:
            return _failed(f"timed out ({type(exc).__name__})", started, at)
        except httpx.HTTPError as exc:
            return _failed(f"{type(exc).__name__}: {_first_line(exc)}", started, at)
        except Exception as exc:  # e.g. httpx.InvalidURL, ssl errors: a failed attempt, logged
            log.warning("webhook delivery %s failed unexpectedly: %r", claim.id, exc)
            return _failed(f"{type(exc).__name__}: {_first_line(exc)}", started, at)
        # PostgreSQL text cannot hold NUL: an odd response must not make the attempt unloggable.
        text = received[: self.logged_response_bytes].decode("utf-8", "replace")
        text = text.replace("\x00", "\ufffd")
        if len(received) > self.logged_response_bytes:
            text += "…"
        ok = 200 <= status < 300
        return AttemptResult(
            ok=ok,
            status_code=status,
            error=None if ok else f"HTTP {status}",
            latency_ms=(time.monotonic() - started) * 1000,
            response_body=text,
            at=at,
            disable_reason="the receiver answered 410 Gone" if status == 410 else None,
            retry_after=_retry_after(retry_after) if status in (429, 503) else None,
        )


_TOKEN_CHARS = 64  # webhook_deliveries.lease_token


def _holder_is_dead(token: str) -> bool:
    """Whether the process that claimed with ``token`` (``host:pid:random:claim``) is gone."""
    owner, _, _claim = token.rpartition(":")
    return owner_is_dead(owner)  # False for tokens that name no process (older ones)


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    received = bytearray()
    async for chunk in response.aiter_raw():
        received.extend(chunk[: limit - len(received)])
        if len(received) >= limit:
            break  # the rest is not read; the connection is closed, not reused
    return bytes(received)


def _failed(error: str, started: float, at: datetime) -> AttemptResult:
    return AttemptResult(
        ok=False,
        status_code=None,
        error=error,
        latency_ms=(time.monotonic() - started) * 1000,
        response_body=None,
        at=at,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
