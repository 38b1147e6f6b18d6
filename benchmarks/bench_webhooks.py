"""Webhooks: what the outbox adds to every ledger event, and how fast deliveries go out.

- append + commit of one ledger event on the embedded default (SQLite): with the webhook append
  hook and no endpoint in the org (peer: the same ledger without the hook), and with one
  subscribed endpoint (the hook inserts an outbox row in the event's transaction);
- delivery throughput: 300 queued events to one endpoint, a real receiver on 127.0.0.1, one
  deliverer (concurrency 8), from its start to the last delivery settled, per message.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [p for p in (str(REPO),) if p not in sys.path]

from tests.support.webhook_receiver import webhook_receiver  # noqa: E402
from writgate import db  # noqa: E402
from writgate.app.database import open_database  # noqa: E402
from writgate.ledger import Ledger  # noqa: E402
from writgate.settings import Settings  # noqa: E402
from writgate.webhooks import Deliverer, RetrySchedule, attach  # noqa: E402
from writgate.webhooks.tables import webhook_deliveries  # noqa: E402

APPENDS = 300
SAMPLES = 3
DELIVERIES = 300


async def _append_ms(ledger: Ledger, org: str, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        async with ledger.transaction() as conn:
            await ledger.append(conn, org_id=org, subject_id=f"run_{i % 50}", type="run.running")
    return (time.perf_counter() - started) * 1000 / count


async def _appends(home: Path) -> tuple[list[float], list[float], list[float]]:
    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'bench.db'}")
    database = await open_database(settings)
    try:
        store = attach(database.ledger, home=home)
        await store.create("subscribed", url="http://127.0.0.1:9/", event_types=["run.*"])
        bare = Ledger(engine=database.engine)  # the same database, no hook
        hooked: list[float] = []
        plain: list[float] = []
        with_row: list[float] = []
        cases = [(bare, "quiet", plain), (database.ledger, "quiet", hooked)]
        cases.append((database.ledger, "subscribed", with_row))
        # Small interleaved blocks: the database grows as it goes, every case must see that.
        for block in range(SAMPLES * 10):
            order = cases if block % 2 else cases[::-1]
            for ledger, org, into in order:
                into.append(await _append_ms(ledger, org, APPENDS // 10))
        hooked, plain, with_row = (
            [statistics.median(v[i : i + 10]) for i in range(0, len(v), 10)]
            for v in (hooked, plain, with_row)
        )
        return hooked, plain, with_row
    finally:
        await database.dispose()


async def _deliveries(home: Path) -> list[float]:
    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'deliver.db'}")
    database = await open_database(settings)
    samples = []
    try:
        store = attach(database.ledger, home=home)
        with webhook_receiver() as receiver:
            endpoint, _ = await store.create("acme", url=receiver.url, event_types=["*"])
            deliverer = Deliverer(
                store=store,
                schedule=RetrySchedule(delays=(0.1,)),
                allow_private=lambda: True,
                poll_interval=0.05,
            )
            for _ in range(3):
                for i in range(DELIVERIES):  # queued first: the figure is the deliverer's alone
                    async with database.ledger.transaction() as conn:
                        await database.ledger.append(
                            conn, org_id="acme", subject_id=f"run_{i}", type="run.queued"
                        )
                async with anyio.create_task_group() as tg:
                    started = time.perf_counter()
                    await tg.start(deliverer.serve)
                    while True:
                        async with db.read(database.engine) as conn:
                            pending = (
                                await conn.execute(
                                    webhook_deliveries.select().where(
                                        webhook_deliveries.c.status == "pending"
                                    )
                                )
                            ).first()
                        if pending is None:
                            break
                        await anyio.sleep(0.01)
                    samples.append((time.perf_counter() - started) * 1000 / DELIVERIES)
                    tg.cancel_scope.cancel()
                assert len(receiver.snapshot()) % DELIVERIES == 0
            del endpoint
    finally:
        await database.dispose()
    return samples


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        hooked, plain, with_row = anyio.run(_appends, Path(tmp) / "a")
        delivery = anyio.run(_deliveries, Path(tmp) / "b")
    return [
        {
            "figure": "ledger append + commit, SQLite, webhook hook, org without endpoints",
            "unit": "ms",
            "samples": hooked,
            "target": None,
            "peer": {"name": "the same ledger without the webhook hook", "samples": plain},
        },
        {
            "figure": "ledger append + commit, SQLite, one subscribed endpoint (outbox row)",
            "unit": "ms",
            "samples": with_row,
            "target": None,
            "peer": {"name": "the same ledger without the webhook hook", "samples": plain},
        },
        {
            "figure": f"webhook delivery, {DELIVERIES} events to a loopback receiver, per message",
            "unit": "ms",
            "samples": delivery,
            "target": None,
            "peer": None,
        },
    ]


if __name__ == "__main__":
    for figure in run():
        median = statistics.median(figure["samples"])
        line = f"{figure['figure']}: median {median:.3f} {figure['unit']}"
        if figure["peer"]:
            peer = statistics.median(figure["peer"]["samples"])
            line += f" (peer, {figure['peer']['name']}: {peer:.3f})"
        print(line)
