"""The ``aider`` driver: ``aider --message … --yes-always --no-auto-commits``.

aider has no machine-readable output: every line it prints becomes an ``agent.message``, the
turn's outcome is its exit code, and its usage is *not reported* — the run says so
(``usage.reported: false``) and ``maxCredits`` cannot be enforced for it, only the wall clock
and ``maxTurns``. aider commits nothing itself (``--no-auto-commits``): writgate commits on the
host, with its trailers. aider's own files (``.aider*``: chat history, tag cache) are
listed in the workspace's ``.git/info/exclude`` first, so they never reach the published
change. Follow-ups start aider again in the same warm workspace; aider keeps
its chat history in ``.aider.chat.history.md`` and restores it with ``--restore-chat-history``.
"""

from __future__ import annotations

from typing import ClassVar

from writer.catalog import agent_model
from writer.sandbox import Sandbox

from .cli import CliAgent, ParsedEvent, StreamParser
from .protocol import AgentEventSink, TurnContext, TurnResult, TurnUsage

__all__ = ["AiderAgent", "AiderParser"]

_EXCLUDE_AIDER_FILES = (
    "mkdir -p .git/info && { grep -qxF '.aider*' .git/info/exclude 2>/dev/null "
    "|| echo '.aider*' >> .git/info/exclude; }"
)


class AiderParser(StreamParser):
    """aider's plain-text output: every line is a message; the exit code decides."""

    driver = "aider"

    def __init__(self) -> None:
        super().__init__()
        self.usage = TurnUsage(reported=False)

    def feed(self, stream: str, line: str) -> list[ParsedEvent]:
        if not line.strip():
            return []
        return [ParsedEvent("agent.message", {"role": "output", "stream": stream, "text": line})]

    def outcome(self, exit_code: int) -> TurnResult:
        if exit_code != 0:
            return self.result(
                ok=False, exit_code=exit_code, failure_message=f"aider exited with code {exit_code}"
            )
        return self.result(ok=True, exit_code=exit_code)


class AiderAgent(CliAgent):
    """aider with one message per turn, answering yes to its questions, never committing."""

    name: str = "aider"
    install_hint: ClassVar[str] = (
        "install it on the host (pipx install aider-chat) or in ~/.local/bin"
    )
    credential_env: ClassVar[tuple[str, ...]] = (
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "OPENROUTER_API_KEY",
    )

    def command(self, context: TurnContext) -> tuple[list[str], bytes | None]:
        """``aider --message=<instruction> --yes-always --no-auto-commits …``."""
        argv = [
            "aider",
            # "--message=…" keeps an instruction that starts with "-" a value, not an option.
            f"--message={context.instruction}",
            "--yes-always",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-stream",
            "--no-pretty",
            "--no-fancy-input",
            "--no-check-update",
            "--no-show-model-warnings",
            "--no-gitignore",
            "--analytics-disable",
        ]
        model = agent_model(context.model_id, self.name)
        if model:
            argv.append(f"--model={model}")
        if context.turn > 1:
            argv.append("--restore-chat-history")
        return argv, None

    async def run_turn(
        self, sandbox: Sandbox, context: TurnContext, emit: AgentEventSink
    ) -> TurnResult:
        """Keep aider's files out of the change, then run it."""
        await sandbox.exec(["sh", "-c", _EXCLUDE_AIDER_FILES], timeout=30)
        return await super().run_turn(sandbox, context, emit)

    def parser(self) -> AiderParser:
        """A parser for one turn."""
        return AiderParser()
