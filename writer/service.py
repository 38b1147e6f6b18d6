"""The writer's operations, as the HTTP API, the CLI and pipelines use them."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from .catalog import lookup
from .errors import RunConflict
from .executor import Executor
from .lifecycle import TERMINAL, Lifecycle, next_actions_for
from .models import CreateRunRequest, FollowUpRequest
from .publish import branch_name, branch_tip
from .store import RunFilters, RunRecord, RunStore

__all__ = ["WriterService"]

L = Lifecycle
SETTLED = frozenset({*TERMINAL, L.AWAITING_FOLLOW_UP})


class WriterService:
    """Create, query, follow up, complete and cancel runs."""

    def __init__(self, *, store: RunStore, executor: Executor):
        self.store = store
        self.executor = executor

    async def create_run(
        self,
        org_id: str,
        request: CreateRunRequest,
        *,
        idempotency_key: str | None = None,
        start: bool = True,
    ) -> tuple[RunRecord, bool]:
        """Store a run (idempotently) and hand it to the executor; ``(run, created)``."""
        if request.model_id is not None:
            lookup(request.model_id)
        record, created = await self.store.create(org_id, request, idempotency_key=idempotency_key)
        if created and start:
            self.executor.wake()
        return record, created

    async def get(self, org_id: str, run_id: str) -> RunRecord:
        """One run."""
        return await self.store.get(org_id, run_id)

    async def list_runs(
        self, org_id: str, filters: RunFilters, *, cursor: str | None, limit: int
    ) -> tuple[list[RunRecord], str | None]:
        """A page of runs."""
        return await self.store.list_runs(org_id, filters, cursor=cursor, limit=limit)

    async def send_message(
        self, org_id: str, run_id: str, message: FollowUpRequest
    ) -> tuple[RunRecord, bool]:
        """A follow-up turn; ``(run, chained)`` where ``chained`` means a new chained run."""
        record = await self.store.get(org_id, run_id)
        spec = record.spec
        if record.lifecycle in (L.QUEUED, L.STARTING, L.RUNNING):
            raise RunConflict(
                "the run is busy with a turn", code="run_busy", nextActions=["cancel", "stream"]
            )
        max_turns = spec.safety.resources.max_turns
        if len(record.turns) >= max_turns and message.fallback != "chain":
            raise RunConflict(
                f"run {run_id} used all of its maxTurns={max_turns}; send the message with "
                '"fallback": "chain" to continue in a chained run',
                code="max_turns_exceeded",
                nextActions=next_actions_for(record.lifecycle),
            )
        if record.lifecycle is L.AWAITING_FOLLOW_UP and len(record.turns) < max_turns:
            try:
                return await self.executor.follow_up(org_id, run_id, message.text), False
            except RunConflict as exc:
                if exc.code != "session_not_warm" or message.fallback != "chain":
                    raise
        if message.fallback == "chain":
            return await self.chain(record, message.text), True
        raise RunConflict(
            f"run {run_id} is {record.lifecycle.value}: its session is not warm",
            code="session_not_warm",
            nextActions=next_actions_for(record.lifecycle),
        )

    async def chain(self, parent: RunRecord, text: str) -> RunRecord:
        """A chained run that starts from the parent's branch and carries its context."""
        spec = parent.spec
        summary = (
            f"This continues writgate run {parent.id} ({parent.title}). Its instruction was:\n"
            f"{spec.prompt[:4000]}\n\nFollow-up instruction:\n{text}"
        )
        request = spec.model_copy(update={"prompt": summary[:100_000], "title": spec.title})
        extra = {}
        if parent.result.get("branch"):
            extra = {
                "startBranch": parent.result["branch"],
                "branch": parent.result["branch"],
                "headSha": parent.result.get("headSha"),
            }
        record, _ = await self.store.create(
            parent.org_id, request, parent=parent, extra_result=extra
        )
        self.executor.wake()
        return record

    async def settle_if_orphaned(self, org_id: str, run_id: str) -> RunRecord:
        """The run, settled first if the process driving it died (see :class:`Executor`)."""
        return await self.executor.settle_if_orphaned(org_id, run_id)

    async def retry(self, record: RunRecord, *, idempotency_key: str) -> tuple[RunRecord, bool]:
        """A queued run that redoes the work of ``record``, a run that was interrupted.

        The new run (chained to ``record``) starts from the same base and publishes to the same
        branch, on top of whatever ``record`` pushed before it stopped: its pull request, if it
        opened one, is updated, never opened a second time. ``(run, created)``.
        """
        branch = str(record.result.get("branch") or branch_name(record.id, record.title))
        url = await self.executor.forge_for(record.org_id).clone_url(record.repository)
        extra: dict[str, str] = {"branch": branch}
        tip = await branch_tip(url, branch)
        if tip is not None:
            extra["headSha"] = tip
        return await self.store.create(
            record.org_id,
            record.spec,
            idempotency_key=idempotency_key,
            parent=record,
            extra_result=extra,
        )

    async def complete(self, org_id: str, run_id: str) -> RunRecord:
        """Close a warm session."""
        record = await self.store.get(org_id, run_id)
        if record.lifecycle is not L.AWAITING_FOLLOW_UP:
            raise RunConflict(
                f"run {run_id} is {record.lifecycle.value}, not awaiting_follow_up",
                code="run_not_awaiting_follow_up",
            )
        return await self.executor.complete(org_id, run_id)

    async def cancel(self, org_id: str, run_id: str) -> RunRecord:
        """Cancel a run that has not ended."""
        return await self.executor.cancel(org_id, run_id)

    async def wait(
        self,
        org_id: str,
        run_id: str,
        *,
        until: Sequence[Lifecycle] = tuple(SETTLED),
        timeout: float | None = None,
    ) -> RunRecord:
        """Wait until the run is in one of ``until`` (terminal or warm by default)."""
        record = await self.store.get(org_id, run_id)
        if record.lifecycle in until:
            return record
        with anyio.fail_after(timeout):
            async for event in self.store.ledger.follow(run_id, org_id=org_id):
                if event.type.startswith("run."):
                    record = await self.store.get(org_id, run_id)
                    if record.lifecycle in until:
                        return record
        raise AssertionError("unreachable: follow never ends")
