"""``writgate run FILE``, ``writgate validate FILE`` and ``writgate resume RUN_ID``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipelines import PipelineSpecError, load_pipeline
from pipelines.inputs import parse_input_assignments
from pipelines.worker import owner_is_dead
from writgate.app.database import Database
from writgate.settings import Settings

from ._common import print_json, run_async, with_database
from ._pipelines import pipeline_service, print_run, run_with_progress, worker_options

__all__ = ["register"]


def register(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run a pipeline file (prints the pipeline run id first)",
        description="Start a pipeline run and execute it in this process. The first line of "
        "output is the pipeline run id. Exit 0 when the pipeline succeeded, 1 when it did not.",
    )
    run.add_argument("file", help="the pipeline YAML file")
    run.add_argument(
        "--input", "-i", action="append", default=[], metavar="NAME=VALUE", help="repeatable"
    )
    run.add_argument("--detach", action="store_true", help="only start the run; workers execute it")
    run.set_defaults(handler=_run)
    validate = commands.add_parser("validate", help="check a pipeline file")
    validate.add_argument("file")
    validate.add_argument("--json", action="store_true", help="machine-readable output")
    validate.set_defaults(handler=_validate)
    resume = commands.add_parser(
        "resume", help="continue a pipeline run whose process died, skipping finished stages"
    )
    resume.add_argument("run_id")
    resume.add_argument(
        "--force",
        action="store_true",
        help="take over stages whose lease holder may still be alive (it must be gone)",
    )
    resume.set_defaults(handler=_resume)


def _finish(run_status: str, interrupted: bool, run_id: str) -> int:
    if interrupted:
        print(f"interrupted; continue with: writgate resume {run_id}", file=sys.stderr)
        return 130
    return 0 if run_status == "succeeded" else 1


def _run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    pipeline = load_pipeline(path)
    inputs = parse_input_assignments(args.input)
    base_dir = path.resolve().parent

    async def go(database: Database, settings: Settings) -> int:
        async with pipeline_service(database, settings) as service:
            run = await service.start(
                settings.org,
                pipeline,
                inputs,
                source=str(path),
                base_dir=base_dir,
            )
            print(run.id, flush=True)
            if args.detach:
                print(
                    f"started {pipeline.name}; a worker runs it (writgate worker), "
                    f"see: writgate pipeline status {run.id}",
                    file=sys.stderr,
                )
                return 0
            final, interrupted = await run_with_progress(service, run, options=worker_options())
            return _finish(final.status, interrupted, run.id)

    code: int = run_async(lambda: with_database(go))
    return code


def _validate(args: argparse.Namespace) -> int:
    try:
        pipeline = load_pipeline(args.file)
    except PipelineSpecError as exc:
        if args.json:
            print_json({"valid": False, "problems": [p.to_json() for p in exc.problems]})
        else:
            for problem in exc.problems:
                print(f"writgate: error: {problem}", file=sys.stderr)
        return 2
    if args.json:
        print_json({"valid": True, "name": pipeline.name, "stages": list(pipeline.stages)})
    else:
        print(f"{args.file}: ok ({pipeline.name}, {len(pipeline.stages)} stages)")
    return 0


def _resume(args: argparse.Namespace) -> int:
    async def go(database: Database, settings: Settings) -> int:
        async with pipeline_service(database, settings) as service:
            run = await service.get(settings.org, args.run_id)
            if run.finished:
                print(f"{run.id} already finished: {run.status}")
                return 0 if run.status == "succeeded" else 1
            dead = (lambda _owner: True) if args.force else owner_is_dead
            taken = await service.store.expire_leases(dead, run_id=run.id, org_id=settings.org)
            for stage in run.stages:
                if (
                    stage.status == "running"
                    and stage.lease_owner
                    and not (args.force or owner_is_dead(stage.lease_owner))
                ):
                    print(
                        f"stage {stage.stage_id} is held by {stage.lease_owner} until "
                        f"{stage.lease_expires_at:%H:%M:%S}Z; waiting for its lease "
                        "(--force if that worker is gone)",
                        file=sys.stderr,
                    )
            print(run.id, flush=True)
            if taken:
                print(f"taking over {taken} stage(s) of a stopped worker", file=sys.stderr)
            after = await database.ledger.last_seq(run.id)
            final, interrupted = await run_with_progress(
                service, run, after=after, options=worker_options()
            )
            print_run(final)
            return _finish(final.status, interrupted, run.id)

    code: int = run_async(lambda: with_database(go))
    return code
