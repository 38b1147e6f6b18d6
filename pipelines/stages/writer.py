"""The ``writer`` stage: a coding-agent run through the writer package.

``with:`` is the run contract of DESIGN.md §4.1 (camelCase) plus two pipeline conveniences:
``agent: {driver: command, script: PATH, interpreter: python3}`` runs a script that ships next to
the pipeline file as the command agent, and ``seedFrom: DIR`` creates the repository on the local
forge from a folder when it does not exist yet. The run's idempotency key comes from the pipeline
run and the stage, so a stage re-run after a crash re-attaches to its run: never a second PR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from passport import writer_from_run
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest
from writer.service import WriterService

from ..context import StageContext
from ..errors import StageFailure
from . import register

__all__ = ["run_writer"]

_OK = (Lifecycle.SUCCEEDED, Lifecycle.AWAITING_FOLLOW_UP)


def _agent(ctx: StageContext, agent: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not agent or "script" not in agent:
        return agent
    path = ctx.resolve_path(str(agent["script"]))
    try:
        program = path.read_text()
    except OSError as exc:
        raise StageFailure(f"agent.script {path}: {exc.strerror}", retryable=False) from exc
    interpreter = str(agent.get("interpreter", "python3"))
    return {"driver": "command", "argv": [interpreter, "-c", program, "{{ instruction }}"]}


async def _seed(ctx: StageContext, repository: str, folder: str) -> None:
    forge = ctx.services["forge_for"](ctx.org_id)
    create = getattr(forge, "create_repository", None)
    if create is None:
        raise StageFailure("seedFrom needs the local forge", retryable=False)
    await create(repository, from_dir=ctx.resolve_path(folder))


async def run_writer(ctx: StageContext) -> Mapping[str, Any]:
    """Create (or re-attach to) the stage's run and wait until it settles."""
    writer: WriterService = ctx.services["writer"]
    params = dict(ctx.params)
    seed = params.pop("seedFrom", None)
    params["agent"] = _agent(ctx, params.get("agent"))
    if params["agent"] is None:
        params.pop("agent")
    try:
        request = CreateRunRequest.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise StageFailure(f"with.{where}: {first['msg']}", retryable=False) from exc
    if seed:
        await _seed(ctx, request.repository, str(seed))
    record, created = await writer.create_run(
        ctx.org_id, request, idempotency_key=ctx.stage_key, start=False
    )
    await ctx.progress("writer run " + ("created" if created else "re-attached"), runId=record.id)

    async def cancel_run() -> None:
        current = await writer.get(ctx.org_id, record.id)
        if not current.terminal:
            await writer.cancel(ctx.org_id, record.id)

    ctx.on_cancel(cancel_run)
    if record.lifecycle is Lifecycle.QUEUED:
        await writer.executor.run(ctx.org_id, record.id)
    record = await writer.wait(ctx.org_id, record.id)
    if record.lifecycle not in _OK:
        failure = record.failure or {"code": record.lifecycle.value, "message": "run ended"}
        raise StageFailure(
            f"writer run {record.id} {record.lifecycle.value}: {failure['code']}: "
            f"{failure['message']}",
            retryable=failure.get("code") in ("sandbox_lost", "sandbox_error"),
        )
    result = record.result
    pr = result.get("pullRequest")
    return {
        "runId": record.id,
        "repository": record.repository,
        "lifecycle": record.lifecycle.value,
        "branch": result.get("branch"),
        "baseSha": result.get("baseSha"),
        "headSha": result.get("headSha") or result.get("baseSha"),
        "pullRequest": pr,
        "pullRequestNumber": pr["number"] if pr else None,
        "validation": result.get("validation"),
        "provenance": writer_from_run(record.to_model().model_dump(mode="json", by_alias=True)),
    }


register("writer", run_writer)
