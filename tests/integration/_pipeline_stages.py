"""Stage functions for the pipeline worker tests (imported by worker subprocesses)."""

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
