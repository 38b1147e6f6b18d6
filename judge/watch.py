"""Re-evaluating the gate when a pull request changes, inside a running server.

:class:`GateWatcher` installs a ledger append hook that notices forge events — a review, a new
head, labels, another context's status or check run — of pull requests the gate has already
judged, and a background task that, once the event's transaction has committed, hands each to
:meth:`MergeGate.handle_forge_event` (at most once per PR per burst of events). The gate's own
status and check run are ignored, so publishing never triggers itself.

It sees the events of its own process: forge changes made by another process (a CLI, another
server) are picked up by the next event in this one or by ``POST /api/v1/merge-gate/refresh``.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from anyio.abc import TaskStatus
from sqlalchemy.ext.asyncio import AsyncConnection

from writgate.errors import WritgateError
from writgate.ledger import Event, Ledger

from .gate import MergeGate
from .publish import Publisher

__all__ = ["GateWatcher"]

log = logging.getLogger("writgate.judge")

_PR_EVENTS = frozenset({"pr.review", "pr.synchronize", "pr.labeled", "pr.updated"})
_CHECK_EVENTS = frozenset({"status.set", "check_run.created", "check_run.updated"})


def _relevant(event: Event, context: str) -> bool:
    if event.type in _PR_EVENTS:
        return True
    if event.type == "status.set":
        return event.data.get("context") != context
    if event.type in _CHECK_EVENTS:
        return event.data.get("name") not in (context, Publisher.check_name)
    return False


class GateWatcher:
    """Feeds forge events of this process to the merge gate (see the module docstring)."""

    def __init__(self, gate: MergeGate, *, settle_seconds: float = 0.2, buffer: int = 1000):
        self.gate = gate
        self.settle_seconds = settle_seconds
        self._send, self._receive = anyio.create_memory_object_stream[tuple[str, Event]](buffer)

    def install(self, ledger: Ledger) -> None:
        """Add the append hook to ``ledger``."""
        ledger.add_append_hook(self._on_append)

    async def _on_append(self, _conn: AsyncConnection, org_id: str, event: Event) -> None:
        if not _relevant(event, self.gate.status_context):
            return
        try:
            self._send.send_nowait((org_id, event))
        except anyio.WouldBlock:
            log.warning("gate watcher is behind; dropped %s of %s", event.type, event.subject_id)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the server is stopping

    async def _committed(self, org_id: str, event: Event) -> bool:
        """Whether the event's transaction committed (a rolled-back event never appears)."""
        with anyio.move_on_after(5):
            while True:
                found = await self.gate.ledger.read(
                    event.subject_id, org_id=org_id, after=event.seq - 1, limit=1
                )
                if found and found[0].seq == event.seq and found[0].type == event.type:
                    return True
                await anyio.sleep(0.05)
        return False

    async def _handle(self, org_id: str, event: Event) -> None:
        repository, number = event.data.get("repository"), event.data.get("number")
        if not isinstance(repository, str) or not isinstance(number, int):
            return
        judged = await self.gate.decisions.list(
            org_id, repository=repository, pr_number=number, limit=1
        )
        if not judged or not await self._committed(org_id, event):
            return
        try:
            decision = await self.gate.handle_forge_event(org_id, event)
        except WritgateError as exc:
            log.warning("re-evaluating %s#%s after %s failed: %s", repository, number,
                        event.type, exc)  # fmt: skip
            return
        if decision is not None:
            log.info("%s#%s re-evaluated after %s: %s", repository, number, event.type,
                     decision.decision)  # fmt: skip

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Process events until cancelled (a server background task)."""
        task_status.started()
        async with self._receive:
            while True:
                org_id, event = await self._receive.receive()
                await anyio.sleep(self.settle_seconds)
                # Coalesce a burst: one re-evaluation per PR, with the latest of its events.
                burst: dict[tuple[str, Any, Any], Event] = {_key(org_id, event): event}
                while True:
                    try:
                        more_org, more = self._receive.receive_nowait()
                    except anyio.WouldBlock:
                        break
                    burst[_key(more_org, more)] = more
                for (org, _repository, _number), latest in burst.items():
                    try:
                        await self._handle(org, latest)
                    except Exception:  # a bug here must not stop the server's watcher
                        log.exception("gate watcher failed on %s", latest.type)

    def close(self) -> None:
        """Stop accepting events."""
        self._send.close()


def _key(org_id: str, event: Event) -> tuple[str, Any, Any]:
    return org_id, event.data.get("repository"), event.data.get("number")
