"""The ``opencode`` driver: ``opencode run --format json``.

OpenCode prints one JSON object per line, each with ``type``, ``timestamp``, ``sessionID`` and a
``part``: ``step_start``, ``text`` (a finished text part), ``reasoning``, ``tool_use`` (a tool
part whose ``state`` has ``status`` completed or error, ``input``, ``output``/``error``),
``step_finish`` (the step's ``reason`` — ``tool-calls`` while the agent goes on, ``stop`` when
it is done — with its ``tokens`` and ``cost``) and ``error`` (``error.name``,
``error.data.message``). Recent versions end with ``done`` once the session is idle.

The final result is ``done``, or, from versions without it, a ``step_finish`` whose reason is
not ``tool-calls``. Usage is summed over the ``step_finish`` events, so the host sees it grow
step by step. Follow-ups continue the session with ``--session <id>``. ``--auto`` approves
the permission requests that ``run`` would otherwise reject (the sandbox is the boundary).
"""

from __future__ import annotations

from typing import Any, ClassVar

from writer.catalog import agent_model

from .cli import CliAgent, ParsedEvent, StreamParser, as_object, compact_json
from .protocol import TurnContext, TurnResult, TurnUsage

__all__ = ["OpenCodeAgent", "OpenCodeParser"]

_SHELL_TOOLS = frozenset({"bash", "shell"})


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _error_text(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    data = error.get("data")
    if isinstance(data, dict) and data.get("message"):
        return f"{error.get('name', 'Error')}: {data['message']}"
    return str(error.get("message") or error.get("name") or compact_json(error))


class OpenCodeParser(StreamParser):
    """Parses ``opencode run --format json`` output."""

    driver = "opencode"

    def __init__(self) -> None:
        super().__init__()
        self._finished = False
        self._errors: list[str] = []

    def feed(self, stream: str, line: str) -> list[ParsedEvent]:
        event = self.json_line(stream, line)
        if event is None:
            return self.raw(stream, line)
        if isinstance(event.get("sessionID"), str) and event["sessionID"]:
            self.session_id = event["sessionID"]
        kind = event.get("type")
        part = as_object(event.get("part"))
        if kind == "text":
            text = str(part.get("text", ""))
            if text.strip():
                self.summary = text
                return [ParsedEvent("agent.message", {"role": "assistant", "text": text})]
            return []
        if kind == "tool_use":
            return self._tool(part)
        if kind == "step_finish":
            tokens = as_object(part.get("tokens"))
            cache = as_object(tokens.get("cache"))
            cost = part.get("cost")
            self.usage = self.usage + TurnUsage(
                input_tokens=_int(tokens.get("input")),
                output_tokens=_int(tokens.get("output")) + _int(tokens.get("reasoning")),
                cache_read_tokens=_int(cache.get("read")),
                cache_write_tokens=_int(cache.get("write")),
                cost_usd=float(cost)
                if isinstance(cost, (int, float)) and not isinstance(cost, bool)
                else None,
            )
            # "tool-calls": the agent goes on with another step; anything else ends the turn.
            self._finished = part.get("reason") != "tool-calls"
            return []
        if kind == "step_start":
            self._finished = False
            return []
        if kind == "done":
            self._finished = True
            return []
        if kind == "error":
            text = _error_text(event.get("error"))
            self._errors.append(text)
            return [ParsedEvent("agent.message", {"role": "error", "text": text})]
        return []

    def _tool(self, part: dict[str, Any]) -> list[ParsedEvent]:
        state = as_object(part.get("state"))
        tool = str(part.get("tool", "?"))
        call_id = str(part.get("callID", part.get("id", "")))
        status = "failed" if state.get("status") == "error" else "completed"
        tool_input = as_object(state.get("input"))
        output = state.get("output") if status == "completed" else state.get("error")
        if tool in _SHELL_TOOLS and isinstance(tool_input.get("command"), str):
            metadata = as_object(state.get("metadata"))
            return [
                ParsedEvent(
                    "agent.command",
                    {
                        "phase": "finished",
                        "id": call_id,
                        "command": tool_input["command"],
                        "status": status,
                        "exitCode": metadata.get("exit"),
                        "output": compact_json(output or ""),
                    },
                )
            ]
        return [
            ParsedEvent(
                "agent.tool_call",
                {
                    "phase": "result",
                    "id": call_id,
                    "tool": tool,
                    "status": status,
                    "input": compact_json(tool_input),
                    "output": compact_json(output or ""),
                },
            )
        ]

    def outcome(self, exit_code: int) -> TurnResult:
        if self._errors:
            return self.result(
                ok=False, exit_code=exit_code, failure_message="opencode: " + self._errors[-1]
            )
        if not self._finished:
            return self.missing_result(exit_code, "a final step_finish or done event")
        if exit_code != 0:
            return self.result(
                ok=False,
                exit_code=exit_code,
                failure_message=f"opencode finished the turn but exited with code {exit_code}",
            )
        return self.result(ok=True, exit_code=exit_code)


class OpenCodeAgent(CliAgent):
    """OpenCode's headless ``run``; follow-ups continue the same session."""

    name: str = "opencode"
    install_hint: ClassVar[str] = (
        "install it on the host (npm install -g opencode-ai) or in ~/.local/bin"
    )
    credential_env: ClassVar[tuple[str, ...]] = (
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GENERATIVE_AI_API_KEY",
        "OPENROUTER_API_KEY",
    )

    def command(self, context: TurnContext) -> tuple[list[str], bytes | None]:
        """``opencode run --format json [--session id] [--model m]``, instruction on stdin."""
        # --auto: approve the permission requests ``run`` would otherwise reject; writgate's
        # sandbox, not opencode's prompts, is the boundary.
        argv = ["opencode", "run", "--format", "json", "--auto"]
        model = agent_model(context.model_id, self.name)
        if model:
            argv += ["--model", model]
        if context.session_id:
            argv += ["--session", context.session_id]
        # opencode reads the message from piped standard input when none is given in argv.
        return argv, context.instruction.encode("utf-8")

    def parser(self) -> OpenCodeParser:
        """A parser for one turn."""
        return OpenCodeParser()
