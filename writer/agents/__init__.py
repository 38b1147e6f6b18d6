"""Agent drivers (DESIGN.md §7)."""

from __future__ import annotations

from collections.abc import Mapping

from writer.errors import AgentError

from .aider import AiderAgent
from .claude_code import ClaudeCodeAgent
from .cli import CliAgent, StreamParser, parse_lines
from .codex import CodexAgent
from .command import CommandAgent, render_argv
from .opencode import OpenCodeAgent
from .protocol import Agent, AgentEventSink, TurnContext, TurnResult, TurnUsage, UsageSink

__all__ = [  # noqa: RUF022 (plain sorted order, checked by a test)
    "Agent",
    "AgentEventSink",
    "AiderAgent",
    "ClaudeCodeAgent",
    "CliAgent",
    "CodexAgent",
    "CommandAgent",
    "DRIVERS",
    "OpenCodeAgent",
    "StreamParser",
    "TurnContext",
    "TurnResult",
    "TurnUsage",
    "UsageSink",
    "agent_env",
    "agent_for",
    "parse_lines",
    "render_argv",
]

DRIVERS: dict[str, type[CliAgent]] = {
    agent.name: agent for agent in (ClaudeCodeAgent, CodexAgent, OpenCodeAgent, AiderAgent)
}
"""The CLI agent drivers by name (``command`` is built from an argv instead)."""


def agent_for(driver: str, *, argv: list[str] | None = None) -> Agent:
    """The driver called ``driver``; an unavailable one raises :class:`AgentError`."""
    if driver == "command":
        if not argv:
            raise AgentError("the command driver needs agent.argv", code="invalid_agent")
        return CommandAgent(argv)
    cli = DRIVERS.get(driver)
    if cli is None:
        raise AgentError(
            f"the {driver!r} agent driver is not available in this build of writgate",
            code="agent_unavailable",
        )
    return cli()


def agent_env(agent: Agent, environ: Mapping[str, str]) -> dict[str, str]:
    """The credentials ``agent`` needs, taken from the host environment ``environ``.

    Only the variables the driver names (its API keys) cross into the sandbox; they are
    redacted from every event the turn records.
    """
    names = agent.credential_env if isinstance(agent, CliAgent) else ()
    return {name: environ[name] for name in names if environ.get(name)}
