"""``writgate runs list|show|follow``: coding-agent runs from the local database, or with
``--server URL`` (or ``$WRITGATE_SERVER``; key in ``$WRITGATE_API_KEY``) through the HTTP client."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from writer.lifecycle import TERMINAL
from writer.models import Run
from writer.store import RunFilters, RunRecord, RunStore
from writgate.app.database import Database
from writgate.client import Client
from writgate.errors import InputError
from writgate.settings import Settings

from ._common import print_json, run_async, with_database

__all__ = ["register"]

SETTLED = {state.value for state in TERMINAL} | {"awaiting_follow_up"}


def register(commands: Any) -> None:
    parser = commands.add_parser("runs", help="coding-agent runs")
    actions = parser.add_subparsers(dest="runs_command", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="list runs, newest first")
    listing.add_argument("--tag", action="append", default=[], help="repeatable; all must match")
    listing.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE")
    listing.add_argument("--lifecycle", action="append", default=[])
    listing.add_argument("--repository")
    listing.add_argument("--intent")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    _add_server(listing)
    show = actions.add_parser("show", help="one run")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)
    _add_server(show)
    follow = actions.add_parser("follow", help="stream a run's events until it settles")
    follow.add_argument("run_id")
    follow.add_argument("--json", action="store_true", help="one JSON event per line")
    follow.set_defaults(handler=_follow)
    _add_server(follow)


def _add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="URL",
        default=os.environ.get("WRITGATE_SERVER") or None,
        help="read from this writgate server (default $WRITGATE_SERVER) instead of the local "
        "database; the API key comes from $WRITGATE_API_KEY",
    )


def _client(args: argparse.Namespace) -> Client:
    return Client(args.server)


def _age(record: RunRecord | Run) -> str:
    seconds = int((datetime.now(UTC) - record.created_at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _list(args: argparse.Namespace) -> int:
    metadata = {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"--metadata {item!r}: expected KEY=VALUE")
        metadata[key] = value
    if args.server:
        return _list_remote(args, metadata)
    filters = RunFilters(
        tags=[t.lower() for t in args.tag],
        metadata=metadata,
        lifecycle=args.lifecycle,
        repository=args.repository,
        intent=args.intent,
    )

    async def go(database: Database, settings: Settings) -> list[RunRecord]:
        store = RunStore(engine=database.engine, ledger=database.ledger)
        records, _ = await store.list_runs(settings.org, filters, limit=args.limit)
        return records

    records = run_async(lambda: with_database(go))
    if args.json:
        print_json(
            {"items": [r.to_model().model_dump(mode="json", by_alias=True) for r in records]}
        )
        return 0
    if not records:
        print("no runs")
        return 0
    print(f"{'ID':<30} {'LIFECYCLE':<19} {'INTENT':<11} {'AGE':>5}  TITLE")
    for record in records:
        print(
            f"{record.id:<30} {record.lifecycle.value:<19} "
            f"{record.intent.get('label', ''):<11} {_age(record):>5}  {record.title[:60]}"
        )
    return 0


def _list_remote(args: argparse.Namespace, metadata: dict[str, str]) -> int:
    with _client(args) as client:
        page = client.list_runs(
            tags=args.tag,
            metadata=metadata,
            lifecycle=args.lifecycle,
            repository=args.repository,
            intent=args.intent,
            limit=args.limit,
        )
    if args.json:
        print_json(page.model_dump(mode="json", by_alias=True))
        return 0
    if not page.items:
        print("no runs")
        return 0
    print(f"{'ID':<30} {'LIFECYCLE':<19} {'INTENT':<11} {'AGE':>5}  TITLE")
    for run in page.items:
        print(
            f"{run.id:<30} {run.lifecycle.value:<19} "
            f"{run.intent.label:<11} {_age(run):>5}  {run.title[:60]}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    async def go(database: Database, settings: Settings) -> RunRecord:
        store = RunStore(engine=database.engine, ledger=database.ledger)
        return await store.get(settings.org, args.run_id)

    if args.server:
        with _client(args) as client:
            model = client.get_run(args.run_id)
    else:
        model = run_async(lambda: with_database(go)).to_model()
    run = model.model_dump(mode="json", by_alias=True)
    if args.json:
        print_json(run)
        return 0
    print(f"{run['id']}  {run['title']}")
    print(f"  lifecycle    {run['lifecycle']} (next: {', '.join(run['nextActions']) or '-'})")
    if run["failure"]:
        print(f"  failure      {run['failure']['code']}: {run['failure']['message']}")
    print(f"  repository   {run['repository']}")
    print(f"  intent       {run['intent']['label']} {run['intent']['matched']}")
    print(f"  tags         {', '.join(run['tags']) or '-'}")
    print(f"  metadata     {json.dumps(run['metadata'])}")
    print(f"  usage        turns {run['usage']['turns']}, credits {run['usage']['credits']}")
    result = run["result"]
    if result.get("branch"):
        print(f"  branch       {result['branch']} @ {str(result.get('headSha'))[:12]}")
    if result.get("pullRequest"):
        pr = result["pullRequest"]
        print(f"  pull request #{pr['number']}{' (draft)' if pr['draft'] else ''} {pr['url']}")
    if result.get("validation"):
        print(f"  validation   {result['validation']['result']}")
    return 0


def _print_event(args: argparse.Namespace, event: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(event), flush=True)
        return
    data = event.get("data") or {}
    text = data.get("text") if event["type"] == "agent.message" else ""
    at = datetime.fromisoformat(str(event["at"]))
    print(f"{event['seq']:>5} {at:%H:%M:%S} {event['type']:<22} {text or ''}", flush=True)
    if event["type"].startswith("run."):
        sys.stderr.write(f"      [{data.get('lifecycle', '?')}]\n")


def _follow_remote(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.get_run_status(args.run_id)  # a missing run is one clear error, not a stream
        for event in client.follow(args.run_id):
            _print_event(args, event.model_dump(mode="json", by_alias=True))
            if event.type.startswith("run.") and event.data.get("lifecycle") in SETTLED:
                status = client.get_run_status(args.run_id)
                if status.terminal or status.awaiting_follow_up:
                    break
        status = client.get_run_status(args.run_id)
    return 1 if status.lifecycle.value == "failed" else 0


def _follow(args: argparse.Namespace) -> int:
    if args.server:
        return _follow_remote(args)

    async def go(database: Database, settings: Settings) -> int:
        store = RunStore(engine=database.engine, ledger=database.ledger)
        record = await store.get(settings.org, args.run_id)
        async for event in database.ledger.follow(args.run_id, org_id=settings.org):
            if args.json:
                print(json.dumps(event.to_json()), flush=True)
            else:
                text = event.data.get("text") if event.type == "agent.message" else ""
                print(
                    f"{event.seq:>5} {event.at:%H:%M:%S} {event.type:<22} {text or ''}", flush=True
                )
            if event.type.startswith("run."):
                record = await store.get(settings.org, args.run_id)
                if not args.json:
                    sys.stderr.write(f"      [{event.data.get('lifecycle', '?')}]\n")
                settled = record.lifecycle in TERMINAL or record.awaiting
                if settled and await database.ledger.last_seq(args.run_id) <= event.seq:
                    break
        return 0 if record.lifecycle.value != "failed" else 1

    return run_async(lambda: with_database(go))
