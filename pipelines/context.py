"""What a stage handler receives: :class:`StageContext`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from writgate.ledger import Ledger
from writgate.settings import Settings

__all__ = ["CancelHook", "StageContext", "UpstreamStage"]

log = logging.getLogger(__name__)

CancelHook = Callable[[], Awaitable[None]]
ProgressSink = Callable[[str, Mapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class UpstreamStage:
    """A finished stage this stage needs (directly or not): its kind, status and outputs."""

    stage_id: str
    kind: str
    status: str
    outputs: Mapping[str, Any]


@dataclass
class StageContext:
    """Everything a stage handler may use; handlers return a mapping that becomes the outputs.

    ``idempotency_key`` is stable for one attempt of one stage of one pipeline run (a stage
    re-run after a crash gets the same key); ``stage_key`` is stable across attempts too, for
    side effects that must never happen twice (the writer stage's pull request).
    """

    pipeline_run_id: str
    stage_id: str
    kind: str
    attempt: int
    org_id: str
    idempotency_key: str
    stage_key: str
    params: Mapping[str, Any]
    inputs: Mapping[str, Any] = field(default_factory=dict)
    upstream: Mapping[str, UpstreamStage] = field(default_factory=dict)
    base_dir: Path | None = None
    settings: Settings | None = None
    engine: AsyncEngine | None = None
    ledger: Ledger | None = None
    services: Mapping[str, Any] = field(default_factory=dict)
    cancel_hooks: list[CancelHook] = field(default_factory=list)
    progress_sink: ProgressSink | None = None

    @property
    def with_(self) -> Mapping[str, Any]:
        """The stage's rendered ``with:`` mapping (same as :attr:`params`)."""
        return self.params

    def upstream_of_kind(self, kind: str) -> UpstreamStage | None:
        """The nearest upstream stage of ``kind`` that succeeded (judge stages find the writer)."""
        for stage in self.upstream.values():
            if stage.kind == kind and stage.status == "succeeded":
                return stage
        return None

    def on_cancel(self, hook: CancelHook) -> None:
        """Call ``hook`` when the stage is cancelled or times out (e.g. to cancel a writer run)."""
        self.cancel_hooks.append(hook)

    async def progress(self, message: str, **data: Any) -> None:
        """Record a ``stage.progress`` event (``message`` must not contain secrets)."""
        if self.progress_sink is not None:
            await self.progress_sink(message, data)

    def resolve_path(self, path: str) -> Path:
        """``path`` relative to the pipeline file's folder (or the working directory)."""
        candidate = Path(path).expanduser()
        if candidate.is_absolute() or self.base_dir is None:
            return candidate
        return self.base_dir / candidate

    async def run_cancel_hooks(self) -> None:
        """Call every cancel hook; a failing hook is logged, the others still run."""
        for hook in self.cancel_hooks:
            try:
                await hook()
            except Exception:
                log.exception("cancel hook of stage %s failed", self.stage_id)
