"""``writgate worker``: claim and run pipeline stages until stopped (SIGINT/SIGTERM)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio

from forge.webhooks import TriggerStore
from pipelines import WorkerConflict
from pipelines.durations import parse_duration
from pipelines.worker import sqlite_worker_lock
from writgate.app.database import Database
from writgate.app.services import trigger_dispatcher
from writgate.errors import InputError
from writgate.redact import install_log_redaction
from writgate.settings import Settings
from writgate.webhooks import deliverer_for

from ._common import run_async, with_database
from ._pipelines import pipeline_service, worker_options

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "worker",
        help="run pipeline stages from the database until stopped",
        description="Claims runnable stages (FOR UPDATE SKIP LOCKED on PostgreSQL), holds them "
        "with heartbeated leases and takes over the stages of workers that died. Several "
        "workers may share a PostgreSQL database; SQLite supports one.",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="stages run at once (8)")
    parser.add_argument("--lease", help="lease duration (default 30s, WRITGATE_PIPELINE_LEASE)")
    parser.add_argument("--poll", help="polling interval (default 1s, WRITGATE_PIPELINE_POLL)")
    parser.add_argument(
        "--all-orgs", action="store_true", help="serve every org, not only WRITGATE_ORG"
    )
    parser.add_argument(
        "--no-webhooks",
        action="store_true",
        help="do not deliver webhooks from this worker (by default it also sends them)",
    )
    parser.add_argument(
        "--no-triggers",
        action="store_true",
        help="do not start pipelines for stored forge triggers from this worker (by default it "
        "starts those of the pipeline directory, like the server)",
    )
    parser.set_defaults(handler=_worker)


def _duration(flag: str, value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InputError(str(exc), field=flag) from None


def _worker(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise InputError("must be at least 1", field="--concurrency")
    options = worker_options()
    options["lease_seconds"] = _duration("--lease", args.lease, options["lease_seconds"])
    options["poll_interval"] = _duration("--poll", args.poll, options["poll_interval"])
    settings = Settings.from_env()
    install_log_redaction()  # no secret in what the worker logs

    async def go(database: Database, settings: Settings) -> int:
        async with pipeline_service(database, settings) as service:
            worker = service.worker(
                concurrency=args.concurrency,
                org_id=None if args.all_orgs else settings.org,
                **options,
            )

            async def stop_on_signal(signals: AsyncIterator[int]) -> None:
                async for _ in signals:
                    print("stopping: handing back running stages", file=sys.stderr)
                    worker.stop()
                    return

            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                print(f"worker {worker.worker_id} started", file=sys.stderr, flush=True)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(stop_on_signal, signals)
                    if not args.no_webhooks:
                        # Webhook deliveries (writgate.webhooks) go out from workers too.
                        await tg.start(deliverer_for(database.ledger, home=settings.home).serve)
                    if not args.no_triggers:
                        # So do forge triggers a server stored but could not dispatch.
                        triggers = TriggerStore(engine=database.engine)
                        await tg.start(trigger_dispatcher(triggers, service, settings).serve)
                    await worker.run()
                    tg.cancel_scope.cancel()
            print(f"worker stopped after {worker.stages_run} stage(s)", file=sys.stderr)
            return 0

    try:
        with sqlite_worker_lock(settings.database_url):
            code: int = run_async(lambda: with_database(go))
    except WorkerConflict as exc:
        print(f"writgate: error: {exc}", file=sys.stderr)
        return 2
    return code
