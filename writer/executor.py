"""Executing runs: sandbox + agent + validation + publish, moving the lifecycle as it goes.

One :class:`Executor` per process drives the runs it claims. It keeps warm sandboxes until
``session.expiresAt``, expires them on time, and on start-up settles runs that a previous process
left mid-flight (``running`` -> ``failed/sandbox_lost``; a warm run whose sandbox is gone ->
``expired``), so no run stays stuck.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from forge.protocol import Forge
from passport import SigningKey
from writer.sandbox import (
    Limits,
    NetworkPolicy,
    Sandbox,
    SandboxError,
    SandboxEvent,
    SandboxProvider,
    SandboxSpec,
)
from writgate.git import run_git
from writgate.owners import new_owner_id, owner_is_dead

from .agents import TurnContext, TurnResult, TurnUsage, agent_env, agent_for
from .catalog import credits_for, default_driver, load_catalog
from .errors import RunConflict, WriterError
from .lifecycle import TERMINAL, Lifecycle
from .models import CreateRunRequest
from .pr_body import render_pr_body, signing_key_from_env
from .publish import branch_name, publish_change
from .store import RunRecord, RunStore
from .validation import run_validation

__all__ = ["Executor", "driver_of", "provenance_trailers"]

log = logging.getLogger("writgate.writer")
# Cleanup (settling a run, closing sandboxes) is shielded from cancellation but never unbounded:
# a sandbox that will not close must not hang a shutting-down server.
CLEANUP_SECONDS = 20.0
L = Lifecycle


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def driver_of(spec: CreateRunRequest) -> tuple[str, list[str] | None]:
    """The driver of a run and its argv (``command`` only); the catalog default if not named."""
    if spec.agent is not None:
        return spec.agent.driver, spec.agent.argv
    return default_driver(spec.model_id), None


def provenance_trailers(record: RunRecord) -> str:
    """The commit trailers that carry a run's provenance."""
    spec = record.spec
    driver, _ = driver_of(spec)
    return f"Writgate-Run: {record.id}\nAssisted-by: {driver}:{spec.model_id or 'none'}"


class Executor:
    """Drives runs in this process."""

    def __init__(
        self,
        *,
        store: RunStore,
        provider: SandboxProvider,
        forge_for: Callable[[str], Forge],
        home: Path,
        pr_body: Any = None,
        expiry_interval: float = 1.0,
        signing_key: SigningKey | None = None,
    ):
        self.store = store
        self.provider = provider
        self.forge_for = forge_for
        self.home = home
        self.pr_body = pr_body
        # Signs the provenance block of every PR body; WRITGATE_SIGNING_KEY when not given.
        self.signing_key = signing_key if signing_key is not None else signing_key_from_env()
        self.expiry_interval = expiry_interval
        self._sandboxes: dict[str, Sandbox] = {}
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._busy: set[str] = set()
        self._task_group: TaskGroup | None = None
        self._wake = anyio.Event()
        self.owner = new_owner_id()

    # -- background service ------------------------------------------------------------------

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Recover, then run queued runs and expire warm sessions until cancelled.

        On the way out every sandbox this process holds is closed; its warm runs expire on the
        next start (their owner is gone).
        """
        await self.recover()
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                task_status.started()
                tg.start_soon(self._expiry_loop)
                while True:
                    for run_id in await self.store.ids_in("*", [L.QUEUED]):
                        if run_id not in self._busy:
                            org = await self.store.org_of(run_id)
                            self._busy.add(run_id)
                            tg.start_soon(self._drive_first_turn, org, run_id)
                    self._wake = anyio.Event()
                    with anyio.move_on_after(self.expiry_interval):
                        await self._wake.wait()
        finally:
            self._task_group = None
            await self.aclose()

    async def aclose(self) -> None:
        """Close every sandbox this executor holds, then the provider (shielded)."""
        for run_id in list(self._sandboxes):
            await self._release(run_id)
        close_provider = getattr(self.provider, "aclose", None)
        if close_provider is not None:
            with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
                await close_provider()

    def wake(self) -> None:
        """Look for queued runs now."""
        self._wake.set()

    def _orphaned(self, record: RunRecord) -> bool:
        """Whether nobody alive drives ``record`` (its owner process on this host is gone)."""
        if record.owner == self.owner:
            return False
        return record.owner is None or owner_is_dead(record.owner)

    async def recover(self) -> None:
        """Settle the runs whose driving process died (never another live process's runs)."""
        for run_id in await self.store.ids_in("*", [L.STARTING, L.RUNNING, L.AWAITING_FOLLOW_UP]):
            await self.settle_if_orphaned(await self.store.org_of(run_id), run_id)

    async def settle_if_orphaned(self, org_id: str, run_id: str) -> RunRecord:
        """Settle ``run_id`` if the process driving it died; the run as it is now.

        A run mid-turn fails with ``sandbox_lost``, a warm run expires. A process that re-attaches
        to a run (a pipeline stage taken over after a crash) calls this instead of waiting for a
        run that nobody drives any more.
        """
        record = await self.store.get(org_id, run_id)
        if record.lifecycle not in (L.STARTING, L.RUNNING, L.AWAITING_FOLLOW_UP):
            return record
        if not self._orphaned(record):
            return record
        if record.lifecycle is L.AWAITING_FOLLOW_UP:
            await self._expire(org_id, run_id, reason="sandbox_lost")
        else:
            await self._fail(
                org_id,
                run_id,
                "sandbox_lost",
                "the process running this run stopped; its sandbox is gone",
            )
        return await self.store.get(org_id, run_id)

    async def _expiry_loop(self) -> None:
        while True:
            await anyio.sleep(self.expiry_interval)
            now = _now()
            for run_id in await self.store.ids_in("*", [L.AWAITING_FOLLOW_UP]):
                if run_id in self._busy:
                    continue
                org = await self.store.org_of(run_id)
                record = await self.store.get(org, run_id)
                if record.owner != self.owner and not self._orphaned(record):
                    continue  # another live process keeps this session
                expires = record.session_expires_at
                sandbox = self._sandboxes.get(run_id)
                alive = sandbox is not None and await sandbox.is_alive()
                if (expires is not None and expires <= now) or not alive:
                    await self._expire(org, run_id, reason="expired" if alive else "sandbox_lost")

    # -- public operations -------------------------------------------------------------------

    async def run(self, org_id: str, run_id: str) -> RunRecord:
        """Drive a queued run's first turn in the caller's task and return the settled run."""
        self._busy.add(run_id)
        await self._drive_first_turn(org_id, run_id)
        return await self.store.get(org_id, run_id)

    async def follow_up(self, org_id: str, run_id: str, text: str) -> RunRecord:
        """Start a follow-up turn in the warm sandbox (the caller checked the state)."""
        record = await self.store.get(org_id, run_id)
        sandbox = self._sandboxes.get(run_id)
        if sandbox is None and record.sandbox_id:
            sandbox = await self.provider.attach(record.sandbox_id)
        if sandbox is None or not await sandbox.is_alive():
            raise RunConflict("the run's session is not warm any more", code="session_not_warm")
        if run_id in self._busy:
            raise RunConflict("the run is busy with a turn", code="run_busy")
        self._busy.add(run_id)
        record = await self.store.transition(
            org_id,
            run_id,
            L.RUNNING,
            expect=[L.AWAITING_FOLLOW_UP],
            session_expires_at=None,
        )
        if self._task_group is not None:
            self._task_group.start_soon(self._drive_turn, org_id, run_id, sandbox, text)
        else:
            await self._drive_turn(org_id, run_id, sandbox, text)
        return record

    async def cancel(self, org_id: str, run_id: str) -> RunRecord:
        """Stop the agent, release the sandbox, mark the run ``cancelled``."""
        record = await self.store.get(org_id, run_id)
        if record.terminal:
            raise RunConflict(
                f"run {run_id} is {record.lifecycle.value}; it cannot be cancelled",
                code="run_not_cancellable",
            )
        scope = self._scopes.get(run_id)
        if scope is not None:
            scope.cancel()
        record = await self._settle(org_id, run_id, L.CANCELLED)
        await self._release(run_id)
        return record

    async def complete(self, org_id: str, run_id: str) -> RunRecord:
        """Close a warm session: the run ``succeeded``."""
        record = await self.store.transition(
            org_id, run_id, L.SUCCEEDED, expect=[L.AWAITING_FOLLOW_UP]
        )
        await self._release(run_id)
        return record

    # -- turns -------------------------------------------------------------------------------

    async def _drive_first_turn(self, org_id: str, run_id: str) -> None:
        try:
            record = await self.store.transition(
                org_id, run_id, L.STARTING, expect=[L.QUEUED], owner=self.owner
            )
        except WriterError:
            self._busy.discard(run_id)
            return
        spec = record.spec
        try:
            sandbox = await self._create_sandbox(record, spec)
        except anyio.get_cancelled_exc_class():
            self._busy.discard(run_id)
            raise
        except Exception as exc:  # the forge's too (no such repository): never stuck starting
            self._busy.discard(run_id)
            await self._fail(org_id, run_id, "sandbox_error", str(exc))
            return
        self._sandboxes[run_id] = sandbox
        base_sha = await sandbox.head()
        result = {**record.result, "baseSha": base_sha}
        try:
            await self.store.transition(
                org_id,
                run_id,
                L.RUNNING,
                expect=[L.STARTING],
                sandbox_id=sandbox.id,
                result=result,
                event_data={"sandboxId": sandbox.id, "provider": sandbox.provider},
            )
        except WriterError:  # cancelled while starting
            self._busy.discard(run_id)
            await self._release(run_id)
            return
        await self._drive_turn(org_id, run_id, sandbox, spec.prompt)

    async def _create_sandbox(self, record: RunRecord, spec: CreateRunRequest) -> Sandbox:
        url = await self.forge_for(record.org_id).clone_url(spec.repository)
        ref = spec.base_ref or await self._default_branch(url)
        if record.parent_run_id and record.result.get("startBranch"):
            ref = record.result["startBranch"]
        resources = spec.safety.resources
        sandbox_spec = SandboxSpec(
            repository_url=url,
            ref=ref,
            env={"WRITGATE_RUN_ID": record.id},
            network=NetworkPolicy(
                mode=spec.safety.network.mode, allowlist=tuple(spec.safety.network.allowlist)
            ),
            limits=Limits(wall_seconds=float(resources.max_wall_seconds)),
            keep_warm_seconds=float(spec.session.keep_warm_seconds),
            labels={"runId": record.id, "orgId": record.org_id, "tags": ",".join(spec.tags)},
            idempotency_key=record.id,
        )
        return await self.provider.create(sandbox_spec)

    async def _default_branch(self, url: str) -> str:
        out = (await run_git(["ls-remote", "--symref", url, "HEAD"])).decode()
        for line in out.splitlines():
            if line.startswith("ref: refs/heads/"):
                return line.split()[1].removeprefix("refs/heads/")
        return "main"

    async def _drive_turn(self, org_id: str, run_id: str, sandbox: Sandbox, text: str) -> None:
        scope = anyio.CancelScope()
        self._scopes[run_id] = scope
        try:
            with scope:
                await self._turn(org_id, run_id, sandbox, text)
            if scope.cancelled_caught:
                with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
                    await self._settle(org_id, run_id, L.CANCELLED)
                    await self._release(run_id)
        except Exception as exc:  # a turn must never leave the run stuck in running
            log.exception("run %s: turn crashed", run_id)
            with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
                await self._fail(
                    org_id,
                    run_id,
                    "agent_error",
                    f"internal error while running the turn: {type(exc).__name__}",
                )
        finally:
            self._scopes.pop(run_id, None)
            self._busy.discard(run_id)

    async def _turn(self, org_id: str, run_id: str, sandbox: Sandbox, text: str) -> None:
        record = await self.store.get(org_id, run_id)
        spec = record.spec
        resources = spec.safety.resources
        number = len(record.turns) + 1
        started = _now()
        turn: dict[str, Any] = {
            "number": number,
            "instructionSha256": hashlib.sha256(text.encode()).hexdigest(),
            "startedAt": _iso(started),
            "outcome": "running",
        }
        record = await self.store.update(
            org_id,
            run_id,
            turns=[*record.turns, turn],
            event=("turn.started", {"turn": number}),
        )

        async def emit(type: str, data: Mapping[str, Any]) -> None:
            await self.store.record(org_id, run_id, type, data)

        driver, argv = driver_of(spec)
        budget = _CreditBudget(
            spec.model_id, float(record.usage.get("credits", 0.0)), resources.max_credits
        )
        outcome: TurnResult | None = None
        failure: tuple[str, str] | None = None
        try:
            agent = agent_for(driver, argv=argv)
            context = TurnContext(
                run_id=run_id,
                turn=number,
                instruction=text,
                repository=spec.repository,
                model_id=spec.model_id,
                session_id=record.result.get("agentSession"),
                max_turns=resources.max_turns,
                env=agent_env(agent, os.environ),
                on_usage=budget.observe,
            )
            # One scope for both host-enforced budgets: the wall clock runs out, or the
            # reported usage crosses maxCredits and the budget cancels it; either way the
            # agent's process tree is killed with the cancelled exec.
            with anyio.move_on_after(resources.max_wall_seconds) as limits:
                budget.scope = limits
                outcome = await agent.run_turn(sandbox, context, emit)
            if limits.cancelled_caught:
                failure = budget.exceeded or (
                    "wall_time_exceeded",
                    f"the turn ran past maxWallSeconds={resources.max_wall_seconds}",
                )
        except WriterError as exc:
            failure = (exc.code, exc.message)
        except SandboxError as exc:
            failure = ("sandbox_lost", str(exc))

        usage = dict(record.usage)
        usage["turns"] = number
        # A killed turn has no outcome: what it reported before it was killed still counts.
        turn_usage = outcome.usage if outcome is not None else budget.last
        if turn_usage is not None:
            usage["inputTokens"] += turn_usage.total_input_tokens
            usage["outputTokens"] += turn_usage.output_tokens
            usage["reported"] = usage.get("reported", True) and turn_usage.reported
            usage["credits"] = round(usage["credits"] + turn_credits(spec.model_id, turn_usage), 6)
        if outcome is not None:
            if not outcome.usage.reported and number == 1:
                await emit(
                    "agent.usage",
                    {
                        "reported": False,
                        "turn": number,
                        "note": f"the {driver} driver reports no usage",
                    },
                )
            if failure is None and not outcome.ok:
                failure = (
                    outcome.failure_code or "agent_error",
                    outcome.failure_message or "the agent failed",
                )
        if (
            failure is None
            and resources.max_credits is not None
            and (usage["credits"] > resources.max_credits)
        ):
            failure = (
                "max_credits_exceeded",
                f"the run used {usage['credits']} credits of maxCredits={resources.max_credits}",
            )

        result = dict(record.result)
        if outcome is not None and outcome.session_id:
            result["agentSession"] = outcome.session_id
        if failure is None and spec.validation_mode != "none":
            validation = await run_validation(sandbox, spec.validation_mode)
            if validation is not None:
                turn["validation"] = validation.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
                result["validation"] = turn["validation"]
                await emit("validation.finished", turn["validation"])
                if validation.result == "FAILED":
                    failure = ("validation_failed", f"validation failed: {validation.command}")
        if failure is None and spec.publish.mode != "none":
            try:
                result.update(await self._publish(record, sandbox, result, emit, usage=usage))
            except WriterError as exc:
                failure = ("publish_failed", exc.message)

        turn.update(
            finishedAt=_iso(_now()),
            exitCode=outcome.exit_code if outcome else None,
            outcome="failed" if failure else "succeeded",
        )
        if failure:
            turn["failure"] = {"code": failure[0], "message": failure[1]}
        turns = [*record.turns[:-1], turn]
        await self.store.update(
            org_id,
            run_id,
            turns=turns,
            usage=usage,
            result=result,
            event=("turn.finished", {"turn": number, "outcome": turn["outcome"]}),
        )
        if failure:
            await self._fail(org_id, run_id, *failure)
            return
        keep_warm = spec.session.keep_warm_seconds
        if keep_warm > 0 and number < resources.max_turns:
            await sandbox.keep_alive(keep_warm)
            await self.store.transition(
                org_id,
                run_id,
                L.AWAITING_FOLLOW_UP,
                expect=[L.RUNNING],
                session_expires_at=_now() + timedelta(seconds=keep_warm),
            )
        else:
            await self.store.transition(org_id, run_id, L.SUCCEEDED, expect=[L.RUNNING])
            await self._release(run_id)

    async def _publish(
        self,
        record: RunRecord,
        sandbox: Sandbox,
        result: dict[str, Any],
        emit: Any,
        *,
        usage: dict[str, Any],
    ) -> dict[str, Any]:
        spec = record.spec
        forge = self.forge_for(record.org_id)
        base_sha = result["baseSha"]
        patch = await sandbox.diff(base_sha)
        if not patch.strip() and not result.get("branch"):
            await emit("publish.skipped", {"reason": "the agent changed nothing"})
            return {"diffStats": {"files": 0, "additions": 0, "deletions": 0}}
        branch = result.get("branch") or branch_name(record.id, record.title)
        message = f"{record.title}\n\n{provenance_trailers(record)}\n"
        driver, _ = driver_of(spec)

        def body(head_sha: str) -> str:
            return render_pr_body(
                record,
                head_sha=head_sha,
                driver=driver,
                usage=usage,
                validation=result.get("validation"),
                key=self.signing_key,
                sandbox_provider=sandbox.provider,
                summary=self.pr_body(record) if self.pr_body else None,
            )

        ref = spec.base_ref or await self._default_branch(await forge.clone_url(spec.repository))
        published = await publish_change(
            forge=forge,
            repository=spec.repository,
            mirror_root=self.home / "mirrors",
            base_sha=base_sha,
            parent_sha=result.get("headSha"),
            patch=patch,
            branch=branch,
            message=message,
            mode=spec.publish.mode,
            base_ref=ref,
            title=record.title,
            body=body,
        )
        out: dict[str, Any] = {
            "branch": published.branch,
            "headSha": published.head_sha,
            "diffStats": _diff_stats(patch),
        }
        await emit("publish.pushed", {"branch": published.branch, "headSha": published.head_sha})
        if published.pull_request is not None:
            pr = published.pull_request
            out["pullRequest"] = {"number": pr.number, "url": pr.url or "", "draft": pr.draft}
            await emit("publish.pull_request", out["pullRequest"])
        return out

    # -- endings -----------------------------------------------------------------------------

    async def _settle(
        self, org_id: str, run_id: str, target: Lifecycle, **changes: Any
    ) -> RunRecord:
        record = await self.store.get(org_id, run_id)
        if record.terminal:
            return record
        try:
            return await self.store.transition(org_id, run_id, target, **changes)
        except WriterError:
            return await self.store.get(org_id, run_id)

    async def _fail(self, org_id: str, run_id: str, code: str, message: str) -> None:
        await self._settle(org_id, run_id, L.FAILED, failure={"code": code, "message": message})
        await self._release(run_id)

    async def _expire(self, org_id: str, run_id: str, *, reason: str) -> None:
        sandbox_id = (await self.store.get(org_id, run_id)).sandbox_id
        await self._release(run_id)
        await self.store.record(
            org_id, run_id, "sandbox.expired", {"sandboxId": sandbox_id, "reason": reason}
        )
        await self._settle(org_id, run_id, L.EXPIRED)

    async def _release(self, run_id: str) -> None:
        sandbox = self._sandboxes.pop(run_id, None)
        if sandbox is not None:
            with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
                try:
                    await sandbox.close()
                except SandboxError:
                    log.warning("run %s: closing the sandbox failed", run_id)

    async def on_sandbox_event(self, event: SandboxEvent) -> None:
        """Record a sandbox's own event (egress decisions, expiry) in its run's ledger."""
        run_id = event.labels.get("runId")
        org_id = event.labels.get("orgId")
        if run_id and org_id and event.type != "sandbox.expired":
            await self.store.record(org_id, run_id, event.type, dict(event.data))

    def is_terminal(self, record: RunRecord) -> bool:
        """Whether ``record`` has ended (kept here so callers need not import the table)."""
        return record.lifecycle in TERMINAL


def _diff_stats(patch: bytes) -> dict[str, int]:
    files = additions = deletions = 0
    for line in patch.split(b"\n"):
        if line.startswith(b"diff --git "):
            files += 1
        elif line.startswith(b"+") and not line.startswith(b"+++"):
            additions += 1
        elif line.startswith(b"-") and not line.startswith(b"---"):
            deletions += 1
    return {"files": files, "additions": additions, "deletions": deletions}


def turn_credits(model_id: str | None, usage: TurnUsage) -> float:
    """Credits of one turn's usage: catalog prices, else what the agent says it cost."""
    if model_id and model_id in load_catalog():
        return credits_for(
            model_id,
            usage.input_tokens,
            usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )
    return usage.cost_usd or 0.0


class _CreditBudget:
    """Watches a turn's reported usage and stops the turn when the run crosses maxCredits."""

    def __init__(self, model_id: str | None, spent: float, max_credits: float | None):
        self.model_id = model_id
        self.spent = spent
        self.max_credits = max_credits
        self.last: TurnUsage | None = None
        self.exceeded: tuple[str, str] | None = None
        self.scope: anyio.CancelScope | None = None

    async def observe(self, usage: TurnUsage) -> None:
        """Told the turn's usage so far; cancels :attr:`scope` once the budget is crossed."""
        self.last = usage
        if self.max_credits is None or self.exceeded is not None:
            return
        total = round(self.spent + turn_credits(self.model_id, usage), 6)
        if total > self.max_credits:
            self.exceeded = (
                "max_credits_exceeded",
                f"the run used {total} credits of maxCredits={self.max_credits}; "
                "the agent was stopped",
            )
            if self.scope is not None:
                self.scope.cancel()
