"""Agent drivers (DESIGN.md §7)."""

from __future__ import annotations

from writer.errors import AgentError

from .command import CommandAgent, render_argv
from .protocol import Agent, AgentEventSink, TurnContext, TurnResult, TurnUsage

__all__ = [
    "Agent",
    "AgentEventSink",
    "CommandAgent",
    "TurnContext",
    "TurnResult",
    "TurnUsage",
    "agent_for",
    "render_argv",
]


def agent_for(driver: str, *, argv: list[str] | None = None) -> Agent:
    """The driver called ``driver``; an unavailable one raises :class:`AgentError`."""
    if driver == "command":
        if not argv:
            raise AgentError("the command driver needs agent.argv", code="invalid_agent")
        return CommandAgent(argv)
    raise AgentError(
        f"the {driver!r} agent driver is not available in this build of writgate",
        code="agent_unavailable",
    )
