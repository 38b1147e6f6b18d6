"""The ``command`` driver: any program, started from an argv template."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from writer.errors import AgentError
from writer.sandbox import Sandbox
from writgate.redact import Redactor

from .protocol import AgentEventSink, TurnContext, TurnResult, TurnUsage

__all__ = ["CommandAgent", "render_argv"]

MAX_MESSAGE_CHARS = 4000
MAX_MESSAGES_PER_TURN = 2000
_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def render_argv(template: Sequence[str], context: TurnContext) -> list[str]:
    """Render each argv element (Jinja2, sandboxed, strict) with the turn's context."""
    values: dict[str, Any] = {
        "instruction": context.instruction,
        "runId": context.run_id,
        "turn": context.turn,
        "repository": context.repository,
        "modelId": context.model_id or "",
    }
    try:
        return [_ENV.from_string(part).render(values) for part in template]
    except TemplateError as exc:
        raise AgentError(f"agent.argv template error: {exc}", code="invalid_argv") from exc


class CommandAgent:
    """Runs an argv template; every printed line is an ``agent.message``; exit 0 succeeds."""

    name = "command"

    def __init__(self, argv: Sequence[str]):
        self.argv = list(argv)

    async def run_turn(
        self, sandbox: Sandbox, context: TurnContext, emit: AgentEventSink
    ) -> TurnResult:
        """Run the command once for this turn."""
        argv = render_argv(self.argv, context)
        count = 0
        redactor = Redactor(v for v in context.env.values() if len(v) >= 8)

        async def on_output(stream: str, line: str) -> None:
            nonlocal count
            count += 1
            if count > MAX_MESSAGES_PER_TURN:
                redactor.line(line, stream)
                return
            # Every line goes through the redactor (a private key spans lines) before it is cut.
            text = redactor.line(line[: 4 * MAX_MESSAGE_CHARS], stream)[:MAX_MESSAGE_CHARS]
            await emit("agent.message", {"stream": stream, "text": text, "turn": context.turn})

        result = await sandbox.exec(argv, env=dict(context.env), on_output=on_output)
        if count > MAX_MESSAGES_PER_TURN:
            await emit(
                "agent.message",
                {
                    "stream": "stderr",
                    "turn": context.turn,
                    "text": f"[{count - MAX_MESSAGES_PER_TURN} more lines not recorded]",
                },
            )
        usage = TurnUsage(reported=False)
        if result.exit_code == 0:
            return TurnResult(ok=True, exit_code=0, usage=usage)
        return TurnResult(
            ok=False,
            exit_code=result.exit_code,
            usage=usage,
            failure_code="agent_error",
            failure_message=f"the agent command exited with code {result.exit_code}",
        )
