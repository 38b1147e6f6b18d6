"""Stage functions for the pipeline crash and scale tests (imported by worker subprocesses)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio

from pipelines import StageContext


async def effect(ctx: StageContext, dir: str, pause: float = 0.03) -> dict[str, Any]:
    """Log the execution, pause, then do the side effect once per idempotency key."""
    root = Path(dir)
    line = f"{ctx.stage_id} {ctx.idempotency_key} {os.getpid()}\n"
    with (root / "executions.log").open("a") as log:
        log.write(line)
    await anyio.sleep(pause)
    try:
        (root / "markers" / ctx.idempotency_key.replace(":", "_")).mkdir(parents=False)
    except FileExistsError:
        return {"stage": ctx.stage_id, "repeated": True}
    with (root / "effects.log").open("a") as log:
        log.write(line)
    return {"stage": ctx.stage_id, "pid": os.getpid()}


EFFECT_SH = """\
set -e
echo "$WRITGATE_STAGE_ID $WRITGATE_IDEMPOTENCY_KEY $$" >> "$DIR/executions.log"
sleep 0.03
marker="$DIR/markers/$(echo "$WRITGATE_IDEMPOTENCY_KEY" | tr ':' '_')"
if mkdir "$marker" 2>/dev/null; then
    echo "$WRITGATE_STAGE_ID $WRITGATE_IDEMPOTENCY_KEY $$" >> "$DIR/effects.log"
fi
echo "done $WRITGATE_STAGE_ID"
"""

PY = '{uses: python, with: {function: "tests.integration._pipeline_stages:effect", args: {dir: "{{ inputs.dir }}"}}, needs: %s}'  # noqa: E501
SH = '{uses: command, with: {argv: [sh, "{{ inputs.dir }}/effect.sh"], env: {DIR: "{{ inputs.dir }}"}}, needs: %s}'  # noqa: E501

CRASH_PIPELINE = f"""\
name: crash
inputs:
  dir: {{required: true}}
stages:
  s1: {PY % "[]"}
  s2: {SH % "[s1]"}
  s3: {PY % "[s1]"}
  s4: {SH % "[s2, s3]"}
  s5: {PY % "[s4]"}
  s6: {SH % "[s5]"}
"""
