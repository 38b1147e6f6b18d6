"""``writgate demo``: the ci-repair example from writer to merge-gate decision, in a fresh home.

It creates the example repository on the local forge, runs a command agent in a bubblewrap
sandbox that repairs the failing test, opens a draft PR, reviews it, issues the Change Passport
and decides at the merge gate, then prints what happened.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipelines import load_pipeline
from pipelines.records import PipelineRun
from writgate.app.database import Database, open_database
from writgate.errors import ConfigError
from writgate.settings import Settings

from ._common import run_async
from ._pipelines import pipeline_service, run_with_progress, worker_options

__all__ = ["example_dir", "register"]


def example_dir(name: str = "ci-repair") -> Path:
    """The folder of a shipped example (inside the package, or in a source checkout)."""
    for root in (
        Path(__file__).resolve().parents[1] / "examples",
        Path(__file__).resolve().parents[3] / "examples",
    ):
        if (root / name / "pipeline.yaml").is_file():
            return root / name
    raise ConfigError(f"the {name} example is not installed with this copy of writgate")


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="run the ci-repair example end to end in a fresh temporary home"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="keep the demo's state here instead of a temporary folder",
    )
    parser.set_defaults(handler=_demo)


def _stage(run: PipelineRun, stage_id: str) -> dict[str, Any]:
    for stage in run.stages:
        if stage.stage_id == stage_id:
            return dict(stage.outputs or {})
    return {}


def _summary(run: PipelineRun, home: Path) -> list[str]:
    write, review, passport, gate = (
        _stage(run, s) for s in ("write", "review", "passport", "gate")
    )
    lines = ["", "writgate demo: ci-repair", f"  pipeline run  {run.id}  ({run.status})"]
    if write:
        lines.append(f"  writer run    {write.get('runId')}  ({write.get('lifecycle')})")
        lines.append(f"  branch        {write.get('branch')} @ {str(write.get('headSha'))[:12]}")
        pr = write.get("pullRequest") or {}
        if pr:
            lines.append(
                f"  pull request  #{pr.get('number')} on {write.get('repository')}"
                f"{' (draft)' if pr.get('draft') else ''}  {pr.get('url', '')}"
            )
        validation = write.get("validation") or {}
        if validation:
            lines.append(
                f"  validation    {validation.get('result')} "
                f"({validation.get('passed', 0)} passed, "
                f"{validation.get('failed', 0)} failed)"
            )
    if review:
        severity = review.get("bySeverity", {})
        lines.append(
            f"  findings      {review.get('findings', 0)} "
            f"(error {severity.get('error', 0)}, warning {severity.get('warning', 0)}, "
            f"info {severity.get('info', 0)})"
        )
    if passport:
        lines.append(f"  passport      {passport.get('passportId')}")
        lines.append(f"                {passport.get('path')}")
    if gate:
        lines.append(
            f"  gate decision {str(gate.get('decision')).upper()}  ({gate.get('decisionId')})"
        )
        for rule in gate.get("rules", []):
            reasons = "; ".join(rule.get("reasons") or []) or "-"
            lines.append(f"    {rule['state']:<11} {rule['name']}: {reasons}")
    lines.append(f"  home          {home}")
    lines.append(f"  look around   WRITGATE_HOME={home} writgate forge prs")
    return lines


def _demo(args: argparse.Namespace) -> int:
    example = example_dir()
    home = (args.home or Path(tempfile.mkdtemp(prefix="writgate-demo-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["WRITGATE_HOME"] = str(home)
    settings = Settings(home=home, database_url=f"sqlite+aiosqlite:///{home / 'writgate.db'}")
    pipeline = load_pipeline(example / "pipeline.yaml")

    async def go() -> tuple[PipelineRun, bool]:
        database: Database = await open_database(settings)
        try:
            async with pipeline_service(database, settings) as service:
                run = await service.start(
                    settings.org,
                    pipeline,
                    {},
                    source=str(example / "pipeline.yaml"),
                    base_dir=example,
                )
                print(run.id, flush=True)
                return await run_with_progress(service, run, options=worker_options())
        finally:
            await database.dispose()

    run, interrupted = run_async(go)
    print("\n".join(_summary(run, home)))
    if interrupted:
        return 130
    if run.status != "succeeded":
        print(
            f"writgate: error: the demo pipeline {run.status}: {run.error or 'see above'}",
            file=sys.stderr,
        )
        return 1
    return 0
