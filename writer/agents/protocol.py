"""The agent seam (DESIGN.md §7): run one turn of a coding agent inside a sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from writer.sandbox import Sandbox

__all__ = ["Agent", "AgentEventSink", "TurnContext", "TurnResult", "TurnUsage"]

AgentEventSink = Callable[[str, Mapping[str, Any]], Awaitable[None]]
"""Receives ledger events of the turn: ``(type, data)`` such as ``agent.message``."""


@dataclass(frozen=True)
class TurnContext:
    """What an agent needs for one turn."""

    run_id: str
    turn: int
    instruction: str
    repository: str
    model_id: str | None = None
    session_id: str | None = None
    max_turns: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TurnUsage:
    """What one turn consumed, as the agent reported it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    reported: bool = True


@dataclass(frozen=True)
class TurnResult:
    """How a turn ended: decided from the exit code and the agent's final result."""

    ok: bool
    exit_code: int | None
    usage: TurnUsage = TurnUsage()
    session_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    summary: str | None = None


@runtime_checkable
class Agent(Protocol):
    """A coding agent driver."""

    name: str

    async def run_turn(
        self, sandbox: Sandbox, context: TurnContext, emit: AgentEventSink
    ) -> TurnResult:
        """Run one instruction in ``sandbox``; report events through ``emit``."""
        ...
