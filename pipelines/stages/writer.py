"""The ``writer`` stage: a coding-agent run through the writer package.

``with:`` is the run contract of DESIGN.md §4.1 (camelCase) plus two pipeline conveniences:
``agent: {driver: command, script: PATH, interpreter: python3}`` runs a script that ships next to
the pipeline file as the command agent, and ``seedFrom: DIR`` creates the repository on the local
forge from a folder when it does not exist yet. The run's idempotency key comes from the pipeline
run and the stage, so a stage re-run after a crash re-attaches to its run: never a second PR. A run
that a crash interrupted (its process and sandbox gone) is settled and redone by a retry run on the
same branch, which updates the pull request the interrupted run may have opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from passport import writer_from_run
from writer.lifecycle import Lifecycle
from writer.models import CreateRunRequest
from writer.service import WriterService
from writer.store import RunRecord

from ..context import StageContext
from ..errors import StageFailure
from . import register

__all__ = ["run_writer"]

_OK = (Lifecycle.SUCCEEDED, Lifecycle.AWAITING_FOLLOW_UP)
# Failures that say nothing about the change: the run's sandbox (or its process) went away.
_INTERRUPTIONS = ("sandbox_lost", "sandbox_error")


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


def _interrupted(record: RunRecord) -> bool:
    failure = record.failure or {}
    return record.lifecycle is Lifecycle.FAILED and failure.get("code") in _INTERRUPTIONS


async def _past_interruptions(
    ctx: StageContext, writer: WriterService, record: RunRecord, created: bool
) -> RunRecord:
    """The run this attempt waits for: the stage's run, or the one redoing it after it stopped.

    A run found (not created) by this attempt may have been driven by a process that died: it is
    settled first, and if it was interrupted (its sandbox lost), a retry run redoes its work on
    the same branch and pull request, keyed by the interrupted run so that every process
    re-attaching follows the same chain. A run created here is this attempt's to report.
    """
    while not created:
        record = await writer.settle_if_orphaned(ctx.org_id, record.id)
        if not _interrupted(record):
            break
        interrupted = record.id
        record, created = await writer.retry(
            record, idempotency_key=f"{ctx.stage_key}:after:{interrupted}"
        )
        await ctx.progress(
            f"writer run {interrupted} was interrupted; "
            + ("retried in" if created else "re-attached to")
            + f" {record.id}",
            runId=record.id,
            interruptedRunId=interrupted,
        )
    return record


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
    record = await _past_interruptions(ctx, writer, record, created)

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
            retryable=failure.get("code") in _INTERRUPTIONS,
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
