"""``writgate pipeline status|list|cancel|schema``.

``status`` and ``list`` read the local database, or with ``--server URL`` (or
``$WRITGATE_SERVER``; key in ``$WRITGATE_API_KEY``) a server through the HTTP client."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipelines import json_schema
from pipelines.records import PipelineRun
from writgate.app.database import Database
from writgate.settings import Settings

from ._common import print_json, run_async, with_database
from ._pipelines import STATUS_MARKS, describe_event, pipeline_service, print_run

if TYPE_CHECKING:
    from pipelines.api import PipelineRunOut

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser("pipeline", help="pipeline runs and the pipeline file schema")
    actions = parser.add_subparsers(dest="pipeline_command", metavar="ACTION")
    actions.required = True
    status = actions.add_parser("status", help="a pipeline run and its stages")
    status.add_argument("run_id")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--watch", action="store_true", help="follow the run's events until it finishes"
    )
    status.set_defaults(handler=_status)
    _add_server(status)
    listing = actions.add_parser("list", help="pipeline runs, newest first")
    listing.add_argument("--status", action="append", default=[])
    listing.add_argument("--name")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    _add_server(listing)
    cancel = actions.add_parser("cancel", help="cancel a pipeline run")
    cancel.add_argument("run_id")
    cancel.add_argument("--reason", default="cancelled from the command line")
    cancel.set_defaults(handler=_cancel)
    schema = actions.add_parser("schema", help="print the JSON Schema of pipeline files")
    schema.set_defaults(handler=_schema)


def _add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("WRITGATE_SERVER") or None,
        help="read from this writgate server (default $WRITGATE_SERVER; key in "
        "$WRITGATE_API_KEY) instead of the local database",
    )


def _print_remote(run: PipelineRunOut) -> None:
    print(f"{run.id}  {run.name}  {run.status}")
    if run.error:
        print(f"  error: {run.error}")
    if run.cancel_reason:
        print(f"  cancelled: {run.cancel_reason}")
    for stage in run.stages:
        mark = STATUS_MARKS.get(stage.status, "?")
        line = f"  {mark} {stage.stage:<16} {stage.kind:<9} {stage.status:<10}"
        if stage.attempt > 1:
            line += f" attempt {stage.attempt}"
        if stage.error and stage.status in ("failed", "queued", "cancelled"):
            line += f"  {stage.error.splitlines()[0][:120]}"
        print(line)


def _status_remote(args: argparse.Namespace) -> int:
    from writgate.client import Client
    from writgate.ledger import Event

    with Client(args.server) as client:
        run = client.get_pipeline_run(args.run_id)
        if args.watch and run.finished_at is None:
            for event in client.follow_pipeline_run(run.id):
                line = describe_event(
                    Event(event.subject_id, event.seq, event.type,
                          datetime.fromisoformat(event.at), event.data)
                )  # fmt: skip
                if line and not args.json:
                    print(line, flush=True)
            run = client.get_pipeline_run(args.run_id)
    if args.json:
        print_json(run.model_dump(mode="json", by_alias=True))
    else:
        _print_remote(run)
    if run.finished_at is None:
        return 0
    return 0 if run.status == "succeeded" else 1


def _status(args: argparse.Namespace) -> int:
    if args.server:
        return _status_remote(args)

    async def go(database: Database, settings: Settings) -> PipelineRun:
        async with pipeline_service(database, settings, with_services=False) as service:
            run = await service.get(settings.org, args.run_id)
            if args.watch and not run.finished:
                async for event in database.ledger.follow(run.id, org_id=settings.org):
                    line = describe_event(event)
                    if line and not args.json:
                        print(line, flush=True)
                    if event.type == "pipeline.finished":
                        break
                run = await service.get(settings.org, args.run_id)
            return run

    run = run_async(lambda: with_database(go))
    if args.json:
        print_json(run.to_json())
    else:
        print_run(run)
    if not run.finished:
        return 0
    return 0 if run.status == "succeeded" else 1


def _list_remote(args: argparse.Namespace) -> int:
    from writgate.client import Client

    with Client(args.server) as client:
        page = client.list_pipeline_runs(status=args.status, name=args.name, limit=args.limit)
    if args.json:
        print_json(page.model_dump(mode="json", by_alias=True))
        return 0
    if not page.items:
        print("no pipeline runs")
        return 0
    print(f"{'ID':<31} {'NAME':<20} {'STATUS':<10} CREATED")
    for run in page.items:
        created = (run.created_at or "")[:19].replace("T", " ")
        print(f"{run.id:<31} {run.name[:20]:<20} {run.status:<10} {created}")
    return 0


def _list(args: argparse.Namespace) -> int:
    if args.server:
        return _list_remote(args)

    async def go(database: Database, settings: Settings) -> list[PipelineRun]:
        async with pipeline_service(database, settings, with_services=False) as service:
            return await service.list_runs(
                settings.org, status=args.status or None, name=args.name, limit=args.limit
            )

    runs = run_async(lambda: with_database(go))
    if args.json:
        print_json({"items": [run.to_json() for run in runs]})
        return 0
    if not runs:
        print("no pipeline runs")
        return 0
    print(f"{'ID':<31} {'NAME':<20} {'STATUS':<10} CREATED")
    for run in runs:
        print(
            f"{run.id:<31} {run.name[:20]:<20} {run.status:<10} {run.created_at:%Y-%m-%d %H:%M:%S}"
        )
    return 0


def _cancel(args: argparse.Namespace) -> int:
    async def go(database: Database, settings: Settings) -> PipelineRun:
        async with pipeline_service(database, settings, with_services=False) as service:
            return await service.cancel(settings.org, args.run_id, reason=args.reason)

    run = run_async(lambda: with_database(go))
    print_run(run)
    return 0


def _schema(args: argparse.Namespace) -> int:
    del args
    print(json.dumps(json_schema(), indent=2))
    return 0
