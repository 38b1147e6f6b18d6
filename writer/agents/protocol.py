"""The agent seam (DESIGN.md §7): run one turn of a coding agent inside a sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from writer.sandbox import Sandbox

__all__ = ["Agent", "AgentEventSink", "TurnContext", "TurnResult", "TurnUsage", "UsageSink"]

AgentEventSink = Callable[[str, Mapping[str, Any]], Awaitable[None]]
"""Receives ledger events of the turn: ``(type, data)`` such as ``agent.message``."""


@dataclass(frozen=True)
class TurnUsage:
    """What one turn consumed, as the agent reported it."""

    input_tokens: int = 0
    """Input tokens read without a prompt cache."""
    output_tokens: int = 0
    cache_read_tokens: int = 0
    """Input tokens read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache."""
    cost_usd: float | None = None
    """What the agent itself says the turn cost, when it says so."""
    reported: bool = True

    def __add__(self, other: TurnUsage) -> TurnUsage:
        costs = [c for c in (self.cost_usd, other.cost_usd) if c is not None]
        return TurnUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            cost_usd=round(sum(costs), 8) if costs else None,
            reported=self.reported and other.reported,
        )

    @property
    def total_input_tokens(self) -> int:
        """Every input token, cached or not."""
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


UsageSink = Callable[[TurnUsage], Awaitable[None]]
"""Told the usage of the running turn so far (cumulative for the turn)."""


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
    """Extra environment of the agent process (credentials); its values are redacted."""
    on_usage: UsageSink | None = None
    """Told the turn's usage so far each time the agent reports some, so the host can stop
    the turn mid-way when a budget is crossed (DESIGN.md §4.5)."""


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
