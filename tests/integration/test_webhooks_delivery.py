"""Webhook outbox and deliveries on SQLite and PostgreSQL, to a real receiver on 127.0.0.1.

Every delivery the receiver accepts is checked with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support.webhook_receiver import Received, webhook_receiver
from writgate import db
from writgate.app.database import Database
from writgate.errors import ConflictError, NotFoundError
from writgate.ledger import Ledger
from writgate.webhooks import (
    AttemptResult,
    CircuitPolicy,
    Deliverer,
    RetrySchedule,
    SecretBox,
    WebhookStore,
    attach,
)
from writgate.webhooks.tables import webhook_deliveries, webhook_endpoints

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(database: Database, tmp_path: Any) -> WebhookStore:
    store = attach(database.ledger, home=tmp_path / "home")
    store.subscription_cache_seconds = 0.05  # keep the cache on, but keep tests quick
    return store


def fast_deliverer(store: WebhookStore, *, retries: int = 20, **options: Any) -> Deliverer:
    options.setdefault("poll_interval", 0.05)
    options.setdefault("timeout", 2.0)
    options.setdefault("connect_timeout", 1.0)
    options.setdefault("lease_seconds", 10.0)
    return Deliverer(
        store=store,
        schedule=RetrySchedule(delays=(0.05,) * retries, jitter=0.0),
        allow_private=lambda: True,
        **options,
    )


@asynccontextmanager
async def serving(*deliverers: Deliverer) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        for deliverer in deliverers:
            await tg.start(deliverer.serve)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()


async def until(condition: Callable[[], Any], *, timeout: float = 20.0) -> Any:
    """Poll an (async or sync) condition without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if hasattr(value, "__await__"):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout}s")
        await anyio.sleep(0.02)


async def emit(database: Database, org: str, subject: str, type: str, **data: Any) -> None:
    async with database.ledger.transaction() as conn:
        await database.ledger.append(conn, org_id=org, subject_id=subject, type=type, data=data)


def accepted(requests: list[Received]) -> list[Received]:
    return [r for r in requests if 200 <= r.status < 300]


def verify(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_outbox_rows_follow_the_event_transaction(
    database: Database, store: WebhookStore
) -> None:
    runs, _ = await store.create("acme", url="http://127.0.0.1:9/a", event_types=["run.*"])
    gates, _ = await store.create("acme", url="http://127.0.0.1:9/b", event_types=["gate.decided"])
    every, _ = await store.create("acme", url="http://127.0.0.1:9/c", event_types=["*"])
    other, _ = await store.create("other", url="http://127.0.0.1:9/d", event_types=["*"])
    off, _ = await store.create("acme", url="http://127.0.0.1:9/e", event_types=["*"])
    await store.update("acme", off.id, enabled=False)

    await emit(database, "acme", "run_1", "run.queued", runId="run_1", tags=["ci"])
    await emit(database, "acme", "rev_1", "gate.decided", decision="allow")
    await emit(database, "acme", "run_1", "turn.started")
    with pytest.raises(RuntimeError):
        async with database.ledger.transaction() as conn:
            await database.ledger.append(conn, org_id="acme", subject_id="run_2", type="run.queued")
            raise RuntimeError("the state change failed")

    async def types(endpoint_id: str, org: str = "acme") -> list[str]:
        items, _ = await store.list_deliveries(org, endpoint_id)
        return sorted(d.event_type for d in items)

    assert await types(runs.id) == ["run.queued"]  # turn.* is not run.*
    assert await types(gates.id) == ["gate.decided"]
    assert await types(every.id) == ["gate.decided", "run.queued", "turn.started"]
    assert await types(off.id) == []
    assert await types(other.id, "other") == []
    with pytest.raises(NotFoundError):
        await store.list_deliveries("other", runs.id)
    items, _ = await store.list_deliveries("acme", runs.id)
    body = json.loads(items[0].body)
    assert body["type"] == "run.queued"
    assert body["data"] == {"subjectId": "run_1", "seq": 1, "runId": "run_1", "tags": ["ci"]}


async def test_secrets_are_encrypted_at_rest_and_never_listed(
    database: Database, store: WebhookStore
) -> None:
    endpoint, secret = await store.create("acme", url="http://127.0.0.1:9/", event_types=["*"])
    async with db.read(database.engine) as conn:
        row = (await conn.execute(select(webhook_endpoints))).one()
    raw = repr(tuple(row)).encode() + bytes(row.secret)
    assert secret.encode() not in raw and secret.removeprefix("whsec_").encode() not in raw
    assert "secret" not in vars(endpoint)
    target = await store.target("acme", endpoint.id)
    assert target is not None and len(target.keys) == 1


async def test_deliveries_verify_and_carry_the_event(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver() as receiver:
        endpoint, secret = await store.create(
            "acme", url=receiver.url, event_types=["run.*", "gate.decided"]
        )
        async with serving(fast_deliverer(store)):
            await emit(
                database,
                "acme",
                "run_7",
                "run.succeeded",
                runId="run_7",
                lifecycle="succeeded",
                terminal=True,
                tags=["ci", "owner:platform"],
                metadata={"ticket": "SUP-1"},
                title="Fix the flaky test",
            )
            await emit(database, "acme", "rev_1", "gate.decided", decision="deny")
            requests = await until(
                lambda: len(accepted(receiver.snapshot())) >= 2 and receiver.snapshot()
            )

            async def settled() -> bool:
                items, _ = await store.list_deliveries("acme", endpoint.id, status="succeeded")
                return len(items) == 2

            await until(settled)
    payloads = {p["type"]: p for p in (verify(secret, r) for r in requests)}
    run = payloads["run.succeeded"]["data"]
    assert run["runId"] == "run_7" and run["lifecycle"] == "succeeded" and run["terminal"]
    assert run["tags"] == ["ci", "owner:platform"] and run["metadata"] == {"ticket": "SUP-1"}
    assert payloads["gate.decided"]["data"]["decision"] == "deny"
    first = requests[0]
    assert first.headers["content-type"] == "application/json"
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.path == "/hooks"
    with pytest.raises(WebhookVerificationError):
        # (either event may come first: tamper with what every payload has)
        Webhook(secret).verify(first.body.replace(b'"type"', b'"typo"'), first.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(first.body, {**first.headers, "webhook-timestamp": "1700000000"})
    items, _ = await store.list_deliveries("acme", endpoint.id)
    assert {d.status for d in items} == {"succeeded"}


async def test_flaky_receiver_gets_every_event_exactly_once(
    database: Database, store: WebhookStore
) -> None:
    rng = random.Random(4)
    state = {"failing_until": time.monotonic() + 1.5}

    def flaky(_request: Received) -> tuple[int, bytes]:
        if time.monotonic() < state["failing_until"] and rng.random() < 0.6:
            return rng.choice([500, 502, 503, 429]), b"temporarily broken"
        return 204, b""

    with webhook_receiver(flaky) as receiver:
        endpoint, secret = await store.create("acme", url=receiver.url, event_types=["run.*"])
        async with serving(fast_deliverer(store, retries=60)):
            for i in range(25):
                await emit(database, "acme", f"run_{i}", "run.queued", runId=f"run_{i}")
            await until(lambda: len(accepted(receiver.snapshot())) >= 25, timeout=30)
            await anyio.sleep(0.3)  # room for a duplicate to show up, were there one
        requests = receiver.snapshot()
    delivered = Counter(r.headers["webhook-id"] for r in accepted(requests))
    assert len(delivered) == 25 and set(delivered.values()) == {1}
    assert sorted(verify(secret, r)["data"]["runId"] for r in accepted(requests)) == sorted(
        f"run_{i}" for i in range(25)
    )
    failed = [r for r in requests if r.status >= 300]
    assert failed, "the receiver never failed: the test proves nothing"
    # A retry carries the same webhook-id as the failed attempt (receivers deduplicate by it).
    assert {r.headers["webhook-id"] for r in failed} <= set(delivered)
    items, _ = await store.list_deliveries("acme", endpoint.id, limit=200)
    assert {d.status for d in items} == {"succeeded"}
    retried = await store.get_delivery("acme", failed[0].headers["webhook-id"])
    log = retried.attempt_log
    assert len(log) == retried.attempts >= 2
    assert [a.number for a in log] == list(range(1, len(log) + 1))
    assert [a.outcome for a in log] == ["failed"] * (len(log) - 1) + ["succeeded"]
    assert log[0].status_code in (500, 502, 503, 429) and log[-1].status_code == 204
    assert log[0].response_body == "temporarily broken" and log[0].error.startswith("HTTP ")
    assert all(a.latency_ms > 0 and a.trigger == "scheduled" for a in log)


async def test_exhausted_delivery_fails_and_manual_redelivery_resends(
    database: Database, store: WebhookStore
) -> None:
    status = {"code": 500}
    with webhook_receiver(lambda _r: (status["code"], b"nope")) as receiver:
        endpoint, secret = await store.create("acme", url=receiver.url, event_types=["run.*"])
        deliverer = fast_deliverer(store, retries=2)
        async with serving(deliverer):
            await emit(database, "acme", "run_1", "run.failed", runId="run_1")

            async def failed() -> bool:
                items, _ = await store.list_deliveries("acme", endpoint.id, status="failed")
                return bool(items)

            await until(failed)
            items, _ = await store.list_deliveries("acme", endpoint.id)
            delivery = await store.get_delivery("acme", items[0].id)
            assert delivery.status == "failed" and delivery.attempts == 3
            assert delivery.next_attempt_at is None and delivery.last_status_code == 500
            assert len(receiver.snapshot()) == 3

            status["code"] = 200
            again = await store.redeliver("acme", delivery.id)
            assert again.status == "pending"

            async def succeeded() -> bool:
                return (await store.get_delivery("acme", delivery.id)).status == "succeeded"

            await until(succeeded)
        done = await store.get_delivery("acme", delivery.id)
        assert [a.trigger for a in done.attempt_log] == ["scheduled"] * 3 + ["manual"]
        assert done.attempts == 4 and done.finished_at is not None
        last = receiver.snapshot()[-1]
        assert last.headers["webhook-id"] == delivery.id
        assert verify(secret, last)["data"]["runId"] == "run_1"
        with pytest.raises(NotFoundError):
            await store.redeliver("other", delivery.id)


async def test_circuit_disables_a_failing_endpoint_and_says_so(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver(lambda _r: (503, b"down")) as broken, webhook_receiver() as watcher:
        endpoint, _ = await store.create("acme", url=broken.url, event_types=["run.*"])
        _, watcher_secret = await store.create("acme", url=watcher.url, event_types=["webhook.*"])
        circuit = CircuitPolicy(failure_threshold=3, failing_for=timedelta(0))
        async with serving(fast_deliverer(store, circuit=circuit)):
            for i in range(2):
                await emit(database, "acme", f"run_{i}", "run.queued", runId=f"run_{i}")

            async def disabled() -> bool:
                return not (await store.get("acme", endpoint.id)).enabled

            await until(disabled)
            notices = await until(lambda: accepted(watcher.snapshot()))
            count = len(broken.snapshot())
            await anyio.sleep(0.3)
            assert len(broken.snapshot()) == count  # no more attempts once disabled
        state = await store.get("acme", endpoint.id)
        assert state.disabled_reason is not None
        assert "3 consecutive failed deliveries" in state.disabled_reason
        assert "HTTP 503" in state.disabled_reason
        assert state.consecutive_failures >= 3 and state.disabled_at is not None
        events = await database.ledger.read(endpoint.id, org_id="acme")
        assert [e.type for e in events] == ["webhook.endpoint_disabled"]
        notice = verify(watcher_secret, notices[0])
        assert notice["type"] == "webhook.endpoint_disabled"
        assert notice["data"]["endpointId"] == endpoint.id
        assert notice["data"]["reason"] == state.disabled_reason
        pending, _ = await store.list_deliveries("acme", endpoint.id, status="pending")
        assert pending, "undelivered messages stay queued while the endpoint is disabled"
        with pytest.raises(ConflictError, match="disabled"):
            await store.redeliver("acme", pending[0].id)

        # Re-enabling closes the circuit; the queued messages go out.
        broken.respond = lambda _r: (200, b"ok")
        reopened = await store.update("acme", endpoint.id, enabled=True)
        assert reopened.enabled and reopened.consecutive_failures == 0
        assert reopened.disabled_reason is None
        async with serving(fast_deliverer(store, circuit=circuit)):
            await until(lambda: len(accepted(broken.snapshot())) == 2)
        delivered = {r.headers["webhook-id"] for r in accepted(broken.snapshot())}
        assert len(delivered) == 2


async def test_gone_disables_at_once(database: Database, store: WebhookStore) -> None:
    with webhook_receiver(lambda _r: (410, b"gone")) as receiver:
        endpoint, _ = await store.create("acme", url=receiver.url, event_types=["*"])
        async with serving(fast_deliverer(store)):
            await emit(database, "acme", "run_1", "run.queued")

            async def disabled() -> bool:
                return not (await store.get("acme", endpoint.id)).enabled

            await until(disabled)
        state = await store.get("acme", endpoint.id)
        assert state.disabled_reason == "the receiver answered 410 Gone"
        assert len(receiver.snapshot()) == 1
        items, _ = await store.list_deliveries("acme", endpoint.id)
        assert items[0].status == "failed"


async def test_timeouts_and_capped_response_bodies(database: Database, store: WebhookStore) -> None:
    def respond(request: Received) -> tuple[int, bytes, float]:
        if b"slow" in request.body:
            return 200, b"late", 1.5
        return 500, b"x" * 1_000_000, 0.0

    with webhook_receiver(respond) as receiver:
        endpoint, _ = await store.create("acme", url=receiver.url, event_types=["run.*"])
        deliverer = fast_deliverer(store, retries=0, timeout=0.4, connect_timeout=0.4)
        async with serving(deliverer):
            await emit(database, "acme", "run_1", "run.queued", note="slow")
            await emit(database, "acme", "run_2", "run.queued", note="big")

            async def settled() -> list[Any]:
                items, _ = await store.list_deliveries("acme", endpoint.id, status="failed")
                return items if len(items) == 2 else []

            items = await until(settled)
    by_subject = {d.subject_id: await store.get_delivery("acme", d.id) for d in items}
    slow = by_subject["run_1"].attempt_log[0]
    assert slow.status_code is None and slow.error is not None and "timed out" in slow.error
    assert slow.latency_ms < 1400
    big = by_subject["run_2"].attempt_log[0]
    assert big.status_code == 500 and big.response_body is not None
    assert big.response_body == "x" * 2048 + "…"


async def test_rotated_secret_signs_alongside_the_old_one_for_the_grace_period(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver() as receiver:
        endpoint, old = await store.create("acme", url=receiver.url, event_types=["run.*"])
        rotated, new = await store.rotate_secret("acme", endpoint.id, grace_seconds=3600)
        assert new != old and rotated.previous_secret_expires_at is not None
        async with serving(fast_deliverer(store)):
            await emit(database, "acme", "run_1", "run.queued")
            first = (await until(lambda: accepted(receiver.snapshot())))[0]
            verify(old, first)
            verify(new, first)
            _, newest = await store.rotate_secret("acme", endpoint.id, grace_seconds=0)
            await emit(database, "acme", "run_2", "run.queued")
            second = (await until(lambda: accepted(receiver.snapshot())[1:]))[0]
        verify(newest, second)
        for stale in (old, new):
            with pytest.raises(WebhookVerificationError):
                verify(stale, second)


async def test_two_deliverers_share_the_outbox_without_duplicates(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver(lambda _r: (200, b"ok", 0.01)) as receiver:
        await store.create("acme", url=receiver.url, event_types=["*"])
        one = fast_deliverer(store, concurrency=4)
        two = fast_deliverer(store, concurrency=4)
        async with serving(one, two):
            for i in range(60):
                await emit(database, "acme", f"run_{i % 6}", "run.queued", i=i)
            await until(lambda: len(receiver.snapshot()) >= 60, timeout=30)
            await anyio.sleep(0.3)
    ids = Counter(r.headers["webhook-id"] for r in receiver.snapshot())
    assert len(ids) == 60 and set(ids.values()) == {1}
    # How the work splits depends on scheduling (under load one may take it all); what must
    # hold is that together they made exactly one attempt per message.
    assert one.attempts_made + two.attempts_made == 60


async def test_an_expired_lease_hands_the_delivery_over(
    database: Database, store: WebhookStore
) -> None:
    await store.create("acme", url="http://127.0.0.1:9/", event_types=["*"])
    await emit(database, "acme", "run_1", "run.queued")
    first = await store.claim("a", limit=10, lease_seconds=0.3)
    assert len(first) == 1
    assert await store.claim("b", limit=10, lease_seconds=0.3) == []  # held by "a"
    await anyio.sleep(0.4)
    second = await store.claim("b", limit=10, lease_seconds=30)
    assert [c.id for c in second] == [first[0].id]
    ok = AttemptResult(
        ok=True, status_code=200, error=None, latency_ms=1.0, response_body="", at=datetime.now(UTC)
    )
    policy = {"failure_threshold": 10, "failing_for": timedelta(hours=1)}
    assert not await store.finish_attempt(first[0], ok, retry_at=None, **policy)
    delivery = await store.get_delivery("acme", first[0].id)
    assert delivery.status == "pending"  # the stale claim did not settle it
    assert await store.finish_attempt(second[0], ok, retry_at=None, **policy)
    delivery = await store.get_delivery("acme", first[0].id)
    assert delivery.status == "succeeded" and len(delivery.attempt_log) == 2
    assert [a.number for a in delivery.attempt_log] == [1, 2] and delivery.attempts == 2


async def test_a_dead_deliverers_claims_are_taken_over_at_once(
    database: Database, store: WebhookStore
) -> None:
    # A deliverer killed mid-work (SIGKILL, OOM) holds its rows until their lease ends; another
    # deliverer on the same host sees that its process is gone and sends them now.
    async with await anyio.open_process(["true"]) as gone:
        await gone.wait()  # reaped: its pid names no process
    alive = await anyio.open_process(["sleep", "60"])
    try:
        with webhook_receiver() as receiver:
            await store.create("acme", url=receiver.url, event_types=["*"])
            await emit(database, "acme", "run_1", "run.queued")
            await emit(database, "acme", "run_2", "run.queued")
            host = socket.gethostname()
            dead = fast_deliverer(store)
            dead.owner = f"{host}:{gone.pid}:abcdef"
            [abandoned] = await store.claim(dead.lease_token(), limit=1, lease_seconds=3600)
            busy = fast_deliverer(store)
            busy.owner = f"{host}:{alive.pid}:abcdef"
            [held] = await store.claim(busy.lease_token(), limit=1, lease_seconds=3600)
            assert await fast_deliverer(store).run_once() == 1
            received = receiver.snapshot()
    finally:
        alive.kill()
        await alive.wait()
        await alive.aclose()
    assert [r.headers["webhook-id"] for r in received] == [abandoned.id]
    assert (await store.get_delivery("acme", abandoned.id)).status == "succeeded"
    assert (await store.get_delivery("acme", held.id)).status == "pending"  # its holder lives


async def test_test_delivery_and_deleting_an_endpoint(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver() as receiver:
        endpoint, secret = await store.create("acme", url=receiver.url, event_types=["run.*"])
        deliverer = fast_deliverer(store)
        delivery = await deliverer.send_test("acme", endpoint.id)
        assert delivery.status == "succeeded" and delivery.event_type == "webhook.test"
        assert [a.trigger for a in delivery.attempt_log] == ["test"]
        payload = verify(secret, receiver.snapshot()[0])
        assert payload["type"] == "webhook.test" and payload["data"]["endpointId"] == endpoint.id
        with pytest.raises(ConflictError):
            await store.redeliver("acme", delivery.id)
        with pytest.raises(NotFoundError):
            await deliverer.send_test("other", endpoint.id)
    await emit(database, "acme", "run_1", "run.queued")
    await store.delete("acme", endpoint.id)
    with pytest.raises(NotFoundError):
        await store.get("acme", endpoint.id)
    with pytest.raises(NotFoundError):
        await store.get_delivery("acme", delivery.id)
    assert await store.claim("x", limit=10, lease_seconds=5) == []


async def test_a_refused_destination_is_a_failed_attempt(
    database: Database, store: WebhookStore
) -> None:
    endpoint, _ = await store.create("acme", url="http://127.0.0.1:9/", event_types=["*"])
    deliverer = Deliverer(
        store=store, schedule=RetrySchedule(delays=(60,)), allow_private=lambda: False
    )
    await emit(database, "acme", "run_1", "run.queued")
    assert await deliverer.run_once() == 1
    items, _ = await store.list_deliveries("acme", endpoint.id)
    delivery = await store.get_delivery("acme", items[0].id)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error is not None and "loopback" in delivery.last_error


async def test_retry_after_stretches_the_next_attempt(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver(lambda _r: (429, b"slow down", 0.0, {"Retry-After": "3"})) as receiver:
        endpoint, _ = await store.create("acme", url=receiver.url, event_types=["*"])
        await emit(database, "acme", "run_1", "run.queued")
        assert await fast_deliverer(store).run_once() == 1
    items, _ = await store.list_deliveries("acme", endpoint.id)
    delivery = await store.get_delivery("acme", items[0].id)
    assert delivery.status == "pending" and delivery.next_attempt_at is not None
    waited = (delivery.next_attempt_at - delivery.attempt_log[0].at).total_seconds()
    assert 2.9 <= waited <= 4.0  # Retry-After: 3 beats the 50 ms schedule


async def test_settled_deliveries_are_pruned_after_the_retention(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver() as receiver:
        endpoint, _ = await store.create("acme", url=receiver.url, event_types=["*"])
        await emit(database, "acme", "run_1", "run.queued")
        await emit(database, "acme", "run_2", "run.queued")
        assert await fast_deliverer(store).run_once() == 2
    await store.create("acme", url="http://127.0.0.1:9/", event_types=["*"])
    await emit(database, "acme", "run_3", "run.queued")  # pending for the second endpoint
    assert await store.prune(finished_before=datetime.now(UTC) - timedelta(hours=1)) == 0
    assert await store.prune(finished_before=datetime.now(UTC) + timedelta(seconds=1)) == 2
    # An orphan (its endpoint deleted while a stale cache still enqueued for it) goes too.
    async with database.ledger.transaction() as conn:
        await conn.execute(
            webhook_deliveries.insert().values(
                id="msg_orphan",
                org_id="acme",
                endpoint_id="whk_gone",
                event_type="run.queued",
                body="{}",
                status="pending",
                attempts=0,
                round_attempts=0,
                next_attempt_at=datetime.now(UTC),
                created_at=datetime.now(UTC) - timedelta(minutes=5),
            )
        )
    assert await store.prune(finished_before=datetime.now(UTC)) == 1
    items, _ = await store.list_deliveries("acme", endpoint.id)
    assert [d.subject_id for d in items] == ["run_3"] and items[0].status == "pending"


async def test_a_subscription_change_reaches_other_processes_before_it_returns(
    database: Database, store: WebhookStore, tmp_path: Any
) -> None:
    # A second ledger with its own webhook store stands for another process on the database.
    other_ledger = Ledger(engine=database.engine)
    other = WebhookStore(
        engine=database.engine,
        ledger=other_ledger,
        box=SecretBox.from_env(tmp_path / "home"),
        subscription_cache_seconds=0.5,
    )
    other.install()

    async def emit_elsewhere(subject: str) -> None:
        async with other_ledger.transaction() as conn:
            await other_ledger.append(conn, org_id="acme", subject_id=subject, type="run.queued")

    await emit_elsewhere("run_0")  # the other process now caches "no endpoints" for acme
    store.subscription_cache_seconds = 0.5  # the same cache time everywhere, as configured
    endpoint, _ = await store.create("acme", url="http://127.0.0.1:9/", event_types=["run.*"])
    await emit_elsewhere("run_1")  # right after create returned
    items, _ = await store.list_deliveries("acme", endpoint.id)
    assert [d.subject_id for d in items] == ["run_1"]

    # Control: a change that does not wait is missed by the other process's cache.
    await emit_elsewhere("run_2")  # refreshes the other cache: one endpoint
    store.subscription_cache_seconds = 0
    second, _ = await store.create("acme", url="http://127.0.0.1:9/b", event_types=["run.*"])
    await emit_elsewhere("run_3")
    missed, _ = await store.list_deliveries("acme", second.id)
    assert missed == []
    await anyio.sleep(0.6)
    await emit_elsewhere("run_4")
    seen, _ = await store.list_deliveries("acme", second.id)
    assert [d.subject_id for d in seen] == ["run_4"]

    # Deleting waits too; rows a stale cache enqueued meanwhile are pruned as orphans.
    store.subscription_cache_seconds = 0.5
    await store.delete("acme", endpoint.id)
    await emit_elsewhere("run_5")
    async with db.read(database.engine) as conn:
        rows = (
            await conn.execute(
                select(webhook_deliveries.c.id).where(
                    webhook_deliveries.c.endpoint_id == endpoint.id
                )
            )
        ).all()
    assert rows == []


async def test_a_binary_response_is_logged_readably(
    database: Database, store: WebhookStore
) -> None:
    with webhook_receiver(lambda _r: (500, b"a\x00b\xff")) as receiver:
        endpoint, _ = await store.create("acme", url=receiver.url, event_types=["*"])
        await emit(database, "acme", "run_1", "run.queued")
        assert await fast_deliverer(store).run_once() == 1
    items, _ = await store.list_deliveries("acme", endpoint.id)
    delivery = await store.get_delivery("acme", items[0].id)
    assert delivery.attempts == 1
    assert delivery.attempt_log[0].response_body == "a\ufffdb\ufffd"
