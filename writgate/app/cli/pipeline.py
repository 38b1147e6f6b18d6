"""``writgate pipeline status|list|cancel|schema``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipelines import json_schema
from pipelines.records import PipelineRun
from writgate.app.database import Database
from writgate.settings import Settings

from ._common import print_json, run_async, with_database
from ._pipelines import describe_event, pipeline_service, print_run

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
    listing = actions.add_parser("list", help="pipeline runs, newest first")
    listing.add_argument("--status", action="append", default=[])
    listing.add_argument("--name")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)
    cancel = actions.add_parser("cancel", help="cancel a pipeline run")
    cancel.add_argument("run_id")
    cancel.add_argument("--reason", default="cancelled from the command line")
    cancel.set_defaults(handler=_cancel)
    schema = actions.add_parser("schema", help="print the JSON Schema of pipeline files")
    schema.set_defaults(handler=_schema)


def _status(args: argparse.Namespace) -> int:
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


def _list(args: argparse.Namespace) -> int:
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
